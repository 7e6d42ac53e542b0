//! The whole call lifecycle merged by callId: any order, duplicates, late events, revisions, concurrency.

use crate::kit::{CALL_FIELDS, Inspect, TestApp, fixture_json, for_each_app};
use serde_json::{Value, json};

fn call_query() -> String {
    format!("query($id: ID!) {{ call(callId: $id) {{ {CALL_FIELDS} }} }}")
}

/// A fixture with its `callId` (and everything derived from it) replaced.
fn event(file: &str, call_id: &str) -> Value {
    let mut body = fixture_json(&format!("events/{file}"));
    body["callId"] = json!(call_id);
    body
}

async fn post(app: &TestApp, body: &Value) -> Value {
    let (status, answer) = app.post_webhook("application/json", body.to_string()).await;
    assert_eq!(status, 200, "[{}] {body}: {answer}", app.backend.name());
    answer
}

async fn call(app: &TestApp, call_id: &str) -> Value {
    app.query(&call_query(), json!({ "id": call_id })).await["call"].clone()
}

async fn total(app: &TestApp) -> i64 {
    app.query("{ calls { totalCount } }", json!({})).await["calls"]["totalCount"]
        .as_i64()
        .expect("totalCount")
}

/// Rows of a table for one call, counted straight in the database (in-progress calls included).
async fn rows(app: &TestApp, table: &str, call_id: &str) -> i64 {
    app.count_where(table, &format!("call_id = '{call_id}'"))
        .await
}

/// The fields of a call that its events decide (not its storage times or raw body).
fn merged_view(call: &Value) -> Value {
    let mut view = call.clone();
    if let Some(object) = view.as_object_mut() {
        for volatile in ["callId", "receivedAt", "rawPayload", "rawContentType"] {
            object.remove(volatile);
        }
    }
    view
}

#[tokio::test]
async fn an_in_progress_call_is_kept_but_listed_only_once_its_terminal_event_arrives() {
    for_each_app(async |app| {
        let id = "call_8F2kQ1xLmA";
        let initiated = post(app, &event("call-incoming-initiated.json", id)).await;
        assert_eq!(initiated["status"], "merged");
        assert_eq!(initiated["concluded"], false);
        let accepted = post(app, &event("call-accepted.json", id)).await;
        assert_eq!(accepted["concluded"], false);
        assert_eq!(rows(app, "calls", id).await, 1, "the state is kept");
        assert_eq!(total(app).await, 0, "[{}] not counted", app.backend.name());
        assert_eq!(call(app, id).await, Value::Null, "not listed");

        let mut ended = event("call-ended-incoming-recorded.json", id);
        ended["chatId"] = json!("");
        let answer = post(app, &ended).await;
        assert_eq!(answer["status"], "stored");
        assert_eq!(answer["concluded"], true);
        assert_eq!(total(app).await, 1);
        let stored = call(app, id).await;
        assert_eq!(stored["status"], "END");
        assert_eq!(
            stored["chatId"], "chat_5b0e91",
            "a field only the accepted event stated is merged in"
        );
        assert_eq!(stored["startedAt"], "2026-03-02T09:14:05.000Z");
        assert_eq!(stored["revision"], 1);
    })
    .await;
}

#[tokio::test]
async fn all_seven_lifecycle_events_update_the_one_row_of_their_call() {
    for_each_app(async |app| {
        let id = "call_seven_events";
        let mut outgoing = event("call-incoming-initiated.json", id);
        outgoing["event"] = json!("CALL_OUTGOING_INITIATED");
        let mut rejected = event("call-rejected.json", id);
        rejected["callEndedAt"] = json!("2026-03-02T09:30:00.000Z");
        let mut missed = event("call-missed.json", id);
        missed["callEndedAt"] = json!("2026-03-02T09:31:00.000Z");
        let sequence = [
            event("call-incoming-initiated.json", id),
            outgoing,
            event("call-not-picked.json", id),
            event("call-accepted.json", id),
            event("call-ended-incoming-recorded.json", id),
            rejected,
            missed,
        ];
        let mut names = Vec::new();
        for body in &sequence {
            let answer = post(app, body).await;
            assert_eq!(answer["callId"], id);
            names.push(body["event"].as_str().expect("event").to_owned());
        }
        names.sort();
        names.dedup();
        assert_eq!(names.len(), 7, "all seven events were sent");
        assert_eq!(rows(app, "calls", id).await, 1);
        assert_eq!(rows(app, "call_events", id).await, 7);
        let stored = call(app, id).await;
        assert_eq!(
            stored["status"], "MISSED",
            "the last terminal event decides"
        );
        assert_eq!(stored["notPickedCount"], 1);
        assert_eq!(stored["revision"], 3, "END, then REJECT, then MISSED");
    })
    .await;
}

#[tokio::test]
async fn events_in_any_order_and_repeated_end_in_the_same_call() {
    let files = [
        "call-incoming-initiated.json",
        "call-accepted.json",
        "call-ended-incoming-recorded.json",
    ];
    let orders: [[usize; 5]; 6] = [
        [0, 1, 2, 2, 0],
        [0, 2, 1, 1, 2],
        [1, 0, 2, 0, 1],
        [1, 2, 0, 2, 2],
        [2, 0, 1, 0, 0],
        [2, 1, 0, 1, 2],
    ];
    for_each_app(async |app| {
        let mut views = Vec::new();
        for (n, order) in orders.iter().enumerate() {
            let id = format!("call_order_{n}");
            for &i in order {
                post(app, &event(files[i], &id)).await;
            }
            assert_eq!(rows(app, "calls", &id).await, 1);
            views.push(merged_view(&call(app, &id).await));
        }
        for (n, view) in views.iter().enumerate() {
            assert_eq!(
                view,
                &views[0],
                "[{}] order {:?} differs",
                app.backend.name(),
                orders[n]
            );
        }
        assert_eq!(views[0]["status"], "END");
        assert_eq!(views[0]["pickedBy"], "919700011122");
        assert_eq!(views[0]["revision"], 1);
        assert_eq!(total(app).await, 6);
    })
    .await;
}

#[tokio::test]
async fn a_late_non_terminal_event_never_overwrites_the_terminal_state() {
    for_each_app(async |app| {
        let id = "call_8F2kQ1xLmA";
        post(app, &event("call-ended-incoming-recorded.json", id)).await;
        let before = call(app, id).await;
        let mut late = event("call-accepted.json", id);
        late["pickedBy"] = json!("someone-else");
        late["durationInSeconds"] = json!(0);
        post(app, &late).await;
        post(app, &event("call-incoming-initiated.json", id)).await;
        let after = call(app, id).await;
        assert_eq!(after["status"], "END", "[{}]", app.backend.name());
        assert_eq!(after["pickedBy"], "919700011122");
        assert_eq!(after["durationSeconds"], 312);
        assert_eq!(after["endedAt"], before["endedAt"]);
        assert_eq!(after["revision"], 1, "nothing a reader sees changed");
    })
    .await;
}

#[tokio::test]
async fn an_identical_redelivery_changes_nothing() {
    for_each_app(async |app| {
        let id = "call_8F2kQ1xLmA";
        let body = event("call-ended-incoming-recorded.json", id);
        post(app, &body).await;
        let before = app
            .query(
                "query($id: ID!) { call(callId: $id) { updatedAt revision rawPayload } }",
                json!({ "id": id }),
            )
            .await;
        for _ in 0..3 {
            let answer = post(app, &body).await;
            assert_eq!(answer["status"], "duplicate");
            assert_eq!(answer["concluded"], true);
        }
        let after = app
            .query(
                "query($id: ID!) { call(callId: $id) { updatedAt revision rawPayload } }",
                json!({ "id": id }),
            )
            .await;
        assert_eq!(before, after, "[{}]", app.backend.name());
        assert_eq!(rows(app, "call_events", id).await, 1);
        assert_eq!(
            rows(app, "deliveries", id).await,
            4,
            "every delivery logged"
        );
    })
    .await;
}

#[tokio::test]
async fn a_changed_terminal_redelivery_updates_the_call_and_keeps_earlier_versions_oldest_first() {
    for_each_app(async |app| {
        let id = "call_8F2kQ1xLmA";
        let mut first = event("call-ended-incoming-recorded.json", id);
        first["recordingUrl"] = json!("");
        assert_eq!(post(app, &first).await["status"], "stored");
        let second = event("call-ended-incoming-recorded.json", id);
        assert_eq!(post(app, &second).await["status"], "updated");
        let mut third = second.clone();
        third["endedBy"] = json!("919811122233");
        assert_eq!(post(app, &third).await["status"], "updated");
        assert_eq!(
            post(app, &second).await["status"],
            "duplicate",
            "an old version redelivered is a known event"
        );

        let data = app
            .query(
                "query($id: ID!) { call(callId: $id) { revision recordingUrl endedBy
                   revisions { revision replacedAt call { revision recordingUrl endedBy } } } }",
                json!({ "id": id }),
            )
            .await;
        let current = &data["call"];
        assert_eq!(current["revision"], 3, "[{}]", app.backend.name());
        assert_eq!(current["endedBy"], "919811122233");
        assert_eq!(
            current["recordingUrl"],
            "https://recordings.doubletick.io/call_8F2kQ1xLmA.mp3"
        );
        let revisions = current["revisions"].as_array().expect("revisions");
        assert_eq!(revisions.len(), 2);
        assert_eq!(revisions[0]["revision"], 1);
        assert_eq!(revisions[0]["call"]["recordingUrl"], Value::Null);
        assert_eq!(revisions[0]["call"]["endedBy"], "919700011122");
        assert_eq!(revisions[1]["revision"], 2);
        assert_eq!(
            revisions[1]["call"]["recordingUrl"],
            "https://recordings.doubletick.io/call_8F2kQ1xLmA.mp3"
        );
        assert_eq!(revisions[1]["call"]["endedBy"], "919700011122");
        assert!(
            revisions[0]["replacedAt"].as_str() <= revisions[1]["replacedAt"].as_str(),
            "oldest first"
        );
    })
    .await;
}

#[tokio::test]
async fn fifty_concurrent_deliveries_of_one_call_make_exactly_one_row() {
    for_each_app(async |app| {
        let id = "call_concurrent";
        let mut bodies = Vec::new();
        for n in 0..50 {
            let file = match n % 5 {
                0 => "call-incoming-initiated.json",
                1 => "call-accepted.json",
                2 => "call-not-picked.json",
                _ => "call-ended-incoming-recorded.json",
            };
            bodies.push(event(file, id).to_string());
        }
        let sends = bodies.into_iter().map(|body| {
            let client = app.client.clone();
            let url = app.url("/webhooks/doubletick");
            tokio::spawn(async move {
                let response = client
                    .post(url)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await
                    .expect("delivery");
                let status = response.status().as_u16();
                let answer: Value = response.json().await.expect("JSON answer");
                (status, answer["status"].as_str().unwrap_or("").to_owned())
            })
        });
        let results = join_all(sends).await;
        assert!(
            results.iter().all(|(status, _)| *status == 200),
            "[{}] {results:?}",
            app.backend.name()
        );
        let stored = results.iter().filter(|(_, s)| s == "stored").count();
        assert_eq!(stored, 1, "exactly one delivery concluded the call");
        assert_eq!(rows(app, "calls", id).await, 1);
        assert_eq!(rows(app, "call_events", id).await, 4);
        assert_eq!(rows(app, "deliveries", id).await, 50);
        assert_eq!(total(app).await, 1);
        let merged = call(app, id).await;
        assert_eq!(merged["status"], "END");
        assert_eq!(merged["notPickedCount"], 1);
    })
    .await;
}

async fn join_all<T>(handles: impl Iterator<Item = tokio::task::JoinHandle<T>>) -> Vec<T> {
    let mut out = Vec::new();
    for handle in handles.collect::<Vec<_>>() {
        out.push(handle.await.expect("task"));
    }
    out
}

#[tokio::test]
async fn missed_and_rejected_calls_are_queryable_with_their_details() {
    for_each_app(async |app| {
        let missed_id = "call_8G7vW2bTtE";
        let mut skipped_a = event("call-not-picked.json", missed_id);
        skipped_a["pickedBy"] = json!("agent-a");
        let mut skipped_b = event("call-not-picked.json", missed_id);
        skipped_b["pickedBy"] = json!("agent-b");
        post(app, &skipped_a).await;
        post(app, &skipped_b).await;
        assert_eq!(post(app, &skipped_a).await["status"], "duplicate");
        post(app, &event("call-missed.json", missed_id)).await;
        let missed = call(app, missed_id).await;
        assert_eq!(missed["status"], "MISSED", "[{}]", app.backend.name());
        assert_eq!(missed["isNewCaller"], true);
        assert_eq!(missed["isChatAssigned"], false);
        assert_eq!(missed["notPickedCount"], 2);
        assert_eq!(
            missed["pickedBy"],
            Value::Null,
            "skipped agents did not pick up"
        );
        assert_eq!(missed["startedAt"], Value::Null);
        assert_eq!(missed["endedAt"], "2026-03-02T11:20:44.000Z");

        let rejected_id = "call_8H1uY6cUvF";
        post(app, &event("call-rejected.json", rejected_id)).await;
        let rejected = call(app, rejected_id).await;
        assert_eq!(rejected["status"], "REJECT");
        assert_eq!(rejected["rejectedBy"], "919700011122");
        assert_eq!(rejected["notPickedCount"], 0);

        let mut failed = event("call-ended-outgoing-never-answered.json", "call_failed");
        failed["callStatus"] = json!("FAILED");
        failed["failedReason"] = json!("network");
        post(app, &failed).await;
        let failed = call(app, "call_failed").await;
        assert_eq!(failed["status"], "FAILED");
        assert_eq!(failed["failedReason"], "network");
        assert_eq!(total(app).await, 3);
    })
    .await;
}

#[tokio::test]
async fn a_permission_reply_is_acknowledged_and_logged_but_not_stored_as_a_call() {
    for_each_app(async |app| {
        let (status, answer) = app.post_fixture("events/call-permission-reply.json").await;
        assert_eq!(status, 200);
        assert_eq!(answer["status"], "ignored");
        assert!(answer["deliveryId"].as_i64().is_some(), "{answer}");
        let logged = app
            .count_where(
                "deliveries",
                "event = 'CALL_PERMISSION_REPLY_RECEIVED' AND outcome = 'ignored'",
            )
            .await;
        assert_eq!(logged, 1);
        assert_eq!(app.count("calls").await, 0);
    })
    .await;
}
