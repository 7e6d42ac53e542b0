//! The evidence bundle: `GET /export/evidence.zip` and `calltrail evidence`, read back and
//! compared with what GraphQL, the exports and the archive hold for the same calls; checked by
//! the real `calltrail verify-bundle` (and by `unzip` + `sha256sum -c`), then changed a byte
//! at a time, file by file, until every change is caught and named; on both backends.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Cursor, Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::kit::media::{KEY, KeyIn, MediaHost};
use crate::kit::{CALL_FIELDS, Inspect, TestApp, create_key, fixture_json, for_each_backend};
use crate::recordings::{archiving, settled};
use calltrail::recordings::KeyPlacement;

/// The customer the bundle is for, as DoubleTick sends the number (formatted once).
const CUSTOMER: &str = "919811100001";
const FROM: &str = "2026-03-01T00:00:00Z";
const TO: &str = "2026-04-01T00:00:00Z";
const W1: &str = "918045671200";
const W2: &str = "918045671201";
const A1: &str = "919700011122";
const A2: &str = "Priya Sharma";

/// One seeded call: who, when, and its recording's size (none without).
struct Seeded {
    id: &'static str,
    customer: &'static str,
    agent: &'static str,
    waba: &'static str,
    ended: &'static str,
    recording: Option<usize>,
}

const CALLS: [Seeded; 6] = [
    Seeded {
        id: "t1",
        customer: CUSTOMER,
        agent: A1,
        waba: W1,
        ended: "2026-03-02T09:19:17.000Z",
        recording: Some(300 * 1024),
    },
    Seeded {
        id: "t2",
        customer: "+91 98111-00001",
        agent: A2,
        waba: W2,
        ended: "2026-03-05T11:00:00.000Z",
        recording: Some(200 * 1024 + 17),
    },
    Seeded {
        id: "t3",
        customer: CUSTOMER,
        agent: A1,
        waba: W1,
        ended: "2026-03-10T16:30:00.000Z",
        recording: None,
    },
    Seeded {
        id: "t4",
        customer: CUSTOMER,
        agent: A1,
        waba: W1,
        ended: "2026-02-10T08:00:00.000Z",
        recording: Some(90 * 1024),
    },
    Seeded {
        id: "o1",
        customer: "919811100002",
        agent: A1,
        waba: W1,
        ended: "2026-03-03T10:00:00.000Z",
        recording: Some(120 * 1024),
    },
    Seeded {
        id: "o2",
        customer: "919811100003",
        agent: A2,
        waba: W2,
        ended: "2026-03-04T10:00:00.000Z",
        recording: None,
    },
];

/// The calls of [`CUSTOMER`] ended in [`FROM`]..[`TO`].
const TARGET: [&str; 3] = ["t1", "t2", "t3"];

fn event(seeded: &Seeded, fixture: &str, host: &MediaHost) -> Value {
    let mut body = fixture_json(fixture);
    body["callId"] = json!(seeded.id);
    body["customerNumber"] = json!(seeded.customer);
    body["pickedBy"] = json!(seeded.agent);
    body["wabaNumber"] = json!(seeded.waba);
    body["chatMessageId"] = json!(format!("msg_{}", seeded.id));
    let ended: chrono::DateTime<chrono::Utc> = seeded.ended.parse().expect("instant");
    body["callStartedAt"] = json!(
        (ended - chrono::Duration::seconds(312))
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    );
    if body["event"] == "CALL_ENDED" {
        body["callEndedAt"] = json!(seeded.ended);
        body["recordingUrl"] = match seeded.recording {
            Some(_) => json!(host.url("mp3", seeded.id)),
            None => json!(""),
        };
    }
    body
}

/// Every delivery POSTed, per call, exactly as sent.
type Posted = BTreeMap<String, Vec<Vec<u8>>>;

async fn post(app: &TestApp, posted: &mut Posted, call_id: &str, body: String) {
    let (status, answer) = app.post_webhook("application/json", body.clone()).await;
    assert_eq!(status, 200, "[{}] {answer}", app.backend.name());
    posted
        .entry(call_id.to_owned())
        .or_default()
        .push(body.into_bytes());
}

/// The calls of [`CALLS`]: t1 accepted then ended, t2 ended then revised (a longer call), t3
/// delivered twice (a duplicate); every recording archived from the fake host.
async fn seed(app: &TestApp, host: &MediaHost) -> Posted {
    let mut posted = Posted::new();
    for seeded in &CALLS {
        if let Some(size) = seeded.recording {
            host.set_size(seeded.id, size);
        }
        let ended = event(seeded, "events/call-ended-incoming-recorded.json", host).to_string();
        if seeded.id == "t1" {
            let accepted = event(seeded, "events/call-accepted.json", host).to_string();
            post(app, &mut posted, seeded.id, accepted).await;
        }
        post(app, &mut posted, seeded.id, ended.clone()).await;
        if seeded.id == "t2" {
            let mut revised = event(seeded, "events/call-ended-incoming-recorded.json", host);
            revised["durationInSeconds"] = json!(318);
            post(app, &mut posted, seeded.id, revised.to_string()).await;
        }
        if seeded.id == "t3" {
            post(app, &mut posted, seeded.id, ended).await;
        }
    }
    for seeded in CALLS.iter().filter(|s| s.recording.is_some()) {
        let rec = settled(app, None, seeded.id, &["ARCHIVED", "FAILED", "GONE"]).await;
        assert_eq!(rec["state"], "ARCHIVED", "[{}] {rec}", app.backend.name());
    }
    posted
}

async fn graphql(app: &TestApp, key: &str, query: &str, variables: Value) -> Value {
    let answer: Value = app
        .client
        .post(app.url("/graphql"))
        .bearer_auth(key)
        .json(&json!({ "query": query, "variables": variables }))
        .send()
        .await
        .expect("graphql")
        .json()
        .await
        .expect("json");
    assert!(answer.get("errors").is_none(), "{answer}");
    answer["data"].clone()
}

/// `GET path` with `key`: status and body bytes.
async fn get(app: &TestApp, key: Option<&str>, path: &str) -> (u16, Vec<u8>) {
    let mut request = app.client.get(app.url(path));
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    (status, response.bytes().await.expect("body").to_vec())
}

/// Every file of a zip, by name, in the zip's order.
fn files_of(zip: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut archive = zip::ZipArchive::new(Cursor::new(zip)).expect("a readable zip");
    (0..archive.len())
        .map(|i| {
            let mut file = archive.by_index(i).expect("an entry");
            let name = file.name().expect("a name").into_owned();
            let mut bytes = Vec::new();
            file.read_to_end(&mut bytes).expect("entry bytes");
            (name, bytes)
        })
        .collect()
}

fn file<'a>(files: &'a [(String, Vec<u8>)], name: &str) -> &'a [u8] {
    files
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, b)| b.as_slice())
        .unwrap_or_else(|| panic!("no {name} in the bundle"))
}

/// A zip of `files`, stored, in order.
fn zip_of(files: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut writer = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let options =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for (name, bytes) in files {
        writer.start_file(name.as_str(), options).expect("start");
        writer.write_all(bytes).expect("write");
    }
    writer.finish().expect("finish").into_inner()
}

/// `files` with `name` replaced by `content`, and the manifest and SHA256SUMS made to agree:
/// a change only the deeper checks can catch.
fn consistently(files: &[(String, Vec<u8>)], name: &str, content: Vec<u8>) -> Vec<u8> {
    let mut files = files.to_vec();
    let sha = |b: &[u8]| hex::encode(Sha256::digest(b));
    let mut manifest: Value = serde_json::from_slice(file(&files, "manifest.json")).expect("json");
    for entry in manifest["files"].as_array_mut().expect("files") {
        if entry["path"] == name {
            entry["bytes"] = json!(content.len());
            entry["sha256"] = json!(sha(&content));
        }
    }
    let mut manifest_bytes = serde_json::to_vec_pretty(&manifest).expect("json");
    manifest_bytes.push(b'\n');
    let mut sums = String::new();
    for entry in manifest["files"].as_array().expect("files") {
        sums.push_str(&format!(
            "{}  {}\n",
            entry["sha256"].as_str().expect("sha"),
            entry["path"].as_str().expect("path")
        ));
    }
    sums.push_str(&format!("{}  manifest.json\n", sha(&manifest_bytes)));
    for (n, bytes) in &mut files {
        if n == name {
            *bytes = content.clone();
        } else if n == "manifest.json" {
            *bytes = manifest_bytes.clone();
        } else if n == "SHA256SUMS" {
            *bytes = sums.clone().into_bytes();
        }
    }
    zip_of(&files)
}

/// `calltrail verify-bundle` on `path`: whether it passed, and what it printed.
fn verify_bundle(path: &Path) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_calltrail"))
        .arg("verify-bundle")
        .arg(path)
        .env("RUST_LOG", "warn")
        .output()
        .expect("calltrail verify-bundle runs");
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!printed.contains("panicked"), "{printed}");
    (out.status.success(), printed)
}

/// `verify-bundle` on `zip` written to `dir/name`.
fn verify_bytes(dir: &Path, name: &str, zip: &[u8]) -> (bool, String) {
    let path = dir.join(name);
    std::fs::write(&path, zip).expect("write the zip");
    verify_bundle(&path)
}

/// `verify-bundle` fails on `zip`, naming `named` in a DIFFERS line (with `why` in it).
fn fails_naming(dir: &Path, zip: &[u8], named: &str, why: &str, case: &str) {
    let (ok, printed) = verify_bytes(dir, "changed.zip", zip);
    assert!(
        !ok,
        "{case}: verify-bundle passed a changed bundle:\n{printed}"
    );
    assert!(
        printed
            .lines()
            .any(|l| l.starts_with("DIFFERS") && l.contains(named) && l.contains(why)),
        "{case}: no DIFFERS line naming {named} ({why}):\n{printed}"
    );
}

/// `value` holds every field `expected` has, with the same value (objects recursively).
fn holds(expected: &Value, value: &Value, at: &str) {
    match (expected, value) {
        (Value::Object(fields), Value::Object(_)) => {
            for (k, v) in fields {
                holds(v, &value[k.as_str()], &format!("{at}.{k}"));
            }
        }
        (Value::Array(items), Value::Array(others)) => {
            assert_eq!(items.len(), others.len(), "{at}: {value}");
            for (i, (a, b)) in items.iter().zip(others).enumerate() {
                holds(a, b, &format!("{at}[{i}]"));
            }
        }
        _ => assert_eq!(expected, value, "{at}"),
    }
}

/// The lines of `calls.json` as calls.
fn calls_json(bytes: &[u8]) -> Vec<Value> {
    let calls: Value = serde_json::from_slice(bytes).expect("calls.json is JSON");
    let lines = String::from_utf8(bytes.to_vec()).expect("utf-8");
    assert_eq!(
        lines.lines().count(),
        calls.as_array().expect("an array").len() + 2,
        "one call a line"
    );
    calls.as_array().expect("array").clone()
}

const RECORDING: &str =
    "recording { state sha256 bytes contentType archivedAt attempts lastError playbackPath }";

async fn graphql_calls(app: &TestApp, key: &str, filter: Value) -> Vec<Value> {
    let query = format!(
        "query($f: CallFilter) {{ calls(filter: $f, first: 500) {{ nodes {{ {CALL_FIELDS} updatedAt {RECORDING} revisions {{ revision replacedAt call {{ {CALL_FIELDS} updatedAt }} }} reviews {{ id callId verdict note reviewedBy reviewedAt }} }} }} }}"
    );
    let data = graphql(app, key, &query, json!({ "f": filter })).await;
    data["calls"]["nodes"].as_array().expect("nodes").clone()
}

fn spawn_settings(dir: &Path) -> impl Fn(&mut calltrail::config::Settings) + '_ {
    move |s| archiving(s, dir, KeyPlacement::Query)
}

#[tokio::test]
async fn a_customers_bundle_holds_what_graphql_and_the_archive_hold_and_any_change_is_named() {
    for_each_backend(async |backend| {
        let name = backend.name();
        let host = MediaHost::start(KeyIn::Query).await;
        let archive_dir = tempfile::tempdir().expect("dir");
        let work = tempfile::tempdir().expect("dir");
        let app = TestApp::spawn_with(&backend, spawn_settings(archive_dir.path())).await;
        let posted = seed(&app, &host).await;
        let reviewer = create_key(&app, "auditor", "reviewer", &[]);
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
        let filter = json!({ "customerNumber": CUSTOMER, "endedAt": { "from": FROM, "to": TO } });
        // A review, and a read that the access log records, before the bundle is made.
        graphql(
            &app,
            &reviewer,
            "mutation { reviewCall(callId: \"t2\", verdict: ISSUE, note: \"no disclosure\") { id } }",
            json!({}),
        )
        .await;
        let expected = graphql_calls(&app, &reviewer, filter.clone()).await;
        let ids: Vec<&str> = expected.iter().map(|c| c["callId"].as_str().unwrap_or("")).collect();
        assert_eq!(ids, ["t3", "t2", "t1"], "[{name}] the period's calls, newest first");

        let query = format!("customerNumber={CUSTOMER}&endedAtFrom={FROM}&endedAtTo={TO}");
        let (status, zip) = get(&app, Some(&reviewer), &format!("/export/evidence.zip?{query}")).await;
        assert_eq!(status, 200, "[{name}] {}", String::from_utf8_lossy(&zip));
        let files = files_of(&zip);
        let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names[..2], ["calls.csv", "calls.json"], "[{name}] {names:?}");
        assert_eq!(names[names.len() - 3..], ["access-log.csv", "manifest.json", "SHA256SUMS"]);

        // calls.json: what GraphQL answers for the same filter, with each call's events.
        let bundled = calls_json(file(&files, "calls.json"));
        assert_eq!(bundled.len(), expected.len(), "[{name}]");
        for (want, got) in expected.iter().zip(&bundled) {
            holds(want, got, &format!("[{name}] {}", want["callId"]));
        }
        let t1 = &bundled[2];
        let events: Vec<&str> = t1["events"].as_array().expect("events").iter().map(|e| e["event"].as_str().unwrap_or("")).collect();
        assert_eq!(events, ["CALL_ACCEPTED", "CALL_ENDED"], "[{name}]");
        for (event, body) in t1["events"].as_array().expect("events").iter().zip(&posted["t1"]) {
            assert_eq!(event["rawPayload"].as_str().map(str::as_bytes), Some(body.as_slice()));
        }
        assert_eq!(bundled[1]["reviews"][0]["verdict"], "ISSUE", "[{name}]");
        assert_eq!(bundled[1]["revisions"].as_array().map(Vec::len), Some(1), "[{name}] t2 was revised");

        // calls.csv: byte for byte the reviewer's calls.csv export of the same filter.
        let (status, csv) = get(&app, Some(&reviewer), &format!("/export/calls.csv?{query}")).await;
        assert_eq!(status, 200);
        assert_eq!(file(&files, "calls.csv"), csv.as_slice(), "[{name}] calls.csv");

        // recordings/: the archive's bytes (and the media host's), for each call with one.
        let mut recorded = 0;
        for call in &bundled {
            let Some(path) = call["recording"]["file"].as_str() else { continue };
            let id = call["callId"].as_str().expect("id");
            let bytes = file(&files, path);
            assert_eq!(bytes, host.bytes_of(id).as_slice(), "[{name}] {path}");
            let sha = call["recording"]["sha256"].as_str().expect("sha");
            let object = archive_dir.path().join("sha256").join(&sha[..2]).join(sha);
            assert_eq!(bytes, std::fs::read(object).expect("archived object").as_slice());
            recorded += 1;
        }
        assert_eq!(recorded, 2, "[{name}] t1 and t2 have recordings");
        assert_eq!(files.iter().filter(|(n, _)| n.starts_with("recordings/")).count(), 2);

        // deliveries/: each body exactly as POSTed, with its log row.
        let mut bodies: BTreeMap<String, Vec<Vec<u8>>> = BTreeMap::new();
        for (path, bytes) in files.iter().filter(|(n, _)| n.ends_with(".json") && n.starts_with("deliveries/")) {
            let row: Value = serde_json::from_slice(bytes).expect("a log row");
            let body = file(&files, row["body"].as_str().expect("body path"));
            assert_eq!(row["sha256"], hex::encode(Sha256::digest(body)), "[{name}] {path}");
            assert_eq!(row["chain"]["chain"], "deliveries");
            assert_eq!(row["chain"]["link"].as_str().map(str::len), Some(64));
            bodies.entry(row["callId"].as_str().expect("call").to_owned()).or_default().push(body.to_vec());
        }
        let mut wanted: BTreeMap<String, Vec<Vec<u8>>> = TARGET.iter().map(|t| ((*t).to_owned(), posted[*t].clone())).collect();
        for list in wanted.values_mut().chain(bodies.values_mut()) {
            list.sort();
        }
        assert_eq!(bodies, wanted, "[{name}] every delivery of the period's calls, byte for byte");
        let outcomes: Vec<String> = files
            .iter()
            .filter(|(n, _)| n.ends_with(".json") && n.starts_with("deliveries/"))
            .map(|(_, b)| serde_json::from_slice::<Value>(b).expect("row")["outcome"].as_str().unwrap_or("").to_owned())
            .collect();
        assert!(outcomes.contains(&"duplicate".to_owned()) && outcomes.contains(&"updated".to_owned()), "[{name}] {outcomes:?}");

        // manifest.json: what the bundle is, and the heads it was made at.
        let manifest: Value = serde_json::from_slice(file(&files, "manifest.json")).expect("json");
        assert_eq!(manifest["calltrailVersion"], env!("CARGO_PKG_VERSION"));
        assert_eq!(manifest["calls"], 3);
        assert_eq!(manifest["filter"], json!({ "customerNumber": CUSTOMER, "endedAtFrom": FROM, "endedAtTo": TO }));
        assert_eq!(manifest["madeBy"]["keyName"], "auditor");
        assert_eq!(manifest["files"].as_array().map(Vec::len), Some(files.len() - 2));
        for entry in manifest["files"].as_array().expect("files") {
            let bytes = file(&files, entry["path"].as_str().expect("path"));
            assert_eq!(entry["bytes"], bytes.len());
            assert_eq!(entry["sha256"], hex::encode(Sha256::digest(bytes)));
        }
        let heads = manifest["chainHeads"].as_array().expect("heads");
        let deliveries_head = app.query_number("SELECT MAX(seq) AS n FROM chain_links WHERE chain = 'deliveries'").await;
        assert_eq!(heads[0], json!({ "chain": "deliveries", "seq": deliveries_head, "link": app.query_strings(&format!("SELECT link FROM chain_links WHERE chain = 'deliveries' AND seq = {deliveries_head}")).await[0] }));

        // access-log.csv: the read before, and the bundle's own row, listing its calls.
        let mut log = csv::Reader::from_reader(file(&files, "access-log.csv"));
        let header: Vec<String> = log.headers().expect("header").iter().map(str::to_owned).collect();
        assert_eq!(header, ["id", "at", "keyId", "keyName", "role", "surface", "operationName", "querySha256", "clientAddress", "callIds", "byteRange", "seq", "link", "previousLink"]);
        let rows: Vec<csv::StringRecord> = log.records().map(|r| r.expect("a row")).collect();
        let own = rows.iter().find(|r| r[6].starts_with("evidence.zip?")).unwrap_or_else(|| panic!("[{name}] no bundle row in {rows:?}"));
        assert_eq!(&own[9], r#"["t1","t2","t3"]"#, "[{name}]");
        assert_eq!(&own[5], "export");
        assert_eq!(manifest["madeBy"]["accessLogId"].to_string(), own[0].to_string());
        assert_eq!(heads[1]["seq"].to_string(), own[11].to_string(), "[{name}] the head is the bundle's own row");
        assert!(rows.iter().any(|r| &r[5] == "graphql"), "[{name}] {rows:?}");

        // It verifies: with calltrail, and with unzip and sha256sum alone.
        let (ok, printed) = verify_bytes(work.path(), "bundle.zip", &zip);
        assert!(ok, "[{name}] {printed}");
        for line in ["ok       manifest.json", "ok       SHA256SUMS", "ok       deliveries: 6 bodies", "ok       recordings: 2", "ok       chains"] {
            assert!(printed.contains(line), "[{name}] no `{line}` in {printed}");
        }
        let unpacked = work.path().join("unpacked");
        let unzip = Command::new("unzip").args(["-q"]).arg(work.path().join("bundle.zip")).arg("-d").arg(&unpacked).status();
        if unzip.is_ok_and(|s| s.success()) {
            let check = Command::new("sha256sum").args(["-c", "SHA256SUMS"]).current_dir(&unpacked).output().expect("sha256sum");
            assert!(check.status.success(), "[{name}] {}", String::from_utf8_lossy(&check.stdout));
            assert_eq!(String::from_utf8_lossy(&check.stdout).lines().count(), files.len() - 1);
            // Unpacked and zipped again (deflated, with folder entries), it still verifies.
            let rezipped = work.path().join("rezipped.zip");
            let zipped = Command::new("zip").args(["-q", "-r"]).arg(&rezipped).arg(".").current_dir(&unpacked).status();
            if zipped.is_ok_and(|s| s.success()) {
                let (ok, printed) = verify_bundle(&rezipped);
                assert!(ok, "[{name}] re-zipped: {printed}");
            }
        } else {
            eprintln!("unzip is not installed: the coreutils check was skipped");
        }

        // One byte changed in any file (re-packed into a valid zip) is caught, and named.
        for (i, (path, bytes)) in files.iter().enumerate() {
            let mut changed = files.clone();
            let at = bytes.len() / 2;
            changed[i].1[at] ^= 0x01;
            fails_naming(work.path(), &zip_of(&changed), path, "", &format!("[{name}] one byte of {path}"));
        }
        // Changed with a manifest and SHA256SUMS made to agree: the deeper checks name it.
        let (body, row) = files.iter().find(|(n, _)| n.ends_with(".json") && n.starts_with("deliveries/")).map(|(n, b)| (n.replace(".json", ".body"), b.clone())).expect("a delivery");
        let mut changed = file(&files, &body).to_vec();
        changed[0] ^= 0x20;
        fails_naming(work.path(), &consistently(&files, &body, changed), &body, "SHA-256 its log row recorded", &format!("[{name}] body"));
        let mut logged: Value = serde_json::from_slice(&row).expect("row");
        logged["outcome"] = json!("rejected");
        let row_path = body.replace(".body", ".json");
        fails_naming(work.path(), &consistently(&files, &row_path, serde_json::to_vec_pretty(&logged).expect("json")), &row_path, "chain link", &format!("[{name}] log row"));
        let recording = bundled[2]["recording"]["file"].as_str().expect("t1's recording");
        let mut audio = file(&files, recording).to_vec();
        audio[1000] ^= 0xff;
        fails_naming(work.path(), &consistently(&files, recording, audio), recording, "archive recorded", &format!("[{name}] recording"));
        let log_text = String::from_utf8(file(&files, "access-log.csv").to_vec()).expect("utf-8");
        let forged = log_text.replacen(",auditor,", ",someone-else,", 1);
        assert_ne!(forged, log_text);
        fails_naming(work.path(), &consistently(&files, "access-log.csv", forged.into_bytes()), "access-log.csv", "chain link", &format!("[{name}] access row"));
        let mut extra = files.clone();
        extra.insert(3, ("recordings/planted.mp3".into(), b"ID3 planted".to_vec()));
        fails_naming(work.path(), &zip_of(&extra), "recordings/planted.mp3", "not listed", &format!("[{name}] extra file"));
        let mut planted = files.clone();
        planted.insert(3, ("recordings/\u{1b}[2Jred.mp3".into(), b"ID3".to_vec()));
        let (ok, printed) = verify_bytes(work.path(), "planted.zip", &zip_of(&planted));
        assert!(!ok && !printed.contains('\u{1b}') && printed.contains("\\u{1b}[2Jred.mp3"), "[{name}] a name that drives the terminal is escaped:\n{printed}");
        let swollen = consistently(&files, "calls.csv", vec![b'x'; 4 << 20]);
        let mut shrunk: Value = serde_json::from_slice(file(&files_of(&swollen), "manifest.json")).expect("json");
        for entry in shrunk["files"].as_array_mut().expect("files") {
            if entry["path"] == "calls.csv" {
                entry["bytes"] = json!(10);
            }
        }
        let mut lied = files_of(&swollen);
        for (n, bytes) in &mut lied {
            if n == "manifest.json" {
                *bytes = serde_json::to_vec_pretty(&shrunk).expect("json");
            }
        }
        fails_naming(work.path(), &zip_of(&lied), "calls.csv", "holds more than 10 bytes", &format!("[{name}] more than the manifest says"));
        let missing: Vec<(String, Vec<u8>)> = files.iter().filter(|(n, _)| n != recording).cloned().collect();
        fails_naming(work.path(), &zip_of(&missing), recording, "not in the zip", &format!("[{name}] missing file"));

        // A zip that is itself corrupt is a named failure, never a panic.
        let bundle_path = work.path().join("bundle.zip").display().to_string();
        fails_naming(work.path(), &zip[..zip.len() / 2], "changed.zip", "not a readable zip", &format!("[{name}] truncated"));
        fails_naming(work.path(), b"PK\x05\x06 not a zip at all", "changed.zip", "not a readable zip", &format!("[{name}] garbage"));
        let mut flipped = zip.clone();
        let at = zip.len() / 2;
        flipped[at] ^= 0x01;
        let (ok, printed) = verify_bytes(work.path(), "flipped.zip", &flipped);
        assert!(!ok && printed.contains("DIFFERS"), "[{name}] a byte of the zip itself:\n{printed}");
        let (ok, printed) = verify_bundle(&PathBuf::from(format!("{bundle_path}.nowhere")));
        assert!(!ok && printed.contains("cannot be opened"), "[{name}] {printed}");

        // `calltrail evidence` writes the same calls, deliveries and recordings.
        let out = work.path().join("cli.zip");
        let run = |out: &Path, extra: &[&str]| {
            Command::new(env!("CARGO_BIN_EXE_calltrail"))
                .args(["evidence", "--customer-number", "+91 98111 00001", "--from", FROM, "--to", TO, "--out"])
                .arg(out)
                .args(extra)
                .env("DATABASE_URL", &app.database.url)
                .env("CALLTRAIL_RECORDINGS", format!("file:{}", archive_dir.path().display()))
                .env("DOUBLETICK_API_KEY", KEY)
                .env("RUST_LOG", "warn")
                .output()
                .expect("calltrail evidence runs")
        };
        let made = run(&out, &[]);
        assert!(made.status.success(), "[{name}] {}", String::from_utf8_lossy(&made.stderr));
        assert!(String::from_utf8_lossy(&made.stdout).contains("3 calls"), "[{name}] {}", String::from_utf8_lossy(&made.stdout));
        let (ok, printed) = verify_bundle(&out);
        assert!(ok, "[{name}] {printed}");
        let cli_files = files_of(&std::fs::read(&out).expect("the bundle"));
        for (path, bytes) in files.iter().filter(|(n, _)| !matches!(n.as_str(), "manifest.json" | "SHA256SUMS" | "access-log.csv")) {
            assert_eq!(file(&cli_files, path), bytes.as_slice(), "[{name}] {path} from the CLI");
        }
        let cli_manifest: Value = serde_json::from_slice(file(&cli_files, "manifest.json")).expect("json");
        assert_eq!(cli_manifest["madeBy"]["via"], "cli");
        assert_eq!(cli_manifest["filter"]["customerNumber"], "+91 98111 00001");
        let again = run(&out, &[]);
        assert!(!again.status.success() && String::from_utf8_lossy(&again.stderr).contains("exists already"), "[{name}]");
        let bad = Command::new(env!("CARGO_BIN_EXE_calltrail"))
            .args(["evidence", "--call", "t1", "--from", "yesterday", "--out"])
            .arg(work.path().join("bad.zip"))
            .env("DATABASE_URL", &app.database.url)
            .env("RUST_LOG", "warn")
            .output()
            .expect("runs");
        let said = String::from_utf8_lossy(&bad.stderr);
        assert!(!bad.status.success() && said.contains("--from"), "[{name}] {said}");
        assert!(!work.path().join("bad.zip").exists());
        app.finish().await;
    })
    .await;
}

#[tokio::test]
async fn only_reviewers_and_admins_get_bundles_and_a_scoped_key_only_its_calls() {
    for_each_backend(async |backend| {
        let name = backend.name();
        let host = MediaHost::start(KeyIn::Query).await;
        let archive_dir = tempfile::tempdir().expect("dir");
        let work = tempfile::tempdir().expect("dir");
        let app = TestApp::spawn_with(&backend, spawn_settings(archive_dir.path())).await;
        seed(&app, &host).await;
        let admin = create_key(&app, "root", "admin", &[]);
        let analyst = create_key(&app, "bi", "analyst", &[]);
        let scoped = create_key(&app, "branch", "reviewer", &["--waba", W2]);
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
        let logged_before = app.count_where("access_log", "surface = 'export'").await;

        let (status, body) = get(&app, None, &format!("/export/evidence.zip?customerNumber={CUSTOMER}")).await;
        assert_eq!(status, 401, "[{name}]");
        let (status, body_403) = get(&app, Some(&analyst), &format!("/export/evidence.zip?customerNumber={CUSTOMER}")).await;
        assert_eq!(status, 403, "[{name}] {}", String::from_utf8_lossy(&body_403));
        let error: Value = serde_json::from_slice(&body_403).expect("a JSON error");
        assert_eq!(error["error"]["code"], "FORBIDDEN", "[{name}] {error}");
        let _ = body;
        for (query, named) in [
            ("", "customerNumber"),
            ("endedAtFrom=2026-03-01T00:00:00Z", "customerNumber"),
            ("customerNumber=1&durationMin=3", "durationMin"),
            ("customerNumber=1&endedAtFrom=yesterday", "endedAtFrom"),
            ("callId=t1&endedAtFrom=2026-04-01T00:00:00Z&endedAtTo=2026-03-01T00:00:00Z", "endedAtFrom"),
            ("customerNumber=1&customerNumber=2", "customerNumber"),
            ("customerNumber=--", "customerNumber"),
        ] {
            let (status, body) = get(&app, Some(&admin), &format!("/export/evidence.zip?{query}")).await;
            let error: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            assert_eq!(status, 400, "[{name}] {query}: {error}");
            assert_eq!(error["error"]["code"], "BAD_USER_INPUT", "[{name}] {query}");
            assert_eq!(error["error"]["details"]["argument"], named, "[{name}] {query}");
        }
        assert_eq!(app.count_where("access_log", "surface = 'export'").await, logged_before, "[{name}] a refused bundle is not logged");

        // The scoped key (business number W2) gets t2 alone of the customer's calls.
        let (status, zip) = get(&app, Some(&scoped), &format!("/export/evidence.zip?customerNumber={CUSTOMER}")).await;
        assert_eq!(status, 200, "[{name}]");
        let files = files_of(&zip);
        let calls: Vec<String> = calls_json(file(&files, "calls.json")).iter().map(|c| c["callId"].as_str().unwrap_or("").to_owned()).collect();
        assert_eq!(calls, ["t2"], "[{name}]");
        for (path, bytes) in files.iter().filter(|(n, _)| n.starts_with("deliveries/") && n.ends_with(".json")) {
            let row: Value = serde_json::from_slice(bytes).expect("row");
            assert_eq!(row["callId"], "t2", "[{name}] {path}");
        }
        let recordings: Vec<&str> = files.iter().filter(|(n, _)| n.starts_with("recordings/")).map(|(n, _)| n.as_str()).collect();
        assert_eq!(recordings, ["recordings/t2.mp3"], "[{name}]");
        let (ok, printed) = verify_bytes(work.path(), "scoped.zip", &zip);
        assert!(ok, "[{name}] {printed}");

        // A client that goes away after the first chunk leaves the server able to make the next.
        let response = app
            .client
            .get(app.url(&format!("/export/evidence.zip?pickedBy={A1}")))
            .bearer_auth(&admin)
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), 200);
        let mut body = response.bytes_stream();
        let first = futures_util::StreamExt::next(&mut body).await;
        assert!(first.is_some_and(|c| c.is_ok()), "[{name}] a first chunk");
        drop(body);

        // By agent, and by call ids, for an admin: every period.
        let (_, zip) = get(&app, Some(&admin), &format!("/export/evidence.zip?pickedBy={A1}")).await;
        let calls: BTreeSet<String> = calls_json(file(&files_of(&zip), "calls.json")).iter().map(|c| c["callId"].as_str().unwrap_or("").to_owned()).collect();
        assert_eq!(calls, BTreeSet::from(["t1", "t3", "t4", "o1"].map(String::from)), "[{name}]");
        let (_, zip) = get(&app, Some(&admin), "/export/evidence.zip?callId=o2&callId=t4&callId=nope").await;
        let bundle = files_of(&zip);
        let calls: Vec<String> = calls_json(file(&bundle, "calls.json")).iter().map(|c| c["callId"].as_str().unwrap_or("").to_owned()).collect();
        assert_eq!(calls, ["o2", "t4"], "[{name}] newest first");
        let (ok, printed) = verify_bytes(work.path(), "ids.zip", &zip);
        assert!(ok, "[{name}] {printed}");

        // Each bundle is one access-log row listing its calls.
        let rows = app.query_json("SELECT key_name, operation_name, call_ids FROM access_log WHERE surface = 'export' ORDER BY id").await;
        let bundles: Vec<(String, String)> = rows
            .iter()
            .filter(|r| r["operation_name"].as_str().is_some_and(|o| o.starts_with("evidence.zip?")))
            .map(|r| (r["key_name"].as_str().unwrap_or("").to_owned(), r["call_ids"].as_str().unwrap_or("").to_owned()))
            .collect();
        assert_eq!(
            bundles,
            [
                ("branch".to_owned(), r#"["t2"]"#.to_owned()),
                ("root".to_owned(), r#"["o1","t1","t3","t4"]"#.to_owned()),
                ("root".to_owned(), r#"["o1","t1","t3","t4"]"#.to_owned()),
                ("root".to_owned(), r#"["o2","t4"]"#.to_owned()),
            ],
            "[{name}]"
        );
        app.finish().await;
    })
    .await;
}
