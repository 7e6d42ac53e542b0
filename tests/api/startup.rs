//! Start-up needs no setup beyond a URL: the SQLite file or the PostgreSQL database is created.
use crate::kit::{self, TestDatabase, for_each_backend};
use calltrail::app;
use calltrail::config::Settings;

#[tokio::test]
async fn a_database_that_does_not_exist_yet_is_created_at_start() {
    for_each_backend(async |backend| {
        let database = TestDatabase::uncreated(&backend);
        let running = app::spawn(&Settings::for_database(database.url.clone()))
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
        kit::stop(running).await;
    })
    .await;
}

/// Two instances started at once on a database that does not exist yet: one creates it, the
/// other finds it created (`CREATE DATABASE` racing, or SQLite's file), and both serve.
#[tokio::test]
async fn instances_started_together_on_a_database_that_does_not_exist_yet_all_come_up() {
    for_each_backend(async |backend| {
        let name = backend.name();
        for _round in 0..3 {
            let database = TestDatabase::uncreated(&backend);
            let settings = Settings::for_database(database.url.clone());
            let starts: Vec<_> = (0..2)
                .map(|_| {
                    let settings = settings.clone();
                    tokio::spawn(async move { app::spawn(&settings).await })
                })
                .collect();
            let mut running = Vec::new();
            for start in starts {
                running.push(
                    start
                        .await
                        .expect("task")
                        .unwrap_or_else(|e| panic!("[{name}] both come up: {e:?}")),
                );
            }
            for instance in running {
                kit::stop(instance).await;
            }
        }
    })
    .await;
}
