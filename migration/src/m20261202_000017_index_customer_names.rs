//! The customers' names, each once, with a trigram index: what a search by part of a name
//! looks up first (`store/filter.rs`). A name matched against every call's row is a scan of
//! the whole call log (7–9 s at 1M calls); against this table's index it is a few
//! milliseconds, and the few matching customers' calls are then read from
//! `idx_calls_customer_digits_ended_at`.
//!
//! `customer_names` holds a row per (customer digits, lower-cased name) ever seen on a call
//! (once on SQLite; on PostgreSQL rarely twice, see [`postgres`]), kept by a trigger on `calls`, so every writer (webhooks, lifecycle merges, the seed) keeps
//! it without knowing of it. A name a call no longer carries stays: the search still checks
//! each call's own name, so a stale row costs a lookup, never a wrong answer.
//!
//! PostgreSQL indexes `name` with `pg_trgm` (a trusted extension: the database's owner may
//! create it); SQLite with an FTS5 table over it, tokenized in trigrams.
use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DatabaseBackend};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// The pair a call carries, as the table keeps it: only calls with both.
const BACKFILL: &str = "SELECT DISTINCT customer_digits, lower(customer_name) FROM calls \
     WHERE customer_name IS NOT NULL AND customer_digits IS NOT NULL";

/// On PostgreSQL the pair is not a unique key: webhook batches write on several connections
/// at once, and two of them inserting the same new pairs in opposite orders would wait on
/// each other's unique entries (a deadlock, one batch refused). A pair is added unless it is
/// there; two batches adding it at once leave it twice, which the search reads as once.
fn postgres() -> Vec<String> {
    vec![
        "CREATE EXTENSION IF NOT EXISTS pg_trgm".into(),
        "CREATE TABLE IF NOT EXISTS customer_names (id BIGSERIAL PRIMARY KEY, \
         customer_digits TEXT NOT NULL, name TEXT NOT NULL)"
            .into(),
        format!("INSERT INTO customer_names (customer_digits, name) {BACKFILL}"),
        // By number alone: a B-tree entry holds at most 2 704 bytes, and a name is as long as
        // DoubleTick sent it (a customer has a name or two, checked one by one).
        "CREATE INDEX IF NOT EXISTS idx_customer_names_digits ON customer_names \
         (customer_digits)"
            .into(),
        // New entries wait in a pending list that every search reads through until it is
        // merged: by default up to 4 MB (a lookup at 1M calls took 27 ms with the seed's
        // names pending, 10 ms merged). 64 kB keeps that read small and still merges in
        // batches: entering 184 584 names took 2.0 s with the default, 6.3 s with 64 kB and
        // 16.3 s with no pending list.
        "CREATE INDEX IF NOT EXISTS idx_customer_names_trigram ON customer_names \
         USING gin (name gin_trgm_ops) WITH (gin_pending_list_limit = 64)"
            .into(),
        "CREATE OR REPLACE FUNCTION calltrail_index_customer_name() RETURNS trigger \
         LANGUAGE plpgsql AS $$ BEGIN \
         IF NEW.customer_name IS NOT NULL AND NEW.customer_digits IS NOT NULL THEN \
         INSERT INTO customer_names (customer_digits, name) \
         SELECT NEW.customer_digits, lower(NEW.customer_name) WHERE NOT EXISTS \
         (SELECT 1 FROM customer_names WHERE customer_digits = NEW.customer_digits \
         AND name = lower(NEW.customer_name)); \
         END IF; RETURN NULL; END $$"
            .into(),
        "CREATE TRIGGER calls_index_customer_name \
         AFTER INSERT OR UPDATE OF customer_name, customer_digits ON calls \
         FOR EACH ROW EXECUTE FUNCTION calltrail_index_customer_name()"
            .into(),
        // Statistics of the lower-cased names, so the planner knows how many calls a common
        // name matches: without them it guesses a handful, reads every call and sorts (430 ms
        // at 1M calls) instead of walking the list's order until a page is found (1.8 ms).
        // Expression statistics need PostgreSQL 14; older servers go without.
        "DO $$ BEGIN IF current_setting('server_version_num')::int >= 140000 THEN \
         EXECUTE 'CREATE STATISTICS IF NOT EXISTS calls_customer_name_lower \
         ON (lower(customer_name)) FROM calls'; END IF; END $$"
            .into(),
    ]
}

fn sqlite() -> Vec<String> {
    // Not `INSERT OR IGNORE`: a conflict policy on the statement that fires a trigger overrides
    // the trigger's own, so a batch's `INSERT OR FAIL` into calls would fail on a name
    // already indexed.
    let index_pair = "WHEN new.customer_name IS NOT NULL AND new.customer_digits IS NOT NULL \
         BEGIN INSERT INTO customer_names (customer_digits, name) \
         SELECT new.customer_digits, lower(new.customer_name) WHERE NOT EXISTS \
         (SELECT 1 FROM customer_names WHERE customer_digits = new.customer_digits \
         AND name = lower(new.customer_name)); END";
    vec![
        // Each pair once without a unique index (which would keep every name a second time):
        // SQLite's writers take turns, so the trigger's `NOT EXISTS` is enough.
        "CREATE TABLE IF NOT EXISTS customer_names (id INTEGER PRIMARY KEY, \
         customer_digits TEXT NOT NULL, name TEXT NOT NULL)"
            .into(),
        "CREATE INDEX IF NOT EXISTS idx_customer_names_digits ON customer_names \
         (customer_digits)"
            .into(),
        // An external-content index: the names are stored once, in `customer_names`.
        "CREATE VIRTUAL TABLE IF NOT EXISTS customer_names_trigram USING fts5(name, \
         content='customer_names', content_rowid='id', tokenize='trigram')"
            .into(),
        "CREATE TRIGGER IF NOT EXISTS customer_names_to_trigram AFTER INSERT ON customer_names \
         BEGIN INSERT INTO customer_names_trigram (rowid, name) VALUES (new.id, new.name); END"
            .into(),
        format!("INSERT INTO customer_names (customer_digits, name) {BACKFILL}"),
        format!(
            "CREATE TRIGGER IF NOT EXISTS calls_index_customer_name AFTER INSERT ON calls \
             {index_pair}"
        ),
        format!(
            "CREATE TRIGGER IF NOT EXISTS calls_reindex_customer_name \
             AFTER UPDATE OF customer_name, customer_digits ON calls {index_pair}"
        ),
    ]
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        let statements = match db.get_database_backend() {
            DatabaseBackend::Postgres => postgres(),
            _ => sqlite(),
        };
        for sql in statements {
            db.execute_unprepared(&sql).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        let statements: &[&str] = match db.get_database_backend() {
            DatabaseBackend::Postgres => &[
                "DROP TRIGGER IF EXISTS calls_index_customer_name ON calls",
                "DROP STATISTICS IF EXISTS calls_customer_name_lower",
                "DROP FUNCTION IF EXISTS calltrail_index_customer_name()",
                "DROP TABLE IF EXISTS customer_names",
            ],
            _ => &[
                "DROP TRIGGER IF EXISTS calls_index_customer_name",
                "DROP TRIGGER IF EXISTS calls_reindex_customer_name",
                "DROP TABLE IF EXISTS customer_names_trigram",
                "DROP TABLE IF EXISTS customer_names",
            ],
        };
        for sql in statements {
            db.execute_unprepared(sql).await?;
        }
        Ok(())
    }
}
