//! Every bad input with its expected status and code; what is logged for each; nothing at all for strangers.

use crate::kit::{Inspect, TestApp, fixture_bytes, fixture_json, for_each_app, for_each_app_with};
use serde_json::{Value, json};

const TOKEN: &str = "table-driven-secret";
const LIMIT: usize = 256 * 1024;

/// One bad (or borderline) request and what it must get.
struct Case {
    label: &'static str,
    method: &'static str,
    content_type: Option<&'static str>,
    body: Vec<u8>,
    authenticated: bool,
    status: u16,
    code: &'static str,
    /// The outcome logged for it; `None`: not a delivery, nothing logged.
    logged: Option<&'static str>,
}

fn case(
    label: &'static str,
    content_type: &'static str,
    body: impl Into<Vec<u8>>,
    status: u16,
    code: &'static str,
) -> Case {
    let logged = match status {
        200 => Some("ignored"),
        401 | 405 => None,
        _ => Some("rejected"),
    };
    Case {
        label,
        method: "POST",
        content_type: Some(content_type),
        body: body.into(),
        authenticated: true,
        status,
        code,
        logged,
    }
}

fn ended_with(changes: Value) -> Vec<u8> {
    let mut body = fixture_json("events/call-ended-incoming-recorded.json");
    if let (Some(target), Value::Object(changes)) = (body.as_object_mut(), changes) {
        for (key, value) in changes {
            if value == json!("<remove>") {
                target.remove(&key);
            } else {
                target.insert(key, value);
            }
        }
    }
    body.to_string().into_bytes()
}

fn cases() -> Vec<Case> {
    let json = "application/json";
    let form = "application/x-www-form-urlencoded";
    let valid = fixture_bytes("events/call-ended-incoming-recorded.json");
    let mut oversized = valid.clone();
    oversized.pop();
    oversized.extend(std::iter::repeat_n(b' ', LIMIT));
    oversized.push(b'}');
    let mut cases = vec![
        // Strangers: refused before anything else, whatever the body.
        Case {
            authenticated: false,
            ..case(
                "no secret, valid call",
                json,
                valid.clone(),
                401,
                "UNAUTHENTICATED",
            )
        },
        Case {
            authenticated: false,
            ..case("no secret, garbage", json, "{{{{", 401, "UNAUTHENTICATED")
        },
        Case {
            authenticated: false,
            ..case(
                "no secret, oversized",
                json,
                oversized.clone(),
                401,
                "UNAUTHENTICATED",
            )
        },
        Case {
            authenticated: false,
            ..case(
                "no secret, unsupported type",
                "text/csv",
                "a,b",
                401,
                "UNAUTHENTICATED",
            )
        },
        // Methods.
        Case {
            method: "GET",
            ..case("GET", json, "", 405, "METHOD_NOT_ALLOWED")
        },
        Case {
            method: "PUT",
            ..case("PUT", json, valid.clone(), 405, "METHOD_NOT_ALLOWED")
        },
        Case {
            method: "DELETE",
            ..case("DELETE", json, "", 405, "METHOD_NOT_ALLOWED")
        },
        Case {
            method: "PATCH",
            ..case("PATCH", json, valid.clone(), 405, "METHOD_NOT_ALLOWED")
        },
        // Size.
        case(
            "one byte over 256 KiB",
            json,
            oversized,
            413,
            "PAYLOAD_TOO_LARGE",
        ),
        // Content types.
        case(
            "text/plain",
            "text/plain",
            valid.clone(),
            415,
            "UNSUPPORTED_MEDIA_TYPE",
        ),
        case(
            "application/xml",
            "application/xml",
            "<call/>",
            415,
            "UNSUPPORTED_MEDIA_TYPE",
        ),
        case(
            "multipart without a boundary",
            "multipart/form-data",
            "x",
            400,
            "MALFORMED_BODY",
        ),
        // Not JSON / not a form.
        case("empty JSON body", json, "", 400, "MALFORMED_BODY"),
        case(
            "truncated JSON",
            json,
            fixture_bytes("invalid/truncated.json"),
            400,
            "MALFORMED_BODY",
        ),
        case(
            "JSON with a trailing comma",
            json,
            r#"{"event":"CALL_ENDED",}"#,
            400,
            "MALFORMED_BODY",
        ),
        case(
            "invalid UTF-8 in JSON",
            json,
            b"{\"event\":\"\xff\"}".to_vec(),
            400,
            "MALFORMED_BODY",
        ),
        case(
            "text that is not a form",
            form,
            fixture_bytes("invalid/not-json.txt"),
            400,
            "MALFORMED_BODY",
        ),
        case(
            "invalid UTF-8 in a form",
            form,
            b"event=\xff\xfe".to_vec(),
            400,
            "MALFORMED_BODY",
        ),
        case(
            "multipart with garbage",
            "multipart/form-data; boundary=XyZ",
            "not multipart at all",
            400,
            "MALFORMED_BODY",
        ),
        // Valid syntax, not a storable call: 422 with the fields.
        case(
            "a JSON array",
            json,
            fixture_bytes("invalid/array-body.json"),
            422,
            "INVALID_PAYLOAD",
        ),
        case(
            "a JSON string",
            json,
            "\"CALL_ENDED\"",
            422,
            "INVALID_PAYLOAD",
        ),
        case("JSON null", json, "null", 422, "INVALID_PAYLOAD"),
        case("an empty object", json, "{}", 422, "INVALID_PAYLOAD"),
        case("an empty form", form, "", 422, "INVALID_PAYLOAD"),
        case(
            "missing callId",
            json,
            fixture_bytes("invalid/missing-call-id.json"),
            422,
            "INVALID_PAYLOAD",
        ),
        case(
            "empty callId",
            json,
            fixture_bytes("invalid/empty-call-id.json"),
            422,
            "INVALID_PAYLOAD",
        ),
        case(
            "callId as an object",
            json,
            ended_with(json!({"callId": {"id": 1}})),
            422,
            "INVALID_PAYLOAD",
        ),
        case(
            "unknown direction",
            json,
            fixture_bytes("invalid/unknown-direction.json"),
            422,
            "INVALID_PAYLOAD",
        ),
        case(
            "negative duration",
            json,
            fixture_bytes("invalid/negative-duration.json"),
            422,
            "INVALID_PAYLOAD",
        ),
        case(
            "negative duration as a string",
            json,
            ended_with(json!({"durationInSeconds": "-3"})),
            422,
            "INVALID_PAYLOAD",
        ),
        case(
            "words for a duration",
            json,
            fixture_bytes("invalid/non-numeric-duration.json"),
            422,
            "INVALID_PAYLOAD",
        ),
        case(
            "NaN duration",
            json,
            ended_with(json!({"durationInSeconds": "NaN"})),
            422,
            "INVALID_PAYLOAD",
        ),
        case(
            "infinite duration",
            json,
            ended_with(json!({"durationInSeconds": "inf"})),
            422,
            "INVALID_PAYLOAD",
        ),
        case(
            "absurd duration",
            json,
            ended_with(json!({"durationInSeconds": 1e12})),
            422,
            "INVALID_PAYLOAD",
        ),
        case(
            "duration as a boolean",
            json,
            ended_with(json!({"durationInSeconds": true})),
            422,
            "INVALID_PAYLOAD",
        ),
        case(
            "unparseable end time",
            json,
            fixture_bytes("invalid/unparseable-ended-at.json"),
            422,
            "INVALID_PAYLOAD",
        ),
        case(
            "end time without an offset",
            json,
            ended_with(json!({"callEndedAt": "2026-03-02T09:19:17"})),
            422,
            "INVALID_PAYLOAD",
        ),
        case(
            "ended without an end time",
            json,
            ended_with(json!({"callEndedAt": ""})),
            422,
            "INVALID_PAYLOAD",
        ),
        case(
            "ended without a customer",
            json,
            ended_with(json!({"customerNumber": "<remove>"})),
            422,
            "INVALID_PAYLOAD",
        ),
        case(
            "a name that is an object",
            json,
            ended_with(json!({"customerName": {"first": "M"}})),
            422,
            "INVALID_PAYLOAD",
        ),
        case(
            "a flag that is not a boolean",
            json,
            ended_with(json!({"isNewCaller": "maybe"})),
            422,
            "INVALID_PAYLOAD",
        ),
        case(
            "event as a number is an unknown event",
            json,
            ended_with(json!({"event": 7})),
            200,
            "",
        ),
        case(
            "event missing",
            json,
            ended_with(json!({"event": "<remove>"})),
            422,
            "INVALID_PAYLOAD",
        ),
        // Well-formed deliveries that are not calls: acknowledged and logged, not stored.
        case(
            "an unknown event",
            json,
            ended_with(json!({"event": "CALL_TELEPORTED"})),
            200,
            "",
        ),
    ];
    cases.push(case(
        "a permission reply",
        json,
        fixture_bytes("events/call-permission-reply.json"),
        200,
        "",
    ));
    cases
}

/// Each logged delivery's outcome and how many bytes of its body were kept, oldest first.
async fn logged_outcomes(app: &TestApp) -> Vec<(String, i64)> {
    app.query_all(
        "SELECT outcome, CAST(LENGTH(body) AS BIGINT) AS size FROM deliveries ORDER BY id",
    )
    .await
    .iter()
    .map(|r| {
        (
            r.try_get::<String>("", "outcome").expect("outcome"),
            r.try_get::<i64>("", "size").expect("size"),
        )
    })
    .collect()
}

#[tokio::test]
async fn every_bad_input_gets_its_status_and_code_and_strangers_leave_no_trace() {
    for_each_app_with(
        |s| s.webhook_token = vec![TOKEN.into()],
        async |app| {
            let mut expected_log = Vec::new();
            for case in cases() {
                let method = reqwest::Method::from_bytes(case.method.as_bytes()).expect("method");
                let mut request = app
                    .client
                    .request(method, app.url("/webhooks/doubletick"))
                    .body(case.body.clone());
                if let Some(content_type) = case.content_type {
                    request = request.header("content-type", content_type);
                }
                if case.authenticated {
                    request = request.bearer_auth(TOKEN);
                }
                let response = request.send().await.expect("request");
                let status = response.status().as_u16();
                let answer: Value = response.json().await.unwrap_or_default();
                let label = format!("[{}] {}", app.backend.name(), case.label);
                assert_eq!(status, case.status, "{label}: {answer}");
                if case.status == 200 {
                    assert_eq!(answer["status"], "ignored", "{label}: {answer}");
                } else {
                    assert_eq!(answer["error"]["code"], case.code, "{label}: {answer}");
                    assert!(
                        answer["error"]["message"]
                            .as_str()
                            .is_some_and(|m| !m.is_empty()),
                        "{label}: a message"
                    );
                }
                if case.code == "INVALID_PAYLOAD" {
                    let details = answer["error"]["details"].as_array().expect("details");
                    assert!(!details.is_empty(), "{label}: lists the field problems");
                    assert!(details.iter().all(|d| d["field"].is_string()), "{label}");
                }
                if let Some(outcome) = case.logged {
                    let kept = case.body.len().min(LIMIT) as i64;
                    expected_log.push((outcome.to_owned(), kept));
                }
                let logged = logged_outcomes(app).await;
                assert_eq!(logged, expected_log, "{label}: the delivery log");
            }
            assert_eq!(app.count("calls").await, 0);
            assert_eq!(app.count("call_events").await, 0);
        },
    )
    .await;
}

#[tokio::test]
async fn an_oversized_delivery_is_logged_with_its_first_256_kib_and_their_digest() {
    for_each_app(async |app| {
        let mut body = vec![b'{'];
        body.extend(std::iter::repeat_n(b'a', LIMIT + 10_000));
        let (status, answer) = app.post_webhook("application/json", body.clone()).await;
        assert_eq!(status, 413, "{answer}");
        let rows = app
            .query_all("SELECT body, sha256, outcome, reason FROM deliveries")
            .await;
        let row = rows.first().expect("a logged delivery");
        let kept: Vec<u8> = row.try_get("", "body").expect("body");
        assert_eq!(kept, body[..LIMIT].to_vec());
        let digest: String = row.try_get("", "sha256").expect("sha256");
        assert_eq!(digest, sha256_hex(&kept));
        assert_eq!(
            row.try_get::<String>("", "outcome").expect("outcome"),
            "rejected"
        );
        let reason: String = row.try_get("", "reason").expect("reason");
        assert!(reason.contains("PAYLOAD_TOO_LARGE"), "{reason}");
    })
    .await;
}

#[tokio::test]
async fn a_body_of_exactly_256_kib_is_accepted() {
    for_each_app(async |app| {
        let mut body = fixture_bytes("events/call-ended-pstn.json");
        let end = body.iter().rposition(|b| *b == b'}').expect("object");
        body.truncate(end);
        body.extend(std::iter::repeat_n(b' ', LIMIT - body.len() - 1));
        body.push(b'}');
        assert_eq!(body.len(), LIMIT);
        let (status, answer) = app.post_webhook("application/json", body).await;
        assert_eq!(status, 200, "[{}] {answer}", app.backend.name());
        assert_eq!(answer["status"], "stored");
    })
    .await;
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}
