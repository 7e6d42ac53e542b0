//! Disk full on SQLite, as an operator meets it: the database on a small file system that fills
//! up, the real binary, one sender posting unique calls one at a time. Every call answered 2xx
//! must be in the database afterwards, `/health` and `/readyz` must say 503 (with the reason)
//! while writes fail, and the same server must accept again, and `/readyz` turn 200, once space
//! is freed, without a restart.
//!
//! The file system is a tmpfs this test mounts, so it runs as root (`.ci/run` does); anywhere
//! else it fails saying so, rather than pass without having checked anything.
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use crate::kit::load::{free_port, serve_binary, wait_healthy};
use crate::kit::{Inspect, load};
use serde_json::json;

const TOKEN: &str = "disk-full-secret";
/// Size of the file system the database lives on.
const FS_SIZE: &str = "12M";
/// Space left free by the filler file.
const LEFT_FREE: u64 = 3 * 1024 * 1024;
/// Refusals to see before space is freed.
const REFUSALS: usize = 20;
/// Calls posted after space is freed, each retried until acknowledged.
const AFTER_FREEING: usize = 20;

/// A tmpfs mounted on a temporary directory, unmounted when dropped.
struct SmallFs {
    dir: tempfile::TempDir,
}

impl SmallFs {
    fn mount() -> SmallFs {
        let dir = tempfile::tempdir().expect("mount point");
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={FS_SIZE}"), "tmpfs"])
            .arg(dir.path())
            .status();
        match status {
            Ok(s) if s.success() => SmallFs { dir },
            other => panic!(
                "this test mounts a {FS_SIZE} tmpfs to fill it, which needs root (CI runs as root); \
                 mount answered {other:?}"
            ),
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Bytes still free on the file system.
    fn available(&self) -> u64 {
        let out = Command::new("df")
            .args(["-B1", "--output=avail"])
            .arg(self.path())
            .output()
            .expect("df");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .nth(1)
            .and_then(|l| l.trim().parse().ok())
            .expect("df prints the free bytes")
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

/// The `i`-th call, with a 20 KB customer name so the file system fills quickly.
fn big_call(i: usize) -> (String, String) {
    let id = format!("full_{i:05}");
    let mut body: serde_json::Value =
        serde_json::from_str(&load::call_body("full", i)).expect("call body");
    body["callId"] = json!(id);
    body["customerName"] = json!(format!("{i:05} {}", "x".repeat(20_000)));
    (id, body.to_string())
}

async fn post(client: &reqwest::Client, url: &str, body: &str) -> Option<u16> {
    client
        .post(url)
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .ok()
        .map(|r| r.status().as_u16())
}

async fn health(client: &reqwest::Client, base: &str) -> Option<u16> {
    client
        .get(format!("{base}/health"))
        .send()
        .await
        .ok()
        .map(|r| r.status().as_u16())
}

/// `/readyz`'s status and its reason.
async fn readyz(client: &reqwest::Client, base: &str) -> (Option<u16>, String) {
    match client.get(format!("{base}/readyz")).send().await {
        Ok(r) => {
            let status = r.status().as_u16();
            let body: serde_json::Value = r.json().await.unwrap_or_default();
            (
                Some(status),
                body["reason"].as_str().unwrap_or_default().to_owned(),
            )
        }
        Err(_) => (None, String::new()),
    }
}

/// Sends SIGTERM and waits for a clean exit.
fn terminate(server: &mut Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = server.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = server.kill();
    let _ = server.wait();
    panic!("calltrail did not exit within 30 s of SIGTERM");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_the_disk_fills_every_acknowledged_call_is_stored_and_writes_resume_once_space_is_freed()
 {
    let fs = SmallFs::mount();
    let db_path: PathBuf = fs.path().join("calltrail.db");
    let url = format!("sqlite://{}?mode=rwc", db_path.display());
    let logs = tempfile::tempdir().expect("log dir");
    let log = logs.path().join("calltrail.log");
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let webhook = format!("{base}/webhooks/doubletick");
    let mut server = serve_binary(&url, port, TOKEN, &log);
    assert!(
        wait_healthy(&format!("{base}/health"), Duration::from_secs(30)).await,
        "calltrail did not start: {}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );

    // Fill the file system but for LEFT_FREE bytes.
    let filler = fs.path().join("filler");
    let fill = fs.available().saturating_sub(LEFT_FREE);
    std::fs::write(&filler, vec![0u8; usize::try_from(fill).expect("size")]).expect("filler");

    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .expect("client");
    let mut acked: Vec<String> = Vec::new();
    let mut pattern = String::new();
    let mut refused = 0;
    let mut health_while_failing = Vec::new();
    let mut ready_while_failing = Vec::new();
    let mut i = 0;
    while refused < REFUSALS {
        assert!(i < 3000, "the file system never filled: {pattern}");
        let (id, body) = big_call(i);
        i += 1;
        match post(&client, &webhook, &body).await {
            Some(s) if (200..300).contains(&s) => {
                acked.push(id);
                pattern.push('A');
            }
            Some(503) => {
                refused += 1;
                pattern.push('x');
                health_while_failing.push(health(&client, &base).await);
                ready_while_failing.push(readyz(&client, &base).await);
            }
            other => panic!("unexpected answer {other:?} to call {id}"),
        }
    }
    let acked_while_full = acked.len();

    // Free the space: the same server must accept again.
    std::fs::remove_file(&filler).expect("remove filler");
    let started = Instant::now();
    let mut accepted_after_freeing = 0;
    for _ in 0..AFTER_FREEING {
        let (id, body) = big_call(i);
        i += 1;
        loop {
            if started.elapsed() > Duration::from_secs(60) {
                break;
            }
            match post(&client, &webhook, &body).await {
                Some(s) if (200..300).contains(&s) => {
                    acked.push(id.clone());
                    accepted_after_freeing += 1;
                    pattern.push('A');
                    break;
                }
                _ => {
                    pattern.push('r');
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
    let health_after_freeing = health(&client, &base).await;
    let ready_after_freeing = readyz(&client, &base).await;
    terminate(&mut server);

    let stored = url.stored_call_ids().await;
    let missing: Vec<&String> = acked.iter().filter(|id| !stored.contains(*id)).collect();
    println!(
        "disk full: acknowledged={} (while filling: {acked_while_full}, after freeing: {accepted_after_freeing}/{AFTER_FREEING}) stored={} missing={} answers={pattern} /health after each refusal: {health_while_failing:?}, after freeing: {health_after_freeing:?}",
        acked.len(),
        stored.len(),
        missing.len(),
    );
    let server_log = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        missing.is_empty(),
        "acknowledged but not stored: {missing:?}\nserver log:\n{}",
        server_log.lines().take(40).collect::<Vec<_>>().join("\n")
    );
    assert_eq!(
        accepted_after_freeing, AFTER_FREEING,
        "the server accepts again once space is freed, without a restart"
    );
    assert!(
        health_while_failing.iter().all(|h| *h == Some(503)),
        "/health says 503 while writes fail: {health_while_failing:?}"
    );
    assert_eq!(health_after_freeing, Some(200), "/health recovers");
    assert!(
        ready_while_failing
            .iter()
            .all(|(s, reason)| *s == Some(503) && reason.contains("disk is full")),
        "/readyz says 503, and why, while the disk is full: {ready_while_failing:?}"
    );
    assert_eq!(
        ready_after_freeing.0,
        Some(200),
        "/readyz recovers: {ready_after_freeing:?}"
    );
    assert!(
        !server_log.contains(TOKEN),
        "the webhook token is never logged"
    );
}

/// `chattr +i` on a database's files while calltrail has them open, taken off when dropped.
struct Immutable(Vec<PathBuf>);

impl Immutable {
    fn set(paths: Vec<PathBuf>) -> Immutable {
        for path in &paths {
            let status = Command::new("chattr").arg("+i").arg(path).status();
            assert!(
                matches!(status, Ok(s) if s.success()),
                "this test makes the database read-only with `chattr +i`, which needs root and a \
                 file system with inode flags (ext4, as /tmp here); chattr answered {status:?}"
            );
        }
        Immutable(paths)
    }
}

impl Drop for Immutable {
    fn drop(&mut self) {
        for path in &self.0 {
            let _ = Command::new("chattr").arg("-i").arg(path).status();
        }
    }
}

/// The database file turns read-only under a running server: its files are made immutable
/// (`chattr +i`), so every write to the files it holds open fails (EPERM), as on a file system
/// remounted read-only (which Linux refuses while a file is open for writing). Webhooks get 503
/// and nothing acknowledged is lost, `/readyz` says 503 with the reason, and once the files are
/// writable again the same server accepts and `/readyz` is 200.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_file_made_read_only_under_the_server_refuses_writes_then_recovers() {
    let dir = tempfile::tempdir().expect("database dir");
    let db_path: PathBuf = dir.path().join("calltrail.db");
    let url = format!("sqlite://{}?mode=rwc", db_path.display());
    let log = dir.path().join("calltrail.log");
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let webhook = format!("{base}/webhooks/doubletick");
    let mut server = serve_binary(&url, port, TOKEN, &log);
    assert!(
        wait_healthy(&format!("{base}/health"), Duration::from_secs(30)).await,
        "calltrail did not start: {}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .expect("client");
    let call = |i: usize| {
        let mut body: serde_json::Value =
            serde_json::from_str(&load::call_body("ro", i)).expect("call body");
        let id = format!("ro_{i:05}");
        body["callId"] = json!(id);
        (id, body.to_string())
    };
    let mut acked = Vec::new();
    for i in 0..5 {
        let (id, body) = call(i);
        assert_eq!(post(&client, &webhook, &body).await, Some(200));
        acked.push(id);
    }
    assert_eq!(readyz(&client, &base).await.0, Some(200));

    let wal = PathBuf::from(format!("{}-wal", db_path.display()));
    let read_only = Immutable::set(vec![db_path.clone(), wal]);
    let mut refused = 0;
    let mut ready_while_read_only = Vec::new();
    let mut i = 5;
    while refused < 5 {
        assert!(i < 500, "writes never failed on a read-only file");
        let (id, body) = call(i);
        i += 1;
        match post(&client, &webhook, &body).await {
            Some(200) => acked.push(id),
            Some(503) => {
                refused += 1;
                ready_while_read_only.push(readyz(&client, &base).await);
            }
            other => panic!("unexpected answer {other:?} to call {id}"),
        }
    }
    drop(read_only);

    let mut accepted_after = 0;
    let started = Instant::now();
    while accepted_after < 5 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the server never accepted again"
        );
        let (id, body) = call(i);
        match post(&client, &webhook, &body).await {
            Some(200) => {
                acked.push(id);
                accepted_after += 1;
                i += 1;
            }
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    let ready_after = readyz(&client, &base).await;
    terminate(&mut server);
    let stored = url.stored_call_ids().await;
    let missing: Vec<&String> = acked.iter().filter(|id| !stored.contains(*id)).collect();
    println!(
        "read-only file: acknowledged={} stored={} missing={} /readyz while read-only: {ready_while_read_only:?}, after: {ready_after:?}",
        acked.len(),
        stored.len(),
        missing.len()
    );
    assert!(
        missing.is_empty(),
        "acknowledged but not stored: {missing:?}"
    );
    assert!(
        ready_while_read_only
            .iter()
            .all(|(s, reason)| *s == Some(503) && !reason.is_empty()),
        "/readyz says 503, and why, while the file is read-only: {ready_while_read_only:?}"
    );
    assert_eq!(
        ready_after.0,
        Some(200),
        "/readyz recovers: {ready_after:?}"
    );
}
