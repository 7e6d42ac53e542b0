//! Start-up needs no setup beyond a URL: the SQLite file or the PostgreSQL database is created.
use crate::kit;

use crate::kit::{Backend, backends, with_database};
use calltrail::app;
use calltrail::config::Settings;
use sea_orm::{ConnectionTrait, Database};

#[tokio::test]
async fn a_database_that_does_not_exist_yet_is_created_at_start() {
    for backend in backends() {
        let dir = tempfile::tempdir().expect("temp dir");
        let name = format!("test_{}", uuid::Uuid::new_v4().simple());
        let url = match &backend {
            Backend::Sqlite => format!("sqlite://{}/{name}.db?mode=rwc", dir.path().display()),
            Backend::Postgres { admin_url } => with_database(admin_url, &name),
        };
        let running = app::spawn(&Settings::for_database(url.clone()))
            .await
            .unwrap_or_else(|e| panic!("[{}] starts on a new database: {e:?}", backend.name()));
        let client = reqwest::Client::new();
        let status = client
            .post(format!("http://{}/webhooks/doubletick", running.addr))
            .header("content-type", "application/json")
            .body(kit::fixture_bytes("events/call-ended-pstn.json"))
            .send()
            .await
            .expect("post")
            .status();
        assert_eq!(status, 200, "[{}]", backend.name());
        let store = running.store.clone();
        running.stop().await;
        store.close().await;
        if let Backend::Postgres { admin_url } = &backend {
            let admin = Database::connect(admin_url.as_str()).await.expect("admin");
            admin
                .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .await
                .expect("drop the created database");
            let _ = admin.close().await;
        }
    }
}
