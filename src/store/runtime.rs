//! The role `serve` runs under: the tables it may only append to, what `calltrail db
//! grant-runtime` gives a PostgreSQL login role, and the checks `serve --no-migrate` makes at
//! start (the schema is current; the role cannot rewrite history).
use std::collections::HashSet;

use migration::{Migrator, MigratorTrait};
use sea_orm::{ConnectionTrait, Statement};

use super::Store;
use super::error::db_error;
use crate::error::AppError;

/// The tables that are evidence: append-only in the database itself (triggers refuse UPDATE,
/// DELETE and TRUNCATE), and the runtime role may only read and append to them. Every other
/// table of the schema is the service's working state (calls, the rollup tiers, API keys,
/// the write probe...), which it updates.
pub const APPEND_ONLY: &[&str] = &[
    "deliveries",
    "call_events",
    "call_revisions",
    "access_log",
    "access_log_calls",
    "chain_links",
    "recordings",
    "call_reviews",
];

/// The migrations' own bookkeeping: the runtime role reads it (is the schema current?) and
/// never writes it.
pub const MIGRATIONS_TABLE: &str = "seaql_migrations";

impl Store {
    /// Fails unless every migration this binary knows has been applied (`serve --no-migrate`),
    /// and warns when the role it connected as could rewrite the evidence anyway.
    pub async fn expect_migrated(&self) -> Result<(), AppError> {
        // Read, not through the migrator, which would first create its table.
        let applied: HashSet<String> = self
            .writer
            .query_all_raw(Statement::from_string(
                self.backend(),
                format!("SELECT version FROM {MIGRATIONS_TABLE}"),
            ))
            .await
            .map_err(db_error)?
            .iter()
            .map(|row| row.try_get::<String>("", "version"))
            .collect::<Result<_, _>>()
            .map_err(db_error)?;
        let pending: Vec<String> = Migrator::migrations()
            .iter()
            .map(|m| m.name().to_owned())
            .filter(|name| !applied.contains(name))
            .collect();
        if let Some(first) = pending.first() {
            return Err(AppError::Internal(format!(
                "{} migrations are pending (first: {first}): run `calltrail migrate` as the owner \
                 of the tables, then start with `--no-migrate` again",
                pending.len(),
            )));
        }
        if let Some(why) = self.dialect().rewrites_history(&self.writer).await? {
            tracing::warn!(
                "THE DATABASE ROLE CAN REWRITE HISTORY: {why}; it can drop the triggers that keep \
                 the logs append-only. Run serve as a role made by `calltrail db grant-runtime`."
            );
        }
        Ok(())
    }

    /// Gives the login role `role` exactly what `serve --no-migrate` needs (PostgreSQL).
    pub async fn grant_runtime(&self, role: &str) -> Result<(), AppError> {
        self.dialect().grant_runtime(&self.writer, role).await
    }
}
