//! What the logs never hold, at any level: the real binary at `RUST_LOG=trace`, sent every kind
//! of request (webhooks with the secret in the query, in each header DoubleTick can use, with a
//! wrong one; bodies of every format; GraphQL with an API key over POST and GET, with a wrong
//! key, refused and malformed; exports filtered by the customer), and its whole stdout and stderr searched for each secret and
//! for the customer's name and number.
use std::process::{Child, Command};
use std::time::Duration;

use base64::Engine;
use serde_json::json;

use crate::kit::load::{free_port, serve_binary_with, wait_healthy};
use crate::kit::media::{self, KeyIn, MediaHost};
use crate::kit::{TestDatabase, for_each_backend};

const TOKEN: &str = "wh-secret-4c1f9e7d2b";
const CUSTOMER_NAME: &str = "Zebulon Quartermaine";
const CUSTOMER_NUMBER: &str = "+91 98765-43210";

/// What must never appear in a log line: secrets first, then customer identity. Add any new
/// secret calltrail holds here.
fn never_logged(api_key: &str) -> Vec<(&'static str, String)> {
    vec![
        ("the webhook token", TOKEN.to_owned()),
        ("the API key", api_key.to_owned()),
        (
            "the API key's secret part",
            api_key.rsplit('_').next().unwrap_or_default().to_owned(),
        ),
        ("the customer's name", CUSTOMER_NAME.to_owned()),
        ("the customer's surname", "Quartermaine".to_owned()),
        ("the customer's number", CUSTOMER_NUMBER.to_owned()),
        ("the customer's digits", "919876543210".to_owned()),
        ("the customer's local digits", "9876543210".to_owned()),
        ("the customer's id", "cust_zq_77123".to_owned()),
        ("the DoubleTick API key", media::KEY.to_owned()),
    ]
}

fn call(call_id: &str) -> serde_json::Value {
    json!({
        "event": "CALL_ENDED",
        "callId": call_id,
        "chatMessageId": "msg_secret",
        "chatId": "chat_secret",
        "wabaNumber": "918045671200",
        "customerNumber": CUSTOMER_NUMBER,
        "customerName": CUSTOMER_NAME,
        "customerId": "cust_zq_77123",
        "callDirection": "INCOMING",
        "callStatus": "END",
        "failedReason": "",
        "durationInSeconds": 42,
        "callStartedAt": "2026-03-02T09:14:05.000Z",
        "callEndedAt": "2026-03-02T09:14:47.000Z",
        "pickedBy": "919700011122",
        "rejectedBy": "",
        "endedBy": "919700011122",
        "recordingUrl": "",
        "deviceId": "device_secret"
    })
}

fn create_key(url: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_calltrail"))
        .args(["keys", "create", "--name", "logs", "--role", "admin"])
        .env("DATABASE_URL", url)
        .env("RUST_LOG", "warn")
        .output()
        .expect("keys create");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .expect("a key")
        .trim()
        .to_owned()
}

fn terminate(server: &mut Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status();
    for _ in 0..300 {
        if let Ok(Some(_)) = server.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = server.kill();
    let _ = server.wait();
}

/// Sends every kind of request; returns how many got an answer.
async fn send_everything(base: &str, key: &str, host: &MediaHost) -> usize {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let webhook = format!("{base}/webhooks/doubletick");
    let graphql = format!("{base}/graphql");
    let body = |id: &str| call(id).to_string();
    let form: String = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(
            call("logs_form")
                .as_object()
                .expect("object")
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().map_or(v.to_string(), str::to_owned))),
        )
        .finish();
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("doubletick:{TOKEN}"));
    let query = format!(
        r#"query CustomerHistory {{ calls(filter: {{ customerNumber: "{CUSTOMER_NUMBER}", customerName: "{CUSTOMER_NAME}" }}) {{ totalCount nodes {{ callId customerName customerNumber rawPayload }} }} }}"#
    );
    // Recordings: one archived (the key goes to the fake DoubleTick in `?token=`), one that
    // DoubleTick no longer has; then both played back.
    let mut recorded = call("logs_recorded");
    recorded["recordingUrl"] = json!(host.url("mp3", "logs_recorded"));
    let mut gone = call("logs_gone");
    gone["recordingUrl"] = json!(host.url("missing", "logs_gone"));
    let mut answered = 0;
    for body in [recorded, gone] {
        let sent = client
            .post(&webhook)
            .bearer_auth(TOKEN)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await;
        answered += usize::from(sent.is_ok());
    }
    let state = "{ call(callId: \"logs_recorded\") { recording { state } } }";
    for _ in 0..200 {
        let answer: serde_json::Value = match client
            .post(&graphql)
            .bearer_auth(key)
            .json(&json!({ "query": state }))
            .send()
            .await
        {
            Ok(r) => r.json().await.unwrap_or_default(),
            Err(_) => serde_json::Value::Null,
        };
        if answer["data"]["call"]["recording"]["state"] == "ARCHIVED" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let requests = vec![
        client
            .get(format!("{base}/recordings/logs_recorded"))
            .bearer_auth(key)
            .header("range", "bytes=0-99"),
        client
            .get(format!("{base}/recordings/logs_gone"))
            .bearer_auth(key),
        client
            .post(format!("{webhook}?token={TOKEN}"))
            .header("content-type", "application/json")
            .body(body("logs_query")),
        client
            .post(&webhook)
            .bearer_auth(TOKEN)
            .header("content-type", "application/json")
            .body(body("logs_bearer")),
        client
            .post(&webhook)
            .header("authorization", format!("Basic {basic}"))
            .header("content-type", "application/json")
            .body(body("logs_basic")),
        client
            .post(&webhook)
            .header("x-calltrail-token", TOKEN)
            .header("content-type", "application/json")
            .body(body("logs_bearer")),
        client
            .post(&webhook)
            .bearer_auth(TOKEN)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form),
        client
            .post(format!("{webhook}?token={TOKEN}x"))
            .header("content-type", "application/json")
            .body(body("logs_wrong")),
        client
            .post(&webhook)
            .bearer_auth(TOKEN)
            .header("content-type", "application/json")
            .body(format!("{{\"customerName\": \"{CUSTOMER_NAME}\", broken")),
        client
            .post(&webhook)
            .bearer_auth(TOKEN)
            .header("content-type", "application/json")
            .body(
                json!({ "event": "CALL_ENDED", "callId": "logs_invalid",
                        "customerName": CUSTOMER_NAME, "customerNumber": CUSTOMER_NUMBER,
                        "callStartedAt": "yesterday" })
                .to_string(),
            ),
        client
            .post(&webhook)
            .bearer_auth(TOKEN)
            .header("content-type", "text/plain")
            .body(CUSTOMER_NAME),
        client.get(&webhook).bearer_auth(TOKEN),
        client
            .post(&graphql)
            .bearer_auth(key)
            .json(&json!({ "query": query })),
        client
            .post(&graphql)
            .bearer_auth(key)
            .json(&json!({ "query": "query ByName($n: String) { calls(filter: { customerName: $n }) { totalCount } }",
                           "variables": { "n": CUSTOMER_NAME } })),
        client.get(&graphql).bearer_auth(key).query(&[("query", query.as_str())]),
        client
            .post(&graphql)
            .bearer_auth(format!("{key}x"))
            .json(&json!({ "query": query })),
        client.post(&graphql).json(&json!({ "query": query })),
        client
            .post(&graphql)
            .bearer_auth(key)
            .json(&json!({ "query": format!("{{ calls(filter: {{ customerName: \"{CUSTOMER_NAME}\" }}) {{ nope }} }}") })),
        client
            .post(&graphql)
            .bearer_auth(key)
            .header("content-type", "application/json")
            .body(format!("{{\"query\": \"{CUSTOMER_NAME}")),
        client
            .get(format!("{base}/export/calls.csv"))
            .bearer_auth(key)
            .query(&[("customerName", CUSTOMER_NAME), ("customerNumber", CUSTOMER_NUMBER)]),
        client
            .get(format!("{base}/export/calls.ndjson"))
            .bearer_auth(key)
            .query(&[("fields", "callId,customerName,customerNumber")]),
        client
            .get(format!("{base}/readyz"))
            .header("x-request-id", CUSTOMER_NAME),
        client.get(format!("{base}/metrics")),
        client.get(format!("{base}/health")),
    ];
    for request in requests {
        if request.send().await.is_ok() {
            answered += 1;
        }
    }
    answered
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_or_customer_identity_is_logged_even_at_trace() {
    for_each_backend(async |backend| {
        let database = TestDatabase::create(&backend).await;
        let key = create_key(&database.url);
        let dir = tempfile::tempdir().expect("log dir");
        let log = dir.path().join("calltrail.log");
        let port = free_port();
        let base = format!("http://127.0.0.1:{port}");
        let host = MediaHost::start(KeyIn::Query).await;
        let archive = format!("file:{}", dir.path().join("recordings").display());
        let mut server = serve_binary_with(
            &database.url,
            port,
            TOKEN,
            &log,
            &[
                ("RUST_LOG", "trace"),
                ("CALLTRAIL_LOG_FORMAT", "json"),
                ("DOUBLETICK_API_KEY", media::KEY),
                ("CALLTRAIL_RECORDINGS", archive.as_str()),
            ],
        );
        assert!(
            wait_healthy(&format!("{base}/healthz"), Duration::from_secs(30)).await,
            "calltrail did not start"
        );
        let answered = send_everything(&base, &key, &host).await;
        terminate(&mut server);
        let logged = std::fs::read_to_string(&log).expect("log");
        assert_eq!(answered, 26, "every request was answered");
        assert_eq!(
            host.hits("mp3", "logs_recorded"),
            1,
            "the recording was fetched, with the key"
        );
        let answers_logged = logged.matches("request answered").count();
        assert!(
            answers_logged >= answered,
            "each request's answer is logged at debug ({answers_logged} of {answered})"
        );
        let with_id = logged
            .lines()
            .filter(|l| l.contains("request answered") && l.contains("\"span\":{\"id\":"))
            .count();
        assert_eq!(with_id, answers_logged, "every request line carries its id");
        for line in logged.lines() {
            assert!(
                serde_json::from_str::<serde_json::Value>(line).is_ok(),
                "a JSON log line: {line}"
            );
        }
        for (what, secret) in never_logged(&key) {
            let hits: Vec<&str> = logged.lines().filter(|l| l.contains(&secret)).collect();
            assert!(
                hits.is_empty(),
                "[{}] {what} is in the log:\n{}",
                backend.name(),
                hits.iter().take(5).copied().collect::<Vec<_>>().join("\n")
            );
        }
    })
    .await;
}
