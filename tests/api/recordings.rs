//! Recordings: archived from a fake DoubleTick media host (a real HTTP server demanding the
//! key) into a file store on a temp dir, every outcome on both backends; played back with
//! ranges, by role; never showing the key.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::kit::media::{KEY, KeyIn, MediaHost, sha256_hex};
use crate::kit::{Inspect, TestApp, fixture_json, for_each_backend};
use calltrail::config::Settings;
use calltrail::recordings::{KeyPlacement, Secret};
use serde_json::{Value, json};

/// A CALL_ENDED delivery of call `call_id` whose recording is `url`.
pub fn recorded_call(call_id: &str, url: &str, waba: &str) -> String {
    let mut body = fixture_json("events/call-ended-incoming-recorded.json");
    body["callId"] = json!(call_id);
    body["recordingUrl"] = json!(url);
    body["wabaNumber"] = json!(waba);
    body.to_string()
}

/// Settings for archiving from the fake host into `dir`, with short timeouts and windows.
pub fn archiving(settings: &mut Settings, dir: &Path, key_in: KeyPlacement) {
    settings.doubletick_api_key = Some(Secret::new(KEY));
    settings.doubletick_key_in = key_in;
    settings.recordings = format!("file:{}", dir.display());
    settings.archive_fetch_timeout = Duration::from_millis(1500);
    settings.archive_retry_base = Duration::from_millis(100);
    settings.archive_retry_window = Duration::from_secs(3);
    settings.max_recording_bytes = 1_000_000;
}

pub async fn post(app: &TestApp, body: String) {
    let (status, answer) = app.post_webhook("application/json", body).await;
    assert_eq!(status, 200, "[{}] {answer}", app.backend.name());
}

const RECORDING: &str = "query($id: ID!) { call(callId: $id) { recording { state sha256 bytes contentType archivedAt attempts lastError playbackPath } } }";

/// The call's `recording`, as GraphQL answers it (with `key` when given).
pub async fn recording(app: &TestApp, key: Option<&str>, call_id: &str) -> Value {
    let mut request = app
        .client
        .post(app.url("/graphql"))
        .json(&json!({ "query": RECORDING, "variables": { "id": call_id } }));
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    let text = request
        .send()
        .await
        .expect("graphql")
        .text()
        .await
        .expect("body");
    assert!(!text.contains(KEY), "the key in a GraphQL answer: {text}");
    let answer: Value = serde_json::from_str(&text).expect("json");
    assert!(answer.get("errors").is_none(), "{answer}");
    answer["data"]["call"]["recording"].clone()
}

/// Waits until the recording's state is one of `states`; returns the recording.
pub async fn settled(app: &TestApp, key: Option<&str>, call_id: &str, states: &[&str]) -> Value {
    let started = Instant::now();
    loop {
        let rec = recording(app, key, call_id).await;
        if states.iter().any(|s| rec["state"] == *s) {
            return rec;
        }
        assert!(
            started.elapsed() < Duration::from_secs(40),
            "[{}] {call_id} never reached {states:?}: {rec}",
            app.backend.name()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The object files under a file store.
pub fn objects_in(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

const FINAL: &[&str] = &["ARCHIVED", "FAILED", "GONE"];

#[tokio::test]
async fn every_answer_of_the_media_host_ends_in_its_archive_state() {
    for_each_backend(async |backend| {
        let host = MediaHost::start(KeyIn::Query).await;
        host.set_size("trickled", 48 * 1024);
        let dir = tempfile::tempdir().expect("dir");
        let app =
            TestApp::spawn_with(&backend, |s| archiving(s, dir.path(), KeyPlacement::Query)).await;
        let cases = [
            ("mp3", "plain"),
            ("octet", "generic"),
            ("missing", "m"),
            ("gone", "g"),
            ("error", "e"),
            ("flaky", "f"),
            ("hang", "h"),
            ("trickle", "trickled"),
            ("html", "page"),
            ("huge", "declared"),
            ("endless", "stream"),
        ];
        for (behaviour, name) in cases {
            post(
                &app,
                recorded_call(
                    &format!("rec_{behaviour}"),
                    &host.url(behaviour, name),
                    "918045671200",
                ),
            )
            .await;
        }
        let mut outcomes = std::collections::BTreeMap::new();
        for (behaviour, _) in cases {
            let rec = settled(&app, None, &format!("rec_{behaviour}"), FINAL).await;
            outcomes.insert(behaviour, rec);
        }
        let name = backend.name();
        for (behaviour, name_of) in [
            ("mp3", "plain"),
            ("octet", "generic"),
            ("flaky", "f"),
            ("trickle", "trickled"),
        ] {
            let rec = &outcomes[behaviour];
            let bytes = host.bytes_of(name_of);
            assert_eq!(rec["state"], "ARCHIVED", "[{name}] {behaviour}: {rec}");
            assert_eq!(rec["sha256"], sha256_hex(&bytes), "[{name}] {behaviour}");
            assert_eq!(rec["bytes"], bytes.len(), "[{name}] {behaviour}");
            assert_eq!(rec["contentType"], "audio/mpeg", "[{name}] {behaviour}");
            assert_eq!(rec["lastError"], Value::Null, "[{name}] {behaviour}");
            assert_eq!(
                rec["playbackPath"],
                format!("/recordings/rec_{behaviour}"),
                "[{name}] {behaviour}"
            );
            let sha = sha256_hex(&bytes);
            let stored = dir.path().join("sha256").join(&sha[..2]).join(&sha);
            assert_eq!(
                std::fs::read(&stored).expect("object file"),
                bytes,
                "[{name}] {behaviour}"
            );
        }
        assert_eq!(
            outcomes["flaky"]["attempts"], 3,
            "[{name}] two 500s, then archived"
        );
        assert_eq!(host.hits("flaky", "f"), 3, "[{name}]");
        assert_eq!(host.hits("mp3", "plain"), 1, "[{name}] fetched once");
        for behaviour in ["missing", "gone"] {
            let rec = &outcomes[behaviour];
            assert_eq!(rec["state"], "GONE", "[{name}] {behaviour}: {rec}");
            assert_eq!(rec["attempts"], 1, "[{name}] {behaviour}: not retried");
            assert_eq!(rec["sha256"], Value::Null);
        }
        assert!(
            outcomes["missing"]["lastError"]
                .as_str()
                .unwrap_or("")
                .contains("404")
        );
        assert!(
            outcomes["gone"]["lastError"]
                .as_str()
                .unwrap_or("")
                .contains("410")
        );
        let error = &outcomes["error"];
        assert_eq!(error["state"], "FAILED", "[{name}] {error}");
        let why = error["lastError"].as_str().unwrap_or("");
        assert!(
            why.contains("gave up") && why.contains("500"),
            "[{name}] {why}"
        );
        assert!(
            error["attempts"].as_i64().unwrap_or(0) >= 2,
            "[{name}] retried: {error}"
        );
        let hang = &outcomes["hang"];
        assert_eq!(hang["state"], "FAILED", "[{name}] {hang}");
        assert!(
            hang["lastError"]
                .as_str()
                .unwrap_or("")
                .contains("timed out"),
            "[{name}] {hang}"
        );
        let html = &outcomes["html"];
        assert_eq!(html["state"], "FAILED", "[{name}] {html}");
        assert!(
            html["lastError"]
                .as_str()
                .unwrap_or("")
                .contains("not audio: DoubleTick sent text/html"),
            "[{name}] {html}"
        );
        assert_eq!(html["attempts"], 1, "[{name}] not retried");
        for behaviour in ["huge", "endless"] {
            let rec = &outcomes[behaviour];
            assert_eq!(rec["state"], "FAILED", "[{name}] {behaviour}: {rec}");
            assert!(
                rec["lastError"]
                    .as_str()
                    .unwrap_or("")
                    .contains("--max-recording-bytes"),
                "[{name}] {rec}"
            );
        }
        assert_eq!(host.refused(), 0, "[{name}] every request carried the key");
        // Calls filter by recording state; callStats counts the archived ones.
        for (state, n) in [("ARCHIVED", 4), ("GONE", 2), ("FAILED", 5), ("PENDING", 0)] {
            let data = app
                .query(
                    "query($s: [RecordingState!]) { calls(filter: { recordingState: $s }) { totalCount } callStats(filter: { recordingState: $s }) { archivedRecordings total { count } } }",
                    json!({ "s": [state] }),
                )
                .await;
            assert_eq!(data["calls"]["totalCount"], n, "[{name}] {state}: {data}");
            assert_eq!(data["callStats"]["total"]["count"], n, "[{name}] {state}: {data}");
            let archived = if state == "ARCHIVED" { 4 } else { 0 };
            assert_eq!(data["callStats"]["archivedRecordings"], archived, "[{name}] {state}");
        }
        let data = app.query("{ callStats { archivedRecordings total { count withRecording } } }", json!({})).await;
        assert_eq!(data["callStats"]["archivedRecordings"], 4, "[{name}] {data}");
        assert_eq!(data["callStats"]["total"]["withRecording"], cases.len(), "[{name}] {data}");
        // Only the archived bytes are in the store, each once.
        assert_eq!(
            objects_in(dir.path()).len(),
            4,
            "[{name}] {:?}",
            objects_in(dir.path())
        );
        // Neither the key nor a link with it is kept anywhere in the queue.
        let kept = app
            .query_json("SELECT call_id, url, last_error FROM recording_jobs")
            .await;
        assert_eq!(kept.len(), cases.len());
        let text = serde_json::to_string(&kept).expect("json");
        assert!(!text.contains(KEY), "[{name}] {text}");
        assert!(!text.contains("token="), "[{name}] {text}");
        app.finish().await;
    })
    .await;
}

#[tokio::test]
async fn the_key_goes_in_a_header_when_told_so() {
    for_each_backend(async |backend| {
        let host = MediaHost::start(KeyIn::Header).await;
        let dir = tempfile::tempdir().expect("dir");
        let app =
            TestApp::spawn_with(&backend, |s| archiving(s, dir.path(), KeyPlacement::Header)).await;
        post(
            &app,
            recorded_call("rec_header", &host.url("mp3", "h1"), "918045671200"),
        )
        .await;
        let rec = settled(&app, None, "rec_header", FINAL).await;
        assert_eq!(rec["state"], "ARCHIVED", "[{}] {rec}", backend.name());
        assert_eq!(host.refused(), 0);
        app.finish().await;
    })
    .await;
}

#[tokio::test]
async fn without_a_key_a_recording_is_queued_and_says_it_is_not_configured() {
    for_each_backend(async |backend| {
        let host = MediaHost::start(KeyIn::Query).await;
        let app = TestApp::spawn(&backend).await;
        post(
            &app,
            recorded_call("rec_nokey", &host.url("mp3", "n"), "918045671200"),
        )
        .await;
        tokio::time::sleep(Duration::from_millis(700)).await;
        let rec = recording(&app, None, "rec_nokey").await;
        assert_eq!(rec["state"], "NOT_CONFIGURED", "[{}] {rec}", backend.name());
        assert!(
            rec["lastError"]
                .as_str()
                .unwrap_or("")
                .contains("--doubletick-api-key")
        );
        assert_eq!(rec["attempts"], 0);
        assert_eq!(host.hits("mp3", "n") + host.refused(), 0, "nothing fetched");
        for (state, n) in [("NOT_CONFIGURED", 1), ("PENDING", 0), ("ARCHIVED", 0)] {
            let data = app
                .query(
                    "query($s: [RecordingState!]) { calls(filter: { recordingState: $s }) { totalCount } }",
                    json!({ "s": [state] }),
                )
                .await;
            assert_eq!(data["calls"]["totalCount"], n, "[{}] {state}", backend.name());
        }
        // The job was written with the call, ready for when a key is given.
        let jobs = app
            .query_json("SELECT call_id, state FROM recording_jobs")
            .await;
        assert_eq!(
            jobs,
            vec![json!({ "call_id": "rec_nokey", "state": "pending" })]
        );
        // A call without a recording has none.
        let mut plain = fixture_json("events/call-ended-incoming-recorded.json");
        plain["callId"] = json!("rec_none");
        plain["recordingUrl"] = json!("");
        post(&app, plain.to_string()).await;
        assert_eq!(recording(&app, None, "rec_none").await, Value::Null);
        app.finish().await;
    })
    .await;
}

#[tokio::test]
async fn a_changed_link_archives_the_new_recording_and_keeps_the_old() {
    for_each_backend(async |backend| {
        let host = MediaHost::start(KeyIn::Query).await;
        let dir = tempfile::tempdir().expect("dir");
        let app =
            TestApp::spawn_with(&backend, |s| archiving(s, dir.path(), KeyPlacement::Query)).await;
        post(
            &app,
            recorded_call("rec_changed", &host.url("mp3", "first"), "918045671200"),
        )
        .await;
        let first = settled(&app, None, "rec_changed", &["ARCHIVED"]).await;
        post(
            &app,
            recorded_call("rec_changed", &host.url("mp3", "second"), "918045671200"),
        )
        .await;
        let started = Instant::now();
        let second = loop {
            let rec = recording(&app, None, "rec_changed").await;
            if rec["state"] == "ARCHIVED" && rec["sha256"] != first["sha256"] {
                break rec;
            }
            assert!(started.elapsed() < Duration::from_secs(30), "{rec}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert_eq!(second["sha256"], sha256_hex(&host.bytes_of("second")));
        let kept = app
            .query_json("SELECT sha256 FROM recordings WHERE call_id = 'rec_changed' ORDER BY id")
            .await;
        assert_eq!(
            kept,
            vec![
                json!({ "sha256": first["sha256"] }),
                json!({ "sha256": second["sha256"] })
            ],
            "[{}]",
            backend.name()
        );
        // The evidence is append-only in the database itself.
        for sql in ["UPDATE recordings SET bytes = 0", "DELETE FROM recordings"] {
            let refused = app.try_execute(sql).await;
            assert!(refused.is_err(), "[{}] {sql} was allowed", backend.name());
        }
        app.finish().await;
    })
    .await;
}

#[tokio::test]
async fn the_same_bytes_are_stored_once_and_calls_sent_together_are_each_queued() {
    for_each_backend(async |backend| {
        let host = MediaHost::start(KeyIn::Query).await;
        let dir = tempfile::tempdir().expect("dir");
        let app =
            TestApp::spawn_with(&backend, |s| archiving(s, dir.path(), KeyPlacement::Query)).await;
        // Concurrent deliveries reach the writer together: its batch path queues each job.
        let mut sends = Vec::new();
        for i in 0..24 {
            let body = recorded_call(
                &format!("rec_same_{i:02}"),
                &host.url(if i % 2 == 0 { "mp3" } else { "octet" }, "same"),
                "918045671200",
            );
            let client = app.client.clone();
            let url = app.url("/webhooks/doubletick");
            sends.push(tokio::spawn(async move {
                client
                    .post(url)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await
                    .expect("post")
                    .status()
                    .as_u16()
            }));
        }
        for send in sends {
            assert_eq!(send.await.expect("send"), 200);
        }
        for i in 0..24 {
            let rec = settled(&app, None, &format!("rec_same_{i:02}"), FINAL).await;
            assert_eq!(rec["state"], "ARCHIVED", "[{}] {rec}", backend.name());
            assert_eq!(rec["sha256"], sha256_hex(&host.bytes_of("same")));
        }
        assert_eq!(
            objects_in(dir.path()).len(),
            1,
            "[{}] stored once",
            backend.name()
        );
        assert_eq!(app.count("recordings").await, 24);
        app.finish().await;
    })
    .await;
}

#[test]
fn the_key_never_shows_in_settings_debug_output() {
    let mut settings = Settings::for_database("sqlite::memory:");
    settings.doubletick_api_key = Some(Secret::new(KEY));
    let printed = format!("{settings:?} {settings:#?}");
    assert!(!printed.contains(KEY), "{printed}");
    assert!(printed.contains("[redacted]"));
}

/// A new API key made by the real `calltrail keys create`.
pub fn create_key(app: &TestApp, name: &str, role: &str, extra: &[&str]) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_calltrail"))
        .args(["keys", "create", "--name", name, "--role", role])
        .args(extra)
        .env("DATABASE_URL", &app.database.url)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run calltrail keys");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .expect("a key line")
        .trim()
        .to_owned()
}

/// A playback request: status, headers, body (checked never to carry the key).
pub async fn play(
    app: &TestApp,
    key: Option<&str>,
    call_id: &str,
    range: Option<&str>,
) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
    let mut request = app.client.get(app.url(&format!("/recordings/{call_id}")));
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    if let Some(range) = range {
        request = request.header("range", range);
    }
    let response = request.send().await.expect("playback");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.bytes().await.expect("body").to_vec();
    for (name, value) in &headers {
        assert!(
            !value
                .as_bytes()
                .windows(KEY.len())
                .any(|w| w == KEY.as_bytes()),
            "the key in header {name}"
        );
    }
    assert!(
        !body.windows(KEY.len()).any(|w| w == KEY.as_bytes()),
        "the key in a playback body"
    );
    (status, headers, body)
}

fn header<'a>(headers: &'a reqwest::header::HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

fn error_code(body: &[u8]) -> String {
    let value: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    value["error"]["code"].as_str().unwrap_or("").to_owned()
}

const WABA: &str = "918045671200";

#[tokio::test]
async fn an_archived_recording_plays_back_with_ranges_to_the_roles_that_may_hear_it() {
    for_each_backend(async |backend| {
        let name = backend.name();
        let host = MediaHost::start(KeyIn::Query).await;
        host.set_size("played", 300_000);
        let dir = tempfile::tempdir().expect("dir");
        let app = TestApp::spawn_with(&backend, |s| archiving(s, dir.path(), KeyPlacement::Query))
            .await;
        let admin = create_key(&app, "ops", "admin", &[]);
        let reviewer = create_key(&app, "qa", "reviewer", &[]);
        let analyst = create_key(&app, "bi", "analyst", &[]);
        let elsewhere = create_key(&app, "branch", "reviewer", &["--waba", "918000000000"]);
        // The server believes "no key exists" (seen at start) for up to a second.
        tokio::time::sleep(Duration::from_millis(1100)).await;
        post(&app, recorded_call("rec_play", &host.url("mp3", "played"), WABA)).await;
        let mut plain = fixture_json("events/call-ended-incoming-recorded.json");
        plain["callId"] = json!("rec_silent");
        plain["recordingUrl"] = json!("");
        post(&app, plain.to_string()).await;
        let rec = settled(&app, Some(&admin), "rec_play", &["ARCHIVED"]).await;
        let bytes = host.bytes_of("played");
        let len = bytes.len();
        let sha = sha256_hex(&bytes);

        let (status, headers, body) = play(&app, Some(&reviewer), "rec_play", None).await;
        assert_eq!(status, 200, "[{name}]");
        assert_eq!(body, bytes, "[{name}] the whole recording");
        assert_eq!(header(&headers, "content-length"), len.to_string());
        assert_eq!(header(&headers, "content-type"), "audio/mpeg");
        assert_eq!(header(&headers, "accept-ranges"), "bytes");
        assert_eq!(header(&headers, "etag"), format!("\"{sha}\""));
        assert_eq!(rec["sha256"], sha);

        for (range, from, to) in [
            ("bytes=0-99", 0, 100),
            ("bytes=1000-1999", 1000, 2000),
            ("bytes=-500", len - 500, len),
            ("bytes=299990-", len - 10, len),
        ] {
            let (status, headers, body) = play(&app, Some(&reviewer), "rec_play", Some(range)).await;
            assert_eq!(status, 206, "[{name}] {range}");
            assert_eq!(body, bytes[from..to], "[{name}] {range}");
            assert_eq!(header(&headers, "content-range"), format!("bytes {from}-{}/{len}", to - 1));
            assert_eq!(header(&headers, "content-length"), (to - from).to_string());
        }
        let (status, headers, body) =
            play(&app, Some(&reviewer), "rec_play", Some(&format!("bytes={len}-"))).await;
        assert_eq!(status, 416, "[{name}]");
        assert_eq!(header(&headers, "content-range"), format!("bytes */{len}"));
        assert_eq!(error_code(&body), "RANGE_NOT_SATISFIABLE");

        let (status, _, body) = play(&app, Some(&admin), "rec_play", Some("bytes=0-0")).await;
        assert_eq!((status, body), (206, bytes[..1].to_vec()), "[{name}] admin");
        let (status, _, body) = play(&app, Some(&analyst), "rec_play", None).await;
        assert_eq!((status, error_code(&body).as_str()), (403, "FORBIDDEN"), "[{name}] analyst");
        let (status, _, body) = play(&app, None, "rec_play", None).await;
        assert_eq!((status, error_code(&body).as_str()), (401, "UNAUTHENTICATED"), "[{name}]");
        let (status, _, body) = play(&app, Some(&elsewhere), "rec_play", None).await;
        assert_eq!((status, error_code(&body).as_str()), (404, "NOT_FOUND"), "[{name}] out of scope");
        let (status, _, body) = play(&app, Some(&reviewer), "rec_silent", None).await;
        assert_eq!((status, error_code(&body).as_str()), (404, "NOT_FOUND"), "[{name}] no recording");
        let (status, _, body) = play(&app, Some(&reviewer), "rec_nobody", None).await;
        assert_eq!((status, error_code(&body).as_str()), (404, "NOT_FOUND"), "[{name}] no call");

        // Analysts see how the archive stands, but not where it plays.
        let answer = app
            .client
            .post(app.url("/graphql"))
            .bearer_auth(&analyst)
            .json(&json!({ "query": "{ call(callId: \"rec_play\") { recording { state bytes sha256 playbackPath } } }" }))
            .send()
            .await
            .expect("graphql")
            .json::<Value>()
            .await
            .expect("json");
        let recording = &answer["data"]["call"]["recording"];
        assert_eq!(recording["state"], "ARCHIVED", "[{name}] {answer}");
        assert_eq!(recording["bytes"], len);
        assert_eq!(recording["playbackPath"], Value::Null);
        assert_eq!(answer["errors"][0]["extensions"]["code"], "FORBIDDEN", "{answer}");

        // Each playback by a key is a row of the access log, with its byte range.
        let logged = app
            .query_json(
                "SELECT key_name, byte_range, call_ids FROM access_log WHERE surface = 'recording' ORDER BY id",
            )
            .await;
        let ranges: Vec<(String, String)> = logged
            .iter()
            .map(|r| {
                assert_eq!(r["call_ids"], "[\"rec_play\"]");
                (
                    r["key_name"].as_str().unwrap_or("").to_owned(),
                    r["byte_range"].as_str().unwrap_or("").to_owned(),
                )
            })
            .collect();
        let expected: Vec<(String, String)> = [
            ("qa", "all"),
            ("qa", "0-99"),
            ("qa", "1000-1999"),
            ("qa", "-500"),
            ("qa", "299990-"),
            ("qa", "300000-"),
            ("ops", "0-0"),
        ]
        .iter()
        .map(|(k, r)| (k.to_string(), r.to_string()))
        .collect();
        assert_eq!(ranges, expected, "[{name}]");
        assert_eq!(host.hits("mp3", "played"), 1, "[{name}] played from the archive");
        app.finish().await;
    })
    .await;
}

#[tokio::test]
async fn a_recording_not_archived_yet_plays_through_from_doubletick() {
    for_each_backend(async |backend| {
        let name = backend.name();
        let host = MediaHost::start(KeyIn::Query).await;
        host.set_size("fresh", 20_000);
        let dir = tempfile::tempdir().expect("dir");
        let app = TestApp::spawn_with(&backend, |s| {
            archiving(s, dir.path(), KeyPlacement::Query);
            // The first attempt fails (503) and the next is far away.
            s.archive_retry_base = Duration::from_secs(600);
        })
        .await;
        post(
            &app,
            recorded_call("rec_fresh", &host.url("later", "fresh"), WABA),
        )
        .await;
        let rec = settled(&app, None, "rec_fresh", &["RETRYING"]).await;
        assert!(
            rec["lastError"].as_str().unwrap_or("").contains("503"),
            "{rec}"
        );
        let bytes = host.bytes_of("fresh");
        let (status, headers, body) = play(&app, None, "rec_fresh", None).await;
        assert_eq!(status, 200, "[{name}] {}", String::from_utf8_lossy(&body));
        assert_eq!(body, bytes);
        assert_eq!(header(&headers, "content-type"), "audio/mpeg");
        let (status, headers, body) = play(&app, None, "rec_fresh", Some("bytes=0-99")).await;
        assert_eq!(status, 206, "[{name}]");
        assert_eq!(body, bytes[..100]);
        assert_eq!(header(&headers, "content-range"), "bytes 0-99/20000");
        assert_eq!(
            host.hits("later", "fresh"),
            3,
            "[{name}] one attempt, two playbacks"
        );
        assert_eq!(host.refused(), 0, "the key was added server-side");
        let rec = recording(&app, None, "rec_fresh").await;
        assert_eq!(
            rec["state"], "RETRYING",
            "[{name}] the job is left to finish"
        );
        app.finish().await;
    })
    .await;
}

/// A reviewer's browser plays an archived recording: headless Chromium loads
/// `/recordings/{callId}` into an `<audio>` element, plays it and seeks into it
/// (`tests/node/audio.mjs`), on a real WAV archived from the fake DoubleTick host.
#[tokio::test]
async fn headless_chromium_plays_an_archived_recording_and_seeks_in_it() {
    let node_dir = crate::graphiql_http::node_ready(&["playwright-core"]);
    for_each_backend(async |backend| {
        let name = backend.name();
        let host = MediaHost::start(KeyIn::Query).await;
        let dir = tempfile::tempdir().expect("archive dir");
        let app = TestApp::spawn_with(&backend, |s| {
            archiving(s, dir.path(), KeyPlacement::Query);
        })
        .await;
        post(
            &app,
            recorded_call(
                "browser_wav",
                &host.url("wav", "browser_wav"),
                "918045671200",
            ),
        )
        .await;
        let rec = settled(&app, None, "browser_wav", &["ARCHIVED"]).await;
        assert_eq!(rec["state"], "ARCHIVED", "[{name}] {rec}");
        assert_eq!(rec["contentType"], "audio/wav", "[{name}] {rec}");
        let child = tokio::process::Command::new("node")
            .arg(node_dir.join("audio.mjs"))
            .env("CALLTRAIL_URL", &app.base)
            .env("CALL_ID", "browser_wav")
            .env("SECONDS", crate::kit::media::WAV_SECONDS.to_string())
            .kill_on_drop(true)
            .output();
        let output = tokio::time::timeout(Duration::from_secs(120), child)
            .await
            .expect("node audio.mjs finishes within 2 minutes")
            .expect("node runs");
        let printed = crate::graphiql_http::node_output("audio.mjs", &output);
        assert!(
            printed.contains("audio plays and seeks"),
            "[{name}] {printed}"
        );
        // Played from the archive, not fetched again from DoubleTick.
        assert_eq!(host.hits("wav", "browser_wav"), 1, "[{name}]");
        app.finish().await;
    })
    .await;
}
