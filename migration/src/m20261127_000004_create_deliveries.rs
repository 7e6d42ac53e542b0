//! The `deliveries` table: the append-only log of every authenticated webhook delivery.
use sea_orm_migration::prelude::*;

use crate::{id_column, index};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone, Copy)]
enum Deliveries {
    Table,
    Id,
    ReceivedAt,
    ContentType,
    Body,
    Sha256,
    Event,
    CallId,
    Outcome,
    Reason,
    ReplayOf,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Deliveries::Table)
                    .if_not_exists()
                    .col(id_column(Deliveries::Id))
                    .col(
                        ColumnDef::new(Deliveries::ReceivedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(ColumnDef::new(Deliveries::ContentType).string().not_null())
                    .col(ColumnDef::new(Deliveries::Body).binary().not_null())
                    .col(ColumnDef::new(Deliveries::Sha256).string().not_null())
                    .col(ColumnDef::new(Deliveries::Event).string().null())
                    .col(ColumnDef::new(Deliveries::CallId).string().null())
                    .col(ColumnDef::new(Deliveries::Outcome).string().not_null())
                    .col(ColumnDef::new(Deliveries::Reason).text().null())
                    .col(ColumnDef::new(Deliveries::ReplayOf).big_integer().null())
                    .to_owned(),
            )
            .await?;
        for stmt in [
            // `replay --rejected`: the rejected deliveries, in arrival order.
            index(
                Deliveries::Table,
                "idx_deliveries_outcome",
                &["outcome", "id"],
            ),
            // Which replays already answered a rejected delivery.
            index(
                Deliveries::Table,
                "idx_deliveries_replay_of",
                &["replay_of"],
            ),
            // Every delivery of one call, for audit.
            index(
                Deliveries::Table,
                "idx_deliveries_call_id",
                &["call_id", "id"],
            ),
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
            .drop_table(Table::drop().table(Deliveries::Table).to_owned())
            .await
    }
}
