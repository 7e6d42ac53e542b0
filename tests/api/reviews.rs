//! Reviews over GraphQL: `reviewCall` appends (never replaces), `Call.reviews` reads them
//! back, `calls(filter: {reviewed})` finds what is left to review; roles and scopes apply; the
//! table refuses UPDATE and DELETE in the database itself. Both backends.

use crate::kit::{Inspect, TestApp, create_key, for_each_app, load};
use serde_json::{Value, json};

const WABA_A: &str = "918045670011";
const WABA_B: &str = "918045670012";

async fn graphql_as(app: &TestApp, key: &str, query: &str, variables: Value) -> Value {
    app.client
        .post(app.url("/graphql"))
        .bearer_auth(key)
        .json(&json!({ "query": query, "variables": variables }))
        .send()
        .await
        .expect("graphql request")
        .json()
        .await
        .expect("a JSON answer")
}

fn first_code(answer: &Value) -> Option<&str> {
    answer["errors"][0]["extensions"]["code"].as_str()
}

const REVIEW: &str = "mutation Review($id: ID!, $verdict: ReviewVerdict!, $note: String) { \
    reviewCall(callId: $id, verdict: $verdict, note: $note) { id callId verdict note reviewedBy reviewedAt } }";

/// Four calls, `rev-0`..`rev-3`: the first two on business number A, the others on B.
async fn post_calls(app: &TestApp) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..4 {
        let mut body: Value = serde_json::from_str(&load::call_body("rev", i)).expect("body");
        body["wabaNumber"] = json!(if i < 2 { WABA_A } else { WABA_B });
        let (status, answer) = app.post_webhook("application/json", body.to_string()).await;
        assert_eq!(status, 200, "{answer}");
        ids.push(body["callId"].as_str().expect("a call id").to_owned());
    }
    ids
}

async fn unreviewed(app: &TestApp, key: &str) -> Vec<String> {
    let answer = graphql_as(
        app,
        key,
        "{ calls(filter: {reviewed: false}, orderBy: {field: ENDED_AT, direction: ASC}) { nodes { callId } } }",
        json!({}),
    )
    .await;
    answer["data"]["calls"]["nodes"]
        .as_array()
        .unwrap_or_else(|| panic!("{answer}"))
        .iter()
        .map(|n| n["callId"].as_str().expect("callId").to_owned())
        .collect()
}

#[tokio::test]
async fn a_review_is_appended_read_back_and_leaves_the_unreviewed_list() {
    for_each_app(async |app| {
        let name = app.backend.name();
        let ids = post_calls(app).await;
        let reviewer = create_key(app, "compliance", "reviewer", &[]);

        let mut all = ids.clone();
        all.sort();
        let mut left = unreviewed(app, &reviewer).await;
        left.sort();
        assert_eq!(left, all, "[{name}] nothing reviewed yet");

        let first = graphql_as(
            app,
            &reviewer,
            REVIEW,
            json!({ "id": ids[1], "verdict": "ISSUE", "note": "  disclosure skipped  " }),
        )
        .await;
        let review = &first["data"]["reviewCall"];
        assert_eq!(review["verdict"], "ISSUE", "[{name}] {first}");
        assert_eq!(review["note"], "disclosure skipped", "[{name}] trimmed");
        assert_eq!(review["reviewedBy"], "compliance");
        assert_eq!(review["callId"], ids[1].as_str());

        let second = graphql_as(
            app,
            &reviewer,
            REVIEW,
            json!({ "id": ids[1], "verdict": "OK", "note": null }),
        )
        .await;
        assert_eq!(
            second["data"]["reviewCall"]["verdict"], "OK",
            "[{name}] {second}"
        );

        let read = graphql_as(
            app,
            &reviewer,
            "query($id: ID!) { call(callId: $id) { reviews { id verdict note reviewedBy } } }",
            json!({ "id": ids[1] }),
        )
        .await;
        let reviews = read["data"]["call"]["reviews"]
            .as_array()
            .unwrap_or_else(|| panic!("[{name}] {read}"));
        assert_eq!(reviews.len(), 2, "[{name}] the later review adds: {read}");
        assert_eq!(reviews[0]["verdict"], "ISSUE", "[{name}] oldest first");
        assert_eq!(reviews[0]["note"], "disclosure skipped");
        assert_eq!(reviews[1]["verdict"], "OK");

        let left = unreviewed(app, &reviewer).await;
        assert!(!left.contains(&ids[1]), "[{name}] reviewed: {left:?}");
        assert_eq!(left.len(), 3, "[{name}] {left:?}");
        let done = graphql_as(
            app,
            &reviewer,
            "{ calls(filter: {reviewed: true}) { totalCount nodes { callId } } }",
            json!({}),
        )
        .await;
        assert_eq!(done["data"]["calls"]["totalCount"], 1, "[{name}] {done}");

        // Stored append-only, with the key that made each review.
        assert_eq!(app.count("call_reviews").await, 2);
        let key_id = app.query_number("SELECT id AS n FROM api_keys").await;
        assert_eq!(
            app.count_where("call_reviews", &format!("key_id = {key_id}"))
                .await,
            2
        );
        for sql in [
            "UPDATE call_reviews SET verdict = 'OK'",
            "DELETE FROM call_reviews",
        ] {
            let refused = app.try_execute(sql).await;
            assert!(refused.is_err(), "[{name}] `{sql}` must be refused");
        }
        assert_eq!(app.count("call_reviews").await, 2, "[{name}] still both");

        // Each review is in the access log, naming the call.
        let logged = app
            .count_where(
                "access_log",
                &format!("operation_name = 'Review' AND call_ids LIKE '%{}%'", ids[1]),
            )
            .await;
        assert_eq!(logged, 2, "[{name}] both reviews logged");
    })
    .await;
}

#[tokio::test]
async fn reviews_follow_roles_scopes_and_check_their_input() {
    for_each_app(async |app| {
        let name = app.backend.name();
        let ids = post_calls(app).await;
        let analyst = create_key(app, "bi", "analyst", &[]);
        let scoped = create_key(app, "team-a", "reviewer", &["--waba", WABA_A]);
        let admin = create_key(app, "root", "admin", &[]);

        let refused = graphql_as(
            app,
            &analyst,
            REVIEW,
            json!({ "id": ids[0], "verdict": "OK" }),
        )
        .await;
        assert_eq!(
            first_code(&refused),
            Some("FORBIDDEN"),
            "[{name}] {refused}"
        );
        let hidden = graphql_as(
            app,
            &analyst,
            "query($id: ID!) { call(callId: $id) { reviews { id } } }",
            json!({ "id": ids[0] }),
        )
        .await;
        assert_eq!(first_code(&hidden), Some("FORBIDDEN"), "[{name}] {hidden}");

        // A call outside the key's scope does not exist for it.
        let outside = graphql_as(
            app,
            &scoped,
            REVIEW,
            json!({ "id": ids[3], "verdict": "OK" }),
        )
        .await;
        assert_eq!(
            first_code(&outside),
            Some("NOT_FOUND"),
            "[{name}] {outside}"
        );
        let inside = graphql_as(
            app,
            &scoped,
            REVIEW,
            json!({ "id": ids[0], "verdict": "OK" }),
        )
        .await;
        assert_eq!(
            inside["data"]["reviewCall"]["verdict"], "OK",
            "[{name}] {inside}"
        );

        let missing = graphql_as(
            app,
            &admin,
            REVIEW,
            json!({ "id": "no-such-call", "verdict": "OK" }),
        )
        .await;
        assert_eq!(
            first_code(&missing),
            Some("NOT_FOUND"),
            "[{name}] {missing}"
        );
        let no_note = graphql_as(
            app,
            &admin,
            REVIEW,
            json!({ "id": ids[2], "verdict": "ESCALATE" }),
        )
        .await;
        assert_eq!(
            first_code(&no_note),
            Some("BAD_USER_INPUT"),
            "[{name}] {no_note}"
        );
        assert_eq!(no_note["errors"][0]["extensions"]["argument"], "note");
        let long = "x".repeat(4001);
        let too_long = graphql_as(
            app,
            &admin,
            REVIEW,
            json!({ "id": ids[2], "verdict": "ISSUE", "note": long }),
        )
        .await;
        assert_eq!(
            first_code(&too_long),
            Some("BAD_USER_INPUT"),
            "[{name}] too long"
        );

        // A mutation over GET changes nothing.
        let over_get = app
            .client
            .get(app.url("/graphql"))
            .bearer_auth(&admin)
            .query(&[(
                "query",
                format!(
                    "mutation {{ reviewCall(callId: \"{}\", verdict: OK) {{ id }} }}",
                    ids[2]
                ),
            )])
            .send()
            .await
            .expect("GET");
        assert_eq!(over_get.status().as_u16(), 405, "[{name}]");

        assert_eq!(
            app.count("call_reviews").await,
            1,
            "[{name}] only the scoped key's review"
        );
    })
    .await;
}
