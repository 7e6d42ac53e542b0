//! Recordings with the real binary: archived into a real S3-compatible server (PyPI's moto,
//! started here), through a kill -9 mid-archive, by two instances sharing one PostgreSQL, and
//! `calltrail recordings backfill|verify`; the key never in the server's log.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::kit::load::{free_port, wait_healthy};
use crate::kit::media::{KEY, KeyIn, MediaHost, sha256_hex};
use crate::kit::{Inspect, TestDatabase, for_each_backend, postgres_only};
use crate::recordings::recorded_call;
use serde_json::{Value, json};

const WABA: &str = "918045671200";

/// The real binary serving `database_url` on `port`, archiving with `env` added, its log
/// appended to `log`.
fn serve(database_url: &str, port: u16, env: &[(&str, String)], log: &Path) -> Child {
    serve_keyed(database_url, port, env, log, true)
}

fn serve_keyed(
    database_url: &str,
    port: u16,
    env: &[(&str, String)],
    log: &Path,
    keyed: bool,
) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("server log");
    let mut command = Command::new(env!("CARGO_BIN_EXE_calltrail"));
    if keyed {
        command.env("DOUBLETICK_API_KEY", KEY);
    } else {
        command.env_remove("DOUBLETICK_API_KEY");
    }
    command
        .arg("serve")
        .env("DATABASE_URL", database_url)
        .env("CALLTRAIL_ADDR", format!("127.0.0.1:{port}"))
        .env("CALLTRAIL_ARCHIVE_FETCH_TIMEOUT", "3s")
        .env("CALLTRAIL_ARCHIVE_RETRY_BASE", "200ms")
        .env("RUST_LOG", "debug")
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start calltrail")
}

/// `calltrail recordings ARGS`: exit success and stdout.
fn recordings_cli(database_url: &str, env: &[(&str, String)], args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_calltrail"))
        .arg("recordings")
        .args(args)
        .env("DATABASE_URL", database_url)
        .env("RUST_LOG", "warn")
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .expect("run calltrail recordings");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

async fn post(base: &str, body: String) {
    let status = reqwest::Client::new()
        .post(format!("{base}/webhooks/doubletick"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("post")
        .status();
    assert_eq!(status, 200);
}

async fn state_of(base: &str, call_id: &str) -> Value {
    let answer: Value = reqwest::Client::new()
        .post(format!("{base}/graphql"))
        .json(&json!({ "query": "query($id: ID!) { call(callId: $id) { recording { state sha256 bytes lastError } } }", "variables": { "id": call_id } }))
        .send()
        .await
        .expect("graphql")
        .json()
        .await
        .expect("json");
    answer["data"]["call"]["recording"].clone()
}

async fn wait_archived(base: &str, call_id: &str, log: &Path) -> Value {
    let started = Instant::now();
    loop {
        let rec = state_of(base, call_id).await;
        if rec["state"] == "ARCHIVED" {
            return rec;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{call_id}: {rec}; log: {}",
            tail(log)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.lines().rev().take(30).collect::<Vec<_>>().join("\n")
}

fn assert_no_key_in(log: &Path) {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    assert!(!text.is_empty(), "the server logged nothing");
    assert!(!text.contains(KEY), "the key in the server's log");
}

/// moto's S3 server on a free port of 127.0.0.1, with `bucket` made.
struct Moto {
    child: Child,
    endpoint: String,
}

impl Moto {
    async fn start(bucket: &str) -> Moto {
        let port = free_port();
        let child = Command::new("python3")
            .args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 runs");
        let endpoint = format!("http://127.0.0.1:{port}");
        let client = reqwest::Client::new();
        let started = Instant::now();
        let mut moto = Moto { child, endpoint };
        loop {
            if let Ok(Some(status)) = moto.child.try_wait() {
                panic!(
                    "moto's S3 server exited ({status}): install it with `pip install 'moto[server]'`"
                );
            }
            if client.get(&moto.endpoint).send().await.is_ok() {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "moto's S3 server did not start: install it with `pip install 'moto[server]'`"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let made = client
            .put(format!("{}/{bucket}", moto.endpoint))
            .send()
            .await
            .expect("create bucket");
        assert!(made.status().is_success(), "bucket: {}", made.status());
        moto
    }

    fn env(&self, location: &str) -> Vec<(&'static str, String)> {
        vec![
            ("CALLTRAIL_RECORDINGS", location.to_owned()),
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_ACCESS_KEY_ID", "calltrail-test".into()),
            ("AWS_SECRET_ACCESS_KEY", "calltrail-test-secret".into()),
            ("AWS_REGION", "us-east-1".into()),
        ]
    }

    /// The object keys under `prefix` of `bucket`.
    async fn keys(&self, bucket: &str, prefix: &str) -> Vec<String> {
        let xml = reqwest::Client::new()
            .get(format!(
                "{}/{bucket}?list-type=2&prefix={prefix}",
                self.endpoint
            ))
            .send()
            .await
            .expect("list")
            .text()
            .await
            .expect("xml");
        xml.split("<Key>")
            .skip(1)
            .filter_map(|s| s.split("</Key>").next())
            .map(str::to_owned)
            .collect()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recordings_archive_into_an_s3_server_once_per_content_and_verify() {
    for_each_backend(async |backend| {
        let name = backend.name();
        let bucket = "calltrail-recordings";
        let moto = Moto::start(bucket).await;
        let host = MediaHost::start(KeyIn::Query).await;
        host.set_size("big", 6 * 1024 * 1024 + 123);
        let database = TestDatabase::create(&backend).await;
        let logs = tempfile::tempdir().expect("logs");
        let log = logs.path().join("calltrail.log");
        let port = free_port();
        let base = format!("http://127.0.0.1:{port}");
        let env = moto.env(&format!("s3://{bucket}/archive"));
        let mut server = serve(&database.url, port, &env, &log);
        assert!(
            wait_healthy(&format!("{base}/health"), Duration::from_secs(30)).await,
            "{}",
            tail(&log)
        );
        // Two calls with the same bytes, and one larger than an upload part.
        post(&base, recorded_call("s3_a", &host.url("mp3", "same"), WABA)).await;
        post(
            &base,
            recorded_call("s3_b", &host.url("octet", "same"), WABA),
        )
        .await;
        post(
            &base,
            recorded_call("s3_big", &host.url("mp3", "big"), WABA),
        )
        .await;
        let a = wait_archived(&base, "s3_a", &log).await;
        let b = wait_archived(&base, "s3_b", &log).await;
        let big = wait_archived(&base, "s3_big", &log).await;
        assert_eq!(a["sha256"], sha256_hex(&host.bytes_of("same")), "[{name}]");
        assert_eq!(a["sha256"], b["sha256"]);
        assert_eq!(big["sha256"], sha256_hex(&host.bytes_of("big")));
        let keys = moto.keys(bucket, "archive/").await;
        assert_eq!(
            keys.len(),
            2,
            "[{name}] the same bytes stored once: {keys:?}"
        );
        let sha = a["sha256"].as_str().unwrap_or("").to_owned();
        assert!(
            keys.contains(&format!("archive/sha256/{}/{sha}", &sha[..2])),
            "{keys:?}"
        );
        // Played back from the bucket, by range.
        let bytes = host.bytes_of("big");
        let response = reqwest::Client::new()
            .get(format!("{base}/recordings/s3_big"))
            .header("range", "bytes=6291450-6291559")
            .send()
            .await
            .expect("play");
        assert_eq!(response.status().as_u16(), 206);
        assert_eq!(
            response.bytes().await.expect("body").to_vec(),
            bytes[6_291_450..6_291_560]
        );
        server.kill().expect("stop");
        server.wait().expect("reaped");
        assert_no_key_in(&log);

        let (ok, out) = recordings_cli(&database.url, &env, &["verify"]);
        assert!(ok, "[{name}] {out}");
        assert!(
            out.contains("3 archived recording(s) checked") && out.contains("3 intact"),
            "{out}"
        );
        // An object lost from the bucket is found, and verify fails.
        let lost = format!("archive/sha256/{}/{sha}", &sha[..2]);
        reqwest::Client::new()
            .delete(format!("{}/{bucket}/{lost}", moto.endpoint))
            .send()
            .await
            .expect("delete");
        let (ok, out) = recordings_cli(&database.url, &env, &["verify"]);
        assert!(!ok, "[{name}] verify passed with an object missing: {out}");
        assert!(
            out.contains("MISSING  call s3_a") && out.contains("1 intact, 2 missing"),
            "{out}"
        );
        drop(database);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_killed_while_archiving_archives_every_recording_once_after_restart() {
    for_each_backend(async |backend| {
        let name = backend.name();
        let host = MediaHost::start(KeyIn::Query).await;
        let database = TestDatabase::create(&backend).await;
        let dir = tempfile::tempdir().expect("store");
        let log = dir.path().join("calltrail.log");
        let store = dir.path().join("objects");
        let env = vec![("CALLTRAIL_RECORDINGS", format!("file:{}", store.display()))];
        let port = free_port();
        let base = format!("http://127.0.0.1:{port}");
        let mut server = serve(&database.url, port, &env, &log);
        assert!(wait_healthy(&format!("{base}/health"), Duration::from_secs(30)).await, "{}", tail(&log));
        const N: usize = 12;
        for i in 0..N {
            // 200 KiB trickled in 4 KiB steps: about a second each.
            host.set_size(&format!("k{i}"), 200 * 1024);
            post(&base, recorded_call(&format!("kill_{i}"), &host.url("trickle", &format!("k{i}")), WABA)).await;
        }
        let started = Instant::now();
        while database.count("recordings").await < 2 {
            assert!(started.elapsed() < Duration::from_secs(60), "{}", tail(&log));
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        server.kill().expect("SIGKILL");
        server.wait().expect("reaped");
        let at_kill = database.count("recordings").await;
        assert!(at_kill < N as i64, "[{name}] the kill landed mid-archive");
        server = serve(&database.url, port, &env, &log);
        assert!(wait_healthy(&format!("{base}/health"), Duration::from_secs(30)).await, "{}", tail(&log));
        for i in 0..N {
            let rec = wait_archived(&base, &format!("kill_{i}"), &log).await;
            let bytes = host.bytes_of(&format!("k{i}"));
            let sha = sha256_hex(&bytes);
            assert_eq!(rec["sha256"], sha, "[{name}] kill_{i}");
            let object = store.join("sha256").join(&sha[..2]).join(&sha);
            assert_eq!(std::fs::read(object).expect("object"), bytes, "[{name}] bytes equal");
        }
        server.kill().expect("SIGKILL");
        server.wait().expect("reaped");
        assert_eq!(database.count("recordings").await, N as i64, "[{name}] each archived exactly once");
        let distinct = database
            .query_json("SELECT DISTINCT call_id FROM recordings")
            .await;
        assert_eq!(distinct.len(), N);
        println!("recordings kill -9 [{name}]: {at_kill} of {N} archived at the kill; all {N} once after restart");
        assert_no_key_in(&log);
        drop(database);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_one_postgres_fetch_each_recording_once() {
    let Some(backend) = postgres_only("two_instances_on_one_postgres_fetch_each_recording_once")
    else {
        return;
    };
    let host = MediaHost::start(KeyIn::Query).await;
    let database = TestDatabase::create(&backend).await;
    let dir = tempfile::tempdir().expect("store");
    let log = dir.path().join("calltrail.log");
    let env = vec![
        (
            "CALLTRAIL_RECORDINGS",
            format!("file:{}", dir.path().join("objects").display()),
        ),
        ("CALLTRAIL_ARCHIVE_WORKERS", "4".to_owned()),
    ];
    let ports = [free_port(), free_port()];
    let mut servers: Vec<Child> = ports
        .iter()
        .map(|p| serve(&database.url, *p, &env, &log))
        .collect();
    for port in ports {
        assert!(
            wait_healthy(
                &format!("http://127.0.0.1:{port}/health"),
                Duration::from_secs(30)
            )
            .await,
            "{}",
            tail(&log)
        );
    }
    const N: usize = 40;
    for i in 0..N {
        host.set_size(&format!("t{i}"), 16 * 1024);
        let base = format!("http://127.0.0.1:{}", ports[i % 2]);
        post(
            &base,
            recorded_call(
                &format!("two_{i}"),
                &host.url("trickle", &format!("t{i}")),
                WABA,
            ),
        )
        .await;
    }
    for i in 0..N {
        wait_archived(
            &format!("http://127.0.0.1:{}", ports[0]),
            &format!("two_{i}"),
            &log,
        )
        .await;
    }
    for server in &mut servers {
        server.kill().expect("stop");
        server.wait().expect("reaped");
    }
    let fetched: Vec<usize> = (0..N)
        .map(|i| host.hits("trickle", &format!("t{i}")))
        .collect();
    assert_eq!(fetched, vec![1; N], "each recording fetched once");
    let claims = database
        .query_json(
            "SELECT COUNT(*) AS n FROM recording_jobs WHERE attempts = 1 AND state = 'archived'",
        )
        .await;
    assert_eq!(claims[0]["n"].as_i64(), Some(N as i64), "{claims:?}");
    drop(database);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backfill_queues_the_calls_stored_before_archiving() {
    for_each_backend(async |backend| {
        let name = backend.name();
        let host = MediaHost::start(KeyIn::Query).await;
        let database = TestDatabase::create(&backend).await;
        let dir = tempfile::tempdir().expect("store");
        let log = dir.path().join("calltrail.log");
        let env = vec![(
            "CALLTRAIL_RECORDINGS",
            format!("file:{}", dir.path().join("objects").display()),
        )];
        let port = free_port();
        let base = format!("http://127.0.0.1:{port}");
        // Stored without a key: queued, nothing fetched.
        let mut server = serve_keyed(&database.url, port, &env, &log, false);
        assert!(
            wait_healthy(&format!("{base}/health"), Duration::from_secs(30)).await,
            "{}",
            tail(&log)
        );
        post(
            &base,
            recorded_call("old_a", &host.url("mp3", "old_a"), WABA),
        )
        .await;
        post(
            &base,
            recorded_call("old_b", &host.url("mp3", "old_b"), WABA),
        )
        .await;
        assert_eq!(state_of(&base, "old_b").await["state"], "NOT_CONFIGURED");
        server.kill().expect("stop");
        server.wait().expect("reaped");
        // As if stored before archiving existed: no job for old_b.
        database
            .execute("DELETE FROM recording_jobs WHERE call_id = 'old_b'")
            .await;
        let (ok, out) = recordings_cli(&database.url, &env, &["backfill"]);
        assert!(ok, "{out}");
        assert!(out.contains("queued 1 recording(s)"), "[{name}] {out}");
        let (ok, out) = recordings_cli(&database.url, &env, &["backfill"]);
        assert!(
            ok && out.contains("queued 0 recording(s)"),
            "[{name}] idempotent: {out}"
        );
        server = serve(&database.url, port, &env, &log);
        assert!(
            wait_healthy(&format!("{base}/health"), Duration::from_secs(30)).await,
            "{}",
            tail(&log)
        );
        for id in ["old_a", "old_b"] {
            let rec = wait_archived(&base, id, &log).await;
            assert_eq!(
                rec["sha256"],
                sha256_hex(&host.bytes_of(id)),
                "[{name}] {id}"
            );
        }
        server.kill().expect("stop");
        server.wait().expect("reaped");
        let (ok, out) = recordings_cli(&database.url, &env, &["verify"]);
        assert!(ok && out.contains("2 intact"), "[{name}] {out}");
        assert_eq!(host.hits("mp3", "old_a") + host.hits("mp3", "old_b"), 2);
        drop(database);
    })
    .await;
}
