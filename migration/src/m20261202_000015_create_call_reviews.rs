//! `call_reviews`: what a reviewer found on listening to a call (a verdict and a note), with
//! the key that recorded it and when. Append-only in the database itself: a later review adds
//! a row, never replaces one.
use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::ConnectionTrait;

use crate::sql::append_only;
use crate::{id_column, index};

#[derive(DeriveIden, Clone, Copy)]
enum CallReviews {
    Table,
}

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let text = |name: &str| {
            ColumnDef::new(Alias::new(name))
                .string()
                .not_null()
                .to_owned()
        };
        manager
            .create_table(
                Table::create()
                    .table(CallReviews::Table)
                    .if_not_exists()
                    .col(id_column(Alias::new("id")))
                    .col(text("call_id"))
                    .col(text("verdict"))
                    .col(ColumnDef::new(Alias::new("note")).text().not_null())
                    .col(ColumnDef::new(Alias::new("key_id")).big_integer().null())
                    .col(text("key_name"))
                    .col(
                        ColumnDef::new(Alias::new("reviewed_at"))
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                CallReviews::Table,
                "idx_call_reviews_call",
                &["call_id", "id"],
            ))
            .await?;
        let db = manager.get_connection();
        for sql in append_only(db.get_database_backend(), "call_reviews") {
            db.execute_unprepared(&sql).await?;
        }
        Ok(())
    }

    async fn down(&self, _manager: &SchemaManager) -> Result<(), DbErr> {
        Err(DbErr::Migration(
            "reviews are evidence: this migration is not reversed".into(),
        ))
    }
}
