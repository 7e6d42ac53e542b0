//! JSON, URL-encoded and multipart deliveries of the same call are stored identically.

use crate::kit::{CALL_FIELDS, TestApp, fixture_json, fixture_names, for_each_app};
use serde_json::{Value, json};

/// Every terminal fixture: the calls a format could change.
fn terminal_fixtures() -> Vec<String> {
    let mut files: Vec<String> = fixture_names("events")
        .into_iter()
        .filter(|f| f.ends_with(".json"))
        .map(|f| format!("events/{f}"))
        .filter(|f| {
            let event = fixture_json(f)["event"].clone();
            ["CALL_ENDED", "CALL_MISSED", "CALL_REJECTED"].contains(&event.as_str().unwrap_or(""))
        })
        .collect();
    files.extend(
        fixture_names("suspicious")
            .into_iter()
            .map(|f| format!("suspicious/{f}")),
    );
    files
}

/// A JSON value as DoubleTick's FORM_DATA sends it: every value a string.
fn as_form_value(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn form_body(object: &Value) -> String {
    let mut form = form_urlencoded::Serializer::new(String::new());
    for (key, value) in object.as_object().expect("object") {
        form.append_pair(key, &as_form_value(value));
    }
    form.finish()
}

fn multipart(object: &Value) -> reqwest::multipart::Form {
    object
        .as_object()
        .expect("object")
        .iter()
        .fold(reqwest::multipart::Form::new(), |form, (key, value)| {
            form.text(key.clone(), as_form_value(value))
        })
}

async fn post_as(app: &TestApp, format: &str, object: &Value) -> Value {
    let request = app.client.post(app.url("/webhooks/doubletick"));
    let request = match format {
        "json" => request
            .header("content-type", "application/json")
            .body(object.to_string()),
        "urlencoded" => request
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form_body(object)),
        _ => request.multipart(multipart(object)),
    };
    let response = request.send().await.expect("delivery");
    let status = response.status().as_u16();
    let answer: Value = response.json().await.expect("JSON answer");
    assert_eq!(status, 200, "[{}] {format}: {answer}", app.backend.name());
    answer
}

/// What a reader sees of a call, minus what names the delivery rather than the call.
fn view(call: &Value) -> Value {
    let mut view = call.clone();
    let object = view.as_object_mut().expect("a stored call");
    for key in ["callId", "receivedAt", "rawPayload", "rawContentType"] {
        object.remove(key);
    }
    view
}

/// Anomalies about JSON types cannot arise in a form, where every value is a string.
fn without_json_type_anomalies(mut view: Value) -> Value {
    if let Some(list) = view["anomalies"].as_array_mut() {
        list.retain(|a| a != "DURATION_AS_STRING");
    }
    view
}

#[tokio::test]
async fn every_terminal_fixture_is_stored_identically_as_json_urlencoded_and_multipart() {
    let query = format!("query($id: ID!) {{ call(callId: $id) {{ {CALL_FIELDS} }} }}");
    for_each_app(async |app| {
        let files = terminal_fixtures();
        assert!(files.len() >= 10, "{files:?}");
        for file in &files {
            let mut views = Vec::new();
            for format in ["json", "urlencoded", "multipart"] {
                let mut object = fixture_json(file);
                let call_id = format!("{}_{format}", object["callId"].as_str().expect("callId"));
                object["callId"] = json!(call_id);
                let answer = post_as(app, format, &object).await;
                assert_eq!(answer["status"], "stored", "{file} as {format}: {answer}");
                let call = app.query(&query, json!({ "id": call_id })).await["call"].clone();
                let raw = call["rawPayload"].as_str().expect("raw payload").to_owned();
                views.push((format, view(&call), raw, call["rawContentType"].clone()));
            }
            let label = format!("[{}] {file}", app.backend.name());
            let json_view = without_json_type_anomalies(views[0].1.clone());
            assert_eq!(
                views[1].1, json_view,
                "{label}: urlencoded differs from JSON"
            );
            assert_eq!(
                views[2].1, json_view,
                "{label}: multipart differs from JSON"
            );
            assert_eq!(
                views[1].2,
                form_body(&{
                    let mut o = fixture_json(file);
                    o["callId"] =
                        json!(format!("{}_urlencoded", o["callId"].as_str().unwrap_or("")));
                    o
                }),
                "{label}: the form body is kept as sent"
            );
            assert_eq!(views[1].3, "application/x-www-form-urlencoded");
            assert!(
                views[2]
                    .3
                    .as_str()
                    .is_some_and(|t| t.starts_with("multipart/form-data; boundary=")),
                "{label}: {:?}",
                views[2].3
            );
        }
    })
    .await;
}

#[tokio::test]
async fn the_same_event_in_another_format_is_recognised_as_a_redelivery() {
    for_each_app(async |app| {
        for file in terminal_fixtures() {
            if file.contains("duration-as-string") {
                continue;
            }
            let object = fixture_json(&file);
            let first = post_as(app, "urlencoded", &object).await;
            assert_eq!(first["status"], "stored", "{file}");
            for format in ["json", "multipart"] {
                let again = post_as(app, format, &object).await;
                assert_eq!(
                    again["status"],
                    "duplicate",
                    "[{}] {file} as {format} after the form: {again}",
                    app.backend.name()
                );
            }
        }
    })
    .await;
}

#[tokio::test]
async fn numbers_and_booleans_sent_as_strings_read_back_typed() {
    for_each_app(async |app| {
        let mut missed = fixture_json("events/call-missed.json");
        missed["isNewCaller"] = json!("false");
        missed["isChatAssigned"] = json!("TRUE");
        missed["durationInSeconds"] = json!("0");
        post_as(app, "urlencoded", &missed).await;
        let call = app
            .query(
                "query($id: ID!) { call(callId: $id) { isNewCaller isChatAssigned durationSeconds anomalies } }",
                json!({ "id": missed["callId"] }),
            )
            .await["call"]
            .clone();
        assert_eq!(call["isNewCaller"], false, "[{}]", app.backend.name());
        assert_eq!(call["isChatAssigned"], true);
        assert_eq!(call["durationSeconds"], 0);
        assert_eq!(call["anomalies"], json!([]), "strings are normal in a form");
    })
    .await;
}

#[tokio::test]
async fn odd_values_are_stored_with_their_anomalies_and_filterable() {
    for_each_app(async |app| {
        let mut zero = fixture_json("events/call-ended-incoming-recorded.json");
        zero["callId"] = json!("call_zero");
        zero["callStartedAt"] = zero["callEndedAt"].clone();
        zero["durationInSeconds"] = json!(0);
        let mut half = fixture_json("events/call-ended-incoming-recorded.json");
        half["callId"] = json!("call_half");
        half["durationInSeconds"] = json!(311.5);
        let mut just_under = fixture_json("events/call-ended-incoming-recorded.json");
        just_under["callId"] = json!("call_just_under");
        just_under["durationInSeconds"] = json!("312.4999");
        let expectations: Vec<(Value, i64, Value)> = vec![
            (
                fixture_json("events/call-ended-incoming-recorded.json"),
                312,
                json!([]),
            ),
            (
                fixture_json("suspicious/duration-as-string.json"),
                312,
                json!(["DURATION_AS_STRING"]),
            ),
            (
                fixture_json("suspicious/duration-disagrees-with-timestamps.json"),
                3000,
                json!(["DURATION_MISMATCH"]),
            ),
            (
                fixture_json("suspicious/ended-before-started.json"),
                312,
                json!(["DURATION_MISMATCH", "ENDED_BEFORE_STARTED"]),
            ),
            (
                fixture_json("suspicious/fractional-duration-formatted-number-extra-field.json"),
                313,
                json!([
                    "DURATION_FRACTIONAL",
                    "FORMATTED_PHONE_NUMBER",
                    "UNKNOWN_FIELDS"
                ]),
            ),
            (
                fixture_json("suspicious/offset-timestamps.json"),
                312,
                json!(["TIMESTAMP_OFFSET"]),
            ),
            (zero, 0, json!(["ANSWERED_ZERO_DURATION"])),
            (half, 312, json!(["DURATION_FRACTIONAL"])),
            (
                just_under,
                312,
                json!(["DURATION_AS_STRING", "DURATION_FRACTIONAL"]),
            ),
        ];
        for (body, _, _) in &expectations {
            post_as(app, "json", body).await;
        }
        let label = app.backend.name();
        for (body, duration, anomalies) in &expectations {
            let call = app
                .query(
                    "query($id: ID!) { call(callId: $id) { durationSeconds anomalies customerNumber } }",
                    json!({ "id": body["callId"] }),
                )
                .await["call"]
                .clone();
            assert_eq!(
                call["anomalies"], *anomalies,
                "[{label}] {}",
                body["callId"]
            );
            assert_eq!(
                call["durationSeconds"], *duration,
                "[{label}] {}",
                body["callId"]
            );
            assert_eq!(
                call["customerNumber"], body["customerNumber"],
                "kept as sent"
            );
        }
        let count = |has: bool| async move {
            app.query(
                "query($has: Boolean) { calls(filter: { hasAnomalies: $has }) { totalCount } }",
                json!({ "has": has }),
            )
            .await["calls"]["totalCount"]
                .as_i64()
                .expect("count")
        };
        assert_eq!(count(true).await, 8, "[{label}] hasAnomalies: true");
        assert_eq!(count(false).await, 1, "[{label}] hasAnomalies: false");
    })
    .await;
}
