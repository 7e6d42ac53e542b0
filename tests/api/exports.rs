//! The exports BI tools and auditors pull: `/export/calls.csv`, `/export/calls.ndjson` and
//! `/export/stats.csv`, parsed back and compared with GraphQL's answers for the same questions,
//! with roles, scopes, the access log and gzip, on both backends.

use std::io::Read;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::kit::{
    Backend, CALL_FIELDS, Inspect, TestApp, TestDatabase, create_key, dataset, for_each_app,
    for_each_backend, load,
};

/// Every call GraphQL returns for `filter` and `order_by`, page after page.
async fn graphql_calls(app: &TestApp, key: &str, filter: &Value, order_by: &Value) -> Vec<Value> {
    let query = format!(
        "query($f: CallFilter, $o: CallOrder, $after: String) {{ calls(filter: $f, orderBy: $o, first: 500, after: $after) {{ nodes {{ {CALL_FIELDS} updatedAt }} pageInfo {{ hasNextPage endCursor }} }} }}"
    );
    let mut all = Vec::new();
    let mut after = Value::Null;
    loop {
        let body: Value = app
            .client
            .post(app.url("/graphql"))
            .bearer_auth(key)
            .json(&json!({ "query": query, "variables": { "f": filter, "o": order_by, "after": after } }))
            .send()
            .await
            .expect("graphql")
            .json()
            .await
            .expect("json");
        assert!(body.get("errors").is_none(), "{body}");
        let calls = &body["data"]["calls"];
        all.extend(calls["nodes"].as_array().expect("nodes").iter().cloned());
        if calls["pageInfo"]["hasNextPage"] != json!(true) {
            return all;
        }
        after = calls["pageInfo"]["endCursor"].clone();
    }
}

async fn get(
    app: &TestApp,
    key: Option<&str>,
    path: &str,
) -> (u16, String, reqwest::header::HeaderMap) {
    let mut request = app.client.get(app.url(path));
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    let response = request.send().await.expect("export request");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, response.text().await.expect("body"), headers)
}

/// A CSV body as a header and rows.
fn parse_csv(body: &str) -> (Vec<String>, Vec<Vec<String>>) {
    let mut reader = csv::Reader::from_reader(body.as_bytes());
    let header = reader
        .headers()
        .expect("a header row")
        .iter()
        .map(str::to_owned)
        .collect();
    let rows = reader
        .records()
        .map(|r| {
            r.expect("an RFC 4180 record")
                .iter()
                .map(str::to_owned)
                .collect()
        })
        .collect();
    (header, rows)
}

/// A GraphQL value as the CSV writes it.
fn cell(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Array(items) => items.iter().map(cell).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    }
}

fn instant(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap_or_else(|e| panic!("`{text}`: {e}"))
        .with_timezone(&Utc)
}

#[tokio::test]
async fn csv_and_ndjson_hold_what_graphql_answers_for_the_same_filters() {
    let calls = dataset::generate(240);
    for_each_app(async |app| {
        let name = app.backend.name();
        dataset::ingest(app, &calls).await;
        let key = create_key(app, "bi", "reviewer", &[]);
        let agent = dataset::AGENTS[0];
        let cases: Vec<(String, Value, Value)> = vec![
            (String::new(), json!({}), json!({ "field": "ENDED_AT", "direction": "DESC" })),
            (
                format!("pickedBy={agent}&pickedBy=Priya%20Sharma&orderBy=DURATION_SECONDS&orderDirection=ASC"),
                json!({ "pickedBy": [agent, "Priya Sharma"] }),
                json!({ "field": "DURATION_SECONDS", "direction": "ASC" }),
            ),
            (
                "endedAtFrom=2026-03-05T00:00:00%2B05:30&endedAtTo=2026-03-12T00:00:00Z&direction=INCOMING&durationMin=30&orderBy=STARTED_AT&orderDirection=DESC".into(),
                json!({ "endedAt": { "from": "2026-03-05T00:00:00+05:30", "to": "2026-03-12T00:00:00Z" }, "direction": "INCOMING", "durationSeconds": { "min": 30 } }),
                json!({ "field": "STARTED_AT", "direction": "DESC" }),
            ),
            (
                format!("customerNumber={}&hasRecording=true&status=END&status=MISSED", calls[3].customer_digits),
                json!({ "customerNumber": calls[3].customer_digits, "hasRecording": true, "status": ["END", "MISSED"] }),
                json!({ "field": "ENDED_AT", "direction": "DESC" }),
            ),
        ];
        for (query, filter, order_by) in &cases {
            let expected = graphql_calls(app, &key, filter, order_by).await;
            assert!(!expected.is_empty(), "[{name}] case {query} matches calls");

            let (status, body, headers) = get(app, Some(&key), &format!("/export/calls.csv?{query}")).await;
            assert_eq!(status, 200, "[{name}] {query}: {body}");
            assert!(headers["content-type"].to_str().unwrap_or_default().starts_with("text/csv"));
            let (header, rows) = parse_csv(&body);
            assert_eq!(rows.len(), expected.len(), "[{name}] {query}: every call, once");
            for field in CALL_FIELDS.split(' ').chain(["updatedAt"]) {
                assert!(header.iter().any(|h| h == field), "[{name}] column {field} in {header:?}");
            }
            for (row, call) in rows.iter().zip(&expected) {
                for (column, value) in header.iter().zip(row) {
                    assert_eq!(value, &cell(&call[column.as_str()]), "[{name}] {query}: {column} of {}", call["callId"]);
                }
            }

            let (status, body, headers) = get(app, Some(&key), &format!("/export/calls.ndjson?{query}")).await;
            assert_eq!(status, 200, "[{name}] {body}");
            assert_eq!(headers["content-type"], "application/x-ndjson");
            let lines: Vec<Value> = body
                .lines()
                .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
                .collect();
            assert_eq!(lines.len(), expected.len(), "[{name}] {query}");
            for (line, call) in lines.iter().zip(&expected) {
                for (field, value) in call.as_object().expect("object") {
                    assert_eq!(&line[field], value, "[{name}] {query}: {field}");
                }
            }
        }

        // Chosen columns, in the order asked, with local times in a zone.
        let (status, body, _) = get(
            app,
            Some(&key),
            "/export/calls.csv?fields=callId,endedAt&fields=durationSeconds&timeZone=America/New_York&orderBy=ENDED_AT&orderDirection=ASC",
        )
        .await;
        assert_eq!(status, 200, "[{name}] {body}");
        let (header, rows) = parse_csv(&body);
        assert_eq!(header, ["callId", "endedAt", "durationSeconds", "startedAtLocal", "endedAtLocal"]);
        let expected = graphql_calls(app, &key, &json!({}), &json!({ "field": "ENDED_AT", "direction": "ASC" })).await;
        assert_eq!(rows.len(), expected.len());
        let new_york: chrono_tz::Tz = "America/New_York".parse().expect("zone");
        for (row, call) in rows.iter().zip(&expected) {
            assert_eq!(row[0], cell(&call["callId"]));
            let ended = instant(&row[1]);
            assert_eq!(instant(&row[4]), ended, "the local column is the same instant");
            let offset = ended.with_timezone(&new_york).format("%:z").to_string();
            assert!(row[4].ends_with(&offset), "[{name}] {} in New York ends with {offset}", row[4]);
            match call["startedAt"].as_str() {
                Some(started) => assert_eq!(instant(&row[3]), instant(started)),
                None => assert_eq!(row[3], ""),
            }
        }
    })
    .await;
}

#[tokio::test]
async fn pages_follow_each_other_without_a_gap_or_a_repeat_past_the_page_size() {
    for_each_app(async |app| {
        let name = app.backend.name();
        let store = calltrail::store::Store::connect(&app.database.url)
            .await
            .expect("store");
        let count = calltrail::export::calls::PAGE_SIZE as usize * 2 + 345;
        let calls = calltrail::seed::generate(calltrail::seed::SeedSpec {
            calls: count as u64,
            seed: 11,
            end: Utc::now(),
        });
        store
            .seed(count as u64, 0, false, calls)
            .await
            .expect("seed");
        store.close().await;
        let key = create_key(app, "bi", "reviewer", &[]);
        // Durations tie often: the order is by duration, then by the stored id.
        let (status, body, _) = get(
            app,
            Some(&key),
            "/export/calls.csv?fields=callId&orderBy=DURATION_SECONDS&orderDirection=ASC",
        )
        .await;
        assert_eq!(status, 200, "[{name}] {body}");
        let (_, rows) = parse_csv(&body);
        let exported: Vec<String> = rows.into_iter().map(|r| r[0].clone()).collect();
        let expected: Vec<String> = graphql_calls(
            app,
            &key,
            &json!({}),
            &json!({ "field": "DURATION_SECONDS", "direction": "ASC" }),
        )
        .await
        .iter()
        .map(|c| cell(&c["callId"]))
        .collect();
        assert_eq!(exported.len(), count, "[{name}]");
        assert_eq!(
            exported, expected,
            "[{name}] the same order as GraphQL's pages"
        );
    })
    .await;
}

#[tokio::test]
async fn roles_scopes_and_the_access_log_apply_to_exports() {
    let calls = dataset::generate(60);
    for_each_app(async |app| {
        let name = app.backend.name();
        dataset::ingest(app, &calls).await;
        let reviewer = create_key(app, "auditor", "reviewer", &[]);
        let analyst = create_key(app, "bi", "analyst", &[]);
        let waba = dataset::WABA_NUMBERS[1];
        let scoped = create_key(app, "branch", "reviewer", &["--waba", waba]);
        // "No key exists" is believed for up to a second after it was last seen.
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;

        let (status, body, _) = get(app, None, "/export/calls.csv").await;
        assert_eq!(
            status, 401,
            "[{name}] a key is needed once keys exist: {body}"
        );

        // An analyst's export has no identity columns; asking for one is refused.
        let (status, body, _) = get(app, Some(&analyst), "/export/calls.csv").await;
        assert_eq!(status, 200, "[{name}] {body}");
        let (header, rows) = parse_csv(&body);
        assert_eq!(rows.len(), calls.len());
        for identity in [
            "customerId",
            "customerName",
            "customerNumber",
            "recordingUrl",
            "rawPayload",
        ] {
            assert!(
                !header.iter().any(|h| h == identity),
                "[{name}] {identity} in {header:?}"
            );
        }
        assert!(
            !body.contains(&calls[0].customer_name),
            "[{name}] no customer name anywhere"
        );
        for path in [
            "/export/calls.csv?fields=callId,customerNumber",
            "/export/calls.ndjson?customerNumber=919811122233",
            "/export/stats.csv?groupBy=CUSTOMER",
        ] {
            let (status, body, _) = get(app, Some(&analyst), path).await;
            assert_eq!(status, 403, "[{name}] {path}: {body}");
            let error: Value = serde_json::from_str(&body).expect("JSON error");
            assert_eq!(error["error"]["code"], "FORBIDDEN", "[{name}] {body}");
        }

        // A scoped key exports exactly what the same filter, by hand, gives a full key.
        let (_, scoped_body, _) = get(app, Some(&scoped), "/export/calls.csv?fields=callId").await;
        let (_, by_hand, _) = get(
            app,
            Some(&reviewer),
            &format!("/export/calls.csv?fields=callId&wabaNumber={waba}"),
        )
        .await;
        assert_eq!(scoped_body, by_hand, "[{name}]");
        assert!(
            parse_csv(&scoped_body).1.len() < calls.len(),
            "[{name}] the scope narrows"
        );
        let (_, scoped_stats, _) =
            get(app, Some(&scoped), "/export/stats.csv?groupBy=PICKED_BY").await;
        let (_, stats_by_hand, _) = get(
            app,
            Some(&reviewer),
            &format!("/export/stats.csv?groupBy=PICKED_BY&wabaNumber={waba}"),
        )
        .await;
        assert_eq!(scoped_stats, stats_by_hand, "[{name}]");

        // Bad parameters: 400 naming the parameter.
        for (path, argument) in [
            ("/export/calls.csv?pickedby=x", "pickedby"),
            ("/export/calls.ndjson?durationMin=long", "durationMin"),
            ("/export/stats.csv?groupBy=YEAR", "groupBy"),
        ] {
            let (status, body, _) = get(app, Some(&reviewer), path).await;
            assert_eq!(status, 400, "[{name}] {path}: {body}");
            let error: Value = serde_json::from_str(&body).expect("JSON error");
            assert_eq!(error["error"]["code"], "BAD_USER_INPUT");
            assert_eq!(
                error["error"]["details"]["argument"], argument,
                "[{name}] {body}"
            );
        }

        // One access-log row per export that ran, with its filter.
        let logged = app
            .database
            .query_strings(
                "SELECT operation_name AS n FROM access_log WHERE surface = 'export' ORDER BY id",
            )
            .await;
        assert_eq!(
            logged,
            [
                "calls.csv".to_owned(),
                "calls.csv?fields=callId".to_owned(),
                format!("calls.csv?fields=callId&wabaNumber={waba}"),
                "stats.csv?groupBy=PICKED_BY".to_owned(),
                format!("stats.csv?groupBy=PICKED_BY&wabaNumber={waba}"),
            ],
            "[{name}] the refused and malformed exports are not logged: they returned nothing"
        );
    })
    .await;
}

#[tokio::test]
async fn gzip_is_honoured_and_inflates_to_the_same_bytes() {
    let calls = dataset::generate(80);
    for_each_app(async |app| {
        let name = app.backend.name();
        dataset::ingest(app, &calls).await;
        let (_, plain, _) = get(app, None, "/export/calls.ndjson").await;
        let response = app
            .client
            .get(app.url("/export/calls.ndjson"))
            .header("accept-encoding", "gzip")
            .send()
            .await
            .expect("export");
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-encoding"], "gzip", "[{name}]");
        let compressed = response.bytes().await.expect("body");
        assert!(
            compressed.len() * 3 < plain.len(),
            "[{name}] {} of {} bytes",
            compressed.len(),
            plain.len()
        );
        let mut inflated = String::new();
        flate2::read::GzDecoder::new(&compressed[..])
            .read_to_string(&mut inflated)
            .expect("valid gzip");
        assert_eq!(inflated, plain, "[{name}]");
    })
    .await;
}

#[tokio::test]
async fn stats_csv_is_call_stats_as_a_table() {
    let calls = dataset::generate(300);
    for_each_app(async |app| {
        let name = app.backend.name();
        dataset::ingest(app, &calls).await;
        let q = r#"{ callStats(groupBy: [DAY, PICKED_BY], timeZone: "Asia/Kolkata", shortCallSeconds: 30,
            filter: { endedAt: { from: "2026-03-02T00:00:00+05:30", to: "2026-03-09T00:00:00+05:30" } }) {
            groups { key { period pickedBy } stats { count totalDurationSeconds averageDurationSeconds
              minDurationSeconds maxDurationSeconds withRecording answeredCalls missedCalls rejectedCalls
              answerRate shortCalls p50: durationPercentile(p: 0.5) p95: durationPercentile(p: 0.95) } } } }"#;
        let groups = app.query(q, json!({})).await["callStats"]["groups"].clone();
        let groups = groups.as_array().expect("groups");
        let (status, body, headers) = get(
            app,
            None,
            "/export/stats.csv?groupBy=DAY&groupBy=PICKED_BY&timeZone=Asia/Kolkata&shortCallSeconds=30&endedAtFrom=2026-03-02T00:00:00%2B05:30&endedAtTo=2026-03-09T00:00:00%2B05:30&p=0.5&p=0.95",
        )
        .await;
        assert_eq!(status, 200, "[{name}] {body}");
        assert!(headers["content-type"].to_str().unwrap_or_default().starts_with("text/csv"));
        let (header, rows) = parse_csv(&body);
        assert_eq!(
            header,
            [
                "day", "pickedBy", "count", "totalDurationSeconds", "averageDurationSeconds",
                "minDurationSeconds", "maxDurationSeconds", "withRecording", "answeredCalls",
                "missedCalls", "rejectedCalls", "answerRate", "shortCalls", "durationP50", "durationP95",
            ]
        );
        assert_eq!(rows.len(), groups.len(), "[{name}] one row per group");
        let number = |v: &Value| v.as_f64();
        for (row, group) in rows.iter().zip(groups) {
            let day = instant(&row[0]);
            assert_eq!(day, instant(group["key"]["period"].as_str().expect("period")), "[{name}]");
            assert!(row[0].contains("T00:00:00.000+05:30"), "[{name}] a local midnight: {}", row[0]);
            assert_eq!(row[1], cell(&group["key"]["pickedBy"]));
            let stats = &group["stats"];
            for (i, field) in ["count", "totalDurationSeconds", "averageDurationSeconds", "minDurationSeconds",
                "maxDurationSeconds", "withRecording", "answeredCalls", "missedCalls", "rejectedCalls",
                "answerRate", "shortCalls", "p50", "p95"].iter().enumerate() {
                let exported = &row[i + 2];
                match number(&stats[*field]) {
                    None => assert_eq!(exported, "", "[{name}] {field}"),
                    Some(v) => {
                        let got: f64 = exported.parse().unwrap_or_else(|_| panic!("{field}: `{exported}`"));
                        assert!((got - v).abs() < 1e-9, "[{name}] {field}: {got} vs {v}");
                    }
                }
            }
        }
        // No grouping: one row of totals.
        let (_, body, _) = get(app, None, "/export/stats.csv").await;
        let (header, rows) = parse_csv(&body);
        assert_eq!(header[0], "count");
        assert_eq!(rows, vec![rows[0].clone()]);
        assert_eq!(rows[0][0], calls.len().to_string(), "[{name}]");
    })
    .await;
}

/// `text` without terminal colour codes.
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Peak resident memory of process `pid`, in bytes (`VmHWM`).
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .expect("VmHWM");
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .expect("kB");
    kib * 1024
}

/// 200,000 calls through the real binary: the whole export streams in flat memory, and a client
/// that reads a little and goes away ends the export there (the server says how far it got).
#[tokio::test]
async fn a_large_export_streams_in_flat_memory_and_stops_when_the_client_goes_away() {
    const CALLS: u64 = 200_000;
    for_each_backend(async |backend: Backend| {
        let name = backend.name();
        let database = TestDatabase::create(&backend).await;
        let store = calltrail::store::Store::connect(&database.url).await.expect("store");
        store.migrate().await.expect("migrate");
        let calls = calltrail::seed::generate(calltrail::seed::SeedSpec { calls: CALLS, seed: 3, end: Utc::now() });
        store.seed(CALLS, 0, false, calls).await.expect("seed");
        store.close().await;

        let dir = tempfile::tempdir().expect("temp dir");
        let log_path = dir.path().join("server.log");
        let port = load::free_port();
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_calltrail"))
            .arg("serve")
            .env("DATABASE_URL", &database.url)
            .env("CALLTRAIL_ADDR", format!("127.0.0.1:{port}"))
            .env("RUST_LOG", "calltrail=info")
            .env("NO_COLOR", "1")
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log_path).expect("log file"))
            .spawn()
            .expect("start calltrail");
        let base = format!("http://127.0.0.1:{port}");
        assert!(load::wait_healthy(&format!("{base}/health"), std::time::Duration::from_secs(30)).await, "[{name}] starts");
        let client = reqwest::Client::new();

        let before = peak_rss(child.id());
        let mut response = client.get(format!("{base}/export/calls.csv")).send().await.expect("export");
        assert_eq!(response.status(), 200);
        let (mut bytes, mut lines) = (0usize, 0usize);
        while let Some(chunk) = response.chunk().await.expect("chunk") {
            bytes += chunk.len();
            lines += chunk.iter().filter(|b| **b == b'\n').count();
        }
        let after = peak_rss(child.id());
        assert_eq!(lines as u64, CALLS + 1, "[{name}] a header and every call ({bytes} bytes)");
        println!(
            "[{name}] exported {CALLS} calls, {:.1} MB: server peak RSS {:.1} MiB before, {:.1} MiB after",
            bytes as f64 / 1e6,
            before as f64 / 1048576.0,
            after as f64 / 1048576.0
        );
        assert!(after < 100 * 1024 * 1024, "[{name}] peak RSS {after} bytes");
        assert!(bytes > 100 * 1024 * 1024 || after - before < bytes as u64 / 4, "[{name}] memory did not follow the export's size");

        let mut response = client.get(format!("{base}/export/calls.csv")).send().await.expect("export");
        let mut read = 0;
        while read < 64 * 1024 {
            read += response.chunk().await.expect("chunk").expect("more to read").len();
        }
        drop(response);
        let mut stopped_at = None;
        for _ in 0..100 {
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            let log = strip_ansi(&log);
            stopped_at = log
                .lines()
                .find(|l| l.contains("an export stopped before its end"))
                .and_then(|l| l.split("rows=").nth(1))
                .and_then(|v| v.split(|c: char| !c.is_ascii_digit()).next())
                .and_then(|v| v.parse::<u64>().ok());
            if stopped_at.is_some() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        let _ = child.kill();
        let _ = child.wait();
        let stopped_at = stopped_at.unwrap_or_else(|| panic!("[{name}] the server logged no early end: {}", std::fs::read_to_string(&log_path).unwrap_or_default()));
        assert!(stopped_at < CALLS / 4, "[{name}] stopped after {stopped_at} rows");
    })
    .await;
}

#[tokio::test]
async fn the_recording_state_filter_exports_what_graphql_lists() {
    let calls = dataset::generate(60);
    for_each_app(async |app| {
        let name = app.backend.name();
        dataset::ingest(app, &calls).await;
        let with_recording = calls.iter().filter(|c| c.recording).count();
        assert!(with_recording > 0);
        for (state, expected) in [("NOT_CONFIGURED", with_recording), ("ARCHIVED", 0)] {
            let graphql: Vec<String> = app
                .query(
                    "query($s: [RecordingState!]) { calls(filter: { recordingState: $s }, first: 500) { nodes { callId } } }",
                    json!({ "s": [state] }),
                )
                .await["calls"]["nodes"]
                .as_array()
                .expect("nodes")
                .iter()
                .map(|n| cell(&n["callId"]))
                .collect();
            let (status, body, _) = get(
                app,
                None,
                &format!("/export/calls.csv?fields=callId&recordingState={state}"),
            )
            .await;
            assert_eq!(status, 200, "[{name}] {body}");
            let exported: Vec<String> = parse_csv(&body).1.into_iter().map(|r| r[0].clone()).collect();
            assert_eq!(exported.len(), expected, "[{name}] {state}");
            assert_eq!(exported, graphql, "[{name}] {state}: as GraphQL lists them");
        }
    })
    .await;
}
