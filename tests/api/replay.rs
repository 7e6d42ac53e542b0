//! `calltrail replay --rejected`: rejected deliveries re-processed from the log, each reported, the log only appended to.
use crate::kit::{Inspect, fixture_bytes, for_each_app, for_each_app_with, load};
use chrono::Utc;
use entity::delivery;
use sea_orm::{ActiveModelTrait, ActiveValue::Set, EntityTrait, QueryOrder};
use serde_json::json;
use sha2::Digest;

fn replay(database_url: &str) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_calltrail"))
        .args(["replay", "--rejected"])
        .env("DATABASE_URL", database_url)
        .env("RUST_LOG", "warn")
        .output()
        .expect("calltrail replay runs");
    assert!(
        out.status.success(),
        "replay failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

async fn log(url: &str) -> Vec<delivery::Model> {
    let db = url.connect().await;
    let rows = delivery::Entity::find()
        .order_by_asc(delivery::Column::Id)
        .all(&db)
        .await
        .expect("deliveries");
    let _ = db.close().await;
    rows
}

/// A delivery an older calltrail rejected that today's parser accepts, as it sits in the log.
async fn log_old_rejection(url: &str, body: &[u8]) -> i64 {
    let db = url.connect().await;
    let row = delivery::ActiveModel {
        received_at: Set(Utc::now() - chrono::Duration::days(30)),
        content_type: Set("application/json".into()),
        body: Set(body.to_vec()),
        sha256: Set(hex::encode(sha2::Sha256::digest(body))),
        event: Set(Some("CALL_ENDED".into())),
        call_id: Set(Some("call_9P0tN4aWsD".into())),
        outcome: Set("rejected".into()),
        reason: Set(Some(
            json!({"code": "INVALID_PAYLOAD", "message": "channel: unknown key (an older calltrail)"})
                .to_string(),
        )),
        replay_of: Set(None),
        ..Default::default()
    }
    .insert(&db)
    .await
    .expect("old rejection logged");
    let _ = db.close().await;
    row.id
}

#[tokio::test]
async fn replay_reprocesses_rejections_reports_each_and_only_appends_to_the_log() {
    for_each_app(async |app| {
        let (status, _) = app.post_fixture("invalid/unparseable-ended-at.json").await;
        assert_eq!(status, 422);
        let (status, _) = app.post_webhook("text/plain", "hello").await;
        assert_eq!(status, 415);
        let (status, _) = app
            .post_fixture("events/call-ended-incoming-recorded.json")
            .await;
        assert_eq!(status, 200);
        let fixable = log_old_rejection(
            &app.database.url,
            &fixture_bytes("events/call-ended-pstn.json"),
        )
        .await;
        let before = log(&app.database.url).await;
        assert_eq!(before.len(), 4);

        let report = replay(&app.database.url);
        let label = app.backend.name();
        assert!(
            report.contains(&format!("delivery {fixable}: stored call_9P0tN4aWsD")),
            "[{label}] {report}"
        );
        assert!(
            report.contains(&format!(
                "delivery {}: rejected call_8F2kQ1xLmA",
                before[0].id
            )),
            "[{label}] {report}"
        );
        assert!(
            report.contains(&format!("delivery {}: rejected -", before[1].id)),
            "[{label}] {report}"
        );
        assert!(
            report.contains("3 replayed, 2 still rejected"),
            "[{label}] {report}"
        );

        let after = log(&app.database.url).await;
        assert_eq!(
            &after[..before.len()],
            &before[..],
            "[{label}] earlier entries untouched"
        );
        let appended = &after[before.len()..];
        assert_eq!(appended.len(), 3, "[{label}] one new entry per replay");
        let replayed: Vec<Option<i64>> = appended.iter().map(|d| d.replay_of).collect();
        assert_eq!(
            replayed,
            vec![Some(before[0].id), Some(before[1].id), Some(fixable)]
        );
        for entry in appended {
            let original = before
                .iter()
                .find(|d| Some(d.id) == entry.replay_of)
                .expect("original");
            assert_eq!(entry.body, original.body, "the same bytes re-processed");
            assert_eq!(entry.sha256, original.sha256);
            assert_eq!(
                entry.received_at, original.received_at,
                "when DoubleTick sent it"
            );
        }
        assert_eq!(appended[2].outcome, "stored");
        assert_eq!(appended[0].outcome, "rejected");
        assert!(
            appended[0]
                .reason
                .as_deref()
                .is_some_and(|r| r.contains("callEndedAt"))
        );

        let data = app
            .query(
                "{ call(callId: \"call_9P0tN4aWsD\") { channel durationSeconds rawPayload } }",
                json!({}),
            )
            .await;
        assert_eq!(
            data["call"]["channel"], "PSTN",
            "[{label}] the replayed call is queryable"
        );
        assert_eq!(
            data["call"]["rawPayload"].as_str().map(str::as_bytes),
            Some(fixture_bytes("events/call-ended-pstn.json").as_slice())
        );

        let again = replay(&app.database.url);
        assert!(
            again.contains("2 replayed, 2 still rejected"),
            "[{label}] a resolved rejection is not replayed twice; unresolved ones are retried: {again}"
        );
        assert!(
            !again.contains(&format!("delivery {fixable}:")),
            "[{label}] {again}"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replaying_while_deliveries_pour_in_never_fails_either_side_with_a_locked_database() {
    for_each_app_with(|s| s.webhook_token = vec!["t".into()], async |app| {
        for n in 0..20 {
            let mut body = fixture_bytes("invalid/unknown-direction.json");
            body.extend(format!(" \n\n{n}").as_bytes());
            let response = app
                .client
                .post(app.url("/webhooks/doubletick"))
                .bearer_auth("t")
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .expect("delivery");
            assert_eq!(
                response.status().as_u16(),
                400,
                "trailing garbage is not JSON"
            );
        }
        let tally = std::sync::Arc::new(load::Tally::default());
        let sender = tokio::spawn(load::send_all(
            app.url("/webhooks/doubletick"),
            "t".into(),
            "during_replay".into(),
            1500,
            8,
            tally.clone(),
            std::time::Duration::from_secs(60),
        ));
        // Replays run back to back for as long as the deliveries keep coming.
        let mut reports = Vec::new();
        while !sender.is_finished() {
            let url = app.database.url.clone();
            reports.push(
                tokio::task::spawn_blocking(move || replay(&url))
                    .await
                    .expect("replay"),
            );
        }
        sender.await.expect("sender");
        assert!(
            !reports.is_empty(),
            "at least one replay overlapped the deliveries"
        );
        let label = app.backend.name();
        println!(
            "replay under load [{label}]: {} replays of 20 rejections while 1500 calls arrived; {}",
            reports.len(),
            tally.summary()
        );
        for report in &reports {
            assert!(
                report.contains("20 replayed, 20 still rejected"),
                "[{label}] {report}"
            );
        }
        assert_eq!(tally.acked(), 1500, "[{label}] {}", tally.summary());
        assert_eq!(
            tally.unavailable.load(std::sync::atomic::Ordering::SeqCst)
                + tally
                    .other_statuses
                    .load(std::sync::atomic::Ordering::SeqCst)
                + tally
                    .transport_errors
                    .load(std::sync::atomic::Ordering::SeqCst),
            0,
            "[{label}] no delivery failed while replays wrote: {}",
            tally.summary()
        );
        assert_eq!(
            log(&app.database.url).await.len(),
            20 + 1500 + reports.len() * 20
        );
    })
    .await;
}
