//! Makes `call_events` (what a call is folded from) and `call_revisions` (its earlier
//! versions) append-only in the database itself, as `deliveries` and `access_log` are.
use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::ConnectionTrait;

use crate::sql::append_only;

#[derive(DeriveMigrationName)]
pub struct Migration;

const PROTECTED: [&str; 2] = ["call_events", "call_revisions"];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        for table in PROTECTED {
            for sql in append_only(db.get_database_backend(), table) {
                db.execute_unprepared(&sql).await?;
            }
        }
        Ok(())
    }

    async fn down(&self, _manager: &SchemaManager) -> Result<(), DbErr> {
        Err(DbErr::Migration(
            "a call's events and revisions are evidence: this migration is not reversed".into(),
        ))
    }
}
