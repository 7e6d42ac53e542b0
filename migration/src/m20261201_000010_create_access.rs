//! API keys (`api_keys`: a hash of each key, never the key) and the access log (`access_log`
//! and `access_log_calls`), which refuses UPDATE and DELETE (and TRUNCATE on PostgreSQL) in
//! the database itself, as `deliveries` does.
use crate::sql::append_only;
use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::ConnectionTrait;

use crate::id_column;

#[derive(DeriveIden, Clone, Copy)]
enum AccessLog {
    Table,
}

#[derive(DeriveIden, Clone, Copy)]
enum AccessLogCalls {
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
        .to_owned()
}

const PROTECTED: [&str; 2] = ["access_log", "access_log_calls"];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Alias::new("api_keys"))
                    .if_not_exists()
                    .col(id_column(Alias::new("id")))
                    .col(text("name"))
                    .col(text("role"))
                    .col(text("prefix").unique_key().to_owned())
                    .col(text("secret_sha256"))
                    .col(text("waba_numbers"))
                    .col(text("agents"))
                    .col(instant("created_at").not_null().to_owned())
                    .col(instant("expires_at").null().to_owned())
                    .col(instant("revoked_at").null().to_owned())
                    .col(instant("last_used_at").null().to_owned())
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Alias::new("access_log"))
                    .if_not_exists()
                    .col(id_column(Alias::new("id")))
                    .col(instant("at").not_null().to_owned())
                    .col(ColumnDef::new(Alias::new("key_id")).big_integer().null())
                    .col(text("key_name"))
                    .col(text("role"))
                    .col(text("surface"))
                    .col(ColumnDef::new(Alias::new("operation_name")).string().null())
                    .col(ColumnDef::new(Alias::new("query_sha256")).string().null())
                    .col(ColumnDef::new(Alias::new("client_address")).string().null())
                    .col(ColumnDef::new(Alias::new("call_ids")).text().not_null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Alias::new("access_log_calls"))
                    .if_not_exists()
                    .col(
                        ColumnDef::new(Alias::new("access_id"))
                            .big_integer()
                            .not_null(),
                    )
                    .col(text("call_id"))
                    .primary_key(
                        Index::create()
                            .col(Alias::new("access_id"))
                            .col(Alias::new("call_id")),
                    )
                    .to_owned(),
            )
            .await?;
        for stmt in [
            crate::index(AccessLog::Table, "idx_access_log_key", &["key_id", "id"]),
            crate::index(
                AccessLogCalls::Table,
                "idx_access_log_calls_call",
                &["call_id", "access_id"],
            ),
        ] {
            manager.create_index(stmt).await?;
        }
        let db = manager.get_connection();
        for table in PROTECTED {
            for sql in append_only(db.get_database_backend(), table) {
                db.execute_unprepared(&sql).await?;
            }
        }
        Ok(())
    }

    async fn down(&self, _manager: &SchemaManager) -> Result<(), DbErr> {
        Err(DbErr::Migration(
            "the access log is append-only evidence: this migration is not reversed".into(),
        ))
    }
}
