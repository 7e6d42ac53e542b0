//! `callStats` over a generated dataset, checked against answers computed here in plain Rust.

use std::collections::{BTreeMap, BTreeSet};

use crate::kit::dataset::{self, GenCall};
use crate::kit::for_each_app;
use chrono::{DateTime, Datelike, Duration, NaiveDate, SecondsFormat, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use serde_json::{Value, json};

const STATS: &str = "count totalDurationSeconds averageDurationSeconds minDurationSeconds \
    maxDurationSeconds p0: durationPercentile(p: 0) p25: durationPercentile(p: 0.25) \
    p50: durationPercentile(p: 0.5) p95: durationPercentile(p: 0.95) \
    p100: durationPercentile(p: 1) hist: durationHistogram(boundsSeconds: [10, 60, 300]) { fromSeconds toSeconds count } \
    shortCalls longCalls withRecording answeredCalls missedCalls rejectedCalls answerRate";

const KEY: &str = "pickedBy endedBy direction wabaNumber customerNumber status channel period";

const BOUNDS: [i64; 3] = [10, 60, 300];

fn at(text: &str) -> DateTime<Utc> {
    text.parse().expect("instant")
}

fn instant(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// `percentile_cont`, written out: linear interpolation between the two nearest ranks.
fn percentile(sorted: &[i64], p: f64) -> Value {
    if sorted.is_empty() {
        return Value::Null;
    }
    let position = p * (sorted.len() - 1) as f64;
    let (lo, hi) = (position.floor() as usize, position.ceil() as usize);
    let value = sorted[lo] as f64 + (sorted[hi] - sorted[lo]) as f64 * (position - lo as f64);
    json!(value)
}

/// The stats the API should report over `calls`.
fn expected_stats(calls: &[&GenCall], short: Option<i64>, long: Option<i64>) -> Value {
    let mut durations: Vec<i64> = calls.iter().map(|c| c.duration_seconds).collect();
    durations.sort_unstable();
    let count = calls.len() as i64;
    let total: i64 = durations.iter().sum();
    let ratio = |n: i64| {
        if count == 0 {
            Value::Null
        } else {
            json!(n as f64 / count as f64)
        }
    };
    let answered = calls.iter().filter(|c| c.started_at.is_some()).count() as i64;
    let mut hist = vec![0i64; BOUNDS.len() + 1];
    for d in &durations {
        hist[BOUNDS.iter().filter(|b| *d >= **b).count()] += 1;
    }
    let hist: Vec<Value> = hist
        .iter()
        .enumerate()
        .map(|(i, n)| {
            json!({
                "fromSeconds": if i == 0 { Value::Null } else { json!(BOUNDS[i - 1]) },
                "toSeconds": BOUNDS.get(i).map_or(Value::Null, |b| json!(b)),
                "count": n,
            })
        })
        .collect();
    json!({
        "count": count,
        "totalDurationSeconds": total,
        "averageDurationSeconds": ratio(total),
        "minDurationSeconds": durations.first(),
        "maxDurationSeconds": durations.last(),
        "p0": percentile(&durations, 0.0),
        "p25": percentile(&durations, 0.25),
        "p50": percentile(&durations, 0.5),
        "p95": percentile(&durations, 0.95),
        "p100": percentile(&durations, 1.0),
        "hist": hist,
        "shortCalls": short.map(|s| durations.iter().filter(|d| **d < s).count()),
        "longCalls": long.map(|s| durations.iter().filter(|d| **d > s).count()),
        "withRecording": calls.iter().filter(|c| c.recording).count(),
        "answeredCalls": answered,
        "missedCalls": calls.iter().filter(|c| c.status == "MISSED").count(),
        "rejectedCalls": calls.iter().filter(|c| c.status == "REJECT").count(),
        "answerRate": ratio(answered),
    })
}

/// Equal, numbers compared as floats within 1e-9.
fn assert_same(actual: &Value, expected: &Value, label: &str) {
    match (actual, expected) {
        (Value::Number(a), Value::Number(e)) => {
            let (a, e) = (a.as_f64().expect("f64"), e.as_f64().expect("f64"));
            assert!(
                (a - e).abs() <= 1e-9 * e.abs().max(1.0),
                "{label}: {a} != {e}"
            );
        }
        (Value::Object(a), Value::Object(e)) => {
            for (k, ev) in e {
                assert_same(
                    a.get(k).unwrap_or(&Value::Null),
                    ev,
                    &format!("{label}.{k}"),
                );
            }
        }
        (Value::Array(a), Value::Array(e)) => {
            assert_eq!(a.len(), e.len(), "{label}: length");
            for (i, (av, ev)) in a.iter().zip(e).enumerate() {
                assert_same(av, ev, &format!("{label}[{i}]"));
            }
        }
        _ => assert_eq!(actual, expected, "{label}"),
    }
}

/// Local midnight of `date` in `tz`, as an instant (the first valid time if skipped).
fn midnight(tz: Tz, date: NaiveDate) -> DateTime<Utc> {
    let mut local = date.and_hms_opt(0, 0, 0).expect("midnight");
    loop {
        if let Some(t) = tz.from_local_datetime(&local).earliest() {
            return t.with_timezone(&Utc);
        }
        local += Duration::minutes(1);
    }
}

/// The start of the `dimension` bucket holding `t` in `tz`.
fn bucket_start(dimension: &str, tz: Tz, t: DateTime<Utc>) -> DateTime<Utc> {
    let local = t.with_timezone(&tz);
    let date = local.date_naive();
    match dimension {
        "HOUR" => {
            t - Duration::minutes(i64::from(local.minute()))
                - Duration::seconds(i64::from(local.second()))
                - Duration::nanoseconds(i64::from(local.nanosecond()))
        }
        "DAY" => midnight(tz, date),
        "WEEK" => midnight(
            tz,
            date - Duration::days(i64::from(date.weekday().num_days_from_monday())),
        ),
        "MONTH" => midnight(tz, date.with_day(1).expect("first")),
        other => panic!("not a time dimension: {other}"),
    }
}

fn next_bucket(dimension: &str, tz: Tz, start: DateTime<Utc>) -> DateTime<Utc> {
    match dimension {
        "HOUR" => start + Duration::hours(1),
        "DAY" => bucket_start("DAY", tz, start + Duration::hours(26)),
        "WEEK" => bucket_start("WEEK", tz, start + Duration::days(7) + Duration::hours(2)),
        "MONTH" => bucket_start("MONTH", tz, start + Duration::days(32)),
        other => panic!("not a time dimension: {other}"),
    }
}

fn is_time(dimension: &str) -> bool {
    matches!(dimension, "HOUR" | "DAY" | "WEEK" | "MONTH")
}

/// A group's values: text (None = null) or a bucket start.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Part {
    Time(DateTime<Utc>),
    Text(Option<String>),
}

fn text_value(dimension: &str, call: &GenCall) -> Option<String> {
    match dimension {
        "PICKED_BY" => call.picked_by.map(str::to_owned),
        "ENDED_BY" => call.ended_by.clone(),
        "DIRECTION" => Some(call.direction.to_owned()),
        "WABA_NUMBER" => Some(call.waba_number.to_owned()),
        "CUSTOMER" => Some(call.customer_digits.clone()),
        "STATUS" => Some(call.status.to_owned()),
        "CHANNEL" => call.channel.map(str::to_owned),
        other => panic!("unknown dimension {other}"),
    }
}

fn key_json(dimensions: &[&str], parts: &[Part]) -> Value {
    let mut key = json!({
        "pickedBy": null, "endedBy": null, "direction": null, "wabaNumber": null,
        "customerNumber": null, "status": null, "channel": null, "period": null,
    });
    let field = |d: &str| match d {
        "PICKED_BY" => "pickedBy",
        "ENDED_BY" => "endedBy",
        "DIRECTION" => "direction",
        "WABA_NUMBER" => "wabaNumber",
        "CUSTOMER" => "customerNumber",
        "STATUS" => "status",
        "CHANNEL" => "channel",
        _ => "period",
    };
    for (d, part) in dimensions.iter().zip(parts) {
        key[field(d)] = match part {
            Part::Time(t) => json!(instant(*t)),
            Part::Text(v) => json!(v),
        };
    }
    key
}

/// Expected groups, in the documented order: time ascending, then the other dimensions in
/// `groupBy` order, ascending, null last; zero-filled over `range` with one time dimension.
fn expected_groups(
    calls: &[&GenCall],
    dimensions: &[&str],
    tz: Tz,
    range: Option<(DateTime<Utc>, DateTime<Utc>)>,
    short: Option<i64>,
    long: Option<i64>,
) -> Vec<Value> {
    let parts_of = |c: &GenCall| -> Vec<Part> {
        dimensions
            .iter()
            .map(|d| {
                if is_time(d) {
                    Part::Time(bucket_start(d, tz, c.ended_at))
                } else {
                    Part::Text(text_value(d, c))
                }
            })
            .collect()
    };
    let mut groups: BTreeMap<Vec<Part>, Vec<&GenCall>> = BTreeMap::new();
    for call in calls {
        groups.entry(parts_of(call)).or_default().push(call);
    }
    let time_slots: Vec<usize> = (0..dimensions.len())
        .filter(|i| is_time(dimensions[*i]))
        .collect();
    if let ([slot], Some((from, to))) = (time_slots.as_slice(), range) {
        let others: BTreeSet<Vec<Part>> = if dimensions.len() == 1 {
            [vec![Part::Text(None)]].into()
        } else {
            groups
                .keys()
                .map(|k| {
                    let mut k = k.clone();
                    k[*slot] = Part::Text(None);
                    k
                })
                .collect()
        };
        let mut start = bucket_start(dimensions[*slot], tz, from);
        while start < to {
            for other in &others {
                let mut key = other.clone();
                key[*slot] = Part::Time(start);
                groups.entry(key).or_default();
            }
            start = next_bucket(dimensions[*slot], tz, start);
        }
    }
    let order = |parts: &Vec<Part>| -> Vec<(u8, Option<DateTime<Utc>>, Option<String>)> {
        let time = parts.iter().filter(|p| matches!(p, Part::Time(_)));
        let text = parts.iter().filter(|p| matches!(p, Part::Text(_)));
        time.chain(text)
            .map(|p| match p {
                Part::Time(t) => (0, Some(*t), None),
                Part::Text(Some(s)) => (0, None, Some(s.clone())),
                Part::Text(None) => (1, None, None),
            })
            .collect()
    };
    let mut sorted: Vec<(Vec<Part>, Vec<&GenCall>)> = groups.into_iter().collect();
    sorted.sort_by_key(|(k, _)| order(k));
    sorted
        .into_iter()
        .map(|(parts, members)| {
            json!({
                "key": key_json(dimensions, &parts),
                "stats": expected_stats(&members, short, long),
            })
        })
        .collect()
}

struct Case {
    label: &'static str,
    group_by: &'static [&'static str],
    time_zone: &'static str,
    ended_at: Option<(&'static str, &'static str)>,
    short: Option<i64>,
    long: Option<i64>,
}

const CASES: &[Case] = &[
    Case {
        label: "agent per New York day, across the DST change, zero-filled",
        group_by: &["PICKED_BY", "DAY"],
        time_zone: "America/New_York",
        ended_at: Some(("2026-03-02T05:00:00Z", "2026-03-16T04:00:00Z")),
        short: Some(30),
        long: Some(300),
    },
    Case {
        label: "direction, status and channel",
        group_by: &["DIRECTION", "STATUS", "CHANNEL"],
        time_zone: "UTC",
        ended_at: None,
        short: None,
        long: Some(60),
    },
    Case {
        label: "ISO weeks in Kolkata",
        group_by: &["WEEK"],
        time_zone: "Asia/Kolkata",
        ended_at: None,
        short: Some(10),
        long: None,
    },
    Case {
        label: "months in London",
        group_by: &["MONTH", "WABA_NUMBER"],
        time_zone: "Europe/London",
        ended_at: None,
        short: None,
        long: None,
    },
    Case {
        label: "hours of the New York spring-forward day, zero-filled",
        group_by: &["HOUR"],
        time_zone: "America/New_York",
        ended_at: Some(("2026-03-08T05:00:00Z", "2026-03-09T04:00:00Z")),
        short: None,
        long: None,
    },
    Case {
        label: "customer and who hung up",
        group_by: &["CUSTOMER", "ENDED_BY"],
        time_zone: "UTC",
        ended_at: None,
        short: Some(60),
        long: Some(60),
    },
];

const STATS_QUERY: &str = "query($filter: CallFilter, $groupBy: [CallDimension!], $tz: String!, $short: Int, $long: Int) {
  callStats(filter: $filter, groupBy: $groupBy, timeZone: $tz, shortCallSeconds: $short, longCallSeconds: $long) {
    total { STATS }
    groups { key { KEY } stats { STATS } }
  }
}";

#[tokio::test]
async fn statistics_over_five_thousand_generated_calls_match_a_plain_rust_computation() {
    let calls = dataset::generate(5_000);
    let query = STATS_QUERY.replace("STATS", STATS).replace("KEY", KEY);
    for_each_app(async |app| {
        dataset::ingest(app, &calls).await;
        for case in CASES {
            let label = format!("[{}] {}", app.backend.name(), case.label);
            let tz: Tz = case.time_zone.parse().expect("zone");
            let range = case.ended_at.map(|(f, t)| (at(f), at(t)));
            let selected: Vec<&GenCall> = calls
                .iter()
                .filter(|c| range.is_none_or(|(f, t)| f <= c.ended_at && c.ended_at < t))
                .collect();
            assert!(selected.len() > 100, "{label}: the case covers many calls");
            let filter = match case.ended_at {
                Some((from, to)) => json!({ "endedAt": { "from": from, "to": to } }),
                None => Value::Null,
            };
            let data = app
                .query(
                    &query,
                    json!({
                        "filter": filter, "groupBy": case.group_by, "tz": case.time_zone,
                        "short": case.short, "long": case.long,
                    }),
                )
                .await;
            let stats = &data["callStats"];
            assert_same(
                &stats["total"],
                &expected_stats(&selected, case.short, case.long),
                &format!("{label}: total"),
            );
            let expected =
                expected_groups(&selected, case.group_by, tz, range, case.short, case.long);
            assert_same(
                &stats["groups"],
                &Value::Array(expected),
                &format!("{label}: groups"),
            );
        }
    })
    .await;
}

#[tokio::test]
async fn a_new_york_day_lasts_23_hours_in_spring_and_25_in_fall() {
    for_each_app(async |app| {
        let mut calls = dataset::generate(4);
        for (call, ended) in calls.iter_mut().zip([
            "2026-03-08T04:59:00Z", // 23:59 EST, Saturday Mar 7
            "2026-03-09T03:59:00Z", // 23:59 EDT, Sunday Mar 8
            "2026-11-01T03:59:00Z", // 23:59 EDT, Saturday Oct 31
            "2026-11-02T04:59:00Z", // 23:59 EST, Sunday Nov 1
        ]) {
            call.end_at(at(ended));
        }
        dataset::ingest(app, &calls).await;
        let data = app
            .query(
                "{ callStats(groupBy: [DAY], timeZone: \"America/New_York\") { groups { key { period } stats { count } } } }",
                json!({}),
            )
            .await;
        let periods: Vec<&str> = data["callStats"]["groups"]
            .as_array()
            .expect("groups")
            .iter()
            .map(|g| g["key"]["period"].as_str().expect("period"))
            .collect();
        assert_eq!(
            periods,
            [
                "2026-03-07T05:00:00.000Z",
                "2026-03-08T05:00:00.000Z",
                "2026-10-31T04:00:00.000Z",
                "2026-11-01T04:00:00.000Z",
            ],
            "[{}]",
            app.backend.name()
        );
        let spring = at(periods[1]) + Duration::hours(23);
        assert_eq!(
            bucket_start("DAY", "America/New_York".parse().expect("tz"), spring),
            spring,
            "the spring day ends 23 h after it starts"
        );
        let fall = at(periods[3]) + Duration::hours(25);
        assert_eq!(
            bucket_start("DAY", "America/New_York".parse().expect("tz"), fall),
            fall,
            "the fall day ends 25 h after it starts"
        );
    })
    .await;
}

#[tokio::test]
async fn iso_weeks_start_on_monday_in_the_requested_zone() {
    for_each_app(async |app| {
        let mut calls = dataset::generate(2);
        // Sunday 23:30 and Monday 00:30 in Kolkata (+05:30): two different weeks.
        calls[0].end_at(at("2026-11-22T18:00:00Z"));
        calls[1].end_at(at("2026-11-22T19:00:00Z"));
        dataset::ingest(app, &calls).await;
        let data = app
            .query(
                "{ callStats(groupBy: [WEEK], timeZone: \"Asia/Kolkata\") { groups { key { period } stats { count } } } }",
                json!({}),
            )
            .await;
        assert_eq!(
            data["callStats"]["groups"],
            json!([
                { "key": { "period": "2026-11-15T18:30:00.000Z" }, "stats": { "count": 1 } },
                { "key": { "period": "2026-11-22T18:30:00.000Z" }, "stats": { "count": 1 } },
            ]),
            "[{}]",
            app.backend.name()
        );
    })
    .await;
}

#[tokio::test]
async fn time_buckets_without_calls_are_returned_with_zero_counts() {
    for_each_app(async |app| {
        let mut calls = dataset::generate(1);
        calls[0].end_at(at("2026-03-03T12:00:00Z"));
        dataset::ingest(app, &calls).await;
        let data = app
            .query(
                "{ callStats(groupBy: [DAY], filter: { endedAt: { from: \"2026-03-01T00:00:00Z\", to: \"2026-03-05T00:00:00Z\" } }) {
                    groups { key { period } stats { count totalDurationSeconds averageDurationSeconds answerRate p50: durationPercentile(p: 0.5) durationHistogram(boundsSeconds: [60]) { count } } } } }",
                json!({}),
            )
            .await;
        let groups = data["callStats"]["groups"].as_array().expect("groups");
        let periods: Vec<&Value> = groups.iter().map(|g| &g["key"]["period"]).collect();
        assert_eq!(
            periods,
            [
                "2026-03-01T00:00:00.000Z",
                "2026-03-02T00:00:00.000Z",
                "2026-03-03T00:00:00.000Z",
                "2026-03-04T00:00:00.000Z"
            ],
            "[{}]",
            app.backend.name()
        );
        let counts: Vec<&Value> = groups.iter().map(|g| &g["stats"]["count"]).collect();
        assert_eq!(counts, [0, 0, 1, 0]);
        assert_eq!(
            groups[0]["stats"],
            json!({
                "count": 0, "totalDurationSeconds": 0, "averageDurationSeconds": null,
                "answerRate": null, "p50": null,
                "durationHistogram": [{ "count": 0 }, { "count": 0 }],
            })
        );
    })
    .await;
}

#[tokio::test]
async fn bad_statistics_arguments_are_refused_naming_the_argument() {
    for_each_app(async |app| {
        dataset::ingest(app, &dataset::generate(3)).await;
        let cases = [
            (
                "callStats(timeZone: \"Mars/Olympus\") { total { count } }",
                "timeZone",
            ),
            (
                "callStats(shortCallSeconds: -1) { total { count } }",
                "shortCallSeconds",
            ),
            (
                "callStats(longCallSeconds: -5) { total { count } }",
                "longCallSeconds",
            ),
            ("callStats { total { durationPercentile(p: 1.5) } }", "p"),
            ("callStats { total { durationPercentile(p: -0.1) } }", "p"),
            (
                "callStats { total { durationHistogram(boundsSeconds: []) { count } } }",
                "boundsSeconds",
            ),
            (
                "callStats { total { durationHistogram(boundsSeconds: [60, 10]) { count } } }",
                "boundsSeconds",
            ),
            (
                "callStats(filter: { endedAt: { from: \"2026-03-02T00:00:00Z\", to: \"2026-03-01T00:00:00Z\" } }) { total { count } }",
                "filter.endedAt",
            ),
            (
                "callStats(filter: { durationSeconds: { min: 10, max: 5 } }) { total { count } }",
                "filter.durationSeconds",
            ),
        ];
        for (selection, argument) in cases {
            let response = app.graphql(&format!("{{ {selection} }}"), json!({})).await;
            let error = &response["errors"][0];
            assert_eq!(
                error["extensions"]["code"],
                "BAD_USER_INPUT",
                "[{}] {selection}: {response}",
                app.backend.name()
            );
            assert_eq!(
                error["extensions"]["argument"],
                argument,
                "[{}] {selection}",
                app.backend.name()
            );
        }
    })
    .await;
}

#[tokio::test]
async fn percentiles_asked_through_variables_fragments_and_aliases_agree() {
    let calls = dataset::generate(300);
    let mut durations: Vec<i64> = calls.iter().map(|c| c.duration_seconds).collect();
    durations.sort_unstable();
    let mut by_direction: BTreeMap<&str, Vec<i64>> = BTreeMap::new();
    for c in &calls {
        by_direction
            .entry(c.direction)
            .or_default()
            .push(c.duration_seconds);
    }
    for_each_app(async |app| {
        dataset::ingest(app, &calls).await;
        let data = app
            .query(
                "query($p: Float!) { callStats(groupBy: [DIRECTION]) {
                   total { viaVariable: durationPercentile(p: $p) ...Ninety count }
                   groups { key { direction } stats { durationPercentile(p: 0.9) median: durationPercentile(p: 0.5) } }
                 } }
                 fragment Ninety on CallStats { viaFragment: durationPercentile(p: 0.9) }",
                json!({ "p": 0.3 }),
            )
            .await;
        let total = &data["callStats"]["total"];
        assert_eq!(total["count"], calls.len(), "[{}]", app.backend.name());
        assert_eq!(
            total["viaVariable"],
            percentile(&durations, 0.3),
            "[{}]",
            app.backend.name()
        );
        assert_eq!(
            total["viaFragment"],
            percentile(&durations, 0.9),
            "[{}]",
            app.backend.name()
        );
        for group in data["callStats"]["groups"].as_array().expect("groups") {
            let direction = group["key"]["direction"].as_str().expect("direction");
            let mut mine = by_direction[direction].clone();
            mine.sort_unstable();
            assert_eq!(group["stats"]["durationPercentile"], percentile(&mine, 0.9));
            assert_eq!(group["stats"]["median"], percentile(&mine, 0.5));
        }
    })
    .await;
}

#[tokio::test]
async fn statistics_of_an_empty_store_are_zero_and_null() {
    for_each_app(async |app| {
        let data = app
            .query(
                &format!("{{ callStats(groupBy: [PICKED_BY], shortCallSeconds: 5) {{ total {{ {STATS} }} groups {{ stats {{ count }} }} }} }}"),
                json!({}),
            )
            .await;
        assert_same(
            &data["callStats"]["total"],
            &expected_stats(&[], Some(5), None),
            &format!("[{}] empty total", app.backend.name()),
        );
        assert_eq!(data["callStats"]["groups"], json!([]));
    })
    .await;
}

#[tokio::test]
async fn a_zero_filled_range_with_too_many_buckets_is_refused() {
    for_each_app(async |app| {
        let response = app
            .graphql(
                "{ callStats(groupBy: [HOUR], filter: { endedAt: { from: \"1990-01-01T00:00:00Z\", to: \"2030-01-01T00:00:00Z\" } }) { groups { stats { count } } } }",
                json!({}),
            )
            .await;
        assert_eq!(
            response["errors"][0]["extensions"]["code"],
            "BAD_USER_INPUT",
            "[{}] {response}",
            app.backend.name()
        );
        assert_eq!(response["errors"][0]["extensions"]["argument"], "groupBy");
    })
    .await;
}
