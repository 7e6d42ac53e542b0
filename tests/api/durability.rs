//! The crash test: the real binary is SIGKILLed and restarted under load; every acknowledged call survives.
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::kit::load::{Tally, free_port, send_all, serve_binary, wait_healthy};
use crate::kit::{self, Inspect, TestDatabase, for_each_app, for_each_backend, postgres_only};

const CALLS: usize = 4000;
const WORKERS: usize = 24;
const KILLS: usize = 8;
const TOKEN: &str = "crash-test-secret";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_call_survives_repeated_sigkills() {
    for_each_backend(async |backend| {
        let database = TestDatabase::create(&backend).await;
        let logs = tempfile::tempdir().expect("log dir");
        let log = logs.path().join("calltrail.log");
        let port = free_port();
        let base = format!("http://127.0.0.1:{port}");
        let mut server = serve_binary(&database.url, port, TOKEN, &log);
        assert!(
            wait_healthy(&format!("{base}/health"), Duration::from_secs(30)).await,
            "calltrail did not start: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );

        let tally = Arc::new(Tally::default());
        let started = Instant::now();
        let sender = tokio::spawn(send_all(
            format!("{base}/webhooks/doubletick"),
            TOKEN.into(),
            format!("crash_{}", backend.name()),
            CALLS,
            WORKERS,
            tally.clone(),
            Duration::from_secs(100),
        ));

        // Kill at evenly spaced points of progress, so every kill lands mid-load.
        let mut kills = 0;
        let mut acked_at_kill = Vec::new();
        while kills < KILLS && !sender.is_finished() {
            let threshold = CALLS * (kills + 1) / (KILLS + 2);
            if tally.acked() >= threshold {
                server.kill().expect("SIGKILL");
                server.wait().expect("reaped");
                acked_at_kill.push(tally.acked());
                kills += 1;
                tokio::time::sleep(Duration::from_millis(200)).await;
                server = serve_binary(&database.url, port, TOKEN, &log);
            } else {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        sender.await.expect("sender");
        let elapsed = started.elapsed();
        // A last kill with nothing in flight, then the database is read cold.
        server.kill().expect("SIGKILL");
        server.wait().expect("reaped");

        let acked = tally.acked_ids();
        let stored = database.stored_call_ids().await;
        let missing: Vec<&String> = acked.iter().filter(|id| !stored.contains(*id)).collect();
        let (without_event, without_delivery) = database.orphans().await;
        println!(
            "durability [{}]: calls={CALLS} kills={kills} (acked at each kill: {acked_at_kill:?}) acked={} stored={} missing={} in {:.1}s; {}",
            backend.name(),
            acked.len(),
            stored.len(),
            missing.len(),
            elapsed.as_secs_f64(),
            tally.summary()
        );
        assert_eq!(
            kills,
            KILLS,
            "[{}] every kill landed mid-load",
            backend.name()
        );
        assert_eq!(
            acked.len(),
            CALLS,
            "[{}] the sender got every call acknowledged in time",
            backend.name()
        );
        assert!(
            missing.is_empty(),
            "[{}] acknowledged but missing: {missing:?}",
            backend.name()
        );
        assert_eq!(
            stored.len(),
            CALLS,
            "[{}] no call stored twice or invented",
            backend.name()
        );
        assert_eq!(
            without_event,
            0,
            "[{}] calls without their event",
            backend.name()
        );
        assert_eq!(
            without_delivery,
            0,
            "[{}] calls without their logged delivery",
            backend.name()
        );
        // After eight SIGKILLs mid-batch, the chains, bodies, calls and rollup still agree.
        let verified = std::process::Command::new(env!("CARGO_BIN_EXE_calltrail"))
            .arg("verify")
            .env("DATABASE_URL", &database.url)
            .env("RUST_LOG", "warn")
            .output()
            .expect("calltrail verify runs");
        assert!(
            verified.status.success(),
            "[{}] verify after the crashes: {}{}",
            backend.name(),
            String::from_utf8_lossy(&verified.stdout),
            String::from_utf8_lossy(&verified.stderr)
        );
        drop(database);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_starting_at_once_on_one_postgres_database_all_migrate_and_serve() {
    let Some(backend) = postgres_only("instances starting at once") else {
        return;
    };
    let database = TestDatabase::create(&backend).await;
    let settings = calltrail::config::Settings::for_database(database.url.clone());
    let starts = (0..4).map(|_| {
        let settings = settings.clone();
        tokio::spawn(async move { calltrail::app::spawn(&settings).await })
    });
    let mut running = Vec::new();
    for start in starts.collect::<Vec<_>>() {
        running.push(
            start
                .await
                .expect("task")
                .expect("every instance starts, migrating under the advisory lock"),
        );
    }
    let client = reqwest::Client::new();
    for (n, instance) in running.iter().enumerate() {
        let mut body: serde_json::Value =
            serde_json::from_slice(&kit::fixture_bytes("events/call-ended-pstn.json"))
                .expect("fixture");
        body["callId"] = serde_json::json!(format!("call_instance_{n}"));
        let response = client
            .post(format!("http://{}/webhooks/doubletick", instance.addr))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .expect("delivery");
        assert_eq!(response.status().as_u16(), 200, "instance {n}");
    }
    for instance in running {
        kit::stop(instance).await;
    }
    assert_eq!(database.stored_call_ids().await.len(), 4);
}

#[tokio::test]
async fn a_delivery_whose_write_fails_gets_503_with_retry_after_and_nothing_is_stored() {
    for_each_app(async |app| {
        let (status, _) = app.post_fixture("events/call-ended-pstn.json").await;
        assert_eq!(status, 200);
        // The log table vanishes: the call's rows are written, then the log insert fails.
        app.execute("ALTER TABLE deliveries RENAME TO deliveries_away")
            .await;
        let body = kit::fixture_bytes("events/call-ended-incoming-recorded.json");
        let response = app
            .client
            .post(app.url("/webhooks/doubletick"))
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
            .expect("delivery");
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let answer: serde_json::Value = response.json().await.expect("JSON");
        app.execute("ALTER TABLE deliveries_away RENAME TO deliveries")
            .await;
        let label = app.backend.name();
        assert_eq!(status, 503, "[{label}] {answer}");
        assert_eq!(retry_after.as_deref(), Some("5"), "[{label}]");
        assert_eq!(answer["error"]["code"], "SERVICE_UNAVAILABLE");
        assert!(
            !answer.to_string().contains("deliveries"),
            "[{label}] no SQL detail leaks: {answer}"
        );
        let stored = app.stored_call_ids().await;
        assert!(
            !stored.contains("call_8F2kQ1xLmA"),
            "[{label}] nothing of it stored"
        );
        assert_eq!(app.orphans().await, (0, 0));

        let (status, answer) = app.post_webhook("application/json", body).await;
        assert_eq!(status, 200, "[{label}] the retry succeeds: {answer}");
        assert_eq!(
            answer["status"], "stored",
            "[{label}] as a new call, not a duplicate"
        );
    })
    .await;
}
