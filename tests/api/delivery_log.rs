//! The delivery log is append-only in the database itself, not only by convention.

use crate::kit::for_each_app;
use sea_orm::{ConnectionTrait, Database};

#[tokio::test]
async fn the_database_refuses_to_update_or_delete_logged_deliveries() {
    for_each_app(async |app| {
        let (status, _) = app
            .post_fixture("events/call-ended-incoming-recorded.json")
            .await;
        assert_eq!(status, 200);
        let db = Database::connect(app.database.url.as_str())
            .await
            .expect("connect");
        for sql in [
            "UPDATE deliveries SET outcome = 'rejected'",
            "DELETE FROM deliveries",
        ] {
            let refused = db.execute_unprepared(sql).await;
            assert!(
                refused.is_err(),
                "[{}] `{sql}` must be refused",
                app.backend.name()
            );
        }
        let kept = db
            .query_one_raw(sea_orm::Statement::from_string(
                db.get_database_backend(),
                "SELECT COUNT(*) AS n FROM deliveries WHERE outcome = 'stored'",
            ))
            .await
            .expect("count")
            .expect("one row")
            .try_get::<i64>("", "n")
            .expect("n");
        assert_eq!(
            kept,
            1,
            "[{}] the logged delivery is intact",
            app.backend.name()
        );
        let _ = db.close().await;
    })
    .await;
}
