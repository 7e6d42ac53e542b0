//! The `call_half_hours` table: the `call_buckets` rollup summed per 30 minutes, the same
//! columns and key. A zone whose offsets are all whole half hours (New York, Kolkata, UTC:
//! nearly every zone) has its local hours, days, weeks and months made of whole half-hour
//! buckets, so a year of them is half the rows. Filled from `call_buckets` when created.
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(super::bucket_table("call_half_hours"))
            .await?;
        // Floored, not truncated, so a bucket before 1970 joins its own half hour.
        manager
            .get_connection()
            .execute_unprepared(
                "INSERT INTO call_half_hours (bucket_start, direction, calls, total_duration_seconds, \
                 min_duration_seconds, max_duration_seconds, with_recording, answered, missed, rejected) \
                 SELECT bucket_start - (((bucket_start % 1800) + 1800) % 1800) AS h, direction, \
                 SUM(calls), SUM(total_duration_seconds), MIN(min_duration_seconds), \
                 MAX(max_duration_seconds), SUM(with_recording), SUM(answered), SUM(missed), \
                 SUM(rejected) FROM call_buckets GROUP BY h, direction",
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(
                Table::drop()
                    .table(Alias::new("call_half_hours"))
                    .to_owned(),
            )
            .await
    }
}
