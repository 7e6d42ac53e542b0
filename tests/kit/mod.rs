//! The test kit: calltrail on a random port over a fresh database with a real HTTP client, the
//! loops that run a test on every backend, and straight SQL on the database for assertions.
//!
//! Every test runs on SQLite (a temp-dir file) and, when `TEST_DATABASE_URL` is set, on
//! PostgreSQL too; `databases` knows both, for the benchmarks as well.

mod databases;
pub mod dataset;
mod inspect;
pub mod load;

pub use databases::{Backend, TestDatabase, backends, postgres_only};
pub use inspect::Inspect;

use std::path::PathBuf;
use std::process::Command;

use calltrail::app::{self, RunningApp};
use calltrail::config::Settings;
use serde_json::{Value, json};

/// Runs `test` once on each backend of [`backends`], one after the other.
pub async fn for_each_backend(test: impl AsyncFn(Backend)) {
    for backend in backends() {
        test(backend).await;
    }
}

/// Runs `test` against calltrail over a fresh database of each backend, stopping it after.
pub async fn for_each_app(test: impl AsyncFn(&TestApp)) {
    for_each_app_with(|_| {}, test).await;
}

/// Same, with settings adjusted (tokens, page size...).
pub async fn for_each_app_with(adjust: impl Fn(&mut Settings), test: impl AsyncFn(&TestApp)) {
    for_each_backend(async |backend| {
        let app = TestApp::spawn_with(&backend, &adjust).await;
        test(&app).await;
        app.finish().await;
    })
    .await;
}

/// A running calltrail and a client for it.
pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub backend: Backend,
    running: Option<RunningApp>,
    pub database: TestDatabase,
}

impl TestApp {
    /// calltrail on a random port over a fresh database of `backend`.
    pub async fn spawn(backend: &Backend) -> TestApp {
        TestApp::spawn_with(backend, |_| {}).await
    }

    /// Same, with settings adjusted (tokens, page size...).
    pub async fn spawn_with(backend: &Backend, adjust: impl FnOnce(&mut Settings)) -> TestApp {
        let database = TestDatabase::create(backend).await;
        TestApp::spawn_on(backend, database, adjust).await
    }

    /// calltrail over `database`, already made (seeded, say), with settings adjusted.
    pub async fn spawn_on(
        backend: &Backend,
        database: TestDatabase,
        adjust: impl FnOnce(&mut Settings),
    ) -> TestApp {
        let mut settings = Settings::for_database(database.url.clone());
        adjust(&mut settings);
        let running = app::spawn(&settings).await.expect("calltrail starts");
        TestApp {
            base: format!("http://{}", running.addr),
            client: reqwest::Client::new(),
            backend: backend.clone(),
            running: Some(running),
            database,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// POSTs a webhook body with a content type; returns status and JSON body.
    pub async fn post_webhook(
        &self,
        content_type: &str,
        body: impl Into<reqwest::Body>,
    ) -> (u16, Value) {
        let response = self
            .client
            .post(self.url("/webhooks/doubletick"))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .expect("webhook request");
        let status = response.status().as_u16();
        let body = response.json::<Value>().await.unwrap_or(Value::Null);
        (status, body)
    }

    /// POSTs a fixture file (JSON unless it is a `.txt` form body).
    pub async fn post_fixture(&self, relative: &str) -> (u16, Value) {
        let body = fixture_bytes(relative);
        let content_type = if relative.ends_with("form-urlencoded.txt") {
            "application/x-www-form-urlencoded"
        } else {
            "application/json"
        };
        self.post_webhook(content_type, body).await
    }

    /// Runs a GraphQL query; returns the whole response (`data` and `errors`).
    pub async fn graphql(&self, query: &str, variables: Value) -> Value {
        self.client
            .post(self.url("/graphql"))
            .json(&json!({ "query": query, "variables": variables }))
            .send()
            .await
            .expect("graphql request")
            .json::<Value>()
            .await
            .expect("graphql answers JSON")
    }

    /// Runs a GraphQL query that must succeed; returns `data`.
    pub async fn query(&self, query: &str, variables: Value) -> Value {
        let response = self.graphql(query, variables).await;
        assert!(
            response.get("errors").is_none(),
            "[{}] query failed: {response}",
            self.backend.name()
        );
        response["data"].clone()
    }

    /// Stops the server (gracefully) and drops its database.
    pub async fn finish(mut self) {
        if let Some(running) = self.running.take() {
            stop(running).await;
        }
    }
}

/// Stops a calltrail started with `app::spawn` gracefully, and closes its store.
pub async fn stop(running: RunningApp) {
    let store = running.store.clone();
    running.stop().await;
    store.close().await;
}

/// Runs `calltrail keys ARGS` on the app's database; returns stdout, failing on a non-zero exit.
pub fn keys(url: &str, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_calltrail"))
        .arg("keys")
        .args(args)
        .env("DATABASE_URL", url)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run calltrail keys");
    assert!(
        out.status.success(),
        "keys {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A new key (the last line `keys create` prints).
pub fn create_key(app: &TestApp, name: &str, role: &str, extra: &[&str]) -> String {
    let mut args = vec!["create", "--name", name, "--role", role];
    args.extend_from_slice(extra);
    let out = keys(&app.database.url, &args);
    out.lines().last().expect("a key line").trim().to_owned()
}

/// Path of a fixture under `tests/fixtures/doubletick/`.
pub fn fixture_path(relative: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/doubletick")
        .join(relative)
}

pub fn fixture_bytes(relative: &str) -> Vec<u8> {
    std::fs::read(fixture_path(relative)).unwrap_or_else(|e| panic!("fixture {relative}: {e}"))
}

pub fn fixture_json(relative: &str) -> Value {
    serde_json::from_slice(&fixture_bytes(relative)).expect("fixture is JSON")
}

/// The names of the files in a fixture folder, sorted.
pub fn fixture_names(folder: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(fixture_path(folder))
        .expect("fixture folder")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Every field of a `Call`, for read-back checks.
pub const CALL_FIELDS: &str = "callId status direction customerId customerName customerNumber wabaNumber pickedBy endedBy rejectedBy deviceId chatId chatMessageId channel channelNumber pstnFrom pstnTo failedReason startedAt endedAt durationSeconds recordingUrl isNewCaller isChatAssigned notPickedCount anomalies receivedAt revision rawPayload rawContentType";
