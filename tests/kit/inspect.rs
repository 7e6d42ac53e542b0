//! Straight SQL on the database under a test, behind calltrail's back: to check what it stored, and to inject a fault.
//!
//! Each call opens a connection of its own and closes it, as a separate client would.

use std::collections::HashSet;

use sea_orm::{
    ConnectionTrait, Database, DatabaseConnection, DbErr, FromQueryResult, JsonValue, QueryResult,
    Statement,
};

use super::{TestApp, TestDatabase};

/// A database a test reads and changes directly: a test app's, a test database, or any URL.
pub trait Inspect {
    fn database_url(&self) -> &str;

    /// A connection of the test's own (close it after), for queries through the entities.
    async fn connect(&self) -> DatabaseConnection {
        let url = self.database_url();
        Database::connect(url)
            .await
            .unwrap_or_else(|e| panic!("database {url} for the check: {e}"))
    }

    /// Runs a statement; its rows affected, or the database's refusal.
    async fn try_execute(&self, sql: &str) -> Result<u64, DbErr> {
        let db = self.connect().await;
        let done = db
            .execute_raw(Statement::from_string(db.get_database_backend(), sql))
            .await
            .map(|r| r.rows_affected());
        let _ = db.close().await;
        done
    }

    /// Runs a statement that must succeed; its rows affected.
    async fn execute(&self, sql: &str) -> u64 {
        self.try_execute(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// Every row a query answers.
    async fn query_all(&self, sql: &str) -> Vec<QueryResult> {
        let db = self.connect().await;
        let rows = db
            .query_all_raw(Statement::from_string(db.get_database_backend(), sql))
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        let _ = db.close().await;
        rows
    }

    /// Every row a query answers, each a JSON object of its columns.
    async fn query_json(&self, sql: &str) -> Vec<JsonValue> {
        let db = self.connect().await;
        let rows =
            JsonValue::find_by_statement(Statement::from_string(db.get_database_backend(), sql))
                .all(&db)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
        let _ = db.close().await;
        rows
    }

    /// The first column of every row, as text.
    async fn query_strings(&self, sql: &str) -> Vec<String> {
        self.query_all(sql)
            .await
            .iter()
            .map(|row| {
                row.try_get_by_index::<String>(0)
                    .unwrap_or_else(|e| panic!("{sql}: {e}"))
            })
            .collect()
    }

    /// The number a query answers in its column `n`.
    async fn query_number(&self, sql: &str) -> i64 {
        let rows = self.query_all(sql).await;
        let [row] = rows.as_slice() else {
            panic!("{sql}: {} rows, not one", rows.len());
        };
        row.try_get("", "n")
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// Rows in `table`.
    async fn count(&self, table: &str) -> i64 {
        self.query_number(&format!("SELECT COUNT(*) AS n FROM {table}"))
            .await
    }

    /// Rows in `table` meeting an SQL `condition`.
    async fn count_where(&self, table: &str, condition: &str) -> i64 {
        self.query_number(&format!(
            "SELECT COUNT(*) AS n FROM {table} WHERE {condition}"
        ))
        .await
    }

    /// The concluded calls, read straight from the table.
    async fn stored_call_ids(&self) -> HashSet<String> {
        self.query_strings("SELECT call_id FROM calls WHERE ended_at IS NOT NULL")
            .await
            .into_iter()
            .collect()
    }

    /// Integrity after crashes: calls without the event they were folded from, and calls
    /// without the logged delivery that brought them; (0, 0) when no call is half-written.
    async fn orphans(&self) -> (i64, i64) {
        let without_event = self
            .count_where(
                "calls c",
                "NOT EXISTS (SELECT 1 FROM call_events e WHERE e.call_id = c.call_id)",
            )
            .await;
        let without_delivery = self
            .count_where(
                "calls c",
                "NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.call_id = c.call_id AND d.outcome = 'stored')",
            )
            .await;
        (without_event, without_delivery)
    }
}

impl Inspect for str {
    fn database_url(&self) -> &str {
        self
    }
}

impl Inspect for TestDatabase {
    fn database_url(&self) -> &str {
        &self.url
    }
}

impl Inspect for TestApp {
    fn database_url(&self) -> &str {
        &self.database.url
    }
}
