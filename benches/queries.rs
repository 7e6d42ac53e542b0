//! Query benchmark: canonical GraphQL queries over HTTP on a seeded database, each beside the raw SQL answering the same question.
//!
//! `cargo build --release && cargo bench --bench queries`. Settings: `BENCH_CALLS` (default
//! 1 000 000), `BENCH_RUNS` (timed runs per query, default 30; 5 for queries slower than
//! 300 ms), `BENCH_BACKENDS`,
//! `BENCH_PG_URL`, `BENCH_REUSE=1` (keep an already seeded bench database), `BENCH_KEEP=1`
//! (do not drop it at the end).
mod common;

use std::future::Future;
use std::time::{Duration, Instant};

use calltrail::seed;
use chrono::{DateTime, Duration as Span, DurationRound, Utc};
use common::{Backend, BenchDatabase, RssSampler, Server, ms, quantile};
use sea_orm::{Database, DatabaseBackend, DatabaseConnection, FromQueryResult, Statement, Value};
use serde_json::{Value as Json, json};

const WARM_UP: usize = 3;

const PAGE: &str = "query($f: CallFilter, $after: String) { calls(filter: $f, first: 50, after: $after) { \
    edges { cursor node { callId status direction customerNumber pickedBy startedAt endedAt durationSeconds recordingUrl } } \
    pageInfo { hasNextPage endCursor } } }";
const CURSOR_ONLY: &str = "query($f: CallFilter, $after: String) { calls(filter: $f, first: 50, after: $after) { \
    pageInfo { hasNextPage endCursor } } }";
const COUNT: &str = "query($f: CallFilter) { calls(filter: $f, first: 0) { totalCount } }";

const COLUMNS: &str = "id, call_id, status, direction, customer_number, picked_by, started_at, ended_at, duration_seconds, recording_url";

#[derive(Debug, FromQueryResult)]
#[allow(dead_code)]
struct Row {
    id: i64,
    call_id: String,
    status: String,
    direction: Option<String>,
    customer_number: Option<String>,
    picked_by: Option<String>,
    started_at: Option<DateTime<Utc>>,
    ended_at: Option<DateTime<Utc>>,
    duration_seconds: i64,
    recording_url: Option<String>,
}

#[derive(Debug, FromQueryResult)]
struct Count {
    n: i64,
}

#[tokio::main]
async fn main() {
    let calls = common::env_number("BENCH_CALLS", 1_000_000);
    let runs = common::env_number("BENCH_RUNS", 30) as usize;
    println!(
        "# query benchmark: {calls} calls, median of {runs} runs after {WARM_UP} warm-up runs"
    );
    println!("machine: {}", common::machine());
    for backend in common::backends() {
        bench_backend(&backend, calls, runs).await;
    }
}

struct Bench {
    client: reqwest::Client,
    base: String,
    db: DatabaseConnection,
    runs: usize,
}

/// Median and p95 of `runs` timed calls of `f`, after warm-up.
async fn time<F, Fut>(runs: usize, mut f: F) -> (Duration, Duration)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    let started = Instant::now();
    for _ in 0..WARM_UP {
        f().await;
    }
    // Slow questions (hundreds of ms) get fewer runs, so a run stays within minutes.
    let runs = if started.elapsed() > Duration::from_millis(300 * WARM_UP as u64) {
        runs.min(5)
    } else {
        runs
    };
    let mut samples = Vec::with_capacity(runs);
    for _ in 0..runs {
        let started = Instant::now();
        f().await;
        samples.push(started.elapsed());
    }
    samples.sort_unstable();
    (quantile(&samples, 0.5), quantile(&samples, 0.95))
}

impl Bench {
    async fn graphql(&self, query: &str, variables: &Json) -> Json {
        let response = self
            .client
            .post(format!("{}/graphql", self.base))
            .json(&json!({ "query": query, "variables": variables }))
            .send()
            .await
            .expect("graphql request");
        let body: Json = response.json().await.expect("graphql json");
        assert!(body.get("errors").is_none(), "graphql errors: {body}");
        body
    }

    async fn rows(&self, sql: &str, values: Vec<Value>) -> Vec<Row> {
        Row::find_by_statement(Statement::from_sql_and_values(
            self.db.get_database_backend(),
            sql,
            values,
        ))
        .all(&self.db)
        .await
        .expect("raw query")
    }

    async fn count(&self, sql: &str, values: Vec<Value>) -> i64 {
        Count::find_by_statement(Statement::from_sql_and_values(
            self.db.get_database_backend(),
            sql,
            values,
        ))
        .one(&self.db)
        .await
        .expect("raw count")
        .map_or(-1, |c| c.n)
    }

    /// Times one question both ways and prints a table row.
    async fn compare<G, GF, R, RF>(&self, name: &str, graphql: G, raw: R)
    where
        G: FnMut() -> GF,
        GF: Future<Output = ()>,
        R: FnMut() -> RF,
        RF: Future<Output = ()>,
    {
        let (g50, g95) = time(self.runs, graphql).await;
        let (r50, r95) = time(self.runs, raw).await;
        println!(
            "| {name} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} |",
            ms(g50),
            ms(g95),
            ms(r50),
            ms(r95),
            g50.as_secs_f64() / r50.as_secs_f64()
        );
    }
}

fn placeholders(backend: DatabaseBackend, n: usize) -> Vec<String> {
    (1..=n)
        .map(|i| match backend {
            DatabaseBackend::Postgres => format!("${i}"),
            _ => "?".to_owned(),
        })
        .collect()
}

async fn bench_backend(backend: &Backend, calls: u64, runs: usize) {
    println!("\n## {}", backend.name());
    let reuse = std::env::var("BENCH_REUSE").is_ok_and(|v| v == "1");
    let database = if reuse {
        BenchDatabase::existing(backend, "queries")
    } else {
        BenchDatabase::fresh(backend, "queries").await
    };
    let db = Database::connect(database.url.as_str())
        .await
        .expect("connect");
    let present = Count::find_by_statement(Statement::from_string(
        db.get_database_backend(),
        "SELECT count(*) AS n FROM calls",
    ))
    .one(&db)
    .await
    .ok()
    .flatten()
    .map_or(0, |c| c.n);
    if present < calls as i64 {
        let took = common::seed(&database.url, calls, 1);
        println!(
            "seeded {calls} calls in {:.1} s (`calltrail seed --calls {calls} --seed 1`); database size {:.0} MiB",
            took.as_secs_f64(),
            database.size_bytes().await as f64 / 1048576.0
        );
        // The kernel would otherwise still be writing gigabytes of fresh pages back while
        // the first questions are timed.
        println!(
            "written back to disk in {:.1} s",
            common::sync().as_secs_f64()
        );
    } else {
        println!("reusing {present} seeded calls");
    }
    let server = Server::start(&database.url).await;
    println!("server RSS idle: {:.1} MiB", server.rss_mib());
    let bench = Bench {
        client: reqwest::Client::new(),
        base: server.base.clone(),
        db,
        runs,
    };
    let be = bench.db.get_database_backend();
    let p = placeholders(be, 4);

    let end = Utc::now()
        .duration_trunc(Span::days(1))
        .expect("today at midnight");
    let month_ago = end - Span::days(30);
    let agent = seed::agent(0);
    let customer = seed::customer_number(1000);
    let agent_30d =
        json!({ "f": { "pickedBy": [agent], "endedAt": { "from": month_ago, "to": end } } });
    let agent_all = json!({ "f": { "pickedBy": [agent] } });
    let customer_vars = json!({ "f": { "customerNumber": customer } });

    println!(
        "\n| query | GraphQL p50 ms | GraphQL p95 ms | raw SQL p50 ms | raw SQL p95 ms | ratio (p50) |"
    );
    println!("|---|---|---|---|---|---|");

    // The floor under every GraphQL figure: a request that reads no data (one HTTP round trip,
    // parse, validate, execute, serialise) against a statement that reads no data.
    bench
        .compare(
            "floor: `{ __typename }` against `SELECT 1`",
            || async {
                let body = bench.graphql("{ __typename }", &json!({})).await;
                assert_eq!(body["data"]["__typename"], "Query");
            },
            || async {
                assert_eq!(
                    bench
                        .count("SELECT CAST(1 AS BIGINT) AS n", Vec::new())
                        .await,
                    1
                );
            },
        )
        .await;

    let sql_agent_30d = format!(
        "SELECT {COLUMNS} FROM calls WHERE ended_at IS NOT NULL AND picked_by = {} AND ended_at >= {} AND ended_at < {} ORDER BY ended_at DESC, id DESC LIMIT 51",
        p[0], p[1], p[2]
    );
    let agent_30d_values =
        || -> Vec<Value> { vec![agent.clone().into(), month_ago.into(), end.into()] };
    bench
        .compare(
            "agent, 30 days: first page (50)",
            || async {
                let body = bench.graphql(PAGE, &agent_30d).await;
                assert_eq!(
                    body["data"]["calls"]["edges"].as_array().map(Vec::len),
                    Some(50)
                );
            },
            || async {
                let rows = bench.rows(&sql_agent_30d, agent_30d_values()).await;
                assert_eq!(rows.len(), 51);
            },
        )
        .await;

    let sql_count_30d = format!(
        "SELECT count(*) AS n FROM calls WHERE ended_at IS NOT NULL AND picked_by = {} AND ended_at >= {} AND ended_at < {}",
        p[0], p[1], p[2]
    );
    bench
        .compare(
            "agent, 30 days: totalCount",
            || async {
                let body = bench.graphql(COUNT, &agent_30d).await;
                assert!(body["data"]["calls"]["totalCount"].as_i64().unwrap_or(0) > 0);
            },
            || async {
                assert!(bench.count(&sql_count_30d, agent_30d_values()).await > 0);
            },
        )
        .await;

    // Page 200 needs 10 000 calls: one agent over the whole year (~20 000 calls).
    let sql_agent_page1 = format!(
        "SELECT {COLUMNS} FROM calls WHERE ended_at IS NOT NULL AND picked_by = {} ORDER BY ended_at DESC, id DESC LIMIT 51",
        p[0]
    );
    bench
        .compare(
            "agent, all year: page 1",
            || async {
                let body = bench.graphql(PAGE, &agent_all).await;
                assert_eq!(
                    body["data"]["calls"]["edges"].as_array().map(Vec::len),
                    Some(50)
                );
            },
            || async {
                assert_eq!(
                    bench
                        .rows(&sql_agent_page1, vec![agent.clone().into()])
                        .await
                        .len(),
                    51
                );
            },
        )
        .await;
    let mut cursor = Json::Null;
    for _ in 0..199 {
        let mut vars = agent_all.clone();
        vars["after"] = cursor.clone();
        let body = bench.graphql(CURSOR_ONLY, &vars).await;
        cursor = body["data"]["calls"]["pageInfo"]["endCursor"].clone();
        assert!(cursor.is_string(), "fewer than 200 pages for one agent");
    }
    // The raw keyset equivalent starts after the last row of page 199, found once.
    let skip = format!(
        "SELECT {COLUMNS} FROM calls WHERE ended_at IS NOT NULL AND picked_by = {} ORDER BY ended_at DESC, id DESC LIMIT 1 OFFSET 9949",
        p[0]
    );
    let last = bench
        .rows(&skip, vec![agent.clone().into()])
        .await
        .pop()
        .expect("row 9 950");
    let last_ended = last.ended_at.expect("ended");
    let sql_page200 = format!(
        "SELECT {COLUMNS} FROM calls WHERE ended_at IS NOT NULL AND picked_by = {} AND (ended_at, id) < ({}, {}) ORDER BY ended_at DESC, id DESC LIMIT 51",
        p[0], p[1], p[2]
    );
    let mut page200_vars = agent_all.clone();
    page200_vars["after"] = cursor;
    bench
        .compare(
            "agent, all year: page 200 by cursor",
            || async {
                let body = bench.graphql(PAGE, &page200_vars).await;
                assert_eq!(
                    body["data"]["calls"]["edges"].as_array().map(Vec::len),
                    Some(50)
                );
            },
            || async {
                let rows = bench
                    .rows(
                        &sql_page200,
                        vec![agent.clone().into(), last_ended.into(), last.id.into()],
                    )
                    .await;
                assert_eq!(rows.len(), 51);
            },
        )
        .await;

    let sql_customer = format!(
        "SELECT {COLUMNS} FROM calls WHERE ended_at IS NOT NULL AND customer_digits = {} ORDER BY ended_at DESC, id DESC LIMIT 51",
        p[0]
    );
    bench
        .compare(
            "customer history (first 50)",
            || async {
                let body = bench.graphql(PAGE, &customer_vars).await;
                assert!(
                    !body["data"]["calls"]["edges"]
                        .as_array()
                        .is_none_or(Vec::is_empty)
                );
            },
            || async {
                assert!(
                    !bench
                        .rows(&sql_customer, vec![customer.clone().into()])
                        .await
                        .is_empty()
                );
            },
        )
        .await;

    let schema = bench
        .graphql(
            "{ __type(name: \"Query\") { fields { name } } }",
            &json!({}),
        )
        .await;
    let has_stats = schema["data"]["__type"]["fields"]
        .as_array()
        .is_some_and(|f| f.iter().any(|f| f["name"] == "callStats"));
    if has_stats {
        stats_queries(&bench, be, &agent, end).await;
    } else {
        println!("| (callStats not in this build: statistics not measured) | | | | | |");
    }

    // The heaviest raw question, for the RSS reading: calls per day over a year.
    let per_day = match be {
        DatabaseBackend::Postgres => "SELECT count(*) AS n FROM (SELECT date_trunc('day', ended_at AT TIME ZONE 'Asia/Kolkata') AS d, count(*) FROM calls WHERE ended_at IS NOT NULL GROUP BY d) AS days".to_owned(),
        _ => "SELECT count(*) AS n FROM (SELECT date(ended_at, '+330 minutes') AS d, count(*) FROM calls WHERE ended_at IS NOT NULL GROUP BY d) AS days".to_owned(),
    };
    let (d50, _) = time(3, || async {
        assert!(bench.count(&per_day, Vec::new()).await > 300);
    })
    .await;
    println!(
        "\nraw SQL, calls per day over a year in Asia/Kolkata: {:.1} ms",
        ms(d50)
    );
    println!(
        "server RSS after every question above: {:.1} MiB",
        server.rss_mib()
    );
    let sampler = RssSampler::start(server.pid());
    for _ in 0..5 {
        let body = bench.graphql(COUNT, &json!({ "f": {} })).await;
        assert!(body["data"]["calls"]["totalCount"].as_i64().unwrap_or(0) > 0);
    }
    println!(
        "server RSS peak while counting all calls 5×: {:.1} MiB",
        sampler.peak().await
    );

    let _ = bench.db.close().await;
    drop(server);
    if !std::env::var("BENCH_KEEP").is_ok_and(|v| v == "1") {
        database.drop_now().await;
    }
}

/// The local midnight starting `date` in `zone`, as UTC.
fn local_midnight(date: chrono::NaiveDate, zone: chrono_tz::Tz) -> DateTime<Utc> {
    use chrono::TimeZone;
    zone.from_local_datetime(&date.and_time(chrono::NaiveTime::MIN))
        .earliest()
        .expect("midnight exists")
        .with_timezone(&Utc)
}

async fn stats_queries(bench: &Bench, be: DatabaseBackend, agent: &str, end: DateTime<Utc>) {
    let p = placeholders(be, 8);
    let month_ago = end - Span::days(30);

    // Per-agent statistics over 30 days.
    let by_agent = json!({ "f": { "endedAt": { "from": month_ago, "to": end } } });
    // The measures a dashboard's agent table shows; all of them are in the covering index
    // `idx_calls_ended_at_covering`, on which the raw SQL runs too (`withRecording` is not:
    // asking it reads each call row for its `recording_url`).
    let gql_by_agent = "query($f: CallFilter) { callStats(filter: $f, groupBy: [PICKED_BY]) { groups { key { pickedBy } stats { count totalDurationSeconds averageDurationSeconds answeredCalls missedCalls } } } }";
    let sql_by_agent = format!(
        "SELECT picked_by, COUNT(*), SUM(duration_seconds), AVG(duration_seconds), SUM(CASE WHEN started_at IS NOT NULL THEN 1 ELSE 0 END), SUM(CASE WHEN status = 'MISSED' THEN 1 ELSE 0 END) FROM calls WHERE ended_at IS NOT NULL AND ended_at >= {} AND ended_at < {} GROUP BY picked_by",
        p[0], p[1]
    );
    bench
        .compare(
            "stats by agent, 30 days",
            || async {
                let body = bench.graphql(gql_by_agent, &by_agent).await;
                assert!(
                    body["data"]["callStats"]["groups"]
                        .as_array()
                        .is_some_and(|g| g.len() >= 50)
                );
            },
            || async {
                let rows = raw_rows(bench, &sql_by_agent, vec![month_ago.into(), end.into()]).await;
                assert!(rows >= 50);
            },
        )
        .await;

    // Calls per day over a year, in a fixed-offset zone and in a daylight-saving zone. The
    // second GraphQL run starts one second later, off the quarter hour, so it is answered
    // from `calls` instead of the rollup: both paths, same run.
    let today = end.date_naive();
    let year_ago = today - Span::days(365);
    for (zone_name, raw_day) in [
        ("Asia/Kolkata", Some("date(ended_at, '+330 minutes')")),
        ("America/New_York", None),
    ] {
        let zone: chrono_tz::Tz = zone_name.parse().expect("zone");
        let (from, to) = (local_midnight(year_ago, zone), local_midnight(today, zone));
        let gql_per_day = "query($f: CallFilter, $tz: String!) { callStats(filter: $f, groupBy: [DAY], timeZone: $tz) { groups { key { period } stats { count totalDurationSeconds answeredCalls } } } }";
        let aligned = json!({ "f": { "endedAt": { "from": from, "to": to } }, "tz": zone_name });
        let unaligned = json!({ "f": { "endedAt": { "from": from + Span::seconds(1), "to": to } }, "tz": zone_name });
        let sql_per_day = match (be, raw_day) {
            (DatabaseBackend::Postgres, _) => Some(format!(
                "SELECT date_trunc('day', ended_at AT TIME ZONE '{zone_name}') AS d, COUNT(*), SUM(duration_seconds), SUM(CASE WHEN started_at IS NOT NULL THEN 1 ELSE 0 END) FROM calls WHERE ended_at IS NOT NULL AND ended_at >= {} AND ended_at < {} GROUP BY d",
                p[0], p[1]
            )),
            (_, Some(day)) => Some(format!(
                "SELECT {day} AS d, COUNT(*), SUM(duration_seconds), SUM(CASE WHEN started_at IS NOT NULL THEN 1 ELSE 0 END) FROM calls WHERE ended_at IS NOT NULL AND ended_at >= {} AND ended_at < {} GROUP BY d",
                p[0], p[1]
            )),
            // SQLite has no time-zone rules: no raw SQL answers this.
            (_, None) => None,
        };
        let check = |body: Json| {
            let days = body["data"]["callStats"]["groups"]
                .as_array()
                .map_or(0, Vec::len);
            assert!((364..=366).contains(&days), "{days} days");
        };
        let raw = || async {
            if let Some(sql) = &sql_per_day {
                let rows = raw_rows(bench, sql, vec![from.into(), to.into()]).await;
                assert!(rows >= 364);
            }
        };
        bench
            .compare(
                &format!("calls per day over a year, {zone_name} (rollup)"),
                || async { check(bench.graphql(gql_per_day, &aligned).await) },
                raw,
            )
            .await;
        bench
            .compare(
                &format!("calls per day over a year, {zone_name} (bounds 1 s off the grid)"),
                || async { check(bench.graphql(gql_per_day, &unaligned).await) },
                raw,
            )
            .await;
        if sql_per_day.is_none() {
            println!(
                "| ↑ SQLite has no time-zone rules: no raw SQL; ratio meaningless | | | | | |"
            );
        }
    }

    // What a dashboard's time picker sends: bounds at "now", on no grid at all.
    let now = Utc::now();
    for (name, from, period, min_groups, raw_bucket) in [
        (
            "calls per day, now-365d .. now, Asia/Kolkata",
            now - Span::days(365),
            "DAY",
            365,
            match be {
                DatabaseBackend::Postgres => {
                    "date_trunc('day', ended_at AT TIME ZONE 'Asia/Kolkata')"
                }
                _ => "date(ended_at, '+330 minutes')",
            },
        ),
        (
            "calls per hour, now-24h .. now, Asia/Kolkata",
            now - Span::hours(24),
            "HOUR",
            24,
            match be {
                DatabaseBackend::Postgres => {
                    "date_trunc('hour', ended_at AT TIME ZONE 'Asia/Kolkata')"
                }
                _ => "strftime('%Y-%m-%d %H', ended_at, '+330 minutes')",
            },
        ),
    ] {
        let gql = format!(
            "query($f: CallFilter) {{ callStats(filter: $f, groupBy: [{period}], timeZone: \"Asia/Kolkata\") {{ groups {{ key {{ period }} stats {{ count totalDurationSeconds answeredCalls }} }} }} }}"
        );
        let vars = json!({ "f": { "endedAt": { "from": from, "to": now } } });
        let sql = format!(
            "SELECT {raw_bucket} AS b, COUNT(*), SUM(duration_seconds), SUM(CASE WHEN started_at IS NOT NULL THEN 1 ELSE 0 END) FROM calls WHERE ended_at IS NOT NULL AND ended_at >= {} AND ended_at < {} GROUP BY b",
            p[0], p[1]
        );
        bench
            .compare(
                name,
                || async {
                    let body = bench.graphql(&gql, &vars).await;
                    let groups = body["data"]["callStats"]["groups"]
                        .as_array()
                        .map_or(0, Vec::len);
                    assert!(groups >= min_groups, "{name}: {groups} groups: {body}");
                },
                || async {
                    raw_rows(bench, &sql, vec![from.into(), now.into()]).await;
                },
            )
            .await;
    }

    // p50/p95 of one agent's durations over a year.
    let year = json!({ "f": { "pickedBy": [agent], "endedAt": { "from": end - Span::days(365), "to": end } } });
    let gql_pct = "query($f: CallFilter) { callStats(filter: $f) { total { p50: durationPercentile(p: 0.5) p95: durationPercentile(p: 0.95) } } }";
    let filter_sql = |a: &str, b: &str, c: &str| {
        format!("ended_at IS NOT NULL AND picked_by = {a} AND ended_at >= {b} AND ended_at < {c}")
    };
    let sql_pct = match be {
        DatabaseBackend::Postgres => format!(
            "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY duration_seconds), percentile_cont(0.95) WITHIN GROUP (ORDER BY duration_seconds) FROM calls WHERE {}",
            filter_sql(&p[0], &p[1], &p[2])
        ),
        _ => {
            // Nearest rank (no interpolation): the value at rank floor(p * (n - 1)).
            let f = filter_sql("?", "?", "?");
            format!(
                "SELECT (SELECT duration_seconds FROM calls WHERE {f} ORDER BY duration_seconds LIMIT 1 OFFSET (SELECT (COUNT(*) - 1) / 2 FROM calls WHERE {f})), \
                 (SELECT duration_seconds FROM calls WHERE {f} ORDER BY duration_seconds LIMIT 1 OFFSET (SELECT CAST((COUNT(*) - 1) * 0.95 AS INTEGER) FROM calls WHERE {f}))"
            )
        }
    };
    let year_from = end - Span::days(365);
    let pct_values = || -> Vec<Value> {
        let one: Vec<Value> = vec![agent.to_owned().into(), year_from.into(), end.into()];
        match be {
            DatabaseBackend::Postgres => one,
            _ => (0..4).flat_map(|_| one.clone()).collect(),
        }
    };
    bench
        .compare(
            "p50/p95 duration, one agent, a year",
            || async {
                let body = bench.graphql(gql_pct, &year).await;
                assert!(body["data"]["callStats"]["total"]["p95"].as_f64().is_some());
            },
            || async {
                assert_eq!(raw_rows(bench, &sql_pct, pct_values()).await, 1);
            },
        )
        .await;

    // A duration histogram over one month.
    let month = json!({ "f": { "endedAt": { "from": month_ago, "to": end } } });
    let gql_hist = "query($f: CallFilter) { callStats(filter: $f) { total { durationHistogram(boundsSeconds: [30, 60, 120, 300, 600, 1800]) { fromSeconds toSeconds count } } } }";
    let sql_hist = format!(
        "SELECT CASE WHEN duration_seconds < 30 THEN 0 WHEN duration_seconds < 60 THEN 1 WHEN duration_seconds < 120 THEN 2 WHEN duration_seconds < 300 THEN 3 WHEN duration_seconds < 600 THEN 4 WHEN duration_seconds < 1800 THEN 5 ELSE 6 END AS b, COUNT(*) FROM calls WHERE ended_at IS NOT NULL AND ended_at >= {} AND ended_at < {} GROUP BY b",
        p[0], p[1]
    );
    bench
        .compare(
            "duration histogram, one month",
            || async {
                let body = bench.graphql(gql_hist, &month).await;
                let buckets = &body["data"]["callStats"]["total"]["durationHistogram"];
                assert_eq!(buckets.as_array().map(Vec::len), Some(7));
            },
            || async {
                assert_eq!(
                    raw_rows(bench, &sql_hist, vec![month_ago.into(), end.into()]).await,
                    7
                );
            },
        )
        .await;
}

/// Runs raw SQL and returns how many rows came back (every value fetched).
async fn raw_rows(bench: &Bench, sql: &str, values: Vec<Value>) -> usize {
    use sea_orm::ConnectionTrait;
    bench
        .db
        .query_all_raw(Statement::from_sql_and_values(
            bench.db.get_database_backend(),
            sql,
            values,
        ))
        .await
        .expect("raw query")
        .len()
}
