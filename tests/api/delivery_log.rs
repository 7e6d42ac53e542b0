//! The delivery log is append-only in the database itself, not only by convention.

use crate::kit::{Inspect, for_each_app};

#[tokio::test]
async fn the_database_refuses_to_update_or_delete_logged_deliveries() {
    for_each_app(async |app| {
        let (status, _) = app
            .post_fixture("events/call-ended-incoming-recorded.json")
            .await;
        assert_eq!(status, 200);
        for sql in [
            "UPDATE deliveries SET outcome = 'rejected'",
            "DELETE FROM deliveries",
        ] {
            let refused = app.try_execute(sql).await;
            assert!(
                refused.is_err(),
                "[{}] `{sql}` must be refused",
                app.backend.name()
            );
        }
        let kept = app.count_where("deliveries", "outcome = 'stored'").await;
        assert_eq!(
            kept,
            1,
            "[{}] the logged delivery is intact",
            app.backend.name()
        );
    })
    .await;
}
