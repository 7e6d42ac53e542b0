//! The rollup's two tiers, `call_buckets` (15 minutes) and `call_half_hours`, stay exactly
//! equal to aggregating the `calls` table.

use std::collections::BTreeMap;

use crate::kit::{
    Backend, Inspect, TestApp, TestDatabase, fixture_json, fixture_names, for_each_app,
    for_each_backend,
};
use calltrail::seed::{self, SeedSpec};
use calltrail::store::Store;
use chrono::{DateTime, Utc};
use entity::{call, call_bucket};
use sea_orm::{EntityTrait, Statement};
use serde_json::{Value, json};

/// (bucket start, direction) → [calls, total duration, min, max, recorded, answered, missed, rejected].
type Buckets = BTreeMap<(i64, String), [i64; 8]>;

/// A tier of the rollup: its table and its buckets' length in seconds.
const TIERS: [(&str, i64); 2] = [("call_buckets", 900), ("call_half_hours", 1_800)];

/// A tier of the rollup as it should be, computed here from every concluded call row.
async fn aggregated_from_calls(url: &str, seconds: i64) -> Buckets {
    let db = url.connect().await;
    let rows = call::Entity::find().all(&db).await.expect("calls");
    let _ = db.close().await;
    let mut buckets = Buckets::new();
    for row in rows {
        let Some(ended) = row.ended_at else { continue };
        let key = (
            ended.timestamp().div_euclid(seconds) * seconds,
            row.direction.clone().unwrap_or_default(),
        );
        let d = row.duration_seconds;
        // Each call counts in its direction's row and in the bucket's every-direction row `*`.
        let every = (key.0, "*".to_owned());
        for key in [key, every] {
            let entry = buckets.entry(key).or_insert([0, 0, d, d, 0, 0, 0, 0]);
            entry[0] += 1;
            entry[1] += d;
            entry[2] = entry[2].min(d);
            entry[3] = entry[3].max(d);
            entry[4] += i64::from(row.recording_url.is_some());
            entry[5] += i64::from(row.started_at.is_some());
            entry[6] += i64::from(row.status == "MISSED");
            entry[7] += i64::from(row.status == "REJECT");
        }
    }
    buckets
}

/// The 15-minute tier as stored.
async fn rollup(url: &str) -> Buckets {
    stored_tier(url, TIERS[0].0).await
}

/// Both tiers as stored equal both tiers aggregated from the calls.
async fn assert_both_tiers_equal_the_calls(url: &str, name: &str) {
    for (table, seconds) in TIERS {
        let stored = stored_tier(url, table).await;
        assert!(!stored.is_empty(), "[{name}] {table} is empty");
        assert_eq!(
            stored,
            aggregated_from_calls(url, seconds).await,
            "[{name}] {table}"
        );
    }
}

async fn stored_tier(url: &str, table: &str) -> Buckets {
    let db = url.connect().await;
    let rows = call_bucket::Entity::find()
        .from_raw_sql(Statement::from_string(
            db.get_database_backend(),
            format!("SELECT * FROM {table}"),
        ))
        .all(&db)
        .await
        .expect("buckets");
    let _ = db.close().await;
    rows.into_iter()
        .map(|b| {
            (
                (b.bucket_start, b.direction),
                [
                    b.calls,
                    b.total_duration_seconds,
                    b.min_duration_seconds,
                    b.max_duration_seconds,
                    b.with_recording,
                    b.answered,
                    b.missed,
                    b.rejected,
                ],
            )
        })
        .collect()
}

async fn post_json(app: &TestApp, body: &Value) -> (u16, Value) {
    app.post_webhook("application/json", body.to_string()).await
}

#[tokio::test]
async fn the_rollup_equals_the_calls_table_after_inserts_duplicates_and_updates() {
    for_each_app(async |app| {
        let url = app.database.url.clone();
        let name = app.backend.name();

        // Every valid fixture, twice: new calls, lifecycle merges, then duplicates.
        for _ in 0..2 {
            for file in fixture_names("events") {
                if file.ends_with(".json") {
                    let (status, _) = app.post_fixture(&format!("events/{file}")).await;
                    assert!(status < 300, "[{name}] {file} answered {status}");
                }
            }
        }
        // A spread of generated calls, some sharing buckets.
        let spec = SeedSpec {
            calls: 300,
            seed: 9,
            end: "2026-03-10T00:00:00Z".parse().expect("instant"),
        };
        for generated in seed::generate(spec) {
            let (status, body) = app
                .post_webhook("application/json", generated.payload)
                .await;
            assert_eq!(status, 200, "[{name}] generated call refused: {body}");
        }
        let after_inserts = rollup(&url).await;
        assert!(
            after_inserts.len() > 50,
            "[{name}] calls spread over buckets"
        );
        assert_both_tiers_equal_the_calls(&url, name).await;

        // A changed terminal redelivery: longer, recording dropped, ended in another bucket.
        let mut changed = fixture_json("events/call-ended-incoming-recorded.json");
        let old_end: DateTime<Utc> = changed["callEndedAt"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .expect("fixture end");
        changed["durationInSeconds"] = json!(2_000);
        changed["recordingUrl"] = json!("");
        changed["callEndedAt"] = json!("2026-03-02T09:47:25.000Z");
        let (status, body) = post_json(app, &changed).await;
        assert_eq!(status, 200, "[{name}] {body}");
        assert_eq!(body["status"], "updated", "[{name}] {body}");
        // Changed again within the same bucket.
        changed["durationInSeconds"] = json!(1_999);
        let (_, body) = post_json(app, &changed).await;
        assert_eq!(body["status"], "updated", "[{name}] {body}");
        // And a duplicate of that, which changes nothing.
        let (_, body) = post_json(app, &changed).await;
        assert_eq!(body["status"], "duplicate", "[{name}] {body}");

        let after_updates = rollup(&url).await;
        assert_both_tiers_equal_the_calls(&url, name).await;
        let old_bucket = (
            old_end.timestamp().div_euclid(900) * 900,
            "INCOMING".to_owned(),
        );
        assert_ne!(
            after_inserts.get(&old_bucket),
            after_updates.get(&old_bucket),
            "[{name}] the call left its old bucket"
        );
    })
    .await;
}

const STATS: &str = "query($f: CallFilter, $g: [CallDimension!], $tz: String!) { callStats(filter: $f, groupBy: $g, timeZone: $tz) { \
    total { count totalDurationSeconds minDurationSeconds maxDurationSeconds withRecording answeredCalls missedCalls rejectedCalls } \
    groups { key { period direction } stats { count totalDurationSeconds minDurationSeconds maxDurationSeconds withRecording answeredCalls missedCalls rejectedCalls } } } }";

#[tokio::test]
async fn statistics_from_the_rollup_equal_statistics_from_the_calls() {
    for_each_app(async |app| {
        let name = app.backend.name();
        let spec = SeedSpec {
            calls: 400,
            seed: 5,
            end: "2026-03-10T00:00:00Z".parse().expect("instant"),
        };
        for generated in seed::generate(spec) {
            let (status, _) = app
                .post_webhook("application/json", generated.payload)
                .await;
            assert_eq!(status, 200, "[{name}]");
        }
        // Quarter-hour bounds: answered from the rollup (from its half-hour tier where the
        // zone's offsets and the bounds are whole half hours). The same question with a filter
        // every call meets (duration >= 0) cannot use the rollup and reads the calls.
        // (from, to, groupBy, zone, direction filter): the rollup's per-direction rows serve
        // a DIRECTION dimension or filter, its every-direction rows serve the rest.
        let cases = [
            (
                "2025-03-01T05:00:00Z",
                "2026-03-10T05:00:00Z",
                json!(["MONTH", "DIRECTION"]),
                "America/New_York",
                Value::Null,
            ),
            (
                "2025-03-09T05:00:00Z",
                "2026-03-10T05:00:00Z",
                json!(["DAY"]),
                "America/New_York",
                Value::Null,
            ),
            (
                "2025-10-30T04:00:00Z",
                "2025-11-05T05:00:00Z",
                json!(["HOUR"]),
                "America/New_York",
                Value::Null,
            ),
            // Bounds on quarters that are not half hours: the 15-minute tier.
            (
                "2025-06-01T04:15:00Z",
                "2026-02-01T05:45:00Z",
                json!(["DAY", "DIRECTION"]),
                "America/New_York",
                Value::Null,
            ),
            (
                "2025-03-01T00:00:00Z",
                "2026-03-10T00:00:00Z",
                json!(["WEEK", "DIRECTION"]),
                "Asia/Kathmandu",
                Value::Null,
            ),
            (
                "2025-03-01T00:00:00Z",
                "2026-03-10T00:00:00Z",
                json!(["DAY"]),
                "Asia/Kolkata",
                json!("OUTGOING"),
            ),
            (
                "2025-03-01T00:00:00Z",
                "2026-03-10T00:00:00Z",
                json!(["DIRECTION"]),
                "UTC",
                Value::Null,
            ),
            (
                "2025-03-01T00:00:00Z",
                "2026-03-10T00:00:00Z",
                json!([]),
                "UTC",
                json!("INCOMING"),
            ),
            (
                "2025-03-01T00:00:00Z",
                "2026-03-10T00:00:00Z",
                json!([]),
                "UTC",
                Value::Null,
            ),
        ];
        for (from, to, group_by, zone, direction) in cases {
            let mut rollup_filter = json!({ "endedAt": { "from": from, "to": to } });
            if !direction.is_null() {
                rollup_filter["direction"] = direction;
            }
            let mut calls_filter = rollup_filter.clone();
            calls_filter["durationSeconds"] = json!({ "min": 0 });
            let ask = |filter: Value| json!({ "f": filter, "g": group_by.clone(), "tz": zone });
            let from_rollup = app.query(STATS, ask(rollup_filter)).await;
            let from_calls = app.query(STATS, ask(calls_filter)).await;
            assert!(
                from_calls["callStats"]["total"]["count"]
                    .as_i64()
                    .unwrap_or(0)
                    > 0,
                "[{name}] {group_by} has calls"
            );
            assert_eq!(from_rollup, from_calls, "[{name}] {group_by} in {zone}");
        }
        asking_for_one_measure_answers_what_asking_for_all_does(app, name).await;
        each_question_reads_the_tier_chosen_for_it(app, name).await;
    })
    .await;
}

/// Bounds anywhere (off the rollup's grid, as dashboards send `now-30d .. now`): the whole
/// buckets inside are read from the rollup and the partial ones at the edges from `calls`,
/// and the answer is exactly the one reading every call gives. Random bounds to the
/// millisecond over DST zones, Kathmandu's +05:45 and Lord Howe's half-hour DST, every
/// period, ranges shorter than a bucket and empty ones; the seed is in each message.
#[tokio::test]
async fn any_bounds_answer_exactly_what_reading_the_calls_answers() {
    use rand::{Rng, SeedableRng};
    for_each_app(async |app| {
        let name = app.backend.name();
        let spec = SeedSpec {
            calls: 500,
            seed: 11,
            end: "2026-03-10T00:00:00Z".parse().expect("instant"),
        };
        let generated: Vec<seed::SeedCall> = seed::generate(spec).collect();
        let epochs: Vec<i64> = generated
            .iter()
            .filter_map(|g| g.event.fields.ended_at.map(|t| t.timestamp()))
            .collect();
        let (first, last) = (
            *epochs.iter().min().expect("calls"),
            *epochs.iter().max().expect("calls"),
        );
        for call in generated {
            let (status, _) = app.post_webhook("application/json", call.payload).await;
            assert_eq!(status, 200, "[{name}]");
        }
        let zones = [
            "America/New_York",
            "Asia/Kathmandu",
            "Europe/London",
            "Australia/Lord_Howe",
            "Asia/Kolkata",
            "UTC",
        ];
        let groupings = [
            json!(["HOUR"]),
            json!(["DAY"]),
            json!(["WEEK"]),
            json!(["MONTH"]),
            json!(["DAY", "DIRECTION"]),
            json!([]),
        ];
        let seed: u64 = 20261202;
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        for case in 0..64 {
            let zone = zones[rng.random_range(0..zones.len())];
            let group_by = groupings[rng.random_range(0..groupings.len())].clone();
            let hourly = group_by == json!(["HOUR"]);
            let length_ms: i64 = match rng.random_range(0..5) {
                0 => 0,
                1 => rng.random_range(1..900_000),
                2 => rng.random_range(900_000..86_400_000),
                _ if hourly => rng.random_range(86_400_000..10 * 86_400_000),
                _ => rng.random_range(86_400_000..400 * 86_400_000),
            };
            let mut from_ms = rng.random_range((first - 86_400) * 1000..last * 1000);
            let mut to_ms = from_ms + length_ms;
            if case % 2 == 1 {
                // Edges that hold calls: a minute or two before one call, after another.
                let a = epochs[rng.random_range(0..epochs.len())];
                let near: Vec<i64> = epochs
                    .iter()
                    .copied()
                    .filter(|&b| b > a && (!hourly || b - a < 10 * 86_400))
                    .collect();
                let b = near
                    .get(rng.random_range(0..near.len().max(1)))
                    .copied()
                    .unwrap_or(a);
                from_ms = a * 1000 - rng.random_range(0..120_000);
                to_ms = b * 1000 + rng.random_range(1..120_000);
            }
            let at = |ms: i64| {
                DateTime::<Utc>::from_timestamp_millis(ms)
                    .expect("instant")
                    .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
            };
            let (from, to) = (at(from_ms), at(to_ms));
            let filter = json!({ "endedAt": { "from": from, "to": to } });
            let mut calls_filter = filter.clone();
            calls_filter["durationSeconds"] = json!({ "min": 0 });
            let ask = |filter: Value| json!({ "f": filter, "g": group_by.clone(), "tz": zone });
            let split = app.query(STATS, ask(filter)).await;
            let from_calls = app.query(STATS, ask(calls_filter)).await;
            assert_eq!(
                split, from_calls,
                "[{name}] seed {seed} case {case}: {from} .. {to} by {group_by} in {zone}"
            );
        }
    })
    .await;
}

/// Which table answers: after 1 000 calls are added to every every-direction half-hour row
/// (only there: the tables no longer agree), a year by day in New York with bounds on half
/// hours counts them, the same year in Kathmandu (+05:45) or with a bound on a quarter that
/// is not a half hour does not. Run last: it leaves the rollup wrong.
async fn each_question_reads_the_tier_chosen_for_it(app: &TestApp, name: &str) {
    let count = |zone: &'static str, from: &'static str| async move {
        let variables = json!({
            "f": { "endedAt": { "from": from, "to": "2026-03-10T05:00:00Z" } },
            "g": ["DAY"],
            "tz": zone,
        });
        app.query(STATS, variables).await["callStats"]["total"]["count"]
            .as_i64()
            .expect("count")
    };
    let questions = [
        ("America/New_York", "2025-03-01T05:00:00Z"),
        ("Asia/Kathmandu", "2025-03-01T05:00:00Z"),
        ("America/New_York", "2025-03-01T05:15:00Z"),
        // One second off the grid: the half hours inside from call_half_hours, the edge
        // (05:00:01 to 05:30) from the calls.
        ("America/New_York", "2025-03-01T05:00:01Z"),
    ];
    let mut before = Vec::new();
    for (zone, from) in questions {
        before.push(count(zone, from).await);
    }
    let half_hours = app
        .execute(
            "UPDATE call_half_hours SET calls = calls + 1000 \
             WHERE direction = '*' AND bucket_start >= 1740805200 AND bucket_start < 1773118800",
        )
        .await;
    assert!(half_hours > 10, "[{name}] {half_hours} half hours");
    let added = i64::try_from(half_hours).expect("count") * 1_000;
    let inside = app
        .count_where(
            "call_half_hours",
            "direction = '*' AND bucket_start >= 1740807000 AND bucket_start < 1773118800",
        )
        .await
        * 1_000;
    let mut after = Vec::new();
    for (zone, from) in questions {
        after.push(count(zone, from).await);
    }
    assert_eq!(
        after,
        [before[0] + added, before[1], before[2], before[3] + inside],
        "[{name}] New York on half hours reads call_half_hours; Kathmandu, and a quarter-hour \
         bound, read call_buckets; a bound off the grid reads the half hours inside it"
    );
}

/// The rollup computes only the measures a selection reads: each field asked alone (under
/// the groups, or under the total while the groups ask for another) answers what it answers
/// beside every other field. Every measure shows in this data (non-zero; the minimum is 0, not
/// null), so one left out would.
async fn asking_for_one_measure_answers_what_asking_for_all_does(app: &TestApp, name: &str) {
    const FIELDS: [&str; 10] = [
        "count",
        "totalDurationSeconds",
        "averageDurationSeconds",
        "minDurationSeconds",
        "maxDurationSeconds",
        "withRecording",
        "answeredCalls",
        "missedCalls",
        "rejectedCalls",
        "answerRate",
    ];
    let ask = |total: &str, groups: &str| {
        format!(
            "query($f: CallFilter) {{ callStats(filter: $f, groupBy: [DAY], timeZone: \"America/New_York\") {{ \
             total {{ {total} }} groups {{ key {{ period }} stats {{ {groups} }} }} }} }}"
        )
    };
    let filter = json!({ "f": { "endedAt": { "from": "2025-03-09T05:00:00Z", "to": "2026-03-10T05:00:00Z" } } });
    let all = FIELDS.join(" ");
    let everything = app.query(&ask(&all, &all), filter.clone()).await;
    let total = &everything["callStats"]["total"];
    for field in FIELDS {
        // A measure left out reads 0, or null for min/max (missed calls make the minimum 0).
        let shown = total[field]
            .as_f64()
            .is_some_and(|v| v > 0.0 || field == "minDurationSeconds");
        assert!(shown, "[{name}] {field} is non-zero in the data: {total}");
    }
    for field in FIELDS {
        let alone = app.query(&ask(field, field), filter.clone()).await;
        assert_eq!(
            alone["callStats"]["total"][field], total[field],
            "[{name}] total {field} asked alone"
        );
        let groups = everything["callStats"]["groups"]
            .as_array()
            .expect("groups");
        let groups_alone = alone["callStats"]["groups"].as_array().expect("groups");
        assert_eq!(groups.len(), groups_alone.len(), "[{name}] {field}");
        for (a, b) in groups.iter().zip(groups_alone) {
            assert_eq!(a["key"], b["key"], "[{name}] {field}");
            assert_eq!(
                a["stats"][field], b["stats"][field],
                "[{name}] {field} of {}",
                a["key"]
            );
        }
        // The total is summed from the groups, so a measure the total asks for is computed
        // even when the groups ask only for the count.
        let total_only = app.query(&ask(field, "count"), filter.clone()).await;
        assert_eq!(
            total_only["callStats"]["total"][field], total[field],
            "[{name}] total {field} with groups asking only the count"
        );
    }
}

/// `(table, index)` for every index of `calls` and `call_events`, sorted.
async fn indexes(url: &str, backend: &Backend) -> Vec<(String, String)> {
    let sql = match backend {
        Backend::Sqlite => {
            "SELECT tbl_name AS t, name AS i FROM sqlite_master WHERE type = 'index' \
             AND tbl_name IN ('calls', 'call_events') ORDER BY 1, 2"
        }
        Backend::Postgres { .. } => {
            "SELECT tablename AS t, indexname AS i FROM pg_indexes \
             WHERE tablename IN ('calls', 'call_events') ORDER BY 1, 2"
        }
    };
    url.query_all(sql)
        .await
        .iter()
        .map(|r| {
            (
                r.try_get::<String>("", "t").expect("table"),
                r.try_get::<String>("", "i").expect("index"),
            )
        })
        .collect()
}

/// `calls` generated calls from `seed`, ending before 10 March 2026.
fn generated(calls: u64, seed: u64) -> Vec<seed::SeedCall> {
    let end = "2026-03-10T00:00:00Z".parse().expect("instant");
    seed::generate(SeedSpec { calls, seed, end }).collect()
}

/// A fresh, migrated database of `backend`, its store, and the indexes migrations made.
async fn migrated(backend: &Backend) -> (TestDatabase, Store, Vec<(String, String)>) {
    let database = TestDatabase::create(backend).await;
    let store = Store::connect(&database.url).await.expect("connect");
    store.migrate().await.expect("migrate");
    let made = indexes(&database.url, backend).await;
    assert!(made.len() >= 10, "[{}] {made:?}", backend.name());
    (database, store, made)
}

async fn counts(url: &str) -> (i64, i64) {
    (url.count("calls").await, url.count("call_events").await)
}

#[tokio::test]
async fn a_seeded_database_keeps_its_indexes_and_its_rollup_equals_its_calls() {
    for_each_backend(async |backend| {
        let name = backend.name();
        let (database, store, migrated) = migrated(&backend).await;
        let url = database.url.clone();

        // An empty table and a bulk load (bulk from 0 calls here; 50k for `calltrail
        // seed`): indexes dropped and built again, two loaders on PostgreSQL.
        let report = store
            .seed(3_000, 0, true, generated(3_000, 3).into_iter())
            .await
            .expect("bulk seed");
        assert_eq!(report.calls, 3_000, "[{name}]");
        let phases: Vec<&str> = report.phases.iter().map(|(p, _)| *p).collect();
        assert_eq!(phases, ["rows", "indexes", "rollup", "analyze"], "[{name}]");
        assert_eq!(counts(&url).await, (3_000, 3_000), "[{name}]");
        assert_eq!(indexes(&url, &backend).await, migrated, "[{name}]");
        let buckets = rollup(&url).await;
        assert!(buckets.len() > 1_000, "[{name}] {} buckets", buckets.len());
        assert_both_tiers_equal_the_calls(&url, name).await;

        // Into a table that holds calls: one transaction, the indexes kept as they are.
        let report = store
            .seed(700, 0, false, generated(700, 4).into_iter())
            .await
            .expect("second seed");
        assert_eq!(report.calls, 700, "[{name}]");
        assert_eq!(counts(&url).await, (3_700, 3_000), "[{name}]");
        assert_eq!(indexes(&url, &backend).await, migrated, "[{name}]");
        assert_both_tiers_equal_the_calls(&url, name).await;
        store.close().await;
    })
    .await;
}

#[tokio::test]
async fn a_bulk_seed_that_fails_keeps_what_it_committed_consistent_and_its_indexes() {
    for_each_backend(async |backend| {
        let name = backend.name();
        let (database, store, migrated) = migrated(&backend).await;
        let url = database.url.clone();
        // The 20 501st call repeats the 11th call's id: the load fails part-way, after rows
        // were written (on PostgreSQL, in either loader's transaction) and, on SQLite, after
        // the first 20 000 were committed.
        let mut calls = generated(21_000, 5);
        calls[20_500] = calls[10].clone();
        let result = store.seed(21_000, 0, true, calls.into_iter()).await;
        assert!(result.is_err(), "[{name}] a repeated call id was loaded");
        // The events are append-only, so what was committed stays: each call with its event,
        // the indexes back, the rollup equal to the calls, and verify finds nothing amiss.
        let (calls, events) = counts(&url).await;
        assert_eq!(calls, events, "[{name}]");
        assert!(calls < 21_000, "[{name}] {calls}");
        assert_eq!(indexes(&url, &backend).await, migrated, "[{name}]");
        for (table, seconds) in TIERS {
            assert_eq!(
                stored_tier(&url, table).await,
                aggregated_from_calls(&url, seconds).await,
                "[{name}] {table}"
            );
        }
        let report = calltrail::verify::verify(&store, &Default::default(), |_| {})
            .await
            .expect("verify");
        assert!(!report.differs(), "[{name}] {report:?}");
        store.close().await;
    })
    .await;
}
