//! A database made by an earlier calltrail (fingerprints of version 0, before the canonical
//! encoding), upgraded in place by this one: every event it stored is still recognised when
//! DoubleTick delivers it again, nothing is counted twice, and `calltrail verify` passes.
//! The databases are `tests/fixtures/upgrade/` (made by `make.sh` there with the binary of
//! commit a9ee24c), on each backend.

use std::path::PathBuf;

use serde_json::{Value, json};

use crate::evidence::verify;
use crate::kit::{
    Backend, Inspect, TestApp, TestDatabase, fixture_bytes, fixture_names, for_each_backend,
};

fn upgrade_fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/upgrade")
        .join(name)
}

async fn upgraded(backend: &Backend) -> TestApp {
    let database = TestDatabase::restored(
        backend,
        &upgrade_fixture("v0.sqlite"),
        &upgrade_fixture("v0-postgres.sql"),
    )
    .await;
    TestApp::spawn_on(backend, database, |_| {}).await
}

/// Every call event the earlier binary was sent, as sent: the event and suspicious fixtures,
/// and the year-0001 call `make.sh` adds.
fn call_events() -> Vec<(String, &'static str, Vec<u8>)> {
    let mut bodies = Vec::new();
    for folder in ["events", "suspicious"] {
        for name in fixture_names(folder) {
            if name == "call-permission-reply.json" {
                continue;
            }
            let content_type = if name.ends_with("form-urlencoded.txt") {
                "application/x-www-form-urlencoded"
            } else {
                "application/json"
            };
            let relative = format!("{folder}/{name}");
            bodies.push((relative.clone(), content_type, fixture_bytes(&relative)));
        }
    }
    let mut year_one: Value =
        serde_json::from_slice(&fixture_bytes("events/call-ended-incoming-recorded.json"))
            .expect("fixture");
    year_one["callId"] = json!("call_year_0001");
    year_one["callStartedAt"] = json!("0001-01-01T00:00:00.000Z");
    year_one["callEndedAt"] = json!("0001-01-01T00:01:00.000Z");
    year_one["durationInSeconds"] = json!(60);
    bodies.push((
        "year 0001".into(),
        "application/json",
        year_one.to_string().into_bytes(),
    ));
    bodies
}

async fn not_picked_counts(app: &TestApp) -> Value {
    let answer = app
        .query(
            "{ calls(first: 50, orderBy: { field: ENDED_AT, direction: ASC }) \
             { nodes { callId revision notPickedCount anomalies durationSeconds } } }",
            json!({}),
        )
        .await;
    answer["calls"]["nodes"].clone()
}

#[tokio::test]
async fn a_database_made_by_the_earlier_binary_recognises_every_redelivery_after_the_upgrade() {
    for_each_backend(async |backend| {
        let name = backend.name();
        let app = upgraded(&backend).await;
        let before_calls = not_picked_counts(&app).await;
        let before_events = app.count("call_events").await;
        assert!(
            app.count_where("call_events", "fingerprint NOT LIKE 'v1:%'")
                .await
                == before_events
                && before_events > 0,
            "[{name}] the fixture holds version-0 fingerprints only"
        );
        let (ok, printed) = verify(&app, &[]);
        assert!(ok, "[{name}] the upgraded database verifies: {printed}");

        for (label, content_type, body) in call_events() {
            let (status, answer) = app.post_webhook(content_type, body).await;
            assert_eq!(status, 200, "[{name}] {label}: {answer}");
            assert_eq!(
                answer["status"], "duplicate",
                "[{name}] {label} was stored by the earlier binary: {answer}"
            );
        }
        assert_eq!(
            app.count("call_events").await,
            before_events,
            "[{name}] no event stored twice"
        );
        assert_eq!(
            not_picked_counts(&app).await,
            before_calls,
            "[{name}] no call changed (notPickedCount, revision, anomalies)"
        );

        // A new event after the upgrade is stored under a version-1 fingerprint, and its own
        // redelivery is recognised by that.
        let mut fresh: Value =
            serde_json::from_slice(&fixture_bytes("events/call-not-picked.json")).expect("fixture");
        fresh["callId"] = json!("call_after_upgrade");
        for expected in ["merged", "duplicate"] {
            let (status, answer) = app
                .post_webhook("application/json", fresh.to_string())
                .await;
            assert_eq!(status, 200, "[{name}] {answer}");
            assert_eq!(answer["status"], expected, "[{name}] {answer}");
        }
        assert_eq!(
            app.count_where("call_events", "fingerprint LIKE 'v1:%'")
                .await,
            1,
            "[{name}] the new event has a version-1 fingerprint"
        );
        let (ok, printed) = verify(&app, &[]);
        assert!(
            ok,
            "[{name}] still verifies after the redeliveries: {printed}"
        );
        app.finish().await;
    })
    .await;
}
