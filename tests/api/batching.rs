//! Group commit stores exactly what delivery-by-delivery storing does: the same rows in every
//! table, the same answers, on both backends.
use crate::kit::{
    Backend, Inspect, TestDatabase, fixture_bytes, fixture_names, for_each_backend, load,
};
use calltrail::store::Store;
use calltrail::store::ingest::{Incoming, Ingestor, Receipt};
use calltrail::webhook::judge;
use chrono::{Duration, TimeZone, Utc};
use futures_util::future::join_all;
use sea_orm::JsonValue;

/// Every fixture (calls of each kind, other lifecycle events, invalid and suspicious bodies),
/// generated calls `from..to`, and a body that is not JSON at all, each with its own arrival
/// time (to the nanosecond, which PostgreSQL keeps to the microsecond).
async fn deliveries(round: i64, from: usize, to: usize) -> Vec<Incoming> {
    let mut bodies: Vec<(String, Vec<u8>)> = Vec::new();
    for folder in ["events", "invalid", "suspicious"] {
        for name in fixture_names(folder) {
            let content_type = if name.ends_with("form-urlencoded.txt") {
                "application/x-www-form-urlencoded"
            } else {
                "application/json"
            };
            bodies.push((
                content_type.into(),
                fixture_bytes(&format!("{folder}/{name}")),
            ));
        }
    }
    for i in from..to {
        bodies.push((
            "application/json".into(),
            load::call_body("batch", i).into(),
        ));
    }
    bodies.push(("text/plain".into(), b"hello".to_vec()));
    let start = Utc
        .timestamp_opt(1_772_500_000 + round * 3_600, 123_456_789)
        .single()
        .expect("time");
    let mut out = Vec::new();
    for (i, (content_type, body)) in bodies.into_iter().enumerate() {
        let (verdict, _) = judge(Some(&content_type), &body, chrono::Utc::now()).await;
        out.push(Incoming {
            received_at: start + Duration::nanoseconds(1_000_333 * i64::try_from(i).expect("i")),
            content_type,
            body,
            verdict,
            replay_of: None,
        });
    }
    out
}

/// A call delivered in round one, delivered again ended by the other side: an update.
async fn changed_call() -> Incoming {
    let body =
        load::call_body("batch", 3).replace("\"endedBy\":\"agent\"", "\"endedBy\":\"customer\"");
    assert!(body.contains("\"endedBy\":\"customer\""), "{body}");
    let (verdict, _) = judge(
        Some("application/json"),
        body.as_bytes(),
        chrono::Utc::now(),
    )
    .await;
    Incoming {
        received_at: Utc.timestamp_opt(1_772_600_000, 1).single().expect("time"),
        content_type: "application/json".into(),
        body: body.into_bytes(),
        verdict,
        replay_of: None,
    }
}

/// Every row of every table the writer touches, without the columns that differ between two
/// equal histories (generated ids, and the wall-clock time a row was written), sorted.
async fn tables(database: &TestDatabase) -> Vec<(String, Vec<String>)> {
    let mut out = Vec::new();
    for (table, skip) in [
        ("calls", &["id", "updated_at"][..]),
        ("call_events", &["id"][..]),
        ("call_revisions", &["id", "replaced_at"][..]),
        ("deliveries", &["id"][..]),
        ("call_buckets", &[][..]),
        ("call_half_hours", &[][..]),
    ] {
        let mut rows: Vec<String> = database
            .query_json(&format!("SELECT * FROM {table}"))
            .await
            .into_iter()
            .map(|mut row| {
                let object = row.as_object_mut().expect("a row is an object");
                for column in skip {
                    assert!(object.remove(*column).is_some(), "{table}.{column}");
                }
                // A revision's snapshot is the replaced row, ids and write time included.
                if let Some(snapshot) = object.get_mut("snapshot") {
                    let mut old: JsonValue =
                        serde_json::from_str(snapshot.as_str().expect("text")).expect("JSON");
                    let old_row = old.as_object_mut().expect("a row is an object");
                    for column in ["id", "updated_at"] {
                        assert!(old_row.remove(column).is_some(), "snapshot.{column}");
                    }
                    *snapshot = old;
                }
                row.to_string()
            })
            .collect();
        rows.sort();
        out.push((table.to_owned(), rows));
    }
    out
}

/// What a receipt says, but the log row's id.
fn answer(receipt: &Receipt) -> (String, Option<String>, bool) {
    (
        receipt.outcome.as_str().to_owned(),
        receipt.call_id.clone(),
        receipt.concluded,
    )
}

async fn migrated(backend: &Backend) -> (TestDatabase, Store) {
    let database = TestDatabase::create(backend).await;
    let store = Store::connect(&database.url).await.expect("connect");
    store.migrate().await.expect("migrate");
    (database, store)
}

#[tokio::test]
async fn a_batch_stores_exactly_what_delivery_by_delivery_storing_does() {
    // Round two repeats round one (duplicates, and follow-up events of calls that now have a
    // row), adds new calls, and changes a stored call.
    let mut round_two = deliveries(1, 0, 60).await;
    round_two.push(changed_call().await);
    let rounds = [deliveries(0, 0, 40).await, round_two];

    for_each_backend(async |backend| {
        let label = backend.name();
        let (batched_db, batched_store) = migrated(&backend).await;
        let (single_db, single_store) = migrated(&backend).await;
        let batched = Ingestor::start(batched_store.clone(), 3);
        let single = Ingestor::one_by_one(single_store.clone());

        let mut revisions: Vec<usize> = Vec::new();
        for (round, incomings) in rounds.iter().enumerate() {
            // Submitted together on this one-threaded runtime: every delivery is queued
            // before the writer runs, so the round is one batch.
            let together = join_all(incomings.iter().map(|i| batched.submit(i.clone()))).await;
            let mut one_by_one = Vec::new();
            for incoming in incomings {
                one_by_one.push(single.submit(incoming.clone()).await);
            }
            for (i, (a, b)) in together.iter().zip(&one_by_one).enumerate() {
                let a = a.as_ref().expect("batched delivery stored");
                let b = b.as_ref().expect("single delivery stored");
                assert_eq!(
                    answer(a),
                    answer(b),
                    "[{label}] round {round}, delivery {i}"
                );
            }
            if round == 1 {
                let last = one_by_one.last().expect("deliveries");
                assert_eq!(last.as_ref().expect("stored").outcome.as_str(), "updated");
            }
            let stats = batched.stats();
            // Round two is the larger.
            assert_eq!(
                stats.largest_batch,
                u64::try_from(incomings.len()).expect("len"),
                "[{label}] round {round} was one batch: {stats:?}"
            );
            assert_eq!(
                stats.batches_committed,
                round as u64 + 1,
                "[{label}] {stats:?}"
            );
            assert_eq!(stats.batches_retried_one_by_one, 0, "[{label}] {stats:?}");
            assert_eq!(single.stats().largest_batch, 1, "[{label}]");

            let (a, b) = (tables(&batched_db).await, tables(&single_db).await);
            for ((table, rows_a), (_, rows_b)) in a.iter().zip(&b) {
                assert!(!rows_a.is_empty(), "[{label}] {table} empty");
                assert_eq!(
                    rows_a.len(),
                    rows_b.len(),
                    "[{label}] round {round}: {table}"
                );
                for (x, y) in rows_a.iter().zip(rows_b) {
                    assert_eq!(x, y, "[{label}] round {round}: a row of {table}");
                }
            }
            revisions.push(a[2].1.len());
        }
        assert_eq!(
            revisions[1],
            revisions[0] + 1,
            "[{label}] the changed call kept its old version"
        );
        batched_store.close().await;
        single_store.close().await;
    })
    .await;
}
