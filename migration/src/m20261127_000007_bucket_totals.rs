//! Rows of `call_buckets` with direction `*`: each bucket's calls of every direction, so a
//! question that does not split by direction reads one row per bucket instead of two.
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared(
                "INSERT INTO call_buckets (bucket_start, direction, calls, total_duration_seconds, \
                 min_duration_seconds, max_duration_seconds, with_recording, answered, missed, rejected) \
                 SELECT bucket_start, '*', SUM(calls), SUM(total_duration_seconds), \
                 MIN(min_duration_seconds), MAX(max_duration_seconds), SUM(with_recording), \
                 SUM(answered), SUM(missed), SUM(rejected) \
                 FROM call_buckets WHERE direction <> '*' GROUP BY bucket_start",
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared("DELETE FROM call_buckets WHERE direction = '*'")
            .await?;
        Ok(())
    }
}
