//! The `call_revisions` table: earlier versions of a concluded call.
use sea_orm_migration::prelude::*;

use crate::{id_column, index};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone, Copy)]
enum CallRevisions {
    Table,
    Id,
    CallId,
    Revision,
    ReplacedAt,
    Snapshot,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(CallRevisions::Table)
                    .if_not_exists()
                    .col(id_column(CallRevisions::Id))
                    .col(ColumnDef::new(CallRevisions::CallId).string().not_null())
                    .col(ColumnDef::new(CallRevisions::Revision).integer().not_null())
                    .col(
                        ColumnDef::new(CallRevisions::ReplacedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(ColumnDef::new(CallRevisions::Snapshot).text().not_null())
                    .to_owned(),
            )
            .await?;
        // `Call.revisions`: one call's versions, oldest first.
        manager
            .create_index(
                index(
                    CallRevisions::Table,
                    "uq_call_revisions_call_revision",
                    &["call_id", "revision"],
                )
                .unique()
                .if_not_exists()
                .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(CallRevisions::Table).to_owned())
            .await
    }
}
