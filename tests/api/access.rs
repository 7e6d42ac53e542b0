//! Who may read a client's calls: API keys (the real `calltrail keys` CLI), roles, scopes, the
//! access log, the cost limits and the query timeout, over real HTTP on both backends.

use std::time::Duration;

use crate::kit::{
    Backend, Inspect, TestApp, TestDatabase, create_key, for_each_app, for_each_backend, keys, load,
};
use calltrail::app;
use calltrail::config::Settings;
use serde_json::{Value, json};

const WABA_A: &str = "918045670001";
const WABA_B: &str = "918045670002";
const AGENT_X: &str = "919700000001";
const AGENT_Y: &str = "919700000002";

async fn graphql_as(
    app: &TestApp,
    key: Option<&str>,
    query: &str,
    variables: Value,
) -> (u16, Value) {
    let mut request = app
        .client
        .post(app.url("/graphql"))
        .json(&json!({ "query": query, "variables": variables }));
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    let response = request.send().await.expect("graphql request");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Six calls: two business numbers × agents, one unanswered.
async fn post_calls(app: &TestApp) {
    let plan = [
        (WABA_A, AGENT_X),
        (WABA_A, AGENT_Y),
        (WABA_A, AGENT_X),
        (WABA_B, AGENT_X),
        (WABA_B, AGENT_Y),
        (WABA_B, AGENT_Y),
    ];
    for (i, (waba, agent)) in plan.iter().enumerate() {
        let mut body: Value = serde_json::from_str(&load::call_body("acc", i)).expect("body");
        body["wabaNumber"] = json!(waba);
        body["pickedBy"] = json!(agent);
        body["customerName"] = json!(format!("Client {i}"));
        let (status, answer) = app.post_webhook("application/json", body.to_string()).await;
        assert_eq!(status, 200, "{answer}");
    }
}

fn code(response: &Value) -> Option<&str> {
    response["error"]["code"].as_str()
}

fn error_codes(response: &Value) -> Vec<String> {
    response["errors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .filter_map(|e| e["extensions"]["code"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn keys_cli_creates_lists_and_revokes_and_only_a_hash_is_stored() {
    for_each_app(async |app| {
        let name = app.backend.name();
        let key = create_key(app, "auditor", "reviewer", &["--waba", WABA_A]);
        assert!(key.starts_with("ct_"), "[{name}] {key}");
        let listed = keys(&app.database.url, &["list"]);
        assert!(
            listed.contains("auditor") && listed.contains("reviewer"),
            "[{name}] {listed}"
        );
        assert!(listed.contains(WABA_A), "[{name}] scope listed: {listed}");
        assert!(
            !listed.contains(&key),
            "[{name}] the key itself is never listed"
        );
        let stored = app
            .query_strings("SELECT secret_sha256 FROM api_keys")
            .await;
        assert_eq!(stored.len(), 1);
        assert_ne!(stored[0], key, "[{name}] only a hash is kept");
        assert!(
            app.count_where("api_keys", &format!("prefix = '{}'", &key[3..11]))
                .await
                == 1,
            "[{name}] found by its public prefix"
        );

        post_calls(app).await;
        let q = "{ calls { totalCount } }";
        let (status, _) = graphql_as(app, Some(&key), q, json!({})).await;
        assert_eq!(status, 200, "[{name}] the key reads");
        let id = app.query_number("SELECT id AS n FROM api_keys").await;
        let out = keys(&app.database.url, &["revoke", &id.to_string()]);
        assert!(out.contains("revoked"), "[{name}] {out}");
        let (status, body) = graphql_as(app, Some(&key), q, json!({})).await;
        assert_eq!(status, 401, "[{name}] revoked at once: {body}");
        assert_eq!(code(&body), Some("UNAUTHENTICATED"));
        let listed = keys(&app.database.url, &["list"]);
        let row = listed.lines().nth(1).expect("the key's row");
        assert!(
            !row.ends_with("\t-"),
            "[{name}] list shows when it was revoked: {row}"
        );
    })
    .await;
}

#[tokio::test]
async fn once_a_key_exists_every_read_needs_a_good_one() {
    for_each_app(async |app| {
        let name = app.backend.name();
        post_calls(app).await;
        let q = "{ calls { totalCount } }";
        let (status, _) = graphql_as(app, None, q, json!({})).await;
        assert_eq!(status, 200, "[{name}] open on loopback while no key exists");

        let good = create_key(app, "dash", "analyst", &[]);
        let expired = create_key(app, "old", "reviewer", &["--expires-in-days", "0"]);
        // "No key exists" is believed for up to a second after it was last seen.
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let cases: [(&str, Option<String>); 5] = [
            ("missing", None),
            (
                "unknown",
                Some("ct_00000000_0000000000000000000000000000000000000000".into()),
            ),
            ("malformed", Some("not-a-key".into())),
            ("expired", Some(expired.clone())),
            (
                "good key, wrong secret",
                Some(format!("{}x", &good[..good.len() - 1])),
            ),
        ];
        for (what, key) in cases {
            let (status, body) = graphql_as(app, key.as_deref(), q, json!({})).await;
            assert_eq!(status, 401, "[{name}] {what}: {body}");
            assert_eq!(code(&body), Some("UNAUTHENTICATED"), "[{name}] {what}");
        }
        let (status, body) = graphql_as(app, Some(&good), q, json!({})).await;
        assert_eq!(status, 200, "[{name}] {body}");
        assert_eq!(body["data"]["calls"]["totalCount"], 6);
    })
    .await;
}

const IDENTITY_FIELDS: [&str; 6] = [
    "customerName",
    "customerNumber",
    "customerId",
    "rawPayload",
    "recordingUrl",
    "revisions { revision }",
];

#[tokio::test]
async fn an_analyst_is_refused_each_identity_field_and_still_gets_the_rest() {
    for_each_app(async |app| {
        let name = app.backend.name();
        post_calls(app).await;
        let analyst = create_key(app, "bi", "analyst", &[]);
        let reviewer = create_key(app, "compliance", "reviewer", &[]);
        for field in IDENTITY_FIELDS {
            let q = format!("{{ calls(first: 2) {{ nodes {{ callId durationSeconds {field} }} }} }}");
            let (status, body) = graphql_as(app, Some(&analyst), &q, json!({})).await;
            assert_eq!(status, 200, "[{name}] {field}");
            assert!(
                error_codes(&body).iter().all(|c| c == "FORBIDDEN") && !error_codes(&body).is_empty(),
                "[{name}] {field} is FORBIDDEN: {body}"
            );
            let nodes = body["data"]["calls"]["nodes"].as_array().expect("nodes answered");
            assert_eq!(nodes.len(), 2, "[{name}] {field}: the rest is answered");
            assert!(nodes[0]["callId"].is_string() && nodes[0]["durationSeconds"].is_number());
            let first = field.split(' ').next().expect("name");
            assert!(nodes[0][first].is_null(), "[{name}] never a value: {body}");

            let (_, body) = graphql_as(app, Some(&reviewer), &q, json!({})).await;
            assert!(body.get("errors").is_none(), "[{name}] a reviewer reads {field}: {body}");
        }
        // Selecting or grouping by identity would reveal it.
        for q in [
            r#"{ calls(filter: { customerNumber: "919800000001" }) { totalCount } }"#,
            r#"{ calls(filter: { customerName: "client" }) { totalCount } }"#,
            r#"{ callStats(groupBy: [CUSTOMER]) { total { count } } }"#,
        ] {
            let (_, body) = graphql_as(app, Some(&analyst), q, json!({})).await;
            assert_eq!(error_codes(&body), vec!["FORBIDDEN"], "[{name}] {q}: {body}");
        }
        // The same statistics as a reviewer's.
        let q = "{ callStats(groupBy: [PICKED_BY, DIRECTION]) { total { count totalDurationSeconds p50: durationPercentile(p: 0.5) } groups { key { pickedBy direction } stats { count answeredCalls } } } }";
        let (_, as_analyst) = graphql_as(app, Some(&analyst), q, json!({})).await;
        let (_, as_reviewer) = graphql_as(app, Some(&reviewer), q, json!({})).await;
        assert!(as_analyst.get("errors").is_none(), "[{name}] {as_analyst}");
        assert_eq!(as_analyst, as_reviewer, "[{name}] analyst statistics are a reviewer's");
    })
    .await;
}

#[tokio::test]
async fn a_scoped_key_sees_only_its_calls_in_every_read() {
    for_each_app(async |app| {
        let name = app.backend.name();
        post_calls(app).await;
        let admin = create_key(app, "root", "admin", &[]);
        let team = create_key(app, "team-a-x", "reviewer", &["--waba", WABA_A, "--agent", AGENT_X]);
        let q = "query($f: CallFilter) { calls(filter: $f) { totalCount nodes { callId wabaNumber pickedBy } } callStats(filter: $f, groupBy: [DIRECTION]) { total { count totalDurationSeconds } groups { key { direction } stats { count } } } }";
        let (_, scoped) = graphql_as(app, Some(&team), q, json!({ "f": null })).await;
        let by_hand = json!({ "f": { "wabaNumber": [WABA_A], "pickedBy": [AGENT_X] } });
        let (_, filtered) = graphql_as(app, Some(&admin), q, by_hand).await;
        assert!(scoped.get("errors").is_none(), "[{name}] {scoped}");
        assert_eq!(scoped["data"], filtered["data"], "[{name}] scoped = filtered by hand");
        assert_eq!(scoped["data"]["calls"]["totalCount"], 2, "[{name}] {scoped}");
        // A filter asking for more than the scope still gets only the scope.
        let wider = json!({ "f": { "wabaNumber": [WABA_A, WABA_B] } });
        let (_, asked) = graphql_as(app, Some(&team), q, wider).await;
        assert_eq!(asked["data"]["calls"]["totalCount"], 2, "[{name}] {asked}");
        // A call outside the scope does not exist for it.
        let outside = app
            .query_strings(&format!(
                "SELECT call_id FROM calls WHERE waba_number = '{WABA_B}' ORDER BY call_id"
            ))
            .await;
        let one = "query($id: ID!) { call(callId: $id) { callId customerName } }";
        let (_, body) = graphql_as(app, Some(&team), one, json!({ "id": outside[0] })).await;
        assert_eq!(body["data"]["call"], Value::Null, "[{name}] {body}");
        assert!(body.get("errors").is_none(), "[{name}] indistinguishable from absent: {body}");
        let (_, body) = graphql_as(app, Some(&admin), one, json!({ "id": outside[0] })).await;
        assert_eq!(body["data"]["call"]["callId"], outside[0].as_str());
    })
    .await;
}

#[tokio::test]
async fn reads_are_logged_before_they_are_answered_and_the_log_refuses_changes() {
    for_each_app(async |app| {
        let name = app.backend.name();
        post_calls(app).await;
        let admin = create_key(app, "root", "admin", &[]);
        let reviewer = create_key(app, "compliance", "reviewer", &[]);
        let analyst = create_key(app, "bi", "analyst", &[]);
        let target = app
            .query_strings("SELECT call_id FROM calls ORDER BY call_id")
            .await
            .remove(0);
        let q = "query Lookup($id: ID!) { call(callId: $id) { callId customerName } }";
        let (_, body) = graphql_as(app, Some(&reviewer), q, json!({ "id": target })).await;
        assert!(body.get("errors").is_none(), "{body}");
        let (_, body) =
            graphql_as(app, Some(&analyst), "query Daily { callStats { total { count } } }", json!({})).await;
        assert!(body.get("errors").is_none(), "{body}");
        // A request that reads no calls (introspection only) is not a read of client data.
        let (_, _) = graphql_as(app, Some(&analyst), "{ __typename }", json!({})).await;

        let log = "query($f: AccessLogFilter) { accessLog(filter: $f) { totalCount nodes { keyName role operationName querySha256 clientAddress callIds surface } } }";
        let (_, body) = graphql_as(app, Some(&admin), log, json!({ "f": { "callId": target } })).await;
        let nodes = body["data"]["accessLog"]["nodes"].as_array().cloned().unwrap_or_default();
        assert_eq!(nodes.len(), 1, "[{name}] who read client X's call: {body}");
        let entry = &nodes[0];
        assert_eq!(entry["keyName"], "compliance");
        assert_eq!(entry["role"], "reviewer");
        assert_eq!(entry["operationName"], "Lookup");
        assert_eq!(entry["callIds"], json!([target]));
        assert_eq!(entry["clientAddress"], "127.0.0.1");
        assert_eq!(entry["surface"], "graphql");
        assert_eq!(entry["querySha256"].as_str().map(str::len), Some(64));
        let (_, body) = graphql_as(app, Some(&admin), log, json!({ "f": null })).await;
        let all = body["data"]["accessLog"]["nodes"].as_array().cloned().unwrap_or_default();
        let daily: Vec<&Value> = all.iter().filter(|e| e["operationName"] == "Daily").collect();
        assert_eq!(daily.len(), 1, "[{name}] statistics log one row: {body}");
        assert_eq!(daily[0]["callIds"], json!([]), "[{name}] without callIds");
        assert_eq!(
            body["data"]["accessLog"]["totalCount"], 2,
            "[{name}] the introspection-only request is not logged (the admin's own log reads are, after): {body}"
        );
        for key in [&reviewer, &analyst] {
            let (_, body) = graphql_as(app, Some(key), log, json!({ "f": null })).await;
            assert_eq!(error_codes(&body), vec!["FORBIDDEN"], "[{name}] {body}");
        }
        for sql in [
            "UPDATE access_log SET key_name = 'someone else'",
            "DELETE FROM access_log",
            "DELETE FROM access_log_calls",
        ] {
            assert!(app.try_execute(sql).await.is_err(), "[{name}] refused: {sql}");
        }
    })
    .await;
}

#[tokio::test]
async fn a_thousand_aliased_call_stats_are_refused_before_any_sql_runs() {
    for_each_app(async |app| {
        let name = app.backend.name();
        let key = create_key(app, "bi", "analyst", &[]);
        let aliases: String = (0..1000)
            .map(|i| format!("s{i}: callStats {{ total {{ count }} }} "))
            .collect();
        let (status, body) =
            graphql_as(app, Some(&key), &format!("{{ {aliases} }}"), json!({})).await;
        assert_eq!(status, 200, "[{name}]");
        assert_eq!(
            error_codes(&body),
            vec!["TOO_MANY_ROOT_FIELDS"],
            "[{name}] {body}"
        );
        assert!(
            body["errors"][0]["message"]
                .as_str()
                .unwrap_or("")
                .contains("1000")
        );
        assert_eq!(
            app.count("access_log").await,
            0,
            "[{name}] nothing ran, nothing read"
        );
        // Within the root-field limit, the weights still bound it.
        let percentiles: String = (1..=99)
            .map(|p| format!("p{p}: durationPercentile(p: 0.{p:02}) "))
            .collect();
        let q = format!("{{ callStats {{ total {{ {percentiles} }} }} }}");
        let (_, body) = graphql_as(app, Some(&key), &q, json!({})).await;
        assert_eq!(
            error_codes(&body),
            vec!["QUERY_TOO_COMPLEX"],
            "[{name}] {body}"
        );
    })
    .await;
}

#[tokio::test]
async fn without_a_key_serve_refuses_a_public_address_and_starts_once_one_exists() {
    for_each_backend(async |backend| {
        let database = TestDatabase::create(&backend).await;
        let mut public = Settings::for_database(database.url.clone());
        public.addr = "0.0.0.0:0".into();
        public.webhook_token = vec!["tok".into()];
        let refusal = app::spawn(&public).await.err().expect("refuses");
        assert!(format!("{refusal:?}").contains("no API key"), "{refusal:?}");
        keys(
            &database.url,
            &["create", "--name", "ops", "--role", "admin"],
        );
        let running = app::spawn(&public).await.expect("starts once a key exists");
        assert!(running.addr.ip().is_unspecified());
        crate::kit::stop(running).await;
    })
    .await;
}

#[tokio::test]
async fn a_read_past_the_query_timeout_is_stopped_and_answered_query_timeout() {
    for_each_backend(async |backend: Backend| {
        let database = TestDatabase::create(&backend).await;
        let store = calltrail::store::Store::connect(&database.url).await.expect("store");
        store.migrate().await.expect("migrate");
        let end = chrono::Utc::now();
        let calls = calltrail::seed::generate(calltrail::seed::SeedSpec { calls: 20_000, seed: 7, end });
        store.seed(20_000, 0, false, calls).await.expect("seed");
        store.close().await;
        let app = TestApp::spawn_on(&backend, database, |s| {
            s.query_timeout = Duration::from_millis(5);
        })
        .await;
        let q = "{ callStats(groupBy: [CUSTOMER, DAY], timeZone: \"Asia/Kolkata\", filter: { endedAt: { from: \"2000-01-01T00:00:07Z\" } }) { groups { stats { count p50: durationPercentile(p: 0.5) p95: durationPercentile(p: 0.95) } } } }";
        let started = std::time::Instant::now();
        let body = app.graphql(q, json!({})).await;
        assert_eq!(error_codes(&body), vec!["QUERY_TIMEOUT"], "[{}] {body}", backend.name());
        assert!(started.elapsed() < Duration::from_secs(5), "stopped, not run to the end");
        // A short read fits in the same 5 ms; on a machine busy with other tests one attempt
        // may not, so it has a few.
        let mut last = Value::Null;
        let fits = {
            let mut fits = false;
            for _ in 0..20 {
                last = app
                    .graphql("{ calls(first: 1) { nodes { callId } } }", json!({}))
                    .await;
                if last.get("errors").is_none() {
                    fits = true;
                    break;
                }
            }
            fits
        };
        assert!(fits, "short reads still work: {last}");
        app.finish().await;
    })
    .await;
}
