//! Deliveries no database can store as they are (a NUL character in a text field, a 4 KB
//! `callId`) are answered 422 naming the field and kept in the log as rejected, on both
//! backends: never 503 forever, never lost.

use crate::kit::{Inspect, for_each_app, load};
use serde_json::{Value, json};

fn call(id: &str) -> Value {
    let mut body: Value = serde_json::from_str(&load::call_body("unstorable", 1)).expect("body");
    body["callId"] = json!(id);
    body
}

#[tokio::test]
async fn values_no_database_stores_are_answered_422_naming_the_field_and_logged_as_rejected() {
    for_each_app(async |app| {
        let name = app.backend.name();
        let mut nul_name = call("call_nul_name");
        nul_name["customerName"] = json!("Asha\u{0}Rao");
        let mut nul_agent = call("call_nul_agent");
        nul_agent["pickedBy"] = json!("9197\u{0}00");
        let cases = [
            ("callId", call("call_\u{0}_nul"), "NUL"),
            ("customerName", nul_name, "NUL"),
            ("pickedBy", nul_agent, "NUL"),
            ("callId", call(&"k".repeat(4096)), "bytes long"),
        ];
        for (field, body, why) in &cases {
            for attempt in 0..2 {
                let (status, answer) = app.post_webhook("application/json", body.to_string()).await;
                assert_eq!(status, 422, "[{name}] {field} ({attempt}): {answer}");
                assert_eq!(
                    answer["error"]["code"], "INVALID_PAYLOAD",
                    "[{name}] {answer}"
                );
                let details = answer["error"]["details"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                assert!(
                    details.iter().any(|d| d["field"] == *field
                        && d["message"].as_str().is_some_and(|m| m.contains(why))),
                    "[{name}] names {field} and why: {answer}"
                );
            }
        }
        assert_eq!(
            app.count_where("deliveries", "outcome = 'rejected'").await,
            (cases.len() * 2) as i64,
            "[{name}] every refusal is kept in the log"
        );
        assert_eq!(app.count("calls").await, 0, "[{name}] nothing half-stored");
        let (status, answer) = app
            .post_webhook("application/json", call("call_fine").to_string())
            .await;
        assert_eq!(status, 200, "[{name}] {answer}");
        // The longest accepted key is stored whole.
        let longest = "k".repeat(calltrail::webhook::payload::MAX_KEY_BYTES);
        let (status, answer) = app
            .post_webhook("application/json", call(&longest).to_string())
            .await;
        assert_eq!(status, 200, "[{name}] {answer}");
        assert!(app.stored_call_ids().await.contains(&longest));
    })
    .await;
}
