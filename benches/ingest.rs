//! Ingest benchmark: the release server under concurrent webhook load, beside a one-commit-per-webhook baseline.
//!
//! `cargo build --release && cargo bench --bench ingest`. Settings: `BENCH_SECONDS` (per run,
//! default 10), `BENCH_CONNECTIONS` (default `1,16,64`), `BENCH_BACKENDS`, `BENCH_PG_URL`.
//! Traffic goes to 127.0.0.1 only.
mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use calltrail::seed::{self, SeedCall, SeedSpec};
use chrono::Utc;
use common::{Backend, BenchDatabase, RssSampler, Server, TOKEN, ms, quantile};
use entity::{call, call_event, delivery};
use sea_orm::ActiveValue::Set;
use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{
    ActiveModelTrait, ConnectOptions, Database, DatabaseConnection, DatabaseTransaction,
    EntityTrait, FromQueryResult, Statement, TransactionTrait,
};

/// Distinct call shapes cycled through; each request gets a fresh call id.
const SHAPES: u64 = 2_000;

/// Webhooks per transaction in the batched direct run: the issue's "rows committed 100 per
/// transaction", with the baseline's statements (one INSERT per row).
const BATCHED: u64 = 100;

#[tokio::main]
async fn main() {
    let seconds = common::env_number("BENCH_SECONDS", 10);
    let run_for = Duration::from_secs(seconds);
    println!("# ingest benchmark, {seconds} s per run");
    println!("machine: {}", common::machine());
    let shapes: Arc<Vec<SeedCall>> = Arc::new(
        seed::generate(SeedSpec {
            calls: SHAPES,
            seed: 42,
            end: Utc::now(),
        })
        .collect(),
    );
    for backend in common::backends() {
        bench_backend(&backend, run_for, &shapes).await;
    }
}

async fn bench_backend(backend: &Backend, run_for: Duration, shapes: &Arc<Vec<SeedCall>>) {
    println!("\n## {}", backend.name());
    let database = BenchDatabase::fresh(backend, "ingest").await;
    let server = Server::start(&database.url).await;
    let idle = server.rss_mib();
    let direct = connect_direct(&database.url, backend).await;
    println!("durability: {}", durability(&direct, backend).await);
    println!("server RSS idle: {idle:.1} MiB");

    let writers = match backend {
        Backend::Sqlite => 1,
        Backend::Postgres { .. } => 16,
    };
    let baseline = run_direct(&direct, writers, 1, run_for, shapes, "baseline_").await;
    println!(
        "baseline (no HTTP, one transaction per webhook: delivery + event + call rows, {writers} writer(s)): {:.0} webhooks/s, p50 {:.2} ms, p99 {:.2} ms",
        baseline.per_second, baseline.p50, baseline.p99
    );
    let batched = run_direct(&direct, writers, BATCHED, run_for, shapes, "batched_").await;
    println!(
        "batched (the baseline's rows and statements, {BATCHED} webhooks per transaction, {writers} writer(s)): {:.0} webhooks/s, {:.2}× the baseline; per transaction p50 {:.2} ms, p99 {:.2} ms",
        batched.per_second,
        batched.per_second / baseline.per_second,
        batched.p50,
        batched.p99
    );
    println!(
        "\n| connections | requests/s | p50 ms | p99 ms | errors | acknowledged | missing after check | × baseline | × batched | peak RSS MiB | deliveries per commit |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for (round, connections) in connection_counts().into_iter().enumerate() {
        let prefix = format!("load{round}_");
        let sampler = RssSampler::start(server.pid());
        let commits_before = writer_commits(&server.base).await;
        let load = run_load(&server.base, connections, run_for, shapes, &prefix).await;
        let commits = writer_commits(&server.base)
            .await
            .zip(commits_before)
            .map(|(after, before)| after - before);
        let peak = sampler.peak().await;
        let missing = missing_calls(&direct, &prefix, &load.acknowledged).await;
        // Fewer senders than the baseline's writers: a ratio would compare concurrency, not
        // the write path.
        let ratio = |of: f64| {
            if connections < writers {
                "—".to_owned()
            } else {
                format!("{:.2}", load.per_second / of)
            }
        };
        println!(
            "| {connections} | {:.0} | {:.2} | {:.2} | {} | {} | {missing} | {} | {} | {peak:.1} | {} |",
            load.per_second,
            load.p50,
            load.p99,
            load.errors,
            load.acknowledged.len(),
            ratio(baseline.per_second),
            ratio(batched.per_second),
            commits.map_or("—".to_owned(), |c| format!(
                "{:.1}",
                load.acknowledged.len() as f64 / c.max(1) as f64
            )),
        );
    }
    let _ = direct.close().await;
    drop(server);
    database.drop_now().await;
}

/// `BENCH_CONNECTIONS`: the concurrent senders of each load run, in order (default `1,16,64`;
/// one sender shows what a lone delivery waits, the common case at a business's own traffic).
fn connection_counts() -> Vec<u64> {
    std::env::var("BENCH_CONNECTIONS")
        .ok()
        .map(|v| {
            v.split(',')
                .filter_map(|n| n.trim().parse().ok())
                .filter(|n| *n > 0)
                .collect::<Vec<u64>>()
        })
        .filter(|counts| !counts.is_empty())
        .unwrap_or_else(|| vec![1, 16, 64])
}

/// Group commits the server's writer has made so far (its `/health`; none from a server
/// built before `/health` reported them).
async fn writer_commits(base: &str) -> Option<u64> {
    let health: serde_json::Value = reqwest::get(format!("{base}/health"))
        .await
        .expect("health")
        .json()
        .await
        .expect("health JSON");
    health["writer"]["batchesCommitted"].as_u64()
}

/// A direct connection with the server's durability settings.
async fn connect_direct(url: &str, backend: &Backend) -> DatabaseConnection {
    let mut options = ConnectOptions::new(url.to_owned());
    options.sqlx_logging(false).map_sqlx_sqlite_opts(|o| {
        o.journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(5))
    });
    match backend {
        Backend::Sqlite => options.max_connections(1),
        Backend::Postgres { .. } => options.max_connections(16),
    };
    Database::connect(options).await.expect("direct connection")
}

#[derive(Debug, FromQueryResult)]
struct Setting {
    value: String,
}

async fn durability(db: &DatabaseConnection, backend: &Backend) -> String {
    let (sql, what) = match backend {
        Backend::Sqlite => (
            "SELECT CAST(synchronous AS TEXT) AS value FROM pragma_synchronous",
            "SQLite synchronous (2 = FULL)",
        ),
        Backend::Postgres { .. } => (
            "SELECT current_setting('synchronous_commit') AS value",
            "PostgreSQL synchronous_commit",
        ),
    };
    let value = Setting::find_by_statement(Statement::from_string(db.get_database_backend(), sql))
        .one(db)
        .await
        .ok()
        .flatten()
        .map_or_else(|| "?".into(), |s| s.value);
    format!("{what} = {value}")
}

struct Measured {
    per_second: f64,
    p50: f64,
    p99: f64,
    errors: u64,
    acknowledged: Vec<String>,
}

/// The payload of request `n`: shape `n % SHAPES` under a fresh call id.
fn payload(shapes: &[SeedCall], prefix: &str, n: u64) -> (String, String) {
    let shape = &shapes[(n % shapes.len() as u64) as usize];
    let call_id = format!("{prefix}{n}");
    let body = seed::wire_payload(shape.event.kind, &call_id, &shape.event.fields);
    (call_id, body)
}

async fn run_load(
    base: &str,
    connections: u64,
    run_for: Duration,
    shapes: &Arc<Vec<SeedCall>>,
    prefix: &str,
) -> Measured {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(connections as usize)
        .build()
        .expect("client");
    let counter = Arc::new(AtomicU64::new(0));
    let url = format!("{base}/webhooks/doubletick");
    let started = Instant::now();
    let deadline = started + run_for;
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let (client, counter, url, shapes, prefix) = (
            client.clone(),
            counter.clone(),
            url.clone(),
            shapes.clone(),
            prefix.to_owned(),
        );
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut acknowledged = Vec::new();
            let mut errors = 0u64;
            while Instant::now() < deadline {
                let n = counter.fetch_add(1, Ordering::Relaxed);
                let (call_id, body) = payload(&shapes, &prefix, n);
                let sent = Instant::now();
                let response = client
                    .post(&url)
                    .bearer_auth(TOKEN)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await;
                let ok = match response {
                    Ok(r) => {
                        let status = r.status();
                        let _ = r.bytes().await;
                        status.is_success()
                    }
                    Err(_) => false,
                };
                latencies.push(sent.elapsed());
                if ok {
                    acknowledged.push(call_id);
                } else {
                    errors += 1;
                }
            }
            (latencies, acknowledged, errors)
        }));
    }
    let mut latencies = Vec::new();
    let mut acknowledged = Vec::new();
    let mut errors = 0;
    for task in tasks {
        let (l, a, e) = task.await.expect("load task");
        latencies.extend(l);
        acknowledged.extend(a);
        errors += e;
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort_unstable();
    Measured {
        per_second: acknowledged.len() as f64 / elapsed,
        p50: ms(quantile(&latencies, 0.5)),
        p99: ms(quantile(&latencies, 0.99)),
        errors,
        acknowledged,
    }
}

#[derive(Debug, FromQueryResult)]
struct StoredId {
    call_id: String,
}

/// How many acknowledged calls are not in the `calls` table.
async fn missing_calls(db: &DatabaseConnection, prefix: &str, acknowledged: &[String]) -> usize {
    let stored: HashSet<String> = StoredId::find_by_statement(Statement::from_string(
        db.get_database_backend(),
        format!("SELECT call_id FROM calls WHERE call_id LIKE '{prefix}%'"),
    ))
    .all(db)
    .await
    .expect("stored ids")
    .into_iter()
    .map(|r| r.call_id)
    .collect();
    acknowledged
        .iter()
        .filter(|id| !stored.contains(*id))
        .count()
}

/// The baseline: what a minimal service does per webhook, minus HTTP and parsing: one
/// transaction writing the delivery log row, the event row and the call row, then commit.
/// With `per_commit` above one, the same rows and statements with that many webhooks per
/// transaction: what the engine does through this driver when commits are shared.
async fn run_direct(
    db: &DatabaseConnection,
    writers: u64,
    per_commit: u64,
    run_for: Duration,
    shapes: &Arc<Vec<SeedCall>>,
    prefix: &'static str,
) -> Measured {
    let counter = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + run_for;
    let mut tasks = Vec::new();
    for _ in 0..writers {
        let (db, counter, shapes) = (db.clone(), counter.clone(), shapes.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            while Instant::now() < deadline {
                let sent = Instant::now();
                let txn = db.begin().await.expect("begin");
                for _ in 0..per_commit {
                    let n = counter.fetch_add(1, Ordering::Relaxed);
                    let (call_id, body) = payload(&shapes, prefix, n);
                    let shape = &shapes[(n % shapes.len() as u64) as usize];
                    insert_one(&txn, &call_id, &body, shape).await;
                }
                txn.commit().await.expect("commit");
                latencies.push(sent.elapsed());
            }
            latencies
        }));
    }
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.expect("direct writer"));
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort_unstable();
    Measured {
        per_second: (latencies.len() as u64 * per_commit) as f64 / elapsed,
        p50: ms(quantile(&latencies, 0.5)),
        p99: ms(quantile(&latencies, 0.99)),
        errors: 0,
        acknowledged: Vec::new(),
    }
}

/// One webhook's rows, inside the caller's transaction.
async fn insert_one(txn: &DatabaseTransaction, call_id: &str, body: &str, shape: &SeedCall) {
    let now = Utc::now();
    let f = &shape.event.fields;
    delivery::ActiveModel {
        received_at: Set(now),
        content_type: Set("application/json".into()),
        body: Set(body.as_bytes().to_vec()),
        sha256: Set(format!("{:064}", 0)),
        event: Set(Some(shape.event.kind.as_wire().into())),
        call_id: Set(Some(call_id.into())),
        outcome: Set("stored".into()),
        reason: Set(None),
        replay_of: Set(None),
        ..Default::default()
    }
    .insert(txn)
    .await
    .expect("delivery");
    call_event::Entity::insert(call_event::ActiveModel {
        call_id: Set(call_id.into()),
        fingerprint: Set(call_id.into()),
        event: Set(shape.event.kind.as_wire().into()),
        rank: Set(3),
        fields: Set("{}".into()),
        received_at: Set(now),
        content_type: Set("application/json".into()),
        raw_payload: Set(body.into()),
        ..Default::default()
    })
    .exec_without_returning(txn)
    .await
    .expect("event");
    call::Entity::insert(call::ActiveModel {
        call_id: Set(call_id.into()),
        status: Set(f.status.clone().unwrap_or_default()),
        direction: Set(f.direction.map(|d| d.as_wire().into())),
        customer_id: Set(f.customer_id.clone()),
        customer_name: Set(f.customer_name.clone()),
        customer_number: Set(f.customer_number.clone()),
        customer_digits: Set(f.customer_number.clone()),
        waba_number: Set(f.waba_number.clone()),
        picked_by: Set(f.picked_by.clone()),
        ended_by: Set(f.ended_by.clone()),
        rejected_by: Set(f.rejected_by.clone()),
        device_id: Set(f.device_id.clone()),
        chat_id: Set(f.chat_id.clone()),
        chat_message_id: Set(f.chat_message_id.clone()),
        channel: Set(None),
        channel_number: Set(None),
        pstn_from: Set(None),
        pstn_to: Set(None),
        failed_reason: Set(None),
        started_at: Set(f.started_at),
        ended_at: Set(f.ended_at),
        duration_seconds: Set(f.duration_seconds.unwrap_or(0)),
        recording_url: Set(f.recording_url.clone()),
        is_new_caller: Set(f.is_new_caller),
        is_chat_assigned: Set(f.is_chat_assigned),
        not_picked_count: Set(0),
        anomalies: Set(String::new()),
        revision: Set(1),
        received_at: Set(now),
        updated_at: Set(now),
        raw_content_type: Set("application/json".into()),
        raw_payload: Set(body.into()),
        ..Default::default()
    })
    .exec_without_returning(txn)
    .await
    .expect("call");
}
