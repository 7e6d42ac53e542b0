//! A DoubleTick-like sender for the crash and outage tests: unique calls, retried on every non-2xx or timeout until acknowledged.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;

/// What the sender saw.
#[derive(Default, Debug)]
pub struct Tally {
    /// Calls acknowledged with a 2xx.
    pub acked: AtomicUsize,
    /// Requests sent, retries included.
    pub attempts: AtomicUsize,
    /// 503 answers, and how many of them carried `Retry-After`.
    pub unavailable: AtomicUsize,
    pub unavailable_with_retry_after: AtomicUsize,
    /// Other non-2xx answers.
    pub other_statuses: AtomicUsize,
    /// Connection errors and timeouts.
    pub transport_errors: AtomicUsize,
    /// Slowest 503 answer, in milliseconds.
    pub slowest_unavailable_ms: AtomicUsize,
    /// Call ids acknowledged, in acknowledgement order.
    pub acked_ids: Mutex<Vec<String>>,
}

impl Tally {
    pub fn acked(&self) -> usize {
        self.acked.load(Ordering::SeqCst)
    }

    pub fn acked_ids(&self) -> Vec<String> {
        self.acked_ids.lock().expect("tally").clone()
    }

    pub fn summary(&self) -> String {
        format!(
            "attempts={} 503={} (with Retry-After: {}, slowest {} ms) other-non-2xx={} timeouts/connection-errors={}",
            self.attempts.load(Ordering::SeqCst),
            self.unavailable.load(Ordering::SeqCst),
            self.unavailable_with_retry_after.load(Ordering::SeqCst),
            self.slowest_unavailable_ms.load(Ordering::SeqCst),
            self.other_statuses.load(Ordering::SeqCst),
            self.transport_errors.load(Ordering::SeqCst),
        )
    }
}

/// The `i`-th unique call: a complete CALL_ENDED delivery.
pub fn call_body(prefix: &str, i: usize) -> String {
    let started = 1_772_442_845 + (i as i64) * 60;
    let at = |t: i64| {
        chrono::DateTime::from_timestamp(t, 0)
            .expect("timestamp")
            .format("%Y-%m-%dT%H:%M:%S%.3fZ")
            .to_string()
    };
    json!({
        "event": "CALL_ENDED",
        "callId": format!("{prefix}_{i:06}"),
        "chatMessageId": format!("msg_{i}"),
        "chatId": "chat_load",
        "wabaNumber": "918045671200",
        "customerNumber": format!("9198{i:08}"),
        "customerName": "Load Test",
        "customerId": format!("customer_{i}"),
        "callDirection": if i.is_multiple_of(2) { "INCOMING" } else { "OUTGOING" },
        "callStatus": "END",
        "failedReason": "",
        "durationInSeconds": 42,
        "callStartedAt": at(started),
        "callEndedAt": at(started + 42),
        "pickedBy": "agent",
        "rejectedBy": "",
        "endedBy": "agent",
        "recordingUrl": "",
        "deviceId": "device_load"
    })
    .to_string()
}

/// Posts calls `0..n` with `workers` concurrent senders, each retrying its call until a 2xx
/// (or until `deadline` passes, which the caller then reports as a failure).
pub async fn send_all(
    url: String,
    token: String,
    prefix: String,
    n: usize,
    workers: usize,
    tally: Arc<Tally>,
    deadline: Duration,
) {
    let next = Arc::new(AtomicUsize::new(0));
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let started = Instant::now();
    let mut handles = Vec::new();
    for _ in 0..workers {
        let (url, token, prefix) = (url.clone(), token.clone(), prefix.clone());
        let (client, next, tally) = (client.clone(), next.clone(), tally.clone());
        handles.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= n {
                    return;
                }
                let body = call_body(&prefix, i);
                loop {
                    if started.elapsed() > deadline {
                        return;
                    }
                    tally.attempts.fetch_add(1, Ordering::SeqCst);
                    let sent_at = Instant::now();
                    let sent = client
                        .post(&url)
                        .bearer_auth(&token)
                        .header("content-type", "application/json")
                        .body(body.clone())
                        .send()
                        .await;
                    match sent {
                        Ok(response) if response.status().is_success() => {
                            tally.acked.fetch_add(1, Ordering::SeqCst);
                            tally
                                .acked_ids
                                .lock()
                                .expect("tally")
                                .push(format!("{prefix}_{i:06}"));
                            break;
                        }
                        Ok(response) if response.status().as_u16() == 503 => {
                            tally.unavailable.fetch_add(1, Ordering::SeqCst);
                            tally.slowest_unavailable_ms.fetch_max(
                                sent_at.elapsed().as_millis() as usize,
                                Ordering::SeqCst,
                            );
                            if response.headers().contains_key("retry-after") {
                                tally
                                    .unavailable_with_retry_after
                                    .fetch_add(1, Ordering::SeqCst);
                            }
                        }
                        Ok(_) => {
                            tally.other_statuses.fetch_add(1, Ordering::SeqCst);
                        }
                        Err(_) => {
                            tally.transport_errors.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                    // DoubleTick's retry delay is undocumented; retry fast to keep the pressure on.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }));
    }
    for handle in handles {
        handle.await.expect("sender");
    }
}

/// The real binary serving `database_url` on 127.0.0.1:`port` with the webhook secret `token`,
/// its log appended to `log` (a restart adds to the same log).
pub fn serve_binary(database_url: &str, port: u16, token: &str, log: &Path) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("server log");
    Command::new(env!("CARGO_BIN_EXE_calltrail"))
        .arg("serve")
        .env("DATABASE_URL", database_url)
        .env("CALLTRAIL_ADDR", format!("127.0.0.1:{port}"))
        .env("CALLTRAIL_WEBHOOK_TOKEN", token)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start calltrail")
}

/// The real binary serving `database_url` on 127.0.0.1:`port`, as [`serve_binary`] does, but
/// with `env` set as well (`RUST_LOG`, limits...) and its stdout and stderr both kept in `log`.
pub fn serve_binary_with(
    database_url: &str,
    port: u16,
    token: &str,
    log: &Path,
    env: &[(&str, &str)],
) -> Child {
    let open = || {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("server log")
    };
    Command::new(env!("CARGO_BIN_EXE_calltrail"))
        .arg("serve")
        .env("DATABASE_URL", database_url)
        .env("CALLTRAIL_ADDR", format!("127.0.0.1:{port}"))
        .env("CALLTRAIL_WEBHOOK_TOKEN", token)
        .env("RUST_LOG", "warn")
        .envs(env.iter().copied())
        .stdout(open())
        .stderr(open())
        .spawn()
        .expect("start calltrail")
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("a free port")
        .local_addr()
        .expect("address")
        .port()
}

/// Waits until `url` answers 200, up to `limit`.
pub async fn wait_healthy(url: &str, limit: Duration) -> bool {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .expect("client");
    let started = Instant::now();
    while started.elapsed() < limit {
        if let Ok(r) = client.get(url).send().await
            && r.status().is_success()
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}
