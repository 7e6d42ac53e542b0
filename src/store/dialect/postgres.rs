//! PostgreSQL's side of the seam: migrations under an advisory lock, time and percentile SQL,
//! the webhook writer's call locks and its batch statement, and bulk-load settings.
//!
//! The batch statement writes a batch's new rows in one round trip. Multi-row `INSERT … VALUES` statements cost a round trip each, and come in as many texts
//! as there are batch sizes (one prepared statement per shape and table: a batch of 23 new
//! calls took 13 statements). Here each column of each table travels as one typed array
//! parameter (binary on the wire, so PostgreSQL parses nothing), zipped back into rows by
//! `unnest`, and the five inserts (events, calls, log rows, both rollup tiers) are one statement
//! of data-modifying `WITH` clauses: one statement text for every batch, prepared once per
//! connection, one round trip per batch.
//!
//! The driver binds arrays without NULL elements, so each table also sends one `int8` per row
//! whose bit `k` says that column `k` is NULL in that row (its array slot then holds a
//! placeholder of the column's type, never read).
use std::collections::HashSet;
use std::sync::OnceLock;

use entity::{call, call_bucket, call_event, delivery};
use migration::{Migrator, MigratorTrait};
use sea_orm::sea_query::ArrayType;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ColumnType, ConnectionTrait, DatabaseBackend,
    DatabaseConnection, DatabaseTransaction, EntityTrait, IdenStatic, Iterable, QueryResult,
    Statement, TransactionTrait, Value,
};
use sha2::{Digest, Sha256};

use super::{PercentileQuery, literal};
use crate::error::AppError;
use crate::store::error::{db_error, defect, write_error};
use crate::store::ingest::{all_events_new, ids_in_row_order};
use crate::store::rollup::{TIERS, merge, new_call_sums};

/// Key of the advisory lock held while migrating, so instances starting together take turns.
const MIGRATION_LOCK_KEY: i64 = 0x6361_6c6c_7472_6c31;

/// Connections loading at once into an emptied table.
pub(super) const BULK_LOADERS: usize = 2;

/// PostgreSQL cannot estimate how many groups a computed key makes; it assumes one per bucket,
/// finds no room for a hash table in the default 4 MB, and sorts the buckets on disk. A year's
/// few hundred groups hash in well under 32 MB.
pub(super) const GROUPED_ROLLUP_WORK_MEM: &str = "SET LOCAL work_mem = '32MB'";

/// Index builds sort in memory (the default is 64 MB).
pub(super) const INDEX_BUILD_SESSION: (&[&str], &[&str], &[&str]) =
    (&[], &["SET LOCAL maintenance_work_mem = '512MB'"], &[]);

/// `VACUUM` as well for `calls`: it marks the freshly loaded pages all-visible, as autovacuum
/// would soon after, so grouped statistics are index-only scans of the covering index from the
/// first question.
pub(super) const AFTER_BULK_LOAD: &[&str] = &[
    // The loaders ran at once, so a customer first seen by both has its name listed twice.
    "DELETE FROM customer_names a USING customer_names b WHERE a.id > b.id \
     AND a.customer_digits = b.customer_digits AND a.name = b.name",
    // `VACUUM` also merges the names' trigram index's pending entries.
    "VACUUM (ANALYZE) customer_names",
    "VACUUM (ANALYZE) calls",
    "ANALYZE call_events",
    "ANALYZE call_buckets",
    "ANALYZE call_half_hours",
];

pub(super) const SECONDARY_INDEXES: &str = "SELECT indexname AS name, indexdef AS definition FROM pg_indexes \
     WHERE schemaname = current_schema() AND tablename = $1 \
     AND indexname NOT IN (SELECT conname FROM pg_constraint)";

/// Customers whose lower-cased name matches the `LIKE` pattern `$1` (escaped with `\`),
/// through the `pg_trgm` index on the names; at most `$2` rows.
pub(super) const CUSTOMERS_NAMED: &str = "SELECT customer_digits FROM customer_names \
     WHERE name LIKE $1 ESCAPE '\\' LIMIT $2";

/// Readers' statements stopped by the server at `limit` (`statement_timeout`, SQLSTATE 57014).
pub(crate) fn statement_timeout(
    options: sea_orm::sqlx::postgres::PgConnectOptions,
    limit: std::time::Duration,
) -> sea_orm::sqlx::postgres::PgConnectOptions {
    options.options([("statement_timeout", format!("{}ms", limit.as_millis()))])
}

/// In one transaction under an advisory lock, so two instances starting at once on one
/// database do not collide.
pub(super) async fn migrate(db: &DatabaseConnection) -> Result<(), AppError> {
    let txn = db.begin().await.map_err(db_error)?;
    txn.execute_raw(Statement::from_string(
        DatabaseBackend::Postgres,
        format!("SELECT pg_advisory_xact_lock({MIGRATION_LOCK_KEY})"),
    ))
    .await
    .map_err(db_error)?;
    Migrator::up(&txn, None).await.map_err(db_error)?;
    txn.commit().await.map_err(db_error)
}

pub(super) fn month_key(local: &str) -> String {
    format!(
        "CAST(EXTRACT(YEAR FROM to_timestamp({local}) AT TIME ZONE 'UTC') * 12 \
         + EXTRACT(MONTH FROM to_timestamp({local}) AT TIME ZONE 'UTC') - 1 AS BIGINT)"
    )
}

/// `percentile_cont`, one column per percentile.
pub(super) fn percentiles_sql(q: &PercentileQuery<'_>) -> String {
    let columns: Vec<String> =
        q.ps.iter()
            .map(|p| format!("percentile_cont({}) WITHIN GROUP (ORDER BY d)", literal(*p)))
            .collect();
    format!(
        "WITH base AS ({}) SELECT {}{} FROM base{} LIMIT {}",
        q.inner,
        q.select_keys(),
        columns.join(", "),
        q.group(),
        q.limit
    )
}

pub(super) fn read_percentiles(
    row: &QueryResult,
    keys: usize,
    ps: &[f64],
) -> Result<Vec<Option<f64>>, AppError> {
    (0..ps.len())
        .map(|i| row.try_get_by_index(keys + i).map_err(defect))
        .collect()
}

/// Advisory transaction locks on the batch's call ids, taken in a fixed order so batches
/// cannot deadlock: writers of one call across instances sharing the database take turns.
pub(super) async fn lock_calls(
    txn: &DatabaseTransaction,
    call_ids: &[&str],
) -> Result<(), AppError> {
    if call_ids.is_empty() {
        return Ok(());
    }
    let mut keys: Vec<i64> = call_ids.iter().map(|id| lock_key(id)).collect();
    keys.sort_unstable();
    keys.dedup();
    // One array parameter: the same statement text for every batch, prepared once.
    let keys: Vec<Value> = keys.into_iter().map(Value::from).collect();
    let array = Value::Array(ArrayType::BigInt, Some(Box::new(keys)));
    txn.execute_raw(Statement::from_sql_and_values(
        DatabaseBackend::Postgres,
        "SELECT count(pg_advisory_xact_lock(k)) FROM \
         (SELECT unnest(CAST($1 AS bigint[])) AS k ORDER BY k) AS ordered",
        [array],
    ))
    .await
    .map_err(write_error)?;
    Ok(())
}

/// The advisory lock of a chain's head: a key pair (a class of its own, so it cannot meet a
/// call's single-key lock) with the chain's place in `migration::chain::CHAINS`.
pub(super) async fn lock_chain(txn: &DatabaseTransaction, chain: &str) -> Result<(), AppError> {
    const CHAIN_LOCK_CLASS: i32 = 0x6361_6c6c;
    let place = migration::chain::CHAINS
        .iter()
        .position(|c| c.table == chain)
        .ok_or_else(|| AppError::Internal(format!("no chain {chain}")))?;
    let place = i32::try_from(place).unwrap_or(i32::MAX);
    txn.execute_raw(Statement::from_sql_and_values(
        DatabaseBackend::Postgres,
        "SELECT pg_advisory_xact_lock($1, $2)",
        [CHAIN_LOCK_CLASS.into(), place.into()],
    ))
    .await
    .map_err(write_error)?;
    Ok(())
}

/// Why the connected role could rewrite the logs, if it could.
pub(super) async fn rewrites_history(db: &DatabaseConnection) -> Result<Option<String>, AppError> {
    let row = db
        .query_one_raw(Statement::from_string(
            DatabaseBackend::Postgres,
            "SELECT current_user::text AS who, \
             (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) AS superuser, \
             EXISTS (SELECT 1 FROM pg_tables WHERE schemaname = current_schema() \
             AND tableowner = current_user) AS owner",
        ))
        .await
        .map_err(db_error)?
        .ok_or_else(|| AppError::Internal("no answer about the current role".into()))?;
    let who: String = row.try_get("", "who").map_err(db_error)?;
    let superuser: bool = row.try_get("", "superuser").map_err(db_error)?;
    let owner: bool = row.try_get("", "owner").map_err(db_error)?;
    Ok(if superuser {
        Some(format!("{who} is a superuser"))
    } else if owner {
        Some(format!("{who} owns the tables"))
    } else {
        None
    })
}

/// A role name as a quoted identifier.
fn identifier(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Grants the login role `role` reading everything, appending to the append-only tables and
/// changing only the working tables; revokes whatever else it had on them. Refuses a role
/// that owns the tables or is a superuser (no grant can limit those).
pub(super) async fn grant_runtime(db: &DatabaseConnection, role: &str) -> Result<(), AppError> {
    use crate::store::runtime::{APPEND_ONLY, MIGRATIONS_TABLE};
    let txn = db.begin().await.map_err(db_error)?;
    let query = |sql: String, values: Vec<Value>| {
        Statement::from_sql_and_values(DatabaseBackend::Postgres, sql, values)
    };
    let found = txn
        .query_one_raw(query(
            "SELECT rolsuper, rolcanlogin, current_database()::text AS db, \
             current_schema()::text AS schema, \
             EXISTS (SELECT 1 FROM pg_tables WHERE schemaname = current_schema() \
             AND tableowner = $1) AS owner FROM pg_roles WHERE rolname = $1"
                .into(),
            vec![role.into()],
        ))
        .await
        .map_err(db_error)?
        .ok_or_else(|| {
            AppError::bad_input(
                "role",
                format!("no role {role}: create it first (CREATE ROLE ... LOGIN)"),
            )
        })?;
    let flag = |name: &str| found.try_get::<bool>("", name).map_err(db_error);
    if flag("rolsuper")? || flag("owner")? {
        return Err(AppError::bad_input(
            "role",
            format!(
                "{role} is a superuser or owns the tables: a runtime role must be another role"
            ),
        ));
    }
    if !flag("rolcanlogin")? {
        return Err(AppError::bad_input("role", format!("{role} cannot log in")));
    }
    let database: String = found.try_get("", "db").map_err(db_error)?;
    let schema: String = found.try_get("", "schema").map_err(db_error)?;
    let tables = txn
        .query_all_raw(query(
            "SELECT tablename::text AS t FROM pg_tables WHERE schemaname = current_schema() \
             ORDER BY 1"
                .into(),
            vec![],
        ))
        .await
        .map_err(db_error)?;
    let (role, schema) = (identifier(role), identifier(&schema));
    let mut statements = vec![
        format!(
            "GRANT CONNECT ON DATABASE {} TO {role}",
            identifier(&database)
        ),
        format!("REVOKE CREATE ON SCHEMA {schema} FROM {role}"),
        format!("GRANT USAGE ON SCHEMA {schema} TO {role}"),
        format!("REVOKE ALL ON ALL TABLES IN SCHEMA {schema} FROM {role}"),
        format!("REVOKE ALL ON ALL SEQUENCES IN SCHEMA {schema} FROM {role}"),
        format!("GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {schema} TO {role}"),
    ];
    for row in tables {
        let table: String = row.try_get("", "t").map_err(db_error)?;
        let rights = if table == MIGRATIONS_TABLE {
            "SELECT"
        } else if APPEND_ONLY.contains(&table.as_str()) {
            "SELECT, INSERT"
        } else {
            "SELECT, INSERT, UPDATE, DELETE"
        };
        statements.push(format!(
            "GRANT {rights} ON {schema}.{} TO {role}",
            identifier(&table)
        ));
    }
    for sql in statements {
        txn.execute_unprepared(&sql).await.map_err(db_error)?;
    }
    txn.commit().await.map_err(db_error)
}

fn lock_key(call_id: &str) -> i64 {
    let digest = Sha256::digest(call_id.as_bytes());
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest[..8]);
    i64::from_be_bytes(bytes)
}

/// The calls among `call_ids` that already have a row: one statement text for any number.
pub(super) async fn existing_calls(
    txn: &DatabaseTransaction,
    call_ids: &[&str],
) -> Result<HashSet<String>, AppError> {
    if call_ids.is_empty() {
        return Ok(HashSet::new());
    }
    let ids: Vec<Value> = call_ids.iter().map(|id| (*id).into()).collect();
    let rows = txn
        .query_all_raw(Statement::from_sql_and_values(
            DatabaseBackend::Postgres,
            "SELECT call_id FROM calls WHERE call_id = ANY($1)",
            [Value::Array(ArrayType::String, Some(Box::new(ids)))],
        ))
        .await
        .map_err(write_error)?;
    rows.iter()
        .map(|row| row.try_get_by_index::<String>(0))
        .collect::<Result<_, _>>()
        .map_err(defect)
}

/// Inserts new events (skipping ones already stored), new call rows, log rows, and adds the
/// calls' bucket sums to the rollup's two tiers (in [`TIERS`] order), in one statement.
pub(super) async fn write_new(
    txn: &DatabaseTransaction,
    events: &[call_event::ActiveModel],
    calls: &[call::ActiveModel],
    deliveries: &[delivery::ActiveModel],
) -> Result<Vec<i64>, AppError> {
    if deliveries.is_empty() {
        return Ok(Vec::new());
    }
    let tiers = new_call_sums(calls);
    let mut values: Vec<Value> = Vec::new();
    values.extend(column_arrays(events)?);
    values.extend(column_arrays(calls)?);
    values.extend(column_arrays(deliveries)?);
    for buckets in tiers {
        let buckets: Vec<call_bucket::ActiveModel> = buckets.into_iter().map(Into::into).collect();
        values.extend(column_arrays(&buckets)?);
    }
    let rows = txn
        .query_all_raw(Statement::from_sql_and_values(
            DatabaseBackend::Postgres,
            statement()?,
            values,
        ))
        .await
        .map_err(write_error)?;
    let mut events_inserted = 0;
    let mut written = Vec::with_capacity(rows.len());
    for row in rows {
        let read = || -> Result<_, sea_orm::DbErr> {
            Ok((
                row.try_get_by_index::<i64>(0)?,
                row.try_get_by_index::<String>(1)?,
                row.try_get_by_index::<String>(2)?,
                row.try_get_by_index::<i64>(3)?,
            ))
        };
        let (id, sha256, outcome, events) = read().map_err(defect)?;
        events_inserted = events;
        written.push((id, sha256, outcome));
    }
    all_events_new(events_inserted, events.len())?;
    ids_in_row_order(deliveries, written)
}

/// The batch statement: the events', calls', log rows' and both tiers' bucket sums' column
/// arrays, in that order, each table's followed by its NULL bits. Data-modifying `WITH`
/// clauses all run to completion whatever the final `SELECT` reads. It answers one row per log
/// row, each with the count of new events.
fn statement() -> Result<&'static str, AppError> {
    static SQL: OnceLock<Result<String, String>> = OnceLock::new();
    SQL.get_or_init(|| {
        let mut next = 1;
        let events = insert::<call_event::Entity>(None, &mut next)?;
        let calls = insert::<call::Entity>(None, &mut next)?;
        let deliveries = insert::<delivery::Entity>(None, &mut next)?;
        // Each tier's upsert reads the count of the one before, so it starts only after that
        // one has locked all its rows: every writer locks the tiers in `TIERS` order. (Left
        // to itself PostgreSQL runs unread `WITH` clauses in no documented order.)
        let mut tiers = String::new();
        for (i, tier) in TIERS.into_iter().enumerate() {
            let buckets = insert::<call_bucket::Entity>(Some(tier.table), &mut next)?;
            let after = match i {
                0 => String::new(),
                _ => format!(" WHERE (SELECT count(*) FROM added{}) >= 0", i - 1),
            };
            let merge = merge(tier.table)
                .iter()
                .map(|(column, merged)| format!("{column} = {merged}"))
                .collect::<Vec<_>>()
                .join(", ");
            tiers.push_str(&format!(
                ", added{i} AS ({buckets}{after} ON CONFLICT (bucket_start, direction) \
                 DO UPDATE SET {merge} RETURNING 1)"
            ));
        }
        Ok(format!(
            "WITH new_events AS ({events} ON CONFLICT (call_id, fingerprint) DO NOTHING RETURNING 1), \
             new_calls AS ({calls}), \
             logged AS ({deliveries} RETURNING id, sha256, outcome){tiers} \
             SELECT id, sha256, outcome, (SELECT count(*) FROM new_events) FROM logged"
        ))
    })
    .as_deref()
    .map_err(|e| AppError::Internal(e.clone()))
}

/// `INSERT INTO t (columns) SELECT columns FROM unnest($n::type[], …, $m::int8[]) AS r(…)`, a
/// nullable column read as NULL where its bit is set; `t` is `table` if given, else `E`'s;
/// `next` is the first parameter's number.
fn insert<E: EntityTrait>(table: Option<&str>, next: &mut usize) -> Result<String, String> {
    let table = table.unwrap_or(E::default().table_name()).to_owned();
    let columns = columns::<E>();
    if columns.len() > MAX_COLUMNS {
        return Err(format!(
            "{table} has more columns than one int8 of NULL bits holds"
        ));
    }
    let mut arrays = Vec::with_capacity(columns.len() + 1);
    let mut aliases = Vec::with_capacity(columns.len() + 1);
    let mut selected = Vec::with_capacity(columns.len());
    for (bit, column) in columns.iter().enumerate() {
        let name = column.as_str();
        let (sql_type, _) = array_type(column.def().get_column_type())
            .ok_or_else(|| format!("no array type for {table}.{name}"))?;
        arrays.push(format!("CAST(${} AS {sql_type}[])", *next + bit));
        aliases.push(format!("c{bit}"));
        selected.push(if column.def().is_null() {
            format!("CASE WHEN (nulls & {}) = 0 THEN c{bit} END", 1_i64 << bit)
        } else {
            format!("c{bit}")
        });
    }
    *next += columns.len();
    arrays.push(format!("CAST(${} AS int8[])", *next));
    aliases.push("nulls".to_owned());
    *next += 1;
    let names = columns
        .iter()
        .map(|c| format!("\"{}\"", c.as_str()))
        .collect::<Vec<_>>()
        .join(", ");
    Ok(format!(
        "INSERT INTO {table} ({names}) SELECT {} FROM unnest({}) AS r({})",
        selected.join(", "),
        arrays.join(", "),
        aliases.join(", "),
    ))
}

/// The most columns a table written here may have: one `int8` holds a row's NULL bits.
const MAX_COLUMNS: usize = 63;

/// The columns a batch writes: every one but a generated `id`; at most [`MAX_COLUMNS`] (the
/// statement fails to build otherwise).
fn columns<E: EntityTrait>() -> Vec<E::Column> {
    E::Column::iter().filter(|c| c.as_str() != "id").collect()
}

/// The PostgreSQL array type, and the driver's, for a column of this type.
fn array_type(column: &ColumnType) -> Option<(&'static str, ArrayType)> {
    Some(match column {
        ColumnType::String(_) | ColumnType::Text | ColumnType::Char(_) => {
            ("text", ArrayType::String)
        }
        ColumnType::BigInteger => ("int8", ArrayType::BigInt),
        ColumnType::Integer => ("int4", ArrayType::Int),
        ColumnType::Boolean => ("bool", ArrayType::Bool),
        ColumnType::TimestampWithTimeZone => ("timestamptz", ArrayType::ChronoDateTimeUtc),
        ColumnType::Binary(_) | ColumnType::VarBinary(_) | ColumnType::Blob => {
            ("bytea", ArrayType::Bytes)
        }
        _ => return None,
    })
}

/// Rows as one array per column, in [`columns`] order, then each row's NULL bits.
fn column_arrays<A: ActiveModelTrait>(rows: &[A]) -> Result<Vec<Value>, AppError> {
    let columns = columns::<A::Entity>();
    if columns.len() > MAX_COLUMNS {
        return Err(AppError::Internal(
            "too many columns for one int8 of NULL bits".into(),
        ));
    }
    let mut arrays: Vec<(ArrayType, Vec<Value>)> = Vec::with_capacity(columns.len());
    for column in &columns {
        let (_, ty) = array_type(column.def().get_column_type()).ok_or_else(|| {
            AppError::Internal(format!("no array type for column {}", column.as_str()))
        })?;
        arrays.push((ty, Vec::with_capacity(rows.len())));
    }
    let mut nulls = Vec::with_capacity(rows.len());
    for row in rows {
        let mut bits = 0_i64;
        for (bit, (column, (ty, array))) in columns.iter().zip(arrays.iter_mut()).enumerate() {
            let name = column.as_str();
            let value = row.get(*column).into_value().ok_or_else(|| {
                AppError::Internal(format!("batch row without a value for {name}"))
            })?;
            if value.array_type() != *ty {
                return Err(AppError::Internal(format!(
                    "{name}'s value is a {:?}, not its column's {ty:?}",
                    value.array_type()
                )));
            }
            if value.is_some() {
                array.push(value);
            } else if column.def().is_null() {
                bits |= 1 << bit;
                array.push(value.dummy_value());
            } else {
                return Err(AppError::Internal(format!(
                    "NULL for NOT NULL column {name}"
                )));
            }
        }
        nulls.push(Value::BigInt(Some(bits)));
    }
    let mut values: Vec<Value> = arrays
        .into_iter()
        .map(|(ty, array)| Value::Array(ty, Some(Box::new(array))))
        .collect();
    values.push(Value::Array(ArrayType::BigInt, Some(Box::new(nulls))));
    Ok(values)
}

/// Longest `/readyz` waits for a writer connection and its answer.
const READY_WITHIN: std::time::Duration = std::time::Duration::from_secs(2);

/// Whether the database takes writes now: a writer connection free within [`READY_WITHIN`]
/// (else the writers' pool is exhausted, or the server too slow to answer), and the server
/// not a standby in recovery.
pub(super) async fn ready(writer: &DatabaseConnection) -> Result<(), String> {
    let asked = writer.query_one_raw(Statement::from_string(
        DatabaseBackend::Postgres,
        "SELECT pg_is_in_recovery()",
    ));
    match tokio::time::timeout(READY_WITHIN, asked).await {
        Err(_) => Err(format!(
            "no writer connection answered within {READY_WITHIN:?}: the database is unreachable or too slow, or the writers' pool is exhausted"
        )),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness: PostgreSQL did not answer");
            Err("the database is unreachable".into())
        }
        Ok(Ok(row)) => match row.map(|r| r.try_get_by_index::<bool>(0)) {
            Some(Ok(false)) => Ok(()),
            Some(Ok(true)) => {
                Err("the database is a standby in recovery: it takes no writes".into())
            }
            _ => Err("the database did not say whether it is in recovery".into()),
        },
    }
}

/// Connections open and idle in a PostgreSQL pool.
pub(super) fn pool_use(db: &DatabaseConnection) -> (u32, u32, u32) {
    let pool = db.get_postgres_connection_pool();
    let idle = u32::try_from(pool.num_idle()).unwrap_or(u32::MAX);
    (pool.size(), idle, pool.options().get_max_connections())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};
    use sea_orm::ActiveValue::{NotSet, Set};

    fn delivery_row(event: Option<&str>, replay_of: Option<i64>) -> delivery::ActiveModel {
        let at = Utc
            .timestamp_opt(1_772_442_845, 123_456_789)
            .single()
            .expect("time");
        delivery::ActiveModel {
            id: NotSet,
            received_at: Set(at),
            content_type: Set("application/json".into()),
            body: Set(vec![0, 0xff, b'"']),
            sha256: Set("ab".into()),
            event: Set(event.map(Into::into)),
            call_id: Set(Some("c\"1\\\n".into())),
            outcome: Set("stored".into()),
            reason: Set(None),
            replay_of: Set(replay_of),
        }
    }

    #[test]
    fn rows_become_one_array_per_column_and_their_null_bits() {
        let rows = [
            delivery_row(None, Some(7)),
            delivery_row(Some("CALL_ENDED"), None),
        ];
        let values = column_arrays(&rows).expect("arrays");
        let columns = columns::<delivery::Entity>();
        assert_eq!(values.len(), columns.len() + 1);
        let position = |name: &str| {
            columns
                .iter()
                .position(|c| c.as_str() == name)
                .expect("a delivery column")
        };
        let bit = |name: &str| 1_i64 << position(name);
        let array = |i: usize| match &values[i] {
            Value::Array(_, Some(items)) => items.as_ref().clone(),
            other => panic!("not an array: {other:?}"),
        };
        assert_eq!(
            array(columns.len()),
            vec![
                Value::BigInt(Some(bit("event") | bit("reason"))),
                Value::BigInt(Some(bit("reason") | bit("replay_of"))),
            ]
        );
        assert_eq!(
            array(position("call_id")),
            vec![Value::String(Some("c\"1\\\n".into())); 2]
        );
        assert_eq!(
            array(position("body")),
            vec![Value::Bytes(Some(vec![0, 0xff, b'"'])); 2]
        );
        // A NULL's slot holds a placeholder of the column's type, never NULL itself.
        let event = array(position("event"));
        assert!(event.iter().all(Value::is_some));
        assert_eq!(event[1], Value::String(Some("CALL_ENDED".into())));

        let empty = column_arrays::<delivery::ActiveModel>(&[]).expect("arrays");
        assert_eq!(empty.len(), columns.len() + 1);
    }

    #[test]
    fn a_row_missing_a_column_is_an_error_not_a_null() {
        let row = delivery::ActiveModel {
            outcome: Set("stored".into()),
            ..Default::default()
        };
        assert!(column_arrays(&[row]).is_err());
    }

    #[test]
    fn a_null_in_a_not_null_column_is_an_error() {
        let mut row = delivery_row(None, None);
        row.sha256 = Set(String::new());
        assert!(column_arrays(&[row.clone()]).is_ok());
        let mut call = call::ActiveModel {
            direction: Set(None),
            ..Default::default()
        };
        call.raw_payload = Set(String::new());
        // Every other column unset: refused before any NULL could reach the database.
        assert!(column_arrays(&[call]).is_err());
    }

    #[test]
    fn the_statement_writes_every_column_once_per_table_from_typed_arrays() {
        let sql = statement().expect("every column has an array type");
        for table in [
            "call_events",
            "calls",
            "deliveries",
            "call_buckets",
            "call_half_hours",
        ] {
            assert!(sql.contains(&format!("INSERT INTO {table} (")), "{table}");
        }
        assert!(!sql.contains("\"id\""));
        assert!(!sql.contains("json"));
        assert_eq!(sql.matches("\"recording_url\"").count(), 1);
        assert_eq!(sql.matches("\"raw_payload\"").count(), 2);
        let parameters = [
            columns::<call_event::Entity>().len(),
            columns::<call::Entity>().len(),
            columns::<delivery::Entity>().len(),
            columns::<call_bucket::Entity>().len(),
            columns::<call_bucket::Entity>().len(),
        ]
        .iter()
        .map(|n| n + 1)
        .sum::<usize>();
        assert!(sql.contains(&format!("${parameters} AS int8[]")));
        assert!(!sql.contains(&format!("${}", parameters + 1)));
        // Nullable columns only are read through their bit.
        assert_eq!(
            sql.matches("CASE WHEN (nulls & ").count(),
            [
                call_event::Column::iter()
                    .filter(|c| c.def().is_null())
                    .count(),
                call::Column::iter().filter(|c| c.def().is_null()).count(),
                delivery::Column::iter()
                    .filter(|c| c.def().is_null())
                    .count(),
                call_bucket::Column::iter()
                    .filter(|c| c.def().is_null())
                    .count()
                    * 2,
            ]
            .iter()
            .sum::<usize>()
        );
    }
}
