//! Benchmark harness: the release server as a child process, RSS, percentiles, the `BENCH_*` settings; databases come from the test kit.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[path = "../../tests/kit/databases.rs"]
mod databases;

pub use databases::{Backend, BenchDatabase};

/// Bearer token the benchmark server is started with.
pub const TOKEN: &str = "bench-token-0123456789";

/// `BENCH_BACKENDS` (default `sqlite,postgres`); PostgreSQL at `BENCH_PG_URL`
/// (default `postgres://postgres@127.0.0.1:5432/postgres`).
pub fn backends() -> Vec<Backend> {
    let wanted = std::env::var("BENCH_BACKENDS").unwrap_or_else(|_| "sqlite,postgres".into());
    let admin_url = std::env::var("BENCH_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    wanted
        .split(',')
        .filter_map(|name| Backend::named(name.trim(), &admin_url))
        .collect()
}

/// An environment variable as a number, or a default.
pub fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The release binary (`cargo build --release` first), or `CALLTRAIL_BIN`.
pub fn binary() -> PathBuf {
    let path = std::env::var("CALLTRAIL_BIN").map_or_else(
        |_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/release/calltrail"),
        PathBuf::from,
    );
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --release` first",
        path.display()
    );
    path
}

/// `calltrail seed` as a child process; returns the wall time it took.
pub fn seed(url: &str, calls: u64, seed: u64) -> Duration {
    let started = Instant::now();
    let status = Command::new(binary())
        .args([
            "seed",
            "--calls",
            &calls.to_string(),
            "--seed",
            &seed.to_string(),
        ])
        .env("DATABASE_URL", url)
        .env("RUST_LOG", "warn")
        .status()
        .expect("run calltrail seed");
    assert!(status.success(), "calltrail seed failed");
    started.elapsed()
}

/// Waits for the kernel to write every dirty page to disk (`sync`); returns how long it took.
pub fn sync() -> Duration {
    let started = Instant::now();
    let status = Command::new("sync").status().expect("run sync");
    assert!(status.success(), "sync failed");
    started.elapsed()
}

/// The release server as a child process on a free loopback port, killed when dropped.
pub struct Server {
    pub base: String,
    child: Child,
}

impl Server {
    pub async fn start(url: &str) -> Server {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let child = Command::new(binary())
            .args(["serve", "--addr", &format!("127.0.0.1:{port}")])
            .env("DATABASE_URL", url)
            .env("CALLTRAIL_WEBHOOK_TOKEN", TOKEN)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .expect("start calltrail");
        let server = Server {
            base: format!("http://127.0.0.1:{port}"),
            child,
        };
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(r) = client.get(format!("{}/health", server.base)).send().await
                && r.status().is_success()
            {
                break;
            }
            assert!(Instant::now() < deadline, "calltrail did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        server
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resident set size now, in MiB.
    pub fn rss_mib(&self) -> f64 {
        rss_mib(self.pid())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `VmRSS` of a process, in MiB.
pub fn rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Samples a process's RSS every 100 ms until stopped; yields the peak.
pub struct RssSampler {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<f64>,
}

impl RssSampler {
    pub fn start(pid: u32) -> RssSampler {
        let (stop, mut stopped) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(async move {
            let mut peak = rss_mib(pid);
            loop {
                tokio::select! {
                    _ = &mut stopped => return peak,
                    _ = tokio::time::sleep(Duration::from_millis(100)) => {
                        peak = peak.max(rss_mib(pid));
                    }
                }
            }
        });
        RssSampler { stop, task }
    }

    pub async fn peak(self) -> f64 {
        let _ = self.stop.send(());
        self.task.await.unwrap_or(0.0)
    }
}

/// The `q`-quantile (0..=1) of sorted values.
pub fn quantile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The machine, for the report.
pub fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    format!(
        "{cores} cores, {cpu}; load average at start: {}",
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    )
}
