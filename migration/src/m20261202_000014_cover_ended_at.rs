//! Widens the `ended_at` index into a covering one: statistics over a window ("stats by agent,
//! last 30 days") then read the index alone instead of every call row in the window from the
//! heap. It replaces `idx_calls_ended_at (ended_at, id)` rather than adding a second index, so a
//! keyset page of the default call log is still one range scan on its leading `(ended_at, id)`,
//! and ingest maintains one wider index, not two.
use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DatabaseBackend};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// The measure and dimension columns a grouped statistics read selects (`store/stats.rs`).
const COVERED: &str = "picked_by, waba_number, direction, duration_seconds, started_at, status";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        let create = match db.get_database_backend() {
            DatabaseBackend::Postgres => format!(
                "CREATE INDEX IF NOT EXISTS idx_calls_ended_at_covering \
                 ON calls (ended_at, id) INCLUDE ({COVERED})"
            ),
            // SQLite has no INCLUDE: the covered columns follow the key instead.
            _ => format!(
                "CREATE INDEX IF NOT EXISTS idx_calls_ended_at_covering \
                 ON calls (ended_at, id, {COVERED})"
            ),
        };
        db.execute_unprepared(&create).await?;
        db.execute_unprepared("DROP INDEX IF EXISTS idx_calls_ended_at")
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared(
            "CREATE INDEX IF NOT EXISTS idx_calls_ended_at ON calls (ended_at, id)",
        )
        .await?;
        db.execute_unprepared("DROP INDEX IF EXISTS idx_calls_ended_at_covering")
            .await?;
        Ok(())
    }
}
