//! PostgreSQL faults inside the webhook writer's transaction: its backend terminated mid-load, a
//! COMMIT that fails, a statement timeout, a serialization failure. Each is answered 503 with
//! Retry-After, nothing is acknowledged that was not committed, and the pool serves afterwards.
//!
//! Runs on the PostgreSQL of `TEST_DATABASE_URL` (`.ci/run` sets it); without it these tests
//! print that they did not run.
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::kit::load::{Tally, send_all};
use crate::kit::{Backend, Inspect, TestApp, load, postgres_only};
use serde_json::json;

const TOKEN: &str = "pg-writer-faults-secret";

/// calltrail with the webhook secret, on PostgreSQL; `None` (said out loud) without `TEST_DATABASE_URL`.
async fn spawn(test: &str) -> Option<TestApp> {
    let backend = postgres_only(test)?;
    Some(TestApp::spawn_with(&backend, |s| s.webhook_token = vec![TOKEN.into()]).await)
}

/// Terminates the server's sessions on `database` that are running a statement or sit inside a
/// transaction: the writer's, mid-batch. Returns how many.
async fn terminate_writers(admin_url: &str, database: &str) -> u64 {
    let terminated = admin_url
        .query_all(&format!(
            "SELECT pg_terminate_backend(pid) AS t FROM pg_stat_activity \
             WHERE datname = '{database}' AND pid <> pg_backend_pid() \
             AND state IN ('active', 'idle in transaction', 'idle in transaction (aborted)')"
        ))
        .await;
    terminated.len() as u64
}

/// The `i`-th call with its id replaced.
fn call_with_id(id: &str, i: usize) -> String {
    let mut body: serde_json::Value =
        serde_json::from_str(&load::call_body("fault", i)).expect("call body");
    body["callId"] = json!(id);
    body.to_string()
}

async fn post(app: &TestApp, body: String) -> (u16, Option<String>) {
    let response = app
        .client
        .post(app.url("/webhooks/doubletick"))
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("webhook");
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    (response.status().as_u16(), retry_after)
}

fn database_name(url: &str) -> String {
    let path = url.split('?').next().unwrap_or(url);
    path.rsplit('/').next().unwrap_or_default().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminating_the_writers_backend_mid_load_loses_nothing_acknowledged() {
    let Some(app) = spawn("terminate mid-load").await else {
        return;
    };
    let Backend::Postgres { admin_url } = &app.backend else {
        unreachable!()
    };
    let name = database_name(&app.database.url);

    const CALLS: usize = 3000;
    let tally = Arc::new(Tally::default());
    let sender = tokio::spawn(send_all(
        app.url("/webhooks/doubletick"),
        TOKEN.into(),
        "terminated".into(),
        CALLS,
        16,
        tally.clone(),
        Duration::from_secs(90),
    ));
    let stop = Arc::new(AtomicBool::new(false));
    let mut terminated = 0;
    let mut rounds = 0;
    while !sender.is_finished() && !stop.load(Ordering::SeqCst) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if tally.acked() > CALLS * 9 / 10 {
            break;
        }
        let n = terminate_writers(admin_url, &name).await;
        if n > 0 {
            rounds += 1;
        }
        terminated += n;
    }
    stop.store(true, Ordering::SeqCst);
    sender.await.expect("sender");

    let acked = tally.acked_ids();
    let stored = app.stored_call_ids().await;
    let missing: Vec<&String> = acked.iter().filter(|id| !stored.contains(*id)).collect();
    println!(
        "terminate mid-load: {terminated} backends terminated in {rounds} rounds; acked={} stored={} missing={}; {}",
        acked.len(),
        stored.len(),
        missing.len(),
        tally.summary()
    );
    assert!(
        rounds >= 3,
        "backends were terminated mid-load ({rounds} rounds)"
    );
    assert!(
        tally.unavailable.load(Ordering::SeqCst) > 0,
        "some deliveries were caught mid-transaction and answered 503"
    );
    assert!(missing.is_empty(), "acknowledged but missing: {missing:?}");
    assert_eq!(acked.len(), CALLS, "every call was acknowledged in the end");
    assert_eq!(stored.len(), CALLS, "none stored twice or invented");
    assert_eq!(app.orphans().await, (0, 0));
    // The pool serves afterwards.
    let (status, _) = post(&app, call_with_id("after_terminations", 1)).await;
    assert_eq!(status, 200);
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_that_fails_is_answered_503_and_its_batch_neighbours_are_stored() {
    let Some(app) = spawn("failing commit").await else {
        return;
    };
    // Checked at COMMIT: a deferred constraint trigger refuses the poisoned call there.
    app.execute(
        "CREATE FUNCTION refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
         IF NEW.call_id LIKE 'poison%' THEN RAISE EXCEPTION 'refused at commit'; END IF; \
         RETURN NULL; END $$",
    )
    .await;
    app.execute(
        "CREATE CONSTRAINT TRIGGER refuse_poison AFTER INSERT OR UPDATE ON calls \
         DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION refuse_poison()",
    )
    .await;

    // Concurrent deliveries, so the poisoned one shares batches with good ones.
    let mut sends = Vec::new();
    for i in 0..40 {
        let id = if i % 10 == 5 {
            format!("poison_{i}")
        } else {
            format!("good_{i}")
        };
        let body = call_with_id(&id, i);
        let client = app.client.clone();
        let url = app.url("/webhooks/doubletick");
        sends.push(tokio::spawn(async move {
            let r = client
                .post(url)
                .bearer_auth(TOKEN)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .expect("webhook");
            let retry = r.headers().contains_key("retry-after");
            (id, r.status().as_u16(), retry)
        }));
    }
    let mut answers = Vec::new();
    for send in sends {
        answers.push(send.await.expect("send"));
    }
    let stored = app.stored_call_ids().await;
    for (id, status, retry) in &answers {
        if id.starts_with("poison") {
            assert_eq!(*status, 503, "{id}: a failed COMMIT is 503");
            assert!(retry, "{id}: with Retry-After");
            assert!(!stored.contains(id), "{id} is not stored");
        } else {
            assert_eq!(
                *status, 200,
                "{id}: its batch neighbour's failure is not its own"
            );
            assert!(stored.contains(id), "{id} is stored");
        }
    }
    let logged_poison = app
        .count_where("deliveries", "call_id LIKE 'poison%'")
        .await;
    assert_eq!(
        logged_poison, 0,
        "a delivery that did not commit left no log row"
    );
    let retried = app
        .client
        .get(app.url("/health"))
        .send()
        .await
        .expect("health");
    println!(
        "failing commit: {} answers, /health afterwards {}",
        answers.len(),
        retried.status()
    );

    // Once the database accepts it, the retry is stored: the pool is healthy.
    app.execute("DROP TRIGGER refuse_poison ON calls").await;
    let (status, _) = post(&app, call_with_id("poison_5", 5)).await;
    assert_eq!(status, 200);
    assert!(app.stored_call_ids().await.contains("poison_5"));
    assert_eq!(app.orphans().await, (0, 0));
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statement_timeout_or_serialization_failure_in_the_writer_is_503_and_the_pool_recovers() {
    let Some(app) = spawn("statement timeout / serialization failure").await else {
        return;
    };
    let name = database_name(&app.database.url);
    // A real statement timeout: sessions of this database cancel statements after 300 ms, and
    // a trigger makes one call's insert sleep for 2 s. A serialization failure is raised with
    // its SQLSTATE by the database itself.
    app.execute(
        "CREATE FUNCTION slow_or_conflicting() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
         IF NEW.call_id LIKE 'slow%' THEN PERFORM pg_sleep(2); END IF; \
         IF NEW.call_id LIKE 'conflict%' THEN \
           RAISE EXCEPTION 'could not serialize access' USING ERRCODE = '40001'; END IF; \
         RETURN NEW; END $$",
    )
    .await;
    app.execute(
        "CREATE TRIGGER slow_or_conflicting BEFORE INSERT ON calls \
         FOR EACH ROW EXECUTE FUNCTION slow_or_conflicting()",
    )
    .await;
    app.execute(&format!(
        "ALTER DATABASE {name} SET statement_timeout = '300ms'"
    ))
    .await;
    // The server's sessions reconnect and take the new setting.
    let Backend::Postgres { admin_url } = &app.backend else {
        unreachable!()
    };
    admin_url
        .execute(&format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = '{name}' AND pid <> pg_backend_pid()"
        ))
        .await;

    let mut statuses = Vec::new();
    for (i, id) in ["slow_1", "conflict_1", "good_1", "slow_2", "good_2"]
        .iter()
        .enumerate()
    {
        // The first request after the terminations may find a dead pooled connection: retried
        // like DoubleTick would.
        let mut answer = post(&app, call_with_id(id, i)).await;
        if id.starts_with("good") && answer.0 == 503 {
            answer = post(&app, call_with_id(id, i)).await;
        }
        statuses.push((id.to_string(), answer));
    }
    println!("statement timeout / serialization failure: {statuses:?}");
    let stored = app.stored_call_ids().await;
    for (id, (status, retry_after)) in &statuses {
        if id.starts_with("good") {
            assert_eq!(*status, 200, "{id}");
            assert!(stored.contains(id), "{id} stored");
        } else {
            assert_eq!(*status, 503, "{id}");
            assert_eq!(retry_after.as_deref(), Some("5"), "{id}");
            assert!(!stored.contains(id), "{id} not stored");
        }
    }
    let cancelled = app.query_strings("SHOW statement_timeout").await;
    assert_eq!(cancelled, ["300ms"], "the timeout was really in force");
    app.finish().await;
}
