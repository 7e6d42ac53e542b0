//! DoubleTick deliveries in, calls out: every fixture, stored or refused, read back over GraphQL.

use std::time::{Duration, Instant};

use crate::kit::{
    Backend, CALL_FIELDS, TestApp, fixture_bytes, fixture_json, fixture_names, for_each_app,
};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

fn call_query() -> String {
    format!("query($id: ID!) {{ call(callId: $id) {{ {CALL_FIELDS} }} }}")
}

/// `""` on the wire is `null` in GraphQL; timestamps are the same instant in UTC.
fn assert_reads_back_as_sent(sent: &Value, call: &Value, label: &str) {
    let text_keys = [
        ("callId", "callId"),
        ("callStatus", "status"),
        ("callDirection", "direction"),
        ("customerId", "customerId"),
        ("customerName", "customerName"),
        ("customerNumber", "customerNumber"),
        ("wabaNumber", "wabaNumber"),
        ("pickedBy", "pickedBy"),
        ("endedBy", "endedBy"),
        ("rejectedBy", "rejectedBy"),
        ("deviceId", "deviceId"),
        ("chatId", "chatId"),
        ("chatMessageId", "chatMessageId"),
        ("channel", "channel"),
        ("channelNumber", "channelNumber"),
        ("from", "pstnFrom"),
        ("to", "pstnTo"),
        ("failedReason", "failedReason"),
        ("recordingUrl", "recordingUrl"),
    ];
    for (wire, field) in text_keys {
        let expected = match sent.get(wire) {
            None | Some(Value::Null) => Value::Null,
            Some(Value::String(s)) if s.is_empty() => Value::Null,
            Some(v) => v.clone(),
        };
        assert_eq!(call[field], expected, "{label}: {wire} -> {field}");
    }
    for (wire, field) in [("callStartedAt", "startedAt"), ("callEndedAt", "endedAt")] {
        let sent_text = sent[wire].as_str().unwrap_or_default();
        if sent_text.is_empty() {
            assert_eq!(call[field], Value::Null, "{label}: {wire}");
        } else {
            let sent_instant = DateTime::parse_from_rfc3339(sent_text).expect("fixture timestamp");
            let read = call[field]
                .as_str()
                .unwrap_or_else(|| panic!("{label}: {field} missing"));
            assert!(read.ends_with('Z'), "{label}: {field} is UTC: {read}");
            let read_instant: DateTime<Utc> = read.parse().expect("RFC 3339");
            assert_eq!(read_instant, sent_instant, "{label}: {wire} -> {field}");
        }
    }
    let duration = match &sent["durationInSeconds"] {
        Value::Number(n) => n.as_f64().expect("number"),
        Value::String(s) => s.parse::<f64>().expect("numeric string"),
        other => panic!("{label}: duration {other}"),
    };
    assert_eq!(
        call["durationSeconds"],
        json!(duration.round() as i64),
        "{label}: duration"
    );
}

#[tokio::test]
async fn every_call_ended_fixture_is_stored_and_reads_back_as_sent() {
    for_each_app(async |app| {
        let mut files: Vec<String> = fixture_names("events")
            .into_iter()
            .filter(|f| f.starts_with("call-ended") && f.ends_with(".json"))
            .map(|f| format!("events/{f}"))
            .collect();
        files.extend(
            fixture_names("suspicious")
                .into_iter()
                .map(|f| format!("suspicious/{f}")),
        );
        assert!(files.len() >= 9, "fixtures found: {files:?}");
        for file in &files {
            let (status, body) = app.post_fixture(file).await;
            assert_eq!(status, 200, "[{}] {file}: {body}", app.backend.name());
            assert_eq!(
                body["status"],
                "stored",
                "[{}] {file}: {body}",
                app.backend.name()
            );
            let sent = fixture_json(file);
            let data = app
                .query(&call_query(), json!({ "id": sent["callId"] }))
                .await;
            let label = format!("[{}] {file}", app.backend.name());
            assert_reads_back_as_sent(&sent, &data["call"], &label);
            assert_eq!(
                data["call"]["rawPayload"].as_str().map(str::as_bytes),
                Some(fixture_bytes(file).as_slice()),
                "{label}: raw body kept"
            );
        }
    })
    .await;
}

#[tokio::test]
async fn a_never_answered_outgoing_call_is_stored_without_a_start_time() {
    for_each_app(async |app| {
        let (status, _) = app
            .post_fixture("events/call-ended-outgoing-never-answered.json")
            .await;
        assert_eq!(status, 200);
        let data = app
            .query(&call_query(), json!({ "id": "call_8F2kS3zQrC" }))
            .await;
        assert_eq!(data["call"]["startedAt"], Value::Null);
        assert_eq!(data["call"]["direction"], "OUTGOING");
        assert_eq!(data["call"]["durationSeconds"], 0);
    })
    .await;
}

#[tokio::test]
async fn redelivered_call_is_stored_once() {
    for_each_app(async |app| {
        let file = "events/call-ended-incoming-recorded.json";
        let (_, first) = app.post_fixture(file).await;
        let (status, second) = app.post_fixture(file).await;
        assert_eq!(first["status"], "stored");
        assert_eq!(status, 200);
        assert_eq!(second["status"], "duplicate");
        let data = app
            .query(
                "{ calls { totalCount nodes { callId revision } } }",
                json!({}),
            )
            .await;
        assert_eq!(data["calls"]["totalCount"], 1);
        assert_eq!(data["calls"]["nodes"][0]["revision"], 1);
        // One after the other: two commits of one delivery each, none retried.
        let health: Value = reqwest::get(app.url("/health"))
            .await
            .expect("health")
            .json()
            .await
            .expect("health JSON");
        assert_eq!(
            health,
            json!({
                "status": "ok",
                "writer": { "batchesCommitted": 2, "largestBatch": 1, "batchesRetriedOneByOne": 0 },
            }),
            "[{}]",
            app.backend.name()
        );
    })
    .await;
}

#[tokio::test]
async fn invalid_deliveries_get_a_4xx_and_leave_the_stored_call_unchanged() {
    for_each_app(async |app| {
        let (status, _) = app
            .post_fixture("events/call-ended-incoming-recorded.json")
            .await;
        assert_eq!(status, 200);
        let before = app
            .query(&call_query(), json!({ "id": "call_8F2kQ1xLmA" }))
            .await;
        let expectations = [
            ("array-body.json", 422, "INVALID_PAYLOAD"),
            ("empty-call-id.json", 422, "INVALID_PAYLOAD"),
            ("missing-call-id.json", 422, "INVALID_PAYLOAD"),
            ("negative-duration.json", 422, "INVALID_PAYLOAD"),
            ("non-numeric-duration.json", 422, "INVALID_PAYLOAD"),
            ("not-json.txt", 400, "MALFORMED_BODY"),
            ("truncated.json", 400, "MALFORMED_BODY"),
            ("unknown-direction.json", 422, "INVALID_PAYLOAD"),
            ("unparseable-ended-at.json", 422, "INVALID_PAYLOAD"),
        ];
        assert_eq!(fixture_names("invalid").len(), expectations.len());
        for (file, expected_status, code) in expectations {
            let (status, body) = app
                .post_webhook(
                    "application/json",
                    fixture_bytes(&format!("invalid/{file}")),
                )
                .await;
            assert_eq!(
                status,
                expected_status,
                "[{}] {file}: {body}",
                app.backend.name()
            );
            assert_eq!(body["error"]["code"], code, "{file}");
        }
        let after = app
            .query(&call_query(), json!({ "id": "call_8F2kQ1xLmA" }))
            .await;
        assert_eq!(before, after, "the stored call is unchanged");
    })
    .await;
}

#[tokio::test]
async fn an_invalid_call_lists_every_field_problem() {
    for_each_app(async |app| {
        let mut body = fixture_json("events/call-ended-incoming-recorded.json");
        body["callDirection"] = json!("SIDEWAYS");
        body["durationInSeconds"] = json!(-1);
        body["callEndedAt"] = json!("yesterday");
        let (status, answer) = app.post_webhook("application/json", body.to_string()).await;
        assert_eq!(status, 422);
        let fields: Vec<&str> = answer["error"]["details"]
            .as_array()
            .expect("details")
            .iter()
            .map(|d| d["field"].as_str().expect("field"))
            .collect();
        assert_eq!(
            fields,
            ["callDirection", "callEndedAt", "durationInSeconds"]
        );
    })
    .await;
}

#[tokio::test]
async fn the_form_body_stores_the_same_call_as_json() {
    for_each_app(async |app| {
        let (status, body) = app
            .post_fixture("events/call-ended-form-urlencoded.txt")
            .await;
        assert_eq!(status, 200, "{body}");
        let mut json_twin = fixture_json("events/call-ended-incoming-recorded.json");
        json_twin["callId"] = json!("call_8J4fA9dWxG");
        json_twin["chatMessageId"] = json!("msg_8J4fA9dWxG");
        json_twin["recordingUrl"] = json!("https://recordings.doubletick.io/call_8J4fA9dWxG.mp3");
        let data = app
            .query(&call_query(), json!({ "id": "call_8J4fA9dWxG" }))
            .await;
        assert_reads_back_as_sent(&json_twin, &data["call"], "form");
        assert_eq!(data["call"]["anomalies"], json!([]));
    })
    .await;
}

#[tokio::test]
async fn other_lifecycle_events_are_acknowledged_but_not_listed_as_calls() {
    for_each_app(async |app| {
        for file in [
            "events/call-incoming-initiated.json",
            "events/call-accepted.json",
        ] {
            let (status, body) = app.post_fixture(file).await;
            assert_eq!(status, 200, "{file}: {body}");
            assert_eq!(body["concluded"], false);
        }
        let (status, body) = app.post_fixture("events/call-permission-reply.json").await;
        assert_eq!(status, 200);
        assert_eq!(body["status"], "ignored");
        let data = app.query("{ calls { totalCount } }", json!({})).await;
        assert_eq!(data["calls"]["totalCount"], 0);
    })
    .await;
}

/// SQLite: a stored delivery's pages reach the database file soon after its commit, copied by
/// the background checkpointer, not only once SQLite's own threshold (1 000 pages of log) is
/// crossed. Until then the file holds just its first page: the schema is still in the log.
#[tokio::test]
async fn sqlite_commits_reach_the_database_file_without_waiting_for_the_log_to_fill() {
    let app = TestApp::spawn(&Backend::Sqlite).await;
    let file = app
        .database
        .url
        .trim_start_matches("sqlite://")
        .trim_end_matches("?mode=rwc")
        .to_owned();
    let size = || std::fs::metadata(&file).map_or(0, |m| m.len());
    let before = size();
    assert!(
        before <= 4096,
        "the schema was already copied: {before} bytes"
    );
    let (status, _) = app
        .post_fixture("events/call-ended-outgoing-never-answered.json")
        .await;
    assert_eq!(status, 200);
    let deadline = Instant::now() + Duration::from_secs(10);
    while size() <= 40_960 {
        assert!(
            Instant::now() < deadline,
            "the database file stayed at {} bytes",
            size()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    app.finish().await;
}
