//! The reviewer desk's sessions (`desk_sessions`): one row per signed-in browser, shared by
//! every calltrail instance on the database. Only a SHA-256 of the session token is kept, with
//! the API key it was opened with, its CSRF token, and when it was made, last seen and ends.
use sea_orm_migration::prelude::*;

use crate::id_column;

#[derive(DeriveIden, Clone, Copy)]
enum DeskSessions {
    Table,
}

#[derive(DeriveMigrationName)]
pub struct Migration;

fn text(name: &str) -> ColumnDef {
    ColumnDef::new(Alias::new(name))
        .string()
        .not_null()
        .to_owned()
}

fn instant(name: &str) -> ColumnDef {
    ColumnDef::new(Alias::new(name))
        .timestamp_with_time_zone()
        .not_null()
        .to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(DeskSessions::Table)
                    .if_not_exists()
                    .col(id_column(Alias::new("id")))
                    .col(text("token_sha256").unique_key().to_owned())
                    .col(
                        ColumnDef::new(Alias::new("key_id"))
                            .big_integer()
                            .not_null(),
                    )
                    .col(text("csrf_token"))
                    .col(instant("created_at"))
                    .col(instant("last_seen_at"))
                    .col(instant("expires_at"))
                    .to_owned(),
            )
            .await?;
        for mut stmt in [
            crate::index(DeskSessions::Table, "idx_desk_sessions_key", &["key_id"]),
            crate::index(
                DeskSessions::Table,
                "idx_desk_sessions_expires",
                &["expires_at"],
            ),
        ] {
            manager
                .create_index(stmt.if_not_exists().to_owned())
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(DeskSessions::Table).to_owned())
            .await
    }
}
