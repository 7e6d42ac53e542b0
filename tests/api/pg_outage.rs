//! The PostgreSQL outage test: a private PostgreSQL is stopped mid-load and started again; 503 meanwhile, then recovery.
//!
//! The test runs its own PostgreSQL (`initdb` into a temp dir, its own port) and never touches
//! the machine's shared instance. A missing PostgreSQL installation fails the test.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::kit::load::{Tally, free_port, send_all, wait_healthy};
use crate::kit::{self, Inspect};
use calltrail::app;
use calltrail::config::Settings;

const CALLS: usize = 1500;
const WORKERS: usize = 16;
const TOKEN: &str = "outage-test-secret";
const OUTAGE: Duration = Duration::from_secs(5);

/// A throwaway PostgreSQL cluster, stopped and deleted when dropped.
struct PrivatePostgres {
    bin: PathBuf,
    data: PathBuf,
    port: u16,
    as_root: bool,
    _dir: tempfile::TempDir,
}

impl PrivatePostgres {
    fn bin_dir() -> PathBuf {
        let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .map(|e| e.path().join("bin"))
                    .filter(|bin| bin.join("initdb").exists() && bin.join("pg_ctl").exists())
                    .collect()
            })
            .unwrap_or_default();
        found.sort_by_key(|p| {
            p.parent()
                .and_then(|v| v.file_name())
                .and_then(|v| v.to_str())
                .and_then(|v| v.parse::<u32>().ok())
                .unwrap_or(0)
        });
        found.pop().unwrap_or_else(|| {
            panic!(
                "the PostgreSQL outage test needs PostgreSQL's server binaries (initdb, pg_ctl) under \
                 /usr/lib/postgresql/<version>/bin: install them (apt-get install postgresql)"
            )
        })
    }

    fn init() -> PrivatePostgres {
        let bin = Self::bin_dir();
        let dir = tempfile::tempdir().expect("temp dir");
        let data = dir.path().join("data");
        let as_root = std::fs::metadata("/proc/self")
            .map(|m| m.uid())
            .unwrap_or(1)
            == 0;
        if as_root {
            // initdb refuses to run as root: the cluster belongs to the `postgres` user.
            let chown = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .output()
                .expect("chown");
            assert!(
                chown.status.success(),
                "the outage test runs as root and needs a `postgres` user to own its cluster: {}",
                String::from_utf8_lossy(&chown.stderr)
            );
        }
        let cluster = PrivatePostgres {
            bin,
            data,
            port: free_port(),
            as_root,
            _dir: dir,
        };
        let init = cluster.run(
            "initdb",
            &[
                "-D",
                path(&cluster.data),
                "-U",
                "postgres",
                "-A",
                "trust",
                "--no-sync",
            ],
        );
        assert!(init.status.success(), "initdb failed: {}", describe(&init));
        cluster
    }

    fn run(&self, tool: &str, args: &[&str]) -> Output {
        let program = self.bin.join(tool);
        let mut command = if self.as_root {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&program);
            c
        } else {
            Command::new(&program)
        };
        command
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()))
    }

    fn start(&self) {
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -k {} -c max_connections=40",
            self.port,
            path(&self.data)
        );
        let log = self.data.join("server.log");
        let out = self.run(
            "pg_ctl",
            &[
                "-D",
                path(&self.data),
                "-l",
                path(&log),
                "-o",
                &options,
                "-w",
                "-t",
                "30",
                "start",
            ],
        );
        assert!(
            out.status.success(),
            "private PostgreSQL did not start: {}\n{}",
            describe(&out),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }

    /// Stops the server the hard way, as a crash or a lost host would.
    fn stop(&self) {
        let out = self.run(
            "pg_ctl",
            &["-D", path(&self.data), "-m", "immediate", "-w", "stop"],
        );
        assert!(
            out.status.success(),
            "private PostgreSQL did not stop: {}",
            describe(&out)
        );
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let _ = self.run(
            "pg_ctl",
            &["-D", path(&self.data), "-m", "immediate", "-w", "stop"],
        );
    }
}

fn path(p: &Path) -> &str {
    p.to_str().expect("UTF-8 temp path")
}

fn describe(out: &Output) -> String {
    format!(
        "{}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_outage_gets_503_then_recovers_by_itself_and_loses_nothing_acknowledged() {
    let postgres = PrivatePostgres::init();
    postgres.start();
    let mut settings = Settings::for_database(postgres.url());
    settings.webhook_token = vec![TOKEN.into()];
    let running = app::spawn(&settings).await.expect("calltrail starts");
    let base = format!("http://{}", running.addr);

    let tally = Arc::new(Tally::default());
    let started = Instant::now();
    let sender = tokio::spawn(send_all(
        format!("{base}/webhooks/doubletick"),
        TOKEN.into(),
        "outage".into(),
        CALLS,
        WORKERS,
        tally.clone(),
        Duration::from_secs(100),
    ));
    while tally.acked() < CALLS / 3 && !sender.is_finished() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(!sender.is_finished(), "the load ended before the outage");

    postgres.stop();
    // Answers already on the wire when PostgreSQL went down were committed before it did.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let acked_at_stop = tally.acked();
    let unavailable_before = tally.unavailable.load(Ordering::SeqCst);
    let outage_started = Instant::now();
    let client = reqwest::Client::new();
    let mut health_during = None;
    while outage_started.elapsed() < OUTAGE {
        tokio::time::sleep(Duration::from_millis(500)).await;
        if health_during.is_none()
            && let Ok(r) = client.get(format!("{base}/health")).send().await
        {
            health_during = Some(r.status().as_u16());
        }
    }
    let acked_during_outage = tally.acked() - acked_at_stop;
    let unavailable_during = tally.unavailable.load(Ordering::SeqCst) - unavailable_before;

    postgres.start();
    let restarted = Instant::now();
    let acked_at_restart = tally.acked();
    while tally.acked() == acked_at_restart
        && !sender.is_finished()
        && restarted.elapsed() < Duration::from_secs(30)
    {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let first_ack_after = restarted.elapsed();
    let recovered = wait_healthy(&format!("{base}/health"), Duration::from_secs(30)).await;
    sender.await.expect("sender");
    let elapsed = started.elapsed();
    kit::stop(running).await;

    let acked = tally.acked_ids();
    let stored = postgres.url().stored_call_ids().await;
    let missing: Vec<&String> = acked.iter().filter(|id| !stored.contains(*id)).collect();
    let (without_event, without_delivery) = postgres.url().orphans().await;
    println!(
        "pg outage: calls={CALLS} outage={:.1}s acked-before-stop={acked_at_stop} acked-during-outage={acked_during_outage} \
         503-during-outage={unavailable_during} health-during-outage={health_during:?} first-ack-after-restart={:.1}s \
         acked={} stored={} missing={} in {:.1}s; {}",
        OUTAGE.as_secs_f64(),
        first_ack_after.as_secs_f64(),
        acked.len(),
        stored.len(),
        missing.len(),
        elapsed.as_secs_f64(),
        tally.summary()
    );
    assert!(
        unavailable_during > 0,
        "deliveries during the outage were answered 503"
    );
    assert_eq!(
        tally.unavailable.load(Ordering::SeqCst),
        tally.unavailable_with_retry_after.load(Ordering::SeqCst),
        "every 503 carries Retry-After"
    );
    assert_eq!(
        tally.other_statuses.load(Ordering::SeqCst),
        0,
        "only 2xx and 503"
    );
    assert_eq!(
        acked_during_outage, 0,
        "nothing acknowledged while the database was down"
    );
    assert_eq!(health_during, Some(503), "/health reports the outage");
    assert!(recovered, "calltrail recovered without a restart");
    assert_eq!(acked.len(), CALLS, "every call acknowledged after recovery");
    assert!(missing.is_empty(), "acknowledged but missing: {missing:?}");
    assert_eq!(stored.len(), CALLS);
    assert_eq!(
        (without_event, without_delivery),
        (0, 0),
        "no half-written call"
    );
}

/// `/readyz` on a private PostgreSQL: 200 while it takes writes, 503 with the reason while it
/// is down and while it runs as a standby in recovery, 200 again once it is a primary, with no
/// restart of calltrail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_is_503_while_postgres_is_down_or_in_recovery_and_200_once_it_takes_writes() {
    let postgres = PrivatePostgres::init();
    postgres.start();
    let running = app::spawn(&Settings::for_database(postgres.url()))
        .await
        .expect("calltrail starts");
    let readyz = format!("http://{}/readyz", running.addr);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    // The first answer within `limit` with status `want` and a reason containing `saying`;
    // else the last one seen.
    let until = async |want: u16, saying: &str, limit: Duration| {
        let started = Instant::now();
        let mut seen = (0, String::new());
        while started.elapsed() < limit {
            if let Ok(r) = client.get(&readyz).send().await {
                let status = r.status().as_u16();
                let body: serde_json::Value = r.json().await.unwrap_or_default();
                seen = (
                    status,
                    body["reason"].as_str().unwrap_or_default().to_owned(),
                );
                if status == want && seen.1.contains(saying) {
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        seen
    };
    let up = until(200, "", Duration::from_secs(5)).await;
    postgres.stop();
    let down = until(503, "", Duration::from_secs(10)).await;
    let signal = postgres.data.join("standby.signal");
    std::fs::write(&signal, b"").expect("standby.signal");
    postgres.start();
    let standby = until(503, "recovery", Duration::from_secs(15)).await;
    postgres.run(
        "pg_ctl",
        &["-D", path(&postgres.data), "-m", "fast", "-w", "stop"],
    );
    std::fs::remove_file(&signal).expect("remove standby.signal");
    postgres.start();
    let primary = until(200, "", Duration::from_secs(15)).await;
    kit::stop(running).await;
    println!("/readyz: up {up:?}, down {down:?}, standby {standby:?}, primary again {primary:?}");
    assert_eq!(up.0, 200);
    assert_eq!(down.0, 503);
    assert!(!down.1.is_empty(), "a reason is given: {down:?}");
    assert_eq!(standby.0, 503);
    assert!(standby.1.contains("standby in recovery"), "{standby:?}");
    assert_eq!(primary.0, 200, "{primary:?}");
}
