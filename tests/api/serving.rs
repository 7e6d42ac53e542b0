//! A server that survives its clients, on the real binary: SIGTERM under steady webhook load
//! (every 2xx committed, requests sent before the signal answered, exit 0 within the
//! deadline), clients trickling headers a byte a second (a normal client still served at once,
//! the tricklers closed after the header-read timeout), and 5,000 idle connections held to the
//! connection cap.
use std::process::{Child, Command};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::kit::load::{self, free_port, serve_binary_with, wait_healthy};
use crate::kit::{Inspect, TestDatabase, for_each_backend};

const TOKEN: &str = "serving-secret";

fn sigterm(server: &Child) {
    let status = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
}

/// Waits up to `limit` for the process to exit; its exit code.
fn exit_within(server: &mut Child, limit: Duration) -> Option<i32> {
    let started = Instant::now();
    while started.elapsed() < limit {
        if let Ok(Some(status)) = server.try_wait() {
            return status.code();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = server.kill();
    let _ = server.wait();
    None
}

/// One request of the load: when it was sent, and the status it got (`None`: no answer).
type Sent = (String, Instant, Option<u16>);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_answers_what_was_sent_commits_every_2xx_and_exits_0() {
    for_each_backend(async |backend| {
        let name = backend.name();
        let database = TestDatabase::create(&backend).await;
        let dir = tempfile::tempdir().expect("dir");
        let log = dir.path().join("calltrail.log");
        let port = free_port();
        let base = format!("http://127.0.0.1:{port}");
        let mut server = serve_binary_with(
            &database.url,
            port,
            TOKEN,
            &log,
            &[("CALLTRAIL_SHUTDOWN_TIMEOUT", "10s"), ("RUST_LOG", "info")],
        );
        assert!(wait_healthy(&format!("{base}/healthz"), Duration::from_secs(30)).await);
        let sent: Arc<Mutex<Vec<Sent>>> = Arc::default();
        let stop_at = Arc::new(Mutex::new(None::<Instant>));
        let mut workers = Vec::new();
        for w in 0..8 {
            let (sent, stop_at) = (sent.clone(), stop_at.clone());
            let url = format!("{base}/webhooks/doubletick");
            workers.push(tokio::spawn(async move {
                let client = reqwest::Client::builder()
                    .timeout(Duration::from_secs(15))
                    .build()
                    .expect("client");
                for i in 0.. {
                    if stop_at.lock().expect("stop").is_some_and(|t| Instant::now() > t) {
                        return;
                    }
                    let id = format!("term{w}_{i:06}");
                    let mut body: serde_json::Value =
                        serde_json::from_str(&load::call_body("term", i)).expect("body");
                    body["callId"] = serde_json::json!(id);
                    let at = Instant::now();
                    let status = client
                        .post(&url)
                        .bearer_auth(TOKEN)
                        .header("content-type", "application/json")
                        .body(body.to_string())
                        .send()
                        .await
                        .ok()
                        .map(|r| r.status().as_u16());
                    let refused = status.is_none();
                    sent.lock().expect("sent").push((id, at, status));
                    if refused {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
            }));
        }
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let signalled = Instant::now();
        sigterm(&server);
        *stop_at.lock().expect("stop") = Some(signalled + Duration::from_millis(500));
        let code = tokio::task::spawn_blocking(move || {
            let code = exit_within(&mut server, Duration::from_secs(12));
            (code, signalled.elapsed())
        })
        .await
        .expect("wait");
        for w in workers {
            w.await.expect("worker");
        }
        let sent = sent.lock().expect("sent").clone();
        let stored = database.url.stored_call_ids().await;
        let acked: Vec<&Sent> = sent
            .iter()
            .filter(|(_, _, s)| s.is_some_and(|s| (200..300).contains(&s)))
            .collect();
        let lost: Vec<&String> = acked
            .iter()
            .map(|(id, _, _)| id)
            .filter(|id| !stored.contains(*id))
            .collect();
        // Sent well before the signal: the server had read it, so it must answer it.
        let unanswered_before: Vec<&Sent> = sent
            .iter()
            .filter(|(_, at, s)| *at + Duration::from_millis(100) < signalled && s.is_none())
            .collect();
        let after = sent.iter().filter(|(_, at, _)| *at > signalled).count();
        let server_log = std::fs::read_to_string(&log).unwrap_or_default();
        println!(
            "[{name}] SIGTERM under load: sent={} acked={} stored={} unanswered-before-signal={} sent-after-signal={after} exit={:?} after {:?}",
            sent.len(),
            acked.len(),
            stored.len(),
            unanswered_before.len(),
            code.0,
            code.1
        );
        assert!(acked.len() > 100, "[{name}] steady load: {} acked", acked.len());
        assert!(lost.is_empty(), "[{name}] acknowledged but not stored: {lost:?}");
        assert!(
            unanswered_before.is_empty(),
            "[{name}] sent before the signal and not answered: {unanswered_before:?}"
        );
        assert_eq!(code.0, Some(0), "[{name}] exit 0 within the deadline:\n{server_log}");
        assert!(code.1 < Duration::from_secs(10), "[{name}] {:?}", code.1);
        assert!(server_log.contains("calltrail stopped"), "{server_log}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_trickling_headers_do_not_hold_up_others_and_are_closed_at_the_header_timeout() {
    const TRICKLERS: usize = 200;
    const HEADER_TIMEOUT: Duration = Duration::from_secs(3);
    let database = TestDatabase::create(&crate::kit::Backend::Sqlite).await;
    let dir = tempfile::tempdir().expect("dir");
    let log = dir.path().join("calltrail.log");
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut server = serve_binary_with(
        &database.url,
        port,
        TOKEN,
        &log,
        &[
            ("CALLTRAIL_HEADER_READ_TIMEOUT", "3s"),
            ("CALLTRAIL_IDLE_TIMEOUT", "30s"),
        ],
    );
    assert!(wait_healthy(&format!("{base}/healthz"), Duration::from_secs(30)).await);
    let started = Instant::now();
    let mut tricklers = Vec::new();
    for _ in 0..TRICKLERS {
        let addr = format!("127.0.0.1:{port}");
        tricklers.push(tokio::spawn(async move {
            let stream = TcpStream::connect(&addr).await.expect("connect");
            let (mut read, mut write) = stream.into_split();
            let request = b"POST /webhooks/doubletick HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n";
            let mut buf = [0u8; 512];
            for byte in request.iter().cycle() {
                tokio::select! {
                    got = read.read(&mut buf) => {
                        // The server answered (408) or closed: either way the connection is done.
                        if got.map_or(true, |n| n == 0) {
                            return Some(started.elapsed());
                        }
                    }
                    () = tokio::time::sleep(Duration::from_secs(1)) => {
                        if write.write_all(&[*byte]).await.is_err() {
                            return Some(started.elapsed());
                        }
                    }
                }
                if started.elapsed() > Duration::from_secs(20) {
                    return None;
                }
            }
            None
        }));
    }
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client");
    let asked = Instant::now();
    let normal = client
        .post(format!("{base}/webhooks/doubletick"))
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body(load::call_body("trickle", 1))
        .send()
        .await
        .map(|r| r.status().as_u16());
    let served_in = asked.elapsed();
    let mut closed_at = Vec::new();
    for t in tricklers {
        closed_at.push(t.await.expect("trickler"));
    }
    let _ = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status();
    let _ = tokio::task::spawn_blocking(move || exit_within(&mut server, Duration::from_secs(15)))
        .await;
    let closed: Vec<Duration> = closed_at.iter().flatten().copied().collect();
    let earliest = closed.iter().min().copied();
    let latest = closed.iter().max().copied();
    println!(
        "trickling headers: normal client answered {normal:?} in {served_in:?}; {} of {TRICKLERS} tricklers closed, between {earliest:?} and {latest:?}",
        closed.len()
    );
    assert_eq!(normal.ok(), Some(200));
    assert!(served_in < Duration::from_secs(1), "{served_in:?}");
    assert_eq!(closed.len(), TRICKLERS, "every trickler is closed");
    assert!(earliest.is_some_and(|t| t >= HEADER_TIMEOUT - Duration::from_millis(200)));
    assert!(latest.is_some_and(|t| t < HEADER_TIMEOUT + Duration::from_secs(3)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_thousand_idle_connections_are_held_to_the_connection_cap() {
    const IDLE: usize = 5000;
    const CAP: usize = 100;
    let database = TestDatabase::create(&crate::kit::Backend::Sqlite).await;
    let dir = tempfile::tempdir().expect("dir");
    let log = dir.path().join("calltrail.log");
    let port = free_port();
    let metrics_port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let metrics_addr = format!("127.0.0.1:{metrics_port}");
    let mut server = serve_binary_with(
        &database.url,
        port,
        TOKEN,
        &log,
        &[
            ("CALLTRAIL_MAX_CONNECTIONS", "100"),
            ("CALLTRAIL_IDLE_TIMEOUT", "60s"),
            ("CALLTRAIL_HEADER_READ_TIMEOUT", "60s"),
            ("CALLTRAIL_METRICS_ADDR", &metrics_addr),
        ],
    );
    assert!(wait_healthy(&format!("{base}/healthz"), Duration::from_secs(30)).await);
    let mut opening = tokio::task::JoinSet::new();
    for _ in 0..IDLE {
        let addr = format!("127.0.0.1:{port}");
        opening.spawn(async move {
            tokio::time::timeout(Duration::from_secs(3), TcpStream::connect(addr))
                .await
                .ok()
                .and_then(Result::ok)
        });
    }
    let mut idle = Vec::new();
    while let Some(opened) = opening.join_next().await {
        if let Some(stream) = opened.expect("connect task") {
            idle.push(stream);
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client");
    let scrape = async || {
        let text = client
            .get(format!("http://{metrics_addr}/metrics"))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text");
        text.lines()
            .find_map(|l| l.strip_prefix("calltrail_http_connections_open "))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .expect("calltrail_http_connections_open")
    };
    let open_while_held = scrape().await;
    let sockets = std::fs::read_dir(format!("/proc/{}/fd", server.id()))
        .expect("fds")
        .filter_map(Result::ok)
        .filter(|e| {
            std::fs::read_link(e.path()).is_ok_and(|l| l.to_string_lossy().starts_with("socket:"))
        })
        .count();
    let connected = idle.len();
    drop(idle);
    let freed = Instant::now();
    let served_after = wait_healthy(&format!("{base}/healthz"), Duration::from_secs(20)).await;
    let served_in = freed.elapsed();
    let open_after = scrape().await;
    let _ = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status();
    let code =
        tokio::task::spawn_blocking(move || exit_within(&mut server, Duration::from_secs(35)))
            .await
            .expect("wait");
    println!(
        "idle connections: {connected} of {IDLE} connected (the rest wait in the listen queue or time out); the server held {open_while_held} (cap {CAP}), {sockets} sockets; served again {served_in:?} after they closed; exit {code:?}"
    );
    assert_eq!(open_while_held, CAP as f64, "the cap is reached and held");
    assert!(sockets <= CAP + 8, "{sockets} sockets open in the server");
    assert!(served_after, "served once the idle connections are gone");
    assert!(open_after < CAP as f64);
    assert_eq!(code, Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_still_running_at_the_shutdown_deadline_is_cut_and_the_process_exits_0() {
    let database = TestDatabase::create(&crate::kit::Backend::Sqlite).await;
    let dir = tempfile::tempdir().expect("dir");
    let log = dir.path().join("calltrail.log");
    let port = free_port();
    let mut server = serve_binary_with(
        &database.url,
        port,
        TOKEN,
        &log,
        &[
            ("CALLTRAIL_SHUTDOWN_TIMEOUT", "2s"),
            ("CALLTRAIL_BODY_READ_TIMEOUT", "60s"),
            ("RUST_LOG", "info"),
        ],
    );
    assert!(
        wait_healthy(
            &format!("http://127.0.0.1:{port}/healthz"),
            Duration::from_secs(30)
        )
        .await
    );
    // A webhook whose body stops halfway: its handler waits for the rest.
    let mut stalled = TcpStream::connect(format!("127.0.0.1:{port}"))
        .await
        .expect("connect");
    stalled
        .write_all(
            format!(
                "POST /webhooks/doubletick HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{\"event\":"
            )
            .as_bytes(),
        )
        .await
        .expect("write");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let signalled = Instant::now();
    sigterm(&server);
    let code =
        tokio::task::spawn_blocking(move || exit_within(&mut server, Duration::from_secs(10)))
            .await
            .expect("wait");
    let took = signalled.elapsed();
    let server_log = std::fs::read_to_string(&log).unwrap_or_default();
    println!("shutdown deadline: exit {code:?} after {took:?}");
    assert_eq!(code, Some(0), "{server_log}");
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_millis(3500),
        "exits at the 2 s deadline: {took:?}"
    );
    assert!(
        server_log.contains("connections_cut=1"),
        "the stalled request is cut at the deadline:\n{server_log}"
    );
    drop(stalled);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_stops_arriving_is_answered_400_at_the_body_read_timeout_and_logged() {
    let database = TestDatabase::create(&crate::kit::Backend::Sqlite).await;
    let dir = tempfile::tempdir().expect("dir");
    let log = dir.path().join("calltrail.log");
    let port = free_port();
    let mut server = serve_binary_with(
        &database.url,
        port,
        TOKEN,
        &log,
        &[("CALLTRAIL_BODY_READ_TIMEOUT", "1s")],
    );
    assert!(
        wait_healthy(
            &format!("http://127.0.0.1:{port}/healthz"),
            Duration::from_secs(30)
        )
        .await
    );
    let mut stalled = TcpStream::connect(format!("127.0.0.1:{port}"))
        .await
        .expect("connect");
    let sent = Instant::now();
    stalled
        .write_all(
            format!(
                "POST /webhooks/doubletick HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{\"event\":"
            )
            .as_bytes(),
        )
        .await
        .expect("write");
    let mut answer = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), stalled.read(&mut answer))
        .await
        .expect("answered within 5 s")
        .expect("read");
    let took = sent.elapsed();
    let answer = String::from_utf8_lossy(&answer[..n]).into_owned();
    sigterm(&server);
    let _ = tokio::task::spawn_blocking(move || exit_within(&mut server, Duration::from_secs(10)))
        .await;
    let rejected = database
        .url
        .count_where("deliveries", "outcome = 'rejected'")
        .await;
    println!(
        "stalled body: answered after {took:?}: {}",
        answer.lines().next().unwrap_or_default()
    );
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("MALFORMED_BODY"), "{answer}");
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(3),
        "{took:?}"
    );
    assert_eq!(
        rejected, 1,
        "the broken delivery is kept in the log, as rejected"
    );
}
