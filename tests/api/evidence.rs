//! Evidence that holds up: the hash chains, `calltrail verify` and what it finds after the
//! database was changed behind calltrail's back (with the append-only triggers bypassed, as
//! their owner or a superuser can).

use std::process::Command;

use sea_orm::{ConnectionTrait, TransactionTrait};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::kit::media::{KeyIn, MediaHost};
use crate::kit::{Backend, Inspect, TestApp, fixture_names, for_each_app, for_each_backend};
use crate::recordings::{archiving, objects_in, post, recorded_call, settled};
use calltrail::recordings::KeyPlacement;

/// Every event fixture, in name order: six calls, one of them revised, one ignored delivery.
async fn deliver_fixtures(app: &TestApp) {
    for name in fixture_names("events") {
        if !name.ends_with(".json") {
            continue;
        }
        let (status, body) = app.post_fixture(&format!("events/{name}")).await;
        assert_eq!(status, 200, "{name}: {body}");
    }
    // A read with a key that returns calls' identities is logged (the access log's chain).
    let out = Command::new(env!("CARGO_BIN_EXE_calltrail"))
        .args(["keys", "create", "--name", "auditor", "--role", "admin"])
        .env("DATABASE_URL", &app.database.url)
        .env("RUST_LOG", "warn")
        .output()
        .expect("calltrail keys runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let key = stdout.lines().last().expect("a key line").trim();
    let read: serde_json::Value = app
        .client
        .post(app.url("/graphql"))
        .bearer_auth(key)
        .json(&json!({ "query": "{ calls(first: 10) { nodes { callId } } }" }))
        .send()
        .await
        .expect("graphql request")
        .json()
        .await
        .expect("graphql answer");
    assert!(read["errors"].is_null(), "{read}");
}

/// `calltrail verify` on `app`'s database: whether it passed, and what it printed.
pub(crate) fn verify(app: &TestApp, args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_calltrail"))
        .arg("verify")
        .args(args)
        .env("DATABASE_URL", &app.database.url)
        .env("RUST_LOG", "warn")
        .output()
        .expect("calltrail verify runs");
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), printed)
}

/// Runs `statements` in one transaction with the append-only triggers out of the way: on
/// SQLite they are dropped (the file's owner can); on PostgreSQL the superuser switches them
/// off for the session (`session_replication_role = replica`).
async fn behind_the_triggers(app: &TestApp, statements: &[String]) {
    let db = app.connect().await;
    let txn = db.begin().await.expect("begin");
    if app.backend.name() == "postgres" {
        txn.execute_unprepared("SET LOCAL session_replication_role = replica")
            .await
            .expect("replica role");
    } else {
        for table in [
            "deliveries",
            "call_events",
            "call_revisions",
            "access_log",
            "chain_links",
        ] {
            for op in ["update", "delete"] {
                txn.execute_unprepared(&format!("DROP TRIGGER IF EXISTS {table}_no_{op}"))
                    .await
                    .expect("drop trigger");
            }
        }
    }
    for sql in statements {
        txn.execute_unprepared(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    txn.commit().await.expect("commit");
    let _ = db.close().await;
}

/// A byte string as a SQL literal of the backend.
fn bytes_literal(app: &TestApp, bytes: &[u8]) -> String {
    if app.backend.name() == "postgres" {
        format!("'\\x{}'::bytea", hex::encode(bytes))
    } else {
        format!("X'{}'", hex::encode(bytes))
    }
}

/// The id of the first logged delivery with `outcome`.
async fn first_delivery(app: &TestApp, outcome: &str) -> i64 {
    app.query_number(&format!(
        "SELECT MIN(id) AS n FROM deliveries WHERE outcome = '{outcome}'"
    ))
    .await
}

async fn body_of(app: &TestApp, id: i64) -> Vec<u8> {
    let rows = app
        .query_all(&format!("SELECT body FROM deliveries WHERE id = {id}"))
        .await;
    rows[0].try_get::<Vec<u8>>("", "body").expect("body")
}

#[tokio::test]
async fn an_untouched_database_verifies_clean_and_its_recorded_head_stays_on_the_chain() {
    for_each_app(async |app| {
        let name = app.backend.name();
        deliver_fixtures(app).await;
        let (ok, printed) = verify(app, &[]);
        assert!(ok, "[{name}] {printed}");
        for line in [
            "ok       chain deliveries: 10 rows",
            "ok       chain access_log: 1 rows",
            "ok       delivery bodies: 10 rows",
            "ok       calls against their events and revisions: 6 rows",
        ] {
            assert!(printed.contains(line), "[{name}] no `{line}` in {printed}");
        }
        let (ok, heads) = verify(app, &["--head"]);
        assert!(ok, "[{name}] {heads}");
        let recorded = heads
            .lines()
            .find_map(|l| l.strip_prefix("head     deliveries 10 "))
            .unwrap_or_else(|| panic!("[{name}] no deliveries head in {heads}"))
            .to_owned();
        assert_eq!(recorded.len(), 64, "[{name}] {recorded}");
        // More traffic: the recorded head is still a link of the chain, no longer its head.
        let (status, _) = app.post_fixture("events/call-missed.json").await;
        assert_eq!(status, 200);
        let (ok, printed) = verify(app, &["--expect-head", &recorded]);
        assert!(ok, "[{name}] {printed}");
        assert!(
            printed.contains("head     deliveries 11 "),
            "[{name}] {printed}"
        );
        let (ok, printed) = verify(app, &["--expect-head", &"ab".repeat(32)]);
        assert!(!ok, "[{name}] an unknown head was accepted: {printed}");
        assert!(
            printed.contains("the expected head is not a link"),
            "[{name}] {printed}"
        );
        let links = app.count("chain_links").await;
        assert_eq!(links, 11 + 1, "[{name}] one link per log row");
    })
    .await;
}

/// Applies `tamper` to a database holding the fixtures, then expects verify to fail and its
/// output to contain `named`.
async fn tampered_is_found(case: &str, tamper: impl AsyncFn(&TestApp) -> (Vec<String>, String)) {
    for_each_app(async |app| {
        let name = app.backend.name();
        deliver_fixtures(app).await;
        let (ok, printed) = verify(app, &[]);
        assert!(ok, "[{name}] {case}: clean before: {printed}");
        let (statements, named) = tamper(app).await;
        behind_the_triggers(app, &statements).await;
        let (ok, printed) = verify(app, &[]);
        assert!(!ok, "[{name}] {case}: verify passed: {printed}");
        let differs: Vec<&str> = printed
            .lines()
            .filter(|l| l.starts_with("DIFFERS"))
            .collect();
        assert!(
            differs.iter().any(|l| l.contains(&named)),
            "[{name}] {case}: no DIFFERS line naming `{named}` in {printed}"
        );
    })
    .await;
}

#[tokio::test]
async fn a_body_edited_with_its_sha256_breaks_the_chain_at_its_row() {
    tampered_is_found("edited body", async |app| {
        let id = first_delivery(app, "stored").await;
        let mut body = body_of(app, id).await;
        body.extend_from_slice(b" ");
        let sha = hex::encode(Sha256::digest(&body));
        let sql = format!(
            "UPDATE deliveries SET body = {}, sha256 = '{sha}' WHERE id = {id}",
            bytes_literal(app, &body)
        );
        (
            vec![sql],
            format!("chain deliveries: deliveries {id}: link"),
        )
    })
    .await;
}

#[tokio::test]
async fn a_body_edited_alone_no_longer_hashes_to_its_sha256() {
    tampered_is_found("edited body alone", async |app| {
        let id = first_delivery(app, "stored").await;
        let mut body = body_of(app, id).await;
        body.extend_from_slice(b" ");
        let sql = format!(
            "UPDATE deliveries SET body = {} WHERE id = {id}",
            bytes_literal(app, &body)
        );
        (
            vec![sql],
            format!("delivery bodies: deliveries {id}: the body"),
        )
    })
    .await;
}

#[tokio::test]
async fn a_deleted_delivery_is_missing_from_the_chain() {
    tampered_is_found("deleted delivery", async |app| {
        let id = first_delivery(app, "stored").await;
        let sql = format!("DELETE FROM deliveries WHERE id = {id}");
        (vec![sql], format!("deliveries {id}: on the chain"))
    })
    .await;
}

#[tokio::test]
async fn two_deliveries_with_their_contents_swapped_break_the_chain() {
    tampered_is_found("swapped rows", async |app| {
        let a = first_delivery(app, "stored").await;
        let b = first_delivery(app, "ignored").await;
        let mut statements = Vec::new();
        for (to, from) in [(a, b), (b, a)] {
            let row = &app
                .query_json(&format!(
                    "SELECT sha256, event, call_id, outcome FROM deliveries WHERE id = {from}"
                ))
                .await[0];
            let text = |v: &serde_json::Value| match v.as_str() {
                Some(s) => format!("'{s}'"),
                None => "NULL".into(),
            };
            statements.push(format!(
                "UPDATE deliveries SET body = {}, sha256 = {}, event = {}, call_id = {}, \
                 outcome = {} WHERE id = {to}",
                bytes_literal(app, &body_of(app, from).await),
                text(&row["sha256"]),
                text(&row["event"]),
                text(&row["call_id"]),
                text(&row["outcome"]),
            ));
        }
        (statements, format!("deliveries {}: link", a.min(b)))
    })
    .await;
}

#[tokio::test]
async fn an_edited_call_differs_from_the_fold_of_its_events() {
    tampered_is_found("edited call", async |app| {
        let call = app
            .query_strings("SELECT call_id FROM calls ORDER BY id LIMIT 1")
            .await
            .remove(0);
        let sql = format!("UPDATE calls SET customer_name = 'Mallory' WHERE call_id = '{call}'");
        (vec![sql], format!("calls {call}: customer_name differs"))
    })
    .await;
}

#[tokio::test]
async fn a_deleted_revision_is_missing_from_its_call() {
    tampered_is_found("deleted revision", async |app| {
        let call = app
            .query_strings("SELECT call_id FROM call_revisions ORDER BY id LIMIT 1")
            .await
            .remove(0);
        let sql = format!("DELETE FROM call_revisions WHERE call_id = '{call}'");
        (vec![sql], format!("calls {call}: 0 revisions stored"))
    })
    .await;
}

#[tokio::test]
async fn a_changed_rollup_count_differs_from_the_calls() {
    tampered_is_found("rollup count", async |app| {
        let bucket = app
            .query_number("SELECT MIN(bucket_start) AS n FROM call_buckets")
            .await;
        let sql = format!(
            "UPDATE call_buckets SET calls = calls + 1 WHERE bucket_start = {bucket} \
             AND direction = '*'"
        );
        (vec![sql], format!("call_buckets {bucket}/*: differs"))
    })
    .await;
}

#[tokio::test]
async fn the_database_refuses_to_change_events_revisions_and_links() {
    for_each_app(async |app| {
        let name = app.backend.name();
        deliver_fixtures(app).await;
        for sql in [
            "UPDATE call_events SET fields = '{}'",
            "DELETE FROM call_events",
            "UPDATE call_revisions SET snapshot = '{}'",
            "DELETE FROM call_revisions",
            "UPDATE chain_links SET link = 'x'",
            "DELETE FROM chain_links",
        ] {
            assert!(
                app.try_execute(sql).await.is_err(),
                "[{name}] `{sql}` must be refused"
            );
        }
        if name == "postgres" {
            for table in ["call_events", "call_revisions", "chain_links"] {
                let sql = format!("TRUNCATE {table}");
                assert!(app.try_execute(&sql).await.is_err(), "[{name}] {sql}");
            }
        }
        let (ok, printed) = verify(app, &[]);
        assert!(ok, "[{name}] {printed}");
    })
    .await;
}

/// (7) An archived recording altered where it is kept: `calltrail verify` re-hashes every
/// archived object and names the call whose recording no longer matches; `--skip-recordings`
/// leaves that check out.
#[tokio::test]
async fn verify_names_a_recording_altered_in_the_archive() {
    for_each_backend(async |backend: Backend| {
        let name = backend.name();
        let host = MediaHost::start(KeyIn::Query).await;
        let dir = tempfile::tempdir().expect("archive dir");
        let app = TestApp::spawn_with(&backend, |s| {
            archiving(s, dir.path(), KeyPlacement::Query);
        })
        .await;
        post(
            &app,
            recorded_call("ev_rec", &host.url("mp3", "ev_rec"), "918045671200"),
        )
        .await;
        let rec = settled(&app, None, "ev_rec", &["ARCHIVED"]).await;
        assert_eq!(rec["state"], "ARCHIVED", "[{name}] {rec}");
        let archive = format!("file:{}", dir.path().display());
        let run = |args: &[&str]| {
            let out = std::process::Command::new(env!("CARGO_BIN_EXE_calltrail"))
                .arg("verify")
                .args(args)
                .env("DATABASE_URL", &app.database.url)
                .env("CALLTRAIL_RECORDINGS", &archive)
                .env("RUST_LOG", "warn")
                .output()
                .expect("calltrail verify runs");
            (
                out.status.success(),
                String::from_utf8_lossy(&out.stdout).into_owned(),
            )
        };
        let (clean, printed) = run(&[]);
        assert!(clean, "[{name}] untouched: {printed}");
        assert!(
            printed.contains("ok       archived recordings against their SHA-256 and size: 1 rows"),
            "[{name}] the recording was re-hashed: {printed}"
        );

        let objects = objects_in(dir.path());
        assert_eq!(objects.len(), 1, "[{name}] one archived object");
        let mut bytes = std::fs::read(&objects[0]).expect("object");
        let last = bytes.len() - 1;
        bytes[last] ^= 0x01;
        std::fs::write(&objects[0], &bytes).expect("alter the object");

        let (clean, printed) = run(&[]);
        assert!(
            !clean,
            "[{name}] an altered recording fails verify: {printed}"
        );
        assert!(
            printed.contains("DIFFERS  archived recordings")
                && printed.contains("recordings ev_rec"),
            "[{name}] the row is named: {printed}"
        );
        let (clean, printed) = run(&["--skip-recordings"]);
        assert!(clean, "[{name}] the other checks still pass: {printed}");
        app.finish().await;
    })
    .await;
}
