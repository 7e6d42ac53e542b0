//! The `call_buckets` table: concluded calls pre-aggregated per 15 minutes of `ended_at` and direction.
//!
//! Every UTC offset in use is a whole number of quarter hours, so local hours, days, weeks
//! and months in any zone are unions of whole 15-minute UTC buckets. Existing calls are
//! aggregated into it when the table is created.
use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DatabaseBackend};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(super::bucket_table("call_buckets"))
            .await?;
        let backend = manager.get_database_backend();
        let sql = backfill_sql(backend);
        manager.get_connection().execute_unprepared(&sql).await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Alias::new("call_buckets")).to_owned())
            .await
    }
}

/// Aggregates every concluded call into its bucket (the same measures the service keeps).
fn backfill_sql(backend: DatabaseBackend) -> String {
    let epoch = crate::sql::epoch_seconds(backend, "ended_at");
    format!(
        "INSERT INTO call_buckets ({}) SELECT ({epoch} / 900) * 900 AS b, \
         COALESCE(direction, '') AS dir, {} FROM calls WHERE ended_at IS NOT NULL GROUP BY b, dir",
        crate::sql::BUCKET_COLUMNS,
        crate::sql::call_measures(),
    )
}
