//! The `calls` table and the indexes behind every call-log query.
use sea_orm_migration::prelude::*;

use crate::{id_column, index};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone, Copy)]
enum Calls {
    Table,
    Id,
    CallId,
    Status,
    Direction,
    CustomerId,
    CustomerName,
    CustomerNumber,
    CustomerDigits,
    WabaNumber,
    PickedBy,
    EndedBy,
    RejectedBy,
    DeviceId,
    ChatId,
    ChatMessageId,
    Channel,
    ChannelNumber,
    PstnFrom,
    PstnTo,
    FailedReason,
    StartedAt,
    EndedAt,
    DurationSeconds,
    RecordingUrl,
    IsNewCaller,
    IsChatAssigned,
    NotPickedCount,
    Anomalies,
    Revision,
    ReceivedAt,
    UpdatedAt,
    RawContentType,
    RawPayload,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let text = |c: Calls| ColumnDef::new(c).string().null().to_owned();
        manager
            .create_table(
                Table::create()
                    .table(Calls::Table)
                    .if_not_exists()
                    .col(id_column(Calls::Id))
                    .col(
                        ColumnDef::new(Calls::CallId)
                            .string()
                            .not_null()
                            .unique_key(),
                    )
                    .col(ColumnDef::new(Calls::Status).string().not_null())
                    .col(text(Calls::Direction))
                    .col(text(Calls::CustomerId))
                    .col(text(Calls::CustomerName))
                    .col(text(Calls::CustomerNumber))
                    .col(text(Calls::CustomerDigits))
                    .col(text(Calls::WabaNumber))
                    .col(text(Calls::PickedBy))
                    .col(text(Calls::EndedBy))
                    .col(text(Calls::RejectedBy))
                    .col(text(Calls::DeviceId))
                    .col(text(Calls::ChatId))
                    .col(text(Calls::ChatMessageId))
                    .col(text(Calls::Channel))
                    .col(text(Calls::ChannelNumber))
                    .col(text(Calls::PstnFrom))
                    .col(text(Calls::PstnTo))
                    .col(text(Calls::FailedReason))
                    .col(
                        ColumnDef::new(Calls::StartedAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .col(
                        ColumnDef::new(Calls::EndedAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .col(
                        ColumnDef::new(Calls::DurationSeconds)
                            .big_integer()
                            .not_null(),
                    )
                    .col(text(Calls::RecordingUrl))
                    .col(ColumnDef::new(Calls::IsNewCaller).boolean().null())
                    .col(ColumnDef::new(Calls::IsChatAssigned).boolean().null())
                    .col(
                        ColumnDef::new(Calls::NotPickedCount)
                            .integer()
                            .not_null()
                            .default(0),
                    )
                    .col(
                        ColumnDef::new(Calls::Anomalies)
                            .string()
                            .not_null()
                            .default(""),
                    )
                    .col(
                        ColumnDef::new(Calls::Revision)
                            .integer()
                            .not_null()
                            .default(1),
                    )
                    .col(
                        ColumnDef::new(Calls::ReceivedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Calls::UpdatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(ColumnDef::new(Calls::RawContentType).string().not_null())
                    .col(ColumnDef::new(Calls::RawPayload).text().not_null())
                    .to_owned(),
            )
            .await?;
        // Every listing is "concluded calls ordered by a key, tie-broken by id"; each index
        // ends in (sort key, id) so a keyset page is one index range scan.
        let t = Calls::Table;
        for stmt in [
            // The default call log (newest endedAt first) and date-range filters.
            index(t, "idx_calls_ended_at", &["ended_at", "id"]),
            // An agent's calls in a period (agent dashboard, per-agent stats, short calls).
            index(
                t,
                "idx_calls_picked_by_ended_at",
                &["picked_by", "ended_at", "id"],
            ),
            // A customer's history, matched on the digits-only number.
            index(
                t,
                "idx_calls_customer_digits_ended_at",
                &["customer_digits", "ended_at", "id"],
            ),
            // A customer's history by DoubleTick customer id.
            index(
                t,
                "idx_calls_customer_id_ended_at",
                &["customer_id", "ended_at", "id"],
            ),
            // One business number's calls in a period.
            index(
                t,
                "idx_calls_waba_number_ended_at",
                &["waba_number", "ended_at", "id"],
            ),
            // Ordering by the other sort keys.
            index(t, "idx_calls_started_at", &["started_at", "id"]),
            index(t, "idx_calls_duration_seconds", &["duration_seconds", "id"]),
            index(t, "idx_calls_received_at", &["received_at", "id"]),
        ] {
            let mut stmt = stmt;
            manager
                .create_index(stmt.if_not_exists().to_owned())
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Calls::Table).to_owned())
            .await
    }
}
