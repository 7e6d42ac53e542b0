//! The runtime role (PostgreSQL): `calltrail db grant-runtime ROLE` gives a login role what
//! `serve --no-migrate` needs and nothing that rewrites history. The whole server runs under it,
//! and the statements that would remove or bypass the logs' protection are refused.

use std::process::Command;

use serde_json::json;

use crate::kit::{Backend, Inspect, TestApp, TestDatabase, fixture_names, postgres_only};
use calltrail::store::Store;

/// A login role of the test's own, dropped (with its privileges) whatever the test's outcome.
struct Role {
    name: String,
    database_url: String,
    admin_url: String,
}

impl Drop for Role {
    fn drop(&mut self) {
        // Each step in a thread of its own: the kit panics on a database that is already gone
        // (its privileges went with it), and the role must be dropped all the same.
        let steps = [
            (
                self.database_url.clone(),
                format!("DROP OWNED BY {}", self.name),
            ),
            (
                self.admin_url.clone(),
                format!("DROP ROLE IF EXISTS {}", self.name),
            ),
        ];
        for (url, sql) in steps {
            let _ = std::thread::spawn(move || {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime")
                    .block_on(async { url.as_str().try_execute(&sql).await })
            })
            .join();
        }
    }
}

/// `url` with `user` instead of its user.
fn as_user(url: &str, user: &str) -> String {
    let start = url.find("://").expect("a URL") + 3;
    let at = start + url[start..].find('@').expect("a user in the URL");
    format!("{}{user}{}", &url[..start], &url[at..])
}

fn calltrail(url: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_calltrail"))
        .args(args)
        .env("DATABASE_URL", url)
        .env("RUST_LOG", "warn")
        .output()
        .expect("calltrail runs");
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), printed)
}

#[tokio::test]
async fn the_server_runs_under_the_runtime_role_which_cannot_rewrite_history() {
    let Some(backend) = postgres_only("runtime role") else {
        return;
    };
    let Backend::Postgres { admin_url } = &backend else {
        unreachable!("postgres_only");
    };
    let database = TestDatabase::create(&backend).await;
    let owner_url = database.url.clone();
    let store = Store::connect(&owner_url).await.expect("connect");
    store.migrate().await.expect("migrate as the owner");
    store.close().await;
    let name = format!("calltrail_rt_{}", uuid::Uuid::new_v4().simple());
    admin_url
        .as_str()
        .execute(&format!("CREATE ROLE {name} LOGIN"))
        .await;
    let role = Role {
        name: name.clone(),
        database_url: owner_url.clone(),
        admin_url: admin_url.clone(),
    };
    let runtime_url = as_user(&owner_url, &role.name);

    let (ok, printed) = calltrail(&owner_url, &["db", "grant-runtime", &name]);
    assert!(ok, "grant-runtime: {printed}");
    // The owner itself is refused as a runtime role.
    let (ok, printed) = calltrail(&owner_url, &["db", "grant-runtime", "postgres"]);
    assert!(!ok, "the superuser was taken as a runtime role: {printed}");

    // Keys, as the runtime role, without migrating: `keys create` prints the key last.
    let out = Command::new(env!("CARGO_BIN_EXE_calltrail"))
        .args([
            "--no-migrate",
            "keys",
            "create",
            "--name",
            "auditor",
            "--role",
            "admin",
        ])
        .env("DATABASE_URL", &runtime_url)
        .env("RUST_LOG", "warn")
        .output()
        .expect("calltrail keys runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "keys create: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let key = stdout.lines().last().expect("a key line").trim().to_owned();
    // Without `--no-migrate` the runtime role cannot even start: migrating is the owner's.
    let (ok, printed) = calltrail(&runtime_url, &["keys", "list"]);
    assert!(!ok, "the runtime role migrated: {printed}");

    let app = TestApp::spawn_on(&backend, database, |s| {
        s.database_url = runtime_url.clone();
        s.no_migrate = true;
    })
    .await;
    for fixture in fixture_names("events") {
        if !fixture.ends_with(".json") {
            continue;
        }
        let (status, body) = app.post_fixture(&format!("events/{fixture}")).await;
        assert_eq!(status, 200, "{fixture}: {body}");
    }
    let read: serde_json::Value = app
        .client
        .post(app.url("/graphql"))
        .bearer_auth(&key)
        .json(&json!({
            "query": "{ calls(first: 10) { totalCount nodes { callId revision } } \
                      accessLog(first: 5) { totalCount } }"
        }))
        .send()
        .await
        .expect("graphql")
        .json()
        .await
        .expect("graphql answer");
    assert!(read["errors"].is_null(), "{read}");
    assert_eq!(read["data"]["calls"]["totalCount"], 6, "{read}");
    let logged = app.count("access_log").await;
    assert!(logged >= 1, "the read was logged: {logged}");
    let used = app
        .count_where("api_keys", "last_used_at IS NOT NULL")
        .await;
    assert_eq!(used, 1, "the key's last use was recorded");

    // What would rewrite history, as the runtime role: refused.
    let runtime = runtime_url.as_str();
    for sql in [
        "DROP TRIGGER deliveries_append_only ON deliveries",
        "ALTER TABLE deliveries DISABLE TRIGGER deliveries_append_only",
        "ALTER TABLE call_events DISABLE TRIGGER ALL",
        "DELETE FROM deliveries",
        "UPDATE deliveries SET outcome = 'rejected'",
        "TRUNCATE deliveries",
        "TRUNCATE calls",
        "DELETE FROM call_events",
        "DELETE FROM call_revisions",
        "DELETE FROM access_log",
        "DELETE FROM chain_links",
        "UPDATE chain_links SET link = 'x'",
        "DELETE FROM seaql_migrations",
        "DROP TABLE calls",
        "CREATE TABLE mine (id int)",
        "SET session_replication_role = replica",
    ] {
        assert!(
            runtime.try_execute(sql).await.is_err(),
            "`{sql}` was allowed to the runtime role"
        );
    }
    // Reading everything is allowed: verify runs as the runtime role, and passes.
    let (ok, printed) = calltrail(&runtime_url, &["verify"]);
    assert!(ok, "verify as the runtime role: {printed}");
    app.finish().await;
    drop(role);
}
