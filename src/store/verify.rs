//! What `calltrail verify` reads, in one snapshot: the chains walked link by link, every body
//! re-hashed, every call refolded from its events (and its revisions replayed), both rollup
//! tiers aggregated again from the calls. Everything is read in keyset pages, so memory stays
//! the same at any size.
use std::collections::HashMap;

use entity::{call, call_event, call_revision};
use migration::chain::{Chain, GENESIS, link};
use migration::sql::call_measures;
use sea_orm::ActiveValue::Set;
use sea_orm::sea_query::{Alias, Expr, ExprTrait, Order, Query};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseTransaction, DbBackend, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, Statement, TransactionTrait, TryIntoModel,
};
use sha2::{Digest, Sha256};

use super::Store;
use super::calls::{call_from_model, model_from_state};
use super::chain::{Head, head};
use super::error::db_error;
use super::ingest::{applied_event, first_difference};
use super::rollup::{ALL_DIRECTIONS, TIERS};
use crate::domain::lifecycle::{AppliedEvent, fold};
use crate::error::AppError;

/// Chain links and log rows read per page.
const LINK_PAGE: u64 = 1_000;
/// Delivery bodies read per page (each up to 256 KiB).
const BODY_PAGE: u64 = 100;
/// Calls refolded per page (with their events and revisions).
const CALL_PAGE: u64 = 500;

/// The first thing a check found that does not hold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Difference {
    pub table: String,
    /// The row: its id, callId, chain place or bucket.
    pub id: String,
    pub what: String,
}

/// What a check read, and the first difference it found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checked {
    pub rows: u64,
    pub difference: Option<Difference>,
}

fn differ(table: &str, id: impl ToString, what: impl Into<String>) -> Option<Difference> {
    Some(Difference {
        table: table.to_owned(),
        id: id.to_string(),
        what: what.into(),
    })
}

/// A walked chain: what [`Checked`] says, and its head as recomputed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WalkedChain {
    pub checked: Checked,
    pub head: Option<Head>,
    /// Whether the link asked about (`--expect-head`) is on this chain.
    pub holds_expected: bool,
}

/// One read-only snapshot of the database, that every check reads.
pub struct Snapshot {
    txn: DatabaseTransaction,
}

impl Store {
    /// Starts a snapshot (PostgreSQL: a repeatable-read, read-only transaction; SQLite: a read
    /// transaction), on the writers' pool, which has no statement timeout.
    pub async fn snapshot(&self) -> Result<Snapshot, AppError> {
        let (isolation, access) = self.dialect().snapshot_options();
        let txn = self
            .writer
            .begin_with_config(isolation, access)
            .await
            .map_err(db_error)?;
        Ok(Snapshot { txn })
    }
}

impl Snapshot {
    /// Ends the snapshot (it wrote nothing).
    pub async fn close(self) -> Result<(), AppError> {
        self.txn.rollback().await.map_err(db_error)
    }

    fn backend(&self) -> DbBackend {
        self.txn.get_database_backend()
    }

    async fn count(&self, table: &str) -> Result<u64, AppError> {
        let row = self
            .txn
            .query_one_raw(Statement::from_string(
                self.backend(),
                format!("SELECT COUNT(*) AS n FROM {table}"),
            ))
            .await
            .map_err(db_error)?;
        let n: i64 = match row {
            Some(row) => row.try_get("", "n").map_err(db_error)?,
            None => 0,
        };
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// The last link of each chain, as stored.
    pub async fn heads(&self, chains: &[Chain]) -> Result<Vec<(Chain, Option<Head>)>, AppError> {
        let mut heads = Vec::new();
        for chain in chains {
            heads.push((*chain, head(&self.txn, *chain).await.map_err(db_error)?));
        }
        Ok(heads)
    }

    /// Walks `chain` from its genesis: every link recomputed from its row and the link before,
    /// numbered without a gap, and every row of the table on the chain once.
    pub async fn walk_chain(
        &self,
        chain: Chain,
        expected: Option<&str>,
    ) -> Result<WalkedChain, AppError> {
        let table = chain.table;
        let mut previous = GENESIS;
        let mut seq = 0i64;
        let mut holds_expected = false;
        let mut head = None;
        let walked = |seq: i64, difference, head, holds_expected| WalkedChain {
            checked: Checked {
                rows: u64::try_from(seq).unwrap_or(0),
                difference,
            },
            head,
            holds_expected,
        };
        loop {
            let links = self
                .txn
                .query_all(
                    Query::select()
                        .columns([Alias::new("seq"), Alias::new("row_id"), Alias::new("link")])
                        .from(Alias::new("chain_links"))
                        .and_where(Expr::col(Alias::new("chain")).eq(table))
                        .and_where(Expr::col(Alias::new("seq")).gt(seq))
                        .order_by(Alias::new("seq"), Order::Asc)
                        .limit(LINK_PAGE),
                )
                .await
                .map_err(db_error)?;
            if links.is_empty() {
                break;
            }
            let mut page = Vec::with_capacity(links.len());
            for l in &links {
                let s: i64 = l.try_get("", "seq").map_err(db_error)?;
                let row_id: i64 = l.try_get("", "row_id").map_err(db_error)?;
                let stored: String = l.try_get("", "link").map_err(db_error)?;
                page.push((s, row_id, stored));
            }
            let mut select = Query::select();
            for (column, _, _) in chain.columns {
                select.column(Alias::new(*column));
            }
            select
                .from(Alias::new(table))
                .and_where(Expr::col(Alias::new("id")).is_in(page.iter().map(|(_, id, _)| *id)));
            let rows = self.txn.query_all(&select).await.map_err(db_error)?;
            let mut bytes: HashMap<i64, Vec<u8>> = HashMap::with_capacity(rows.len());
            for row in &rows {
                let (id, canonical) = chain.canonical(row).map_err(db_error)?;
                bytes.insert(id, canonical);
            }
            for (s, row_id, stored) in page {
                if s != seq + 1 {
                    let what = format!("link {} is followed by link {s}", seq);
                    return Ok(walked(
                        seq,
                        differ("chain_links", table, what),
                        head,
                        holds_expected,
                    ));
                }
                let Some(canonical) = bytes.get(&row_id) else {
                    let what = format!("on the chain (link {s}) but not in the table");
                    return Ok(walked(
                        seq,
                        differ(table, row_id, what),
                        head,
                        holds_expected,
                    ));
                };
                let computed = link(&previous, canonical);
                if hex::encode(computed) != stored {
                    let what = format!(
                        "link {s} does not match the row: the row was changed, or replaced"
                    );
                    return Ok(walked(
                        seq,
                        differ(table, row_id, what),
                        head,
                        holds_expected,
                    ));
                }
                if expected == Some(stored.as_str()) {
                    holds_expected = true;
                }
                previous = computed;
                seq = s;
                head = Some(Head {
                    seq: s,
                    link: stored,
                });
            }
        }
        let rows = self.count(table).await?;
        if rows != u64::try_from(seq).unwrap_or(0) {
            let unlinked = self
                .txn
                .query_one_raw(Statement::from_sql_and_values(
                    self.backend(),
                    format!(
                        "SELECT t.id AS id FROM {table} t WHERE NOT EXISTS (SELECT 1 FROM \
                         chain_links l WHERE l.chain = {} AND l.row_id = t.id) ORDER BY t.id \
                         LIMIT 1",
                        placeholder(self.backend(), 1)
                    ),
                    [table.into()],
                ))
                .await
                .map_err(db_error)?;
            let difference = match unlinked {
                Some(row) => {
                    let id: i64 = row.try_get("", "id").map_err(db_error)?;
                    differ(table, id, "in the table but not on the chain")
                }
                None => differ(
                    table,
                    "-",
                    format!("{rows} rows but {seq} links: a row is on the chain twice"),
                ),
            };
            return Ok(walked(seq, difference, head, holds_expected));
        }
        Ok(walked(seq, None, head, holds_expected))
    }

    /// Re-hashes every delivery's body and compares it with its `sha256`.
    pub async fn bodies(&self) -> Result<Checked, AppError> {
        let mut after = i64::MIN;
        let mut rows = 0u64;
        loop {
            let page = self
                .txn
                .query_all(
                    Query::select()
                        .columns([Alias::new("id"), Alias::new("body"), Alias::new("sha256")])
                        .from(Alias::new("deliveries"))
                        .and_where(Expr::col(Alias::new("id")).gt(after))
                        .order_by(Alias::new("id"), Order::Asc)
                        .limit(BODY_PAGE),
                )
                .await
                .map_err(db_error)?;
            if page.is_empty() {
                return Ok(Checked {
                    rows,
                    difference: None,
                });
            }
            for row in page {
                let id: i64 = row.try_get("", "id").map_err(db_error)?;
                let body: Vec<u8> = row.try_get("", "body").map_err(db_error)?;
                let stored: String = row.try_get("", "sha256").map_err(db_error)?;
                rows += 1;
                if hex::encode(Sha256::digest(&body)) != stored {
                    return Ok(Checked {
                        rows,
                        difference: differ(
                            "deliveries",
                            id,
                            "the body does not hash to its sha256",
                        ),
                    });
                }
                after = id;
            }
        }
    }

    /// Refolds every call from its events and compares it with the stored call; replays its
    /// events in arrival order and compares the revisions that replay makes with the stored
    /// ones; and finds events and revisions of calls that do not exist.
    pub async fn calls(&self) -> Result<Checked, AppError> {
        let mut after = i64::MIN;
        let mut rows = 0u64;
        let checked = |rows, difference| Ok(Checked { rows, difference });
        loop {
            let calls = call::Entity::find()
                .filter(call::Column::Id.gt(after))
                .order_by_asc(call::Column::Id)
                .limit(CALL_PAGE)
                .all(&self.txn)
                .await
                .map_err(db_error)?;
            let Some(last) = calls.last() else {
                break;
            };
            after = last.id;
            let ids: Vec<String> = calls.iter().map(|c| c.call_id.clone()).collect();
            let mut events: HashMap<String, Vec<AppliedEvent>> = HashMap::new();
            for row in call_event::Entity::find()
                .filter(call_event::Column::CallId.is_in(ids.clone()))
                .order_by_asc(call_event::Column::Id)
                .all(&self.txn)
                .await
                .map_err(db_error)?
            {
                let event = applied_event(row)?;
                events
                    .entry(event.event.call_id.clone())
                    .or_default()
                    .push(event);
            }
            let mut revisions: HashMap<String, Vec<call_revision::Model>> = HashMap::new();
            for row in call_revision::Entity::find()
                .filter(call_revision::Column::CallId.is_in(ids))
                .order_by_asc(call_revision::Column::Revision)
                .all(&self.txn)
                .await
                .map_err(db_error)?
            {
                revisions.entry(row.call_id.clone()).or_default().push(row);
            }
            for stored in calls {
                rows += 1;
                let events = events.remove(&stored.call_id).unwrap_or_default();
                let revisions = revisions.remove(&stored.call_id).unwrap_or_default();
                if let Some(what) = refold(&stored, &events, &revisions)? {
                    return checked(rows, differ("calls", &stored.call_id, what));
                }
            }
        }
        for (table, what) in [
            ("call_events", "an event of a call that is not stored"),
            ("call_revisions", "a revision of a call that is not stored"),
        ] {
            let orphan = self
                .txn
                .query_one_raw(Statement::from_string(
                    self.backend(),
                    format!(
                        "SELECT o.id AS id FROM {table} o WHERE NOT EXISTS (SELECT 1 FROM calls \
                         c WHERE c.call_id = o.call_id) ORDER BY o.id LIMIT 1"
                    ),
                ))
                .await
                .map_err(db_error)?;
            if let Some(row) = orphan {
                let id: i64 = row.try_get("", "id").map_err(db_error)?;
                return checked(rows, differ(table, id, what));
            }
        }
        checked(rows, None)
    }

    /// Both tiers aggregated again from `calls` and compared with the stored rows.
    pub async fn rollup(&self) -> Result<Checked, AppError> {
        let dialect = super::dialect::Dialect::of_backend(self.backend());
        let epoch = dialect.epoch_seconds("ended_at");
        let measures = call_measures();
        let mut rows = 0;
        for tier in TIERS {
            let table = tier.table;
            let bucket = tier.floor_sql(&epoch);
            let sql = format!(
                "WITH expected (b, d, calls, total, low, high, recorded, answered, missed, \
                 rejected) AS ( \
                 SELECT {bucket}, COALESCE(direction, ''), {measures} FROM calls \
                 WHERE ended_at IS NOT NULL GROUP BY 1, 2 \
                 UNION ALL SELECT {bucket}, '{ALL_DIRECTIONS}', {measures} FROM calls \
                 WHERE ended_at IS NOT NULL GROUP BY 1) \
                 SELECT COALESCE(e.b, s.bucket_start) AS b, COALESCE(e.d, s.direction) AS d, \
                 e.calls AS expected, s.calls AS stored FROM expected e FULL OUTER JOIN {table} s \
                 ON s.bucket_start = e.b AND s.direction = e.d \
                 WHERE e.b IS NULL OR s.bucket_start IS NULL \
                 OR e.calls IS DISTINCT FROM s.calls \
                 OR e.total IS DISTINCT FROM s.total_duration_seconds \
                 OR e.low IS DISTINCT FROM s.min_duration_seconds \
                 OR e.high IS DISTINCT FROM s.max_duration_seconds \
                 OR e.recorded IS DISTINCT FROM s.with_recording \
                 OR e.answered IS DISTINCT FROM s.answered \
                 OR e.missed IS DISTINCT FROM s.missed \
                 OR e.rejected IS DISTINCT FROM s.rejected \
                 ORDER BY 1, 2 LIMIT 1"
            );
            rows += self.count(table).await?;
            let found = self
                .txn
                .query_one_raw(Statement::from_string(self.backend(), sql))
                .await
                .map_err(db_error)?;
            if let Some(row) = found {
                let b: i64 = row.try_get("", "b").map_err(db_error)?;
                let d: String = row.try_get("", "d").map_err(db_error)?;
                let expected: Option<i64> = row.try_get("", "expected").map_err(db_error)?;
                let stored: Option<i64> = row.try_get("", "stored").map_err(db_error)?;
                let count = |c: Option<i64>| c.map_or("no row".to_owned(), |c| c.to_string());
                let what = format!(
                    "differs from the calls: {} calls by the calls, {} stored",
                    count(expected),
                    count(stored)
                );
                let id = format!("{b}/{}", if d.is_empty() { "-" } else { &d });
                return Ok(Checked {
                    rows,
                    difference: differ(table, id, what),
                });
            }
        }
        Ok(Checked {
            rows,
            difference: None,
        })
    }
}

fn placeholder(backend: DbBackend, i: usize) -> String {
    super::dialect::Dialect::of_backend(backend).placeholder(i)
}

/// What differs between a stored call and its events, if anything.
fn refold(
    stored: &call::Model,
    events: &[AppliedEvent],
    revisions: &[call_revision::Model],
) -> Result<Option<String>, AppError> {
    let Some(state) = fold(events) else {
        return Ok(Some("has no events".into()));
    };
    let model = model_from_state(&state, stored.revision, stored.updated_at);
    if let Some(column) = first_difference(stored, &model) {
        return Ok(Some(format!(
            "{column} differs from the fold of its {} events",
            events.len()
        )));
    }
    // The call as each event in turn left it: a concluded call that an event changed was kept
    // as a revision first.
    let mut replayed: Vec<call::Model> = Vec::new();
    let mut current: Option<call::Model> = None;
    for arrived in 1..=events.len() {
        let Some(state) = fold(&events[..arrived]) else {
            continue;
        };
        let revision = current.as_ref().map_or(1, |c| c.revision);
        let mut next = model_from_state(&state, revision, stored.updated_at);
        next.id = Set(stored.id);
        if let Some(old) = &current {
            if first_difference(old, &next).is_none() {
                continue;
            }
            if old.ended_at.is_some() {
                replayed.push(old.clone());
                next.revision = Set(old.revision + 1);
            }
        }
        current = Some(
            next.try_into_model()
                .map_err(|e| AppError::Internal(format!("refolded call: {e}")))?,
        );
    }
    let expected_revision = i32::try_from(replayed.len() + 1).unwrap_or(i32::MAX);
    if stored.revision != expected_revision {
        return Ok(Some(format!(
            "revision {} but its events make revision {expected_revision}",
            stored.revision
        )));
    }
    if revisions.len() != replayed.len() {
        return Ok(Some(format!(
            "{} revisions stored, its events make {}",
            revisions.len(),
            replayed.len()
        )));
    }
    for (kept, old) in revisions.iter().zip(replayed) {
        let number = old.revision;
        if kept.revision != number {
            return Ok(Some(format!(
                "revision {number} is missing (found {})",
                kept.revision
            )));
        }
        let expected = snapshot_content(serde_json::to_value(call_from_model(old)?));
        let stored = snapshot_content(serde_json::from_str(&kept.snapshot));
        if expected.is_none() || expected != stored {
            return Ok(Some(format!(
                "revision {number} differs from the call its events made"
            )));
        }
    }
    Ok(None)
}

/// A revision's snapshot without its bookkeeping (when it was written).
fn snapshot_content(
    value: Result<serde_json::Value, serde_json::Error>,
) -> Option<serde_json::Value> {
    let mut value = value.ok()?;
    let object = value.as_object_mut()?;
    object.remove("updated_at");
    object.remove("updatedAt");
    Some(value)
}
