//! Makes the delivery log append-only in the database itself: UPDATE, DELETE (and TRUNCATE on
//! PostgreSQL) on `deliveries` are refused by triggers, whatever code or person tries.
use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DatabaseBackend};

#[derive(DeriveMigrationName)]
pub struct Migration;

const SQLITE_UP: [&str; 2] = [
    "CREATE TRIGGER IF NOT EXISTS deliveries_no_update BEFORE UPDATE ON deliveries \
     BEGIN SELECT RAISE(ABORT, 'deliveries is append-only'); END",
    "CREATE TRIGGER IF NOT EXISTS deliveries_no_delete BEFORE DELETE ON deliveries \
     BEGIN SELECT RAISE(ABORT, 'deliveries is append-only'); END",
];

const POSTGRES_UP: [&str; 3] = [
    "CREATE OR REPLACE FUNCTION calltrail_deliveries_append_only() RETURNS trigger \
     LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'deliveries is append-only'; END $$",
    "CREATE TRIGGER deliveries_append_only BEFORE UPDATE OR DELETE ON deliveries \
     FOR EACH ROW EXECUTE FUNCTION calltrail_deliveries_append_only()",
    "CREATE TRIGGER deliveries_no_truncate BEFORE TRUNCATE ON deliveries \
     FOR EACH STATEMENT EXECUTE FUNCTION calltrail_deliveries_append_only()",
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        let statements: &[&str] = match db.get_database_backend() {
            DatabaseBackend::Postgres => &POSTGRES_UP,
            _ => &SQLITE_UP,
        };
        for sql in statements {
            db.execute_unprepared(sql).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        let statements: &[&str] = match db.get_database_backend() {
            DatabaseBackend::Postgres => &[
                "DROP TRIGGER IF EXISTS deliveries_no_truncate ON deliveries",
                "DROP TRIGGER IF EXISTS deliveries_append_only ON deliveries",
                "DROP FUNCTION IF EXISTS calltrail_deliveries_append_only()",
            ],
            _ => &[
                "DROP TRIGGER IF EXISTS deliveries_no_update",
                "DROP TRIGGER IF EXISTS deliveries_no_delete",
            ],
        };
        for sql in statements {
            db.execute_unprepared(sql).await?;
        }
        Ok(())
    }
}
