//! PostgreSQL's write of a batch's new rows in one round trip.
//!
//! Multi-row `INSERT … VALUES` statements cost a round trip each, and come in as many texts
//! as there are batch sizes (one prepared statement per shape and table: a batch of 23 new
//! calls took 13 statements). Here each table's rows travel as one JSON parameter, expanded by
//! `json_populate_recordset` into the table's own row type, and the four inserts (events,
//! calls, log rows, rollup buckets) are one statement of data-modifying `WITH` clauses: one
//! statement text for every batch, prepared once per connection, one round trip per batch.
use std::collections::HashSet;
use std::fmt::Write as _;
use std::sync::OnceLock;

use chrono::SecondsFormat;
use entity::{call, call_bucket, call_event, delivery};
use sea_orm::{
    ActiveModelTrait, ConnectionTrait, DatabaseBackend, DatabaseTransaction, EntityTrait,
    IdenStatic, Iterable, Statement, Value,
};

use super::rollup::MERGE;
use super::unavailable;
use crate::error::AppError;

/// The calls among `call_ids` that already have a row: one statement text for any number.
pub(crate) async fn existing_calls(
    txn: &DatabaseTransaction,
    call_ids: &[&str],
) -> Result<HashSet<String>, AppError> {
    if call_ids.is_empty() {
        return Ok(HashSet::new());
    }
    let ids = serde_json::to_string(call_ids).map_err(|e| AppError::Internal(e.to_string()))?;
    let rows = txn
        .query_all_raw(Statement::from_sql_and_values(
            DatabaseBackend::Postgres,
            "SELECT call_id FROM calls WHERE call_id = \
             ANY(ARRAY(SELECT json_array_elements_text(CAST($1 AS json))))",
            [ids.into()],
        ))
        .await
        .map_err(unavailable)?;
    rows.iter()
        .map(|row| row.try_get_by_index::<String>(0))
        .collect::<Result<_, _>>()
        .map_err(|e| AppError::Internal(e.to_string()))
}

/// What the batch statement reports: how many events were new, and the log rows written.
pub(crate) struct Written {
    pub events_inserted: i64,
    /// `(id, sha256, outcome)` of each log row, in no particular order.
    pub deliveries: Vec<(i64, String, String)>,
}

/// Inserts new events (skipping ones already stored), new call rows, log rows, and adds the
/// bucket sums to the rollup, in one statement.
pub(crate) async fn write_new(
    txn: &DatabaseTransaction,
    events: &[call_event::ActiveModel],
    calls: &[call::ActiveModel],
    deliveries: &[delivery::ActiveModel],
    buckets: Vec<call_bucket::Model>,
) -> Result<Written, AppError> {
    let buckets: Vec<call_bucket::ActiveModel> = buckets.into_iter().map(Into::into).collect();
    let values: Vec<Value> = vec![
        json_rows(events)?.into(),
        json_rows(calls)?.into(),
        json_rows(deliveries)?.into(),
        json_rows(&buckets)?.into(),
    ];
    let rows = txn
        .query_all_raw(Statement::from_sql_and_values(
            DatabaseBackend::Postgres,
            statement(),
            values,
        ))
        .await
        .map_err(unavailable)?;
    let mut written = Written {
        events_inserted: 0,
        deliveries: Vec::with_capacity(rows.len()),
    };
    for row in rows {
        let read = || -> Result<_, sea_orm::DbErr> {
            Ok((
                row.try_get_by_index::<i64>(0)?,
                row.try_get_by_index::<String>(1)?,
                row.try_get_by_index::<String>(2)?,
                row.try_get_by_index::<i64>(3)?,
            ))
        };
        let (id, sha256, outcome, events) =
            read().map_err(|e| AppError::Internal(e.to_string()))?;
        written.events_inserted = events;
        written.deliveries.push((id, sha256, outcome));
    }
    Ok(written)
}

/// The batch statement: `$1` events, `$2` calls, `$3` log rows, `$4` bucket sums, each a JSON
/// array of row objects. Data-modifying `WITH` clauses all run to completion whatever the
/// final `SELECT` reads. It answers one row per log row, each with the count of new events.
fn statement() -> &'static str {
    static SQL: OnceLock<String> = OnceLock::new();
    SQL.get_or_init(|| {
        let merge = MERGE
            .iter()
            .map(|(column, merged)| format!("{column} = {merged}"))
            .collect::<Vec<_>>()
            .join(", ");
        format!(
            "WITH new_events AS ({} ON CONFLICT (call_id, fingerprint) DO NOTHING RETURNING 1), \
             new_calls AS ({}), \
             logged AS ({} RETURNING id, sha256, outcome), \
             added AS ({} ON CONFLICT (bucket_start, direction) DO UPDATE SET {merge}) \
             SELECT id, sha256, outcome, (SELECT count(*) FROM new_events) FROM logged",
            insert::<call_event::Entity>(1),
            insert::<call::Entity>(2),
            insert::<delivery::Entity>(3),
            insert::<call_bucket::Entity>(4),
        )
    })
}

/// `INSERT INTO t (columns) SELECT columns FROM json_populate_recordset(NULL::t, $n)`.
fn insert<E: EntityTrait>(parameter: usize) -> String {
    let table = E::default().table_name().to_owned();
    let columns = columns::<E>()
        .iter()
        .map(|c| format!("\"{}\"", c.as_str()))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "INSERT INTO {table} ({columns}) SELECT {columns} \
         FROM json_populate_recordset(NULL::{table}, CAST(${parameter} AS json))"
    )
}

/// The columns a batch writes: every one but a generated `id`.
fn columns<E: EntityTrait>() -> Vec<E::Column> {
    E::Column::iter().filter(|c| c.as_str() != "id").collect()
}

/// Rows as a JSON array of objects keyed by column, with values in PostgreSQL's text forms:
/// timestamps in RFC 3339 to the microsecond (what PostgreSQL keeps, truncated as the binary
/// protocol truncates), bytes as `\x` hex.
fn json_rows<A: ActiveModelTrait>(rows: &[A]) -> Result<String, AppError> {
    let columns = columns::<A::Entity>();
    let mut out = String::from("[");
    for (i, row) in rows.iter().enumerate() {
        out.push_str(if i == 0 { "{" } else { ",{" });
        for (j, column) in columns.iter().enumerate() {
            let name = column.as_str();
            let value = row.get(*column).into_value().ok_or_else(|| {
                AppError::Internal(format!("batch row without a value for {name}"))
            })?;
            if j > 0 {
                out.push(',');
            }
            write_json_string(&mut out, name);
            out.push(':');
            write_value(&mut out, name, value)?;
        }
        out.push('}');
    }
    out.push(']');
    Ok(out)
}

fn write_value(out: &mut String, column: &str, value: Value) -> Result<(), AppError> {
    // Writing to a String cannot fail.
    let _ = match value {
        Value::Bool(Some(b)) => write!(out, "{b}"),
        Value::Int(Some(n)) => write!(out, "{n}"),
        Value::BigInt(Some(n)) => write!(out, "{n}"),
        Value::String(Some(s)) => {
            write_json_string(out, &s);
            Ok(())
        }
        Value::Bytes(Some(bytes)) => {
            write_json_string(out, &format!("\\x{}", hex::encode(bytes)));
            Ok(())
        }
        Value::ChronoDateTimeUtc(Some(t)) => {
            write_json_string(out, &t.to_rfc3339_opts(SecondsFormat::Micros, true));
            Ok(())
        }
        Value::Bool(None)
        | Value::Int(None)
        | Value::BigInt(None)
        | Value::String(None)
        | Value::Bytes(None)
        | Value::ChronoDateTimeUtc(None) => {
            out.push_str("null");
            Ok(())
        }
        other => {
            return Err(AppError::Internal(format!(
                "no JSON form for {column}'s value {other:?}"
            )));
        }
    };
    Ok(())
}

fn write_json_string(out: &mut String, s: &str) {
    // serde_json escapes exactly as JSON requires; a &str always serialises.
    out.push_str(&serde_json::to_string(s).unwrap_or_default());
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};
    use sea_orm::ActiveValue::{NotSet, Set};

    #[test]
    fn rows_become_json_objects_in_postgres_text_forms() {
        let at = Utc
            .timestamp_opt(1_772_442_845, 123_456_789)
            .single()
            .expect("time");
        let row = delivery::ActiveModel {
            id: NotSet,
            received_at: Set(at),
            content_type: Set("application/json".into()),
            body: Set(vec![0, 0xff, b'"']),
            sha256: Set("ab".into()),
            event: Set(None),
            call_id: Set(Some("c\"1\\\n".into())),
            outcome: Set("stored".into()),
            reason: Set(None),
            replay_of: Set(Some(7)),
        };
        let json = json_rows(&[row.clone(), row]).expect("json");
        let parsed: serde_json::Value = serde_json::from_str(&json).expect("valid JSON");
        let expected = serde_json::json!({
            "received_at": "2026-03-02T09:14:05.123456Z",
            "content_type": "application/json",
            "body": "\\x00ff22",
            "sha256": "ab",
            "event": null,
            "call_id": "c\"1\\\n",
            "outcome": "stored",
            "reason": null,
            "replay_of": 7,
        });
        assert_eq!(parsed, serde_json::json!([expected.clone(), expected]));
        assert_eq!(json_rows::<delivery::ActiveModel>(&[]).expect("json"), "[]");
    }

    #[test]
    fn a_row_missing_a_column_is_an_error_not_a_null() {
        let row = delivery::ActiveModel {
            outcome: Set("stored".into()),
            ..Default::default()
        };
        assert!(json_rows(&[row]).is_err());
    }

    #[test]
    fn the_statement_names_every_written_column_once_per_table() {
        let sql = statement();
        for table in ["call_events", "calls", "deliveries", "call_buckets"] {
            assert!(sql.contains(&format!("INSERT INTO {table} (")), "{table}");
        }
        assert!(!sql.contains("\"id\""));
        assert_eq!(sql.matches("\"recording_url\"").count(), 2);
        assert_eq!(sql.matches("\"raw_payload\"").count(), 4);
    }
}
