//! Operations: the probes, `/metrics` read by a Prometheus text-format parser (counters move by
//! exactly what was sent), request ids, and `calltrail backup`.
use std::collections::HashMap;
use std::process::Command;

use prometheus_parse::{Scrape, Value as Sampled};
use serde_json::{Value, json};

use crate::kit::{Inspect, TestApp, for_each_app, for_each_app_with, load};

const TOKEN: &str = "ops-test-secret";

/// Every sample of `/metrics`, by name and labels (`name{a="x",b="y"}`, labels sorted).
async fn scrape(app: &TestApp) -> HashMap<String, f64> {
    let response = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .expect("metrics");
    assert_eq!(response.status(), 200);
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    let text = response.text().await.expect("metrics text");
    let parsed = Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).expect("parses");
    let mut samples = HashMap::new();
    for sample in parsed.samples {
        let value = match sample.value {
            Sampled::Counter(v) | Sampled::Gauge(v) | Sampled::Untyped(v) => v,
            Sampled::Histogram(_) | Sampled::Summary(_) => continue,
        };
        let mut labels: Vec<String> = sample
            .labels
            .iter()
            .map(|(k, v)| format!("{k}=\"{v}\""))
            .collect();
        labels.sort();
        samples.insert(format!("{}{{{}}}", sample.metric, labels.join(",")), value);
    }
    samples
}

fn moved(before: &HashMap<String, f64>, after: &HashMap<String, f64>, key: &str) -> f64 {
    after.get(key).copied().unwrap_or(0.0) - before.get(key).copied().unwrap_or(0.0)
}

/// The change of every sample of `metric`, summed.
fn moved_all(before: &HashMap<String, f64>, after: &HashMap<String, f64>, metric: &str) -> f64 {
    after
        .keys()
        .filter(|k| k.starts_with(&format!("{metric}{{")))
        .map(|k| moved(before, after, k))
        .sum()
}

/// A new key (the last line `keys create` prints).
fn create_key(url: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_calltrail"))
        .args(["keys", "create", "--name", "ops", "--role", "admin"])
        .env("DATABASE_URL", url)
        .env("RUST_LOG", "warn")
        .output()
        .expect("keys create");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .expect("a key")
        .trim()
        .to_owned()
}

async fn post(app: &TestApp, token: &str, body: String) -> u16 {
    app.client
        .post(app.url("/webhooks/doubletick"))
        .bearer_auth(token)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("webhook")
        .status()
        .as_u16()
}

async fn graphql(app: &TestApp, key: &str, body: Value) -> Value {
    app.client
        .post(app.url("/graphql"))
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .expect("graphql")
        .json()
        .await
        .expect("json")
}

#[tokio::test]
async fn healthz_serves_and_readyz_says_the_database_takes_writes() {
    for_each_app(async |app| {
        let healthz = app
            .client
            .get(app.url("/healthz"))
            .send()
            .await
            .expect("healthz");
        assert_eq!(healthz.status(), 200);
        let readyz = app
            .client
            .get(app.url("/readyz"))
            .send()
            .await
            .expect("readyz");
        assert_eq!(readyz.status(), 200, "[{}]", app.backend.name());
        let body: Value = readyz.json().await.expect("json");
        assert_eq!(body["status"], "ready");
        let metrics = scrape(app).await;
        assert_eq!(metrics.get("calltrail_ready{}"), Some(&1.0));
        let health = app
            .client
            .get(app.url("/health"))
            .send()
            .await
            .expect("health");
        assert_eq!(health.status(), 200, "/health is kept as it was");
    })
    .await;
}

#[tokio::test]
async fn metrics_count_exactly_the_deliveries_and_queries_sent() {
    for_each_app_with(
        |s| s.webhook_token = vec![TOKEN.into()],
        async |app| {
            let key = create_key(&app.database.url);
            let before = scrape(app).await;
            for i in 0..3 {
                assert_eq!(post(app, TOKEN, load::call_body("metrics", i)).await, 200);
            }
            assert_eq!(post(app, TOKEN, load::call_body("metrics", 0)).await, 200);
            assert_eq!(post(app, TOKEN, "{not json".into()).await, 400);
            assert_eq!(post(app, "wrong-token", load::call_body("metrics", 9)).await, 401);

            let named = json!({ "query": "query CallLog { calls(first: 5) { nodes { callId } } }" });
            for _ in 0..3 {
                let answer = graphql(app, &key, named.clone()).await;
                assert!(answer.get("errors").is_none(), "{answer}");
            }
            let unnamed = json!({ "query": "{ calls(first: 1) { nodes { callId } } }" });
            assert!(graphql(app, &key, unnamed).await.get("errors").is_none());
            let invalid = graphql(app, &key, json!({ "query": "query Broken { nope }" })).await;
            assert!(invalid.get("errors").is_some());
            let after = scrape(app).await;

            let d = |labels: &str| {
                moved(
                    &before,
                    &after,
                    &format!("calltrail_webhook_deliveries_total{{{labels}}}"),
                )
            };
            let name = app.backend.name();
            assert_eq!(d(r#"outcome="stored",status="200""#), 3.0, "[{name}]");
            assert_eq!(d(r#"outcome="duplicate",status="200""#), 1.0, "[{name}]");
            assert_eq!(d(r#"outcome="rejected",status="400""#), 1.0, "[{name}]");
            assert_eq!(d(r#"outcome="unauthenticated",status="401""#), 1.0, "[{name}]");
            assert_eq!(
                moved_all(&before, &after, "calltrail_webhook_deliveries_total"),
                6.0,
                "[{name}]"
            );
            assert_eq!(
                moved(&before, &after, "calltrail_webhook_request_duration_seconds_count{}"),
                6.0
            );

            let g = |labels: &str| {
                moved(
                    &before,
                    &after,
                    &format!("calltrail_graphql_requests_total{{{labels}}}"),
                )
            };
            // A name gets its own label from its second request on.
            assert_eq!(
                g(r#"code="OK",operation_name="CallLog",operation_type="query""#),
                2.0,
                "[{name}]"
            );
            assert_eq!(
                g(r#"code="OK",operation_name="other",operation_type="query""#),
                2.0,
                "[{name}]"
            );
            assert_eq!(
                g(r#"code="GRAPHQL_VALIDATION_FAILED",operation_name="other",operation_type="query""#),
                1.0,
                "[{name}]"
            );
            assert_eq!(moved_all(&before, &after, "calltrail_graphql_requests_total"), 5.0);
            assert_eq!(
                moved(&before, &after, "calltrail_graphql_request_duration_seconds_count{}"),
                5.0
            );
            // Each successful read of calls wrote one access-log entry.
            let logged = app.database.url.count("access_log").await;
            assert_eq!(logged, 4, "[{name}]");
            assert_eq!(
                moved(&before, &after, r#"calltrail_access_log_writes_total{result="ok"}"#),
                4.0,
                "[{name}]"
            );
            // Every job the writer took (five deliveries, four access-log entries) was in
            // exactly one committed batch.
            assert_eq!(
                moved(&before, &after, "calltrail_writer_batch_size_sum{}"),
                9.0,
                "[{name}]"
            );
            assert_eq!(after.get("calltrail_writer_queue_depth{}"), Some(&0.0));
            assert!(
                after.contains_key(r#"calltrail_db_pool_max_connections{pool="writers"}"#),
                "{after:?}"
            );
            assert_eq!(
                after.get(&format!(
                    "calltrail_build_info{{version=\"{}\"}}",
                    env!("CARGO_PKG_VERSION")
                )),
                Some(&1.0)
            );
            let text = app
                .client
                .get(app.url("/metrics"))
                .send()
                .await
                .expect("metrics")
                .text()
                .await
                .expect("text");
            for secret in [TOKEN, key.as_str(), "Load Test", "919800000000", "metrics_000000"] {
                assert!(!text.contains(secret), "`{secret}` in /metrics");
            }
        },
    )
    .await;
}

#[tokio::test]
async fn every_answer_carries_a_request_id_the_clients_when_sane() {
    for_each_app(async |app| {
        let id_of = |r: &reqwest::Response| {
            r.headers()
                .get("x-request-id")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let given = app
            .client
            .get(app.url("/healthz"))
            .header("x-request-id", "abc-123")
            .send()
            .await
            .expect("healthz");
        assert_eq!(id_of(&given).as_deref(), Some("abc-123"));
        let odd = app
            .client
            .get(app.url("/nowhere"))
            .header("x-request-id", "a b\"c")
            .send()
            .await
            .expect("404");
        let replaced = id_of(&odd).expect("an id");
        assert_eq!(replaced.len(), 32);
        let none = app
            .client
            .get(app.url("/healthz"))
            .send()
            .await
            .expect("healthz");
        let generated = id_of(&none).expect("an id");
        assert_ne!(generated, replaced);
    })
    .await;
}

#[tokio::test]
async fn backup_copies_an_sqlite_database_while_it_takes_writes_and_refuses_postgres() {
    for_each_app_with(
        |s| s.webhook_token = vec![TOKEN.into()],
        async |app| {
            let dir = tempfile::tempdir().expect("dir");
            let copy = dir.path().join("copy.db");
            for i in 0..50 {
                assert_eq!(post(app, TOKEN, load::call_body("before", i)).await, 200);
            }
            // Writes go on during the backup.
            let writer = {
                let (client, url) = (app.client.clone(), app.url("/webhooks/doubletick"));
                tokio::spawn(async move {
                    let mut acked = 0;
                    for i in 0..200 {
                        let ok = client
                            .post(&url)
                            .bearer_auth(TOKEN)
                            .header("content-type", "application/json")
                            .body(load::call_body("during", i))
                            .send()
                            .await
                            .is_ok_and(|r| r.status().is_success());
                        acked += usize::from(ok);
                    }
                    acked
                })
            };
            let out = Command::new(env!("CARGO_BIN_EXE_calltrail"))
                .args(["backup", "--to"])
                .arg(&copy)
                .env("DATABASE_URL", &app.database.url)
                .env("RUST_LOG", "warn")
                .output()
                .expect("backup");
            let acked = writer.await.expect("writer");
            assert_eq!(acked, 200);
            if app.backend.name() != "sqlite" {
                assert!(!out.status.success());
                let said = String::from_utf8_lossy(&out.stderr);
                assert!(
                    said.contains("pg_dump") && said.contains("docs/operations.md"),
                    "{said}"
                );
                assert!(!copy.exists());
                return;
            }
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let copy_url = format!("sqlite://{}?mode=ro", copy.display());
            let stored = copy_url.stored_call_ids().await;
            // One committed state: every call from before, a prefix of those during.
            assert!((0..50).all(|i| stored.contains(&format!("before_{i:06}"))));
            let during = stored.iter().filter(|id| id.starts_with("during_")).count();
            assert!(stored.len() == 50 + during);
            let deliveries = copy_url.count("deliveries").await;
            assert_eq!(deliveries, i64::try_from(stored.len()).expect("count"));
            let buckets = copy_url
                .query_number(
                    "SELECT COALESCE(SUM(calls), 0) AS n FROM call_buckets WHERE direction = '*'",
                )
                .await;
            assert_eq!(
                buckets,
                i64::try_from(stored.len()).expect("count"),
                "rollup equals calls"
            );
            // The copy holds together as evidence: chains, bodies, calls, rollup.
            let verified = Command::new(env!("CARGO_BIN_EXE_calltrail"))
                .args(["verify", "--skip-recordings"])
                .env("DATABASE_URL", format!("sqlite://{}", copy.display()))
                .env("RUST_LOG", "warn")
                .output()
                .expect("verify");
            assert!(
                verified.status.success(),
                "calltrail verify passes on the copy: {}",
                String::from_utf8_lossy(&verified.stdout)
            );
            let again = Command::new(env!("CARGO_BIN_EXE_calltrail"))
                .args(["backup", "--to"])
                .arg(&copy)
                .env("DATABASE_URL", &app.database.url)
                .output()
                .expect("backup");
            assert!(
                !again.status.success(),
                "an existing file is never overwritten"
            );
        },
    )
    .await;
}
