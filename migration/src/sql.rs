//! SQL shared by the migrations and the service, so a backfill and the code that keeps its
//! table up to date cannot drift apart: epoch seconds of a timestamp and the rollup's measures.
use sea_orm_migration::sea_orm::DatabaseBackend;

/// The `status` of a call that rang out unanswered.
pub const STATUS_MISSED: &str = "MISSED";
/// The `status` of a call an agent declined.
pub const STATUS_REJECTED: &str = "REJECT";

/// Whole epoch seconds of the timestamp `column`, as SQL, floored (before 1970 too).
pub fn epoch_seconds(backend: DatabaseBackend, column: &str) -> String {
    match backend {
        DatabaseBackend::Postgres => format!("CAST(FLOOR(EXTRACT(EPOCH FROM {column})) AS BIGINT)"),
        _ => format!("CAST(strftime('%s', {column}) AS INTEGER)"),
    }
}

/// The rollup's measures of a set of `calls` rows, in the order of a bucket row's columns
/// after its key: count, total, min and max duration, recorded, answered, missed, rejected.
pub fn call_measures() -> String {
    format!(
        "COUNT(*), CAST(SUM(duration_seconds) AS BIGINT), \
         MIN(duration_seconds), MAX(duration_seconds), \
         SUM(CASE WHEN recording_url IS NOT NULL THEN 1 ELSE 0 END), \
         SUM(CASE WHEN started_at IS NOT NULL THEN 1 ELSE 0 END), \
         SUM(CASE WHEN status = '{STATUS_MISSED}' THEN 1 ELSE 0 END), \
         SUM(CASE WHEN status = '{STATUS_REJECTED}' THEN 1 ELSE 0 END)"
    )
}

/// A bucket row's columns, key first, in the order of [`call_measures`].
pub const BUCKET_COLUMNS: &str = "bucket_start, direction, calls, total_duration_seconds, \
    min_duration_seconds, max_duration_seconds, with_recording, answered, missed, rejected";

/// Triggers refusing UPDATE and DELETE (and TRUNCATE on PostgreSQL) on `table`: what makes
/// a table append-only (migrations 000010 to 000013).
pub(crate) fn append_only(backend: DatabaseBackend, table: &str) -> Vec<String> {
    match backend {
        DatabaseBackend::Postgres => vec![
            format!(
                "CREATE OR REPLACE FUNCTION calltrail_{table}_append_only() RETURNS trigger \
                 LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION '{table} is append-only'; END $$"
            ),
            format!(
                "CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} \
                 FOR EACH ROW EXECUTE FUNCTION calltrail_{table}_append_only()"
            ),
            format!(
                "CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} \
                 FOR EACH STATEMENT EXECUTE FUNCTION calltrail_{table}_append_only()"
            ),
        ],
        _ => ["UPDATE", "DELETE"]
            .iter()
            .map(|op| {
                format!(
                    "CREATE TRIGGER IF NOT EXISTS {table}_no_{} BEFORE {op} ON {table} \
                     BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END",
                    op.to_ascii_lowercase()
                )
            })
            .collect(),
    }
}
