//! Implausible instants (before 2000-01-01, or more than a day after the delivery arrived) are
//! stored as sent and flagged `IMPLAUSIBLE_TIMESTAMP`, and left out of the planning of time
//! buckets: one call in year 1 or 9999 does not push a question off the rollup.

use chrono::{Duration, SecondsFormat, Utc};
use serde_json::{Value, json};

use crate::kit::{Inspect, TestApp, fixture_bytes, for_each_app};

fn call(id: &str, ended_at: &str) -> Value {
    let mut body: Value =
        serde_json::from_slice(&fixture_bytes("events/call-ended-incoming-recorded.json"))
            .expect("fixture");
    body["callId"] = json!(id);
    body["callStartedAt"] = json!("");
    body["callEndedAt"] = json!(ended_at);
    body
}

async fn anomalies(app: &TestApp, id: &str) -> Vec<String> {
    let answer = app
        .query(
            "query($id: ID!) { call(callId: $id) { anomalies } }",
            json!({ "id": id }),
        )
        .await;
    answer["call"]["anomalies"]
        .as_array()
        .unwrap_or_else(|| panic!("{id}: {answer}"))
        .iter()
        .map(|a| a.as_str().unwrap_or_default().to_owned())
        .collect()
}

const BY_DAY: &str = "query($tz: String!) { callStats(groupBy: [DAY], timeZone: $tz) \
                      { total { count } groups { stats { count } } } }";

#[tokio::test]
async fn implausible_instants_are_stored_flagged_and_kept_out_of_bucket_planning() {
    for_each_app(async |app| {
        let name = app.backend.name();
        let soon = |d: Duration| (Utc::now() + d).to_rfc3339_opts(SecondsFormat::Millis, true);
        let cases = [
            (
                "call_ordinary",
                "2026-03-02T09:19:17.000Z".to_owned(),
                false,
            ),
            (
                "call_year_0001",
                "0001-01-01T00:01:00.000Z".to_owned(),
                true,
            ),
            (
                "call_year_9999",
                "9999-12-31T23:59:00.000Z".to_owned(),
                true,
            ),
            ("call_1999", "1999-12-31T23:59:59.000Z".to_owned(), true),
            ("call_skewed_clock", soon(Duration::hours(12)), false),
            ("call_three_days_ahead", soon(Duration::days(3)), true),
        ];
        for (id, ended_at, implausible) in &cases {
            let (status, answer) = app
                .post_webhook("application/json", call(id, ended_at).to_string())
                .await;
            assert_eq!(status, 200, "[{name}] {id}: {answer}");
            assert_eq!(answer["status"], "stored", "[{name}] {id}: {answer}");
            let flagged = anomalies(app, id)
                .await
                .contains(&"IMPLAUSIBLE_TIMESTAMP".into());
            assert_eq!(flagged, *implausible, "[{name}] {id} ended {ended_at}");
        }

        // Every call is counted, and the question is answered from the rollup: a change to
        // the rollup's half hours shows in the answer (it would not, were the calls read).
        let before = app.query(BY_DAY, json!({ "tz": "America/New_York" })).await;
        assert_eq!(
            before["callStats"]["total"]["count"], 6,
            "[{name}] {before}"
        );
        let changed = app
            .execute(
                "UPDATE call_half_hours SET calls = calls + 1000 \
                 WHERE direction = '*' AND bucket_start = 1772442000",
            )
            .await;
        assert_eq!(changed, 1, "[{name}] the ordinary call's half hour");
        let after = app.query(BY_DAY, json!({ "tz": "America/New_York" })).await;
        let groups = |v: &Value| -> i64 {
            v["callStats"]["groups"]
                .as_array()
                .expect("groups")
                .iter()
                .map(|g| g["stats"]["count"].as_i64().expect("count"))
                .sum()
        };
        assert_eq!(
            groups(&after),
            groups(&before) + 1000,
            "[{name}] answered from the rollup: {before} then {after}"
        );
        assert_eq!(app.count("calls").await, 6, "[{name}]");
    })
    .await;
}
