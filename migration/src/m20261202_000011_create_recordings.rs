//! Recordings: `recording_jobs`, the archive queue (one row per call and recording link,
//! updated as work proceeds), and `recordings`, the evidence that a recording was archived
//! (its SHA-256, size and type), which refuses UPDATE and DELETE (and TRUNCATE on PostgreSQL)
//! in the database itself, as `deliveries` does. The access log learns each playback's byte
//! range.
use crate::sql::append_only;
use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::ConnectionTrait;

use crate::id_column;

#[derive(DeriveIden, Clone, Copy)]
enum RecordingJobs {
    Table,
}

#[derive(DeriveIden, Clone, Copy)]
enum Recordings {
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

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(RecordingJobs::Table)
                    .if_not_exists()
                    .col(id_column(Alias::new("id")))
                    .col(text("call_id"))
                    .col(ColumnDef::new(Alias::new("url")).text().not_null())
                    .col(text("state"))
                    .col(
                        ColumnDef::new(Alias::new("attempts"))
                            .integer()
                            .not_null()
                            .default(0),
                    )
                    .col(instant("next_attempt_at").not_null().to_owned())
                    .col(instant("leased_until").null().to_owned())
                    .col(ColumnDef::new(Alias::new("last_error")).text().null())
                    .col(instant("created_at").not_null().to_owned())
                    .col(instant("updated_at").not_null().to_owned())
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Recordings::Table)
                    .if_not_exists()
                    .col(id_column(Alias::new("id")))
                    .col(text("call_id"))
                    .col(ColumnDef::new(Alias::new("url")).text().not_null())
                    .col(text("sha256"))
                    .col(ColumnDef::new(Alias::new("bytes")).big_integer().not_null())
                    .col(text("content_type"))
                    .col(instant("archived_at").not_null().to_owned())
                    .to_owned(),
            )
            .await?;
        let mut unique_job = crate::index(
            RecordingJobs::Table,
            "idx_recording_jobs_call_url",
            &["call_id", "url"],
        );
        unique_job.unique();
        let mut unique_recording = crate::index(
            Recordings::Table,
            "idx_recordings_call_url",
            &["call_id", "url"],
        );
        unique_recording.unique();
        for stmt in [
            unique_job,
            crate::index(
                RecordingJobs::Table,
                "idx_recording_jobs_due",
                &["state", "next_attempt_at"],
            ),
            unique_recording,
            crate::index(Recordings::Table, "idx_recordings_sha256", &["sha256"]),
        ] {
            manager.create_index(stmt).await?;
        }
        manager
            .alter_table(
                Table::alter()
                    .table(Alias::new("access_log"))
                    .add_column(ColumnDef::new(Alias::new("byte_range")).string().null())
                    .to_owned(),
            )
            .await?;
        let db = manager.get_connection();
        for sql in append_only(db.get_database_backend(), "recordings") {
            db.execute_unprepared(&sql).await?;
        }
        Ok(())
    }

    async fn down(&self, _manager: &SchemaManager) -> Result<(), DbErr> {
        Err(DbErr::Migration(
            "archived recordings are append-only evidence: this migration is not reversed".into(),
        ))
    }
}
