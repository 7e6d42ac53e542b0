//! The `call_half_hours` table: the `call_buckets` rollup summed per 30 minutes, the same
//! columns and key. A zone whose offsets are all whole half hours (New York, Kolkata, UTC:
//! nearly every zone) has its local hours, days, weeks and months made of whole half-hour
//! buckets, so a year of them is half the rows. Filled from `call_buckets` when created.
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone, Copy)]
enum CallHalfHours {
    Table,
    BucketStart,
    Direction,
    Calls,
    TotalDurationSeconds,
    MinDurationSeconds,
    MaxDurationSeconds,
    WithRecording,
    Answered,
    Missed,
    Rejected,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let count = |c: CallHalfHours| ColumnDef::new(c).big_integer().not_null().to_owned();
        manager
            .create_table(
                Table::create()
                    .table(CallHalfHours::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(CallHalfHours::BucketStart)
                            .big_integer()
                            .not_null(),
                    )
                    .col(ColumnDef::new(CallHalfHours::Direction).string().not_null())
                    .col(count(CallHalfHours::Calls))
                    .col(count(CallHalfHours::TotalDurationSeconds))
                    .col(count(CallHalfHours::MinDurationSeconds))
                    .col(count(CallHalfHours::MaxDurationSeconds))
                    .col(count(CallHalfHours::WithRecording))
                    .col(count(CallHalfHours::Answered))
                    .col(count(CallHalfHours::Missed))
                    .col(count(CallHalfHours::Rejected))
                    .primary_key(
                        Index::create()
                            .col(CallHalfHours::BucketStart)
                            .col(CallHalfHours::Direction),
                    )
                    .to_owned(),
            )
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
            .drop_table(Table::drop().table(CallHalfHours::Table).to_owned())
            .await
    }
}
