//! The `call_events` table: each distinct lifecycle event applied to a call.
use sea_orm_migration::prelude::*;

use crate::{id_column, index};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone, Copy)]
enum CallEvents {
    Table,
    Id,
    CallId,
    Fingerprint,
    Event,
    Rank,
    Fields,
    ReceivedAt,
    ContentType,
    RawPayload,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(CallEvents::Table)
                    .if_not_exists()
                    .col(id_column(CallEvents::Id))
                    .col(ColumnDef::new(CallEvents::CallId).string().not_null())
                    .col(ColumnDef::new(CallEvents::Fingerprint).string().not_null())
                    .col(ColumnDef::new(CallEvents::Event).string().not_null())
                    .col(ColumnDef::new(CallEvents::Rank).integer().not_null())
                    .col(ColumnDef::new(CallEvents::Fields).text().not_null())
                    .col(
                        ColumnDef::new(CallEvents::ReceivedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(ColumnDef::new(CallEvents::ContentType).string().not_null())
                    .col(ColumnDef::new(CallEvents::RawPayload).text().not_null())
                    .to_owned(),
            )
            .await?;
        // A redelivered event is recognised by its fingerprint within its call.
        manager
            .create_index(
                index(
                    CallEvents::Table,
                    "uq_call_events_call_fingerprint",
                    &["call_id", "fingerprint"],
                )
                .unique()
                .if_not_exists()
                .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(CallEvents::Table).to_owned())
            .await
    }
}
