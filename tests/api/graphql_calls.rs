//! The call list over GraphQL: every filter, every ordering, cursor paging both ways, page sizes, guard rails.

use std::collections::BTreeSet;

use crate::kit::dataset::{self, GenCall};
use crate::kit::{TestApp, fixture_names, for_each_app, for_each_backend};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

const NODE: &str = "callId endedAt startedAt durationSeconds receivedAt";

fn at(text: &str) -> DateTime<Utc> {
    text.parse().expect("instant")
}

fn page_query() -> String {
    format!(
        "query($filter: CallFilter, $order: CallOrder, $first: Int, $after: String, $last: Int, $before: String) {{
          calls(filter: $filter, orderBy: $order, first: $first, after: $after, last: $last, before: $before) {{
            totalCount
            edges {{ cursor node {{ {NODE} }} }}
            pageInfo {{ hasNextPage hasPreviousPage startCursor endCursor }}
          }}
        }}"
    )
}

/// Every call of a list, paging forward `size` at a time.
async fn all_forward(app: &TestApp, filter: &Value, order: &Value, size: i64) -> Vec<Value> {
    let mut nodes = Vec::new();
    let mut after = Value::Null;
    loop {
        let data = app
            .query(
                &page_query(),
                json!({ "filter": filter, "order": order, "first": size, "after": after }),
            )
            .await;
        let page = &data["calls"];
        nodes.extend(
            page["edges"]
                .as_array()
                .expect("edges")
                .iter()
                .map(|e| e["node"].clone()),
        );
        if page["pageInfo"]["hasNextPage"] != json!(true) {
            return nodes;
        }
        after = page["pageInfo"]["endCursor"].clone();
    }
}

/// Every call of a list, paging backward from the end `size` at a time, in list order.
async fn all_backward(app: &TestApp, filter: &Value, order: &Value, size: i64) -> Vec<Value> {
    let mut pages: Vec<Vec<Value>> = Vec::new();
    let mut before = Value::Null;
    loop {
        let data = app
            .query(
                &page_query(),
                json!({ "filter": filter, "order": order, "last": size, "before": before }),
            )
            .await;
        let page = &data["calls"];
        pages.push(
            page["edges"]
                .as_array()
                .expect("edges")
                .iter()
                .map(|e| e["node"].clone())
                .collect(),
        );
        if page["pageInfo"]["hasPreviousPage"] != json!(true) {
            break;
        }
        before = page["pageInfo"]["startCursor"].clone();
    }
    pages.into_iter().rev().flatten().collect()
}

fn ids(nodes: &[Value]) -> Vec<String> {
    nodes
        .iter()
        .map(|n| n["callId"].as_str().expect("callId").to_owned())
        .collect()
}

fn expected_ids(calls: &[GenCall], keep: impl Fn(&GenCall) -> bool) -> BTreeSet<String> {
    calls
        .iter()
        .filter(|c| keep(c))
        .map(|c| c.call_id.clone())
        .collect()
}

#[tokio::test]
async fn every_filter_field_and_their_combination_select_exactly_the_matching_calls() {
    let calls = dataset::generate(1_200);
    let agent = dataset::AGENTS[3];
    let some_ids: Vec<String> = calls
        .iter()
        .step_by(50)
        .map(|c| c.call_id.clone())
        .collect();
    let formatted = calls
        .iter()
        .find(|c| c.customer_number.starts_with('+'))
        .expect("a formatted number")
        .clone();
    let (from, to) = (at("2026-03-05T00:00:00Z"), at("2026-03-09T00:00:00Z"));
    // The instant of a call ending exactly at a bound: included at `from`, excluded at `to`.
    let boundary = calls[3].ended_at;
    type Keep = Box<dyn Fn(&GenCall) -> bool>;
    let cases: Vec<(&str, Value, Keep)> = vec![
        ("callId", json!({ "callId": some_ids }), {
            let ids = some_ids.clone();
            Box::new(move |c| ids.contains(&c.call_id))
        }),
        (
            "customerId",
            json!({ "customerId": "customer_007" }),
            Box::new(|c| c.customer_id == "customer_007"),
        ),
        (
            "customerNumber, formatted differently than stored",
            json!({ "customerNumber": format!("({}) {}", &formatted.customer_digits[..2], &formatted.customer_digits[2..]) }),
            {
                let digits = formatted.customer_digits.clone();
                Box::new(move |c| c.customer_digits == digits)
            },
        ),
        (
            "customerName, any case, substring",
            json!({ "customerName": "IYER" }),
            Box::new(|c| c.customer_name.to_lowercase().contains("iyer")),
        ),
        (
            "pickedBy",
            json!({ "pickedBy": [agent, dataset::AGENTS[0]] }),
            Box::new(move |c| {
                c.picked_by == Some(agent) || c.picked_by == Some(dataset::AGENTS[0])
            }),
        ),
        (
            "endedBy",
            json!({ "endedBy": [agent] }),
            Box::new(move |c| c.ended_by.as_deref() == Some(agent)),
        ),
        (
            "wabaNumber",
            json!({ "wabaNumber": [dataset::WABA_NUMBERS[1]] }),
            Box::new(|c| c.waba_number == dataset::WABA_NUMBERS[1]),
        ),
        (
            "direction",
            json!({ "direction": "OUTGOING" }),
            Box::new(|c| c.direction == "OUTGOING"),
        ),
        (
            "status",
            json!({ "status": ["MISSED", "REJECT"] }),
            Box::new(|c| c.status == "MISSED" || c.status == "REJECT"),
        ),
        (
            "channel",
            json!({ "channel": "PSTN" }),
            Box::new(|c| c.channel == Some("PSTN")),
        ),
        (
            "endedAt, half-open",
            json!({ "endedAt": { "from": from, "to": to } }),
            Box::new(move |c| from <= c.ended_at && c.ended_at < to),
        ),
        (
            "endedAt from an exact end time",
            json!({ "endedAt": { "from": boundary } }),
            Box::new(move |c| c.ended_at >= boundary),
        ),
        (
            "endedAt to an exact end time",
            json!({ "endedAt": { "to": boundary } }),
            Box::new(move |c| c.ended_at < boundary),
        ),
        (
            "startedAt, half-open, never-answered calls excluded",
            json!({ "startedAt": { "from": from, "to": to } }),
            Box::new(move |c| c.started_at.is_some_and(|s| from <= s && s < to)),
        ),
        (
            "durationSeconds, inclusive",
            json!({ "durationSeconds": { "min": 30, "max": 120 } }),
            Box::new(|c| (30..=120).contains(&c.duration_seconds)),
        ),
        (
            "hasRecording true",
            json!({ "hasRecording": true }),
            Box::new(|c| c.recording),
        ),
        (
            "hasRecording false",
            json!({ "hasRecording": false }),
            Box::new(|c| !c.recording),
        ),
        (
            "a combination is AND",
            json!({ "pickedBy": [agent], "direction": "INCOMING", "durationSeconds": { "min": 60 }, "endedAt": { "from": from } }),
            Box::new(move |c| {
                c.picked_by == Some(agent)
                    && c.direction == "INCOMING"
                    && c.duration_seconds >= 60
                    && c.ended_at >= from
            }),
        ),
    ];
    for_each_app(async |app| {
        dataset::ingest(app, &calls).await;
        for (label, filter, keep) in &cases {
            let label = format!("[{}] {label}", app.backend.name());
            let expected = expected_ids(&calls, keep);
            assert!(!expected.is_empty(), "{label}: the case selects calls");
            assert!(
                expected.len() < calls.len(),
                "{label}: the case leaves calls out"
            );
            let nodes = all_forward(app, filter, &Value::Null, 500).await;
            let got = ids(&nodes);
            let unique: BTreeSet<String> = got.iter().cloned().collect();
            assert_eq!(unique.len(), got.len(), "{label}: no call twice");
            assert_eq!(unique, expected, "{label}");
            let data = app
                .query(
                    "query($f: CallFilter) { calls(filter: $f, first: 1) { totalCount } }",
                    json!({ "f": filter }),
                )
                .await;
            assert_eq!(
                data["calls"]["totalCount"],
                json!(expected.len()),
                "{label}: totalCount"
            );
        }
    })
    .await;
}

/// The sort key of a node for a field, `None` for a null `startedAt`.
fn key(node: &Value, field: &str) -> Option<(i64, i64)> {
    let time = |v: &Value| {
        v.as_str()
            .map(at)
            .map(|t| (t.timestamp(), i64::from(t.timestamp_subsec_nanos())))
    };
    match field {
        "ENDED_AT" => time(&node["endedAt"]),
        "STARTED_AT" => time(&node["startedAt"]),
        "RECEIVED_AT" => time(&node["receivedAt"]),
        "DURATION_SECONDS" => node["durationSeconds"].as_i64().map(|d| (d, 0)),
        other => panic!("unknown field {other}"),
    }
}

#[tokio::test]
async fn every_ordering_pages_forward_and_backward_without_skipping_or_repeating_a_call() {
    let calls = dataset::generate(700);
    let all: BTreeSet<String> = calls.iter().map(|c| c.call_id.clone()).collect();
    for_each_app(async |app| {
        dataset::ingest(app, &calls).await;
        for field in ["ENDED_AT", "STARTED_AT", "DURATION_SECONDS", "RECEIVED_AT"] {
            for direction in ["ASC", "DESC"] {
                let label = format!("[{}] {field} {direction}", app.backend.name());
                let order = json!({ "field": field, "direction": direction });
                let forward = all_forward(app, &Value::Null, &order, 37).await;
                let got = ids(&forward);
                let unique: BTreeSet<String> = got.iter().cloned().collect();
                assert_eq!(got.len(), calls.len(), "{label}: every call once");
                assert_eq!(unique, all, "{label}: every call");
                let keys: Vec<Option<(i64, i64)>> = forward.iter().map(|n| key(n, field)).collect();
                let nulls_from = keys.iter().position(Option::is_none).unwrap_or(keys.len());
                assert!(
                    keys[nulls_from..].iter().all(Option::is_none),
                    "{label}: calls without the key come last"
                );
                let present: Vec<(i64, i64)> =
                    keys[..nulls_from].iter().flatten().copied().collect();
                let sorted = present.windows(2).all(|w| {
                    if direction == "ASC" {
                        w[0] <= w[1]
                    } else {
                        w[0] >= w[1]
                    }
                });
                assert!(sorted, "{label}: in order");
                let ties = present.windows(2).filter(|w| w[0] == w[1]).count();
                if field != "RECEIVED_AT" {
                    assert!(ties > 2, "{label}: the list has ties ({ties})");
                }
                if field == "STARTED_AT" {
                    assert!(
                        nulls_from < keys.len(),
                        "{label}: unanswered calls are listed"
                    );
                }
                let backward = all_backward(app, &Value::Null, &order, 37).await;
                assert_eq!(
                    ids(&backward),
                    got,
                    "{label}: backward paging gives the same list"
                );
            }
        }
    })
    .await;
}

#[tokio::test]
async fn the_default_order_is_newest_end_first_and_the_default_page_is_fifty() {
    let calls = dataset::generate(120);
    for_each_app(async |app| {
        dataset::ingest(app, &calls).await;
        let data = app.query(&page_query(), json!({})).await;
        let edges = data["calls"]["edges"].as_array().expect("edges");
        assert_eq!(edges.len(), 50, "[{}]", app.backend.name());
        assert_eq!(data["calls"]["totalCount"], 120);
        assert_eq!(data["calls"]["pageInfo"]["hasNextPage"], true);
        assert_eq!(data["calls"]["pageInfo"]["hasPreviousPage"], false);
        let newest = calls.iter().map(|c| c.ended_at).max().expect("calls");
        assert_eq!(
            at(edges[0]["node"]["endedAt"].as_str().expect("endedAt")),
            newest
        );
    })
    .await;
}

#[tokio::test]
async fn page_sizes_above_the_configured_maximum_are_refused() {
    for_each_backend(async |backend| {
        let app = TestApp::spawn_with(&backend, |s| s.max_page_size = 20).await;
        dataset::ingest(&app, &dataset::generate(30)).await;
        let data = app.query(&page_query(), json!({ "first": 20 })).await;
        assert_eq!(data["calls"]["edges"].as_array().map(Vec::len), Some(20));
        for (argument, variables) in [
            ("first", json!({ "first": 21 })),
            ("last", json!({ "last": 21 })),
            ("first", json!({ "first": -1 })),
        ] {
            let response = app.graphql(&page_query(), variables).await;
            let error = &response["errors"][0];
            assert_eq!(
                error["extensions"]["code"],
                "BAD_USER_INPUT",
                "[{}] {response}",
                backend.name()
            );
            assert_eq!(error["extensions"]["argument"], argument);
        }
        app.finish().await;
        let app = TestApp::spawn(&backend).await;
        let response = app.graphql(&page_query(), json!({ "first": 501 })).await;
        assert_eq!(
            response["errors"][0]["extensions"]["code"],
            "BAD_USER_INPUT"
        );
        let data = app.query(&page_query(), json!({ "first": 500 })).await;
        assert_eq!(data["calls"]["edges"], json!([]));
        app.finish().await;
    })
    .await;
}

#[tokio::test]
async fn pages_carry_raw_bodies_when_asked_and_a_count_alone_still_checks_its_cursor() {
    for_each_app(async |app| {
        dataset::ingest(app, &dataset::generate(12)).await;
        let data = app
            .query(
                "query { calls(first: 12) {
                   edges { node { callId rawPayload } }
                   nodes { ...Raw }
                   plain: nodes { callId rawContentType }
                 } }
                 fragment Raw on Call { callId body: rawPayload }",
                json!({}),
            )
            .await;
        let edges = data["calls"]["edges"].as_array().expect("edges");
        assert_eq!(edges.len(), 12, "[{}]", app.backend.name());
        for (i, edge) in edges.iter().enumerate() {
            let id = edge["node"]["callId"].clone();
            let one = app
                .query(
                    "query($id: ID!) { call(callId: $id) { rawPayload } }",
                    json!({ "id": id }),
                )
                .await;
            let raw = one["call"]["rawPayload"].as_str().expect("raw body");
            assert!(raw.contains("callId"), "[{}] {raw}", app.backend.name());
            assert_eq!(edge["node"]["rawPayload"], raw, "[{}]", app.backend.name());
            assert_eq!(data["calls"]["nodes"][i]["body"], raw, "through a fragment");
            assert_eq!(data["calls"]["plain"][i]["callId"], id);
        }

        let filter = json!({ "direction": "INCOMING" });
        let both = app
            .query(
                "query($f: CallFilter) { calls(filter: $f, first: 1) { totalCount edges { cursor } } }",
                json!({ "f": filter }),
            )
            .await;
        let alone = app
            .query(
                "query($f: CallFilter) { calls(filter: $f) { totalCount } }",
                json!({ "f": filter }),
            )
            .await;
        assert!(both["calls"]["totalCount"].as_i64().expect("count") > 0);
        assert_eq!(alone["calls"]["totalCount"], both["calls"]["totalCount"]);
        let cursor = both["calls"]["edges"][0]["cursor"].clone();
        let misused = app
            .graphql(
                "query($c: String) { calls(after: $c) { totalCount } }",
                json!({ "c": cursor }),
            )
            .await;
        assert_eq!(
            misused["errors"][0]["extensions"]["code"],
            "BAD_USER_INPUT",
            "[{}] {misused}",
            app.backend.name()
        );
    })
    .await;
}

const SUMMARY: &str = "callId status direction customerId customerName customerNumber wabaNumber \
    pickedBy endedBy startedAt endedAt durationSeconds recordingUrl receivedAt updatedAt";
const DETAILS: &str = "rejectedBy deviceId chatId chatMessageId channel channelNumber pstnFrom \
    pstnTo failedReason isNewCaller isChatAssigned notPickedCount anomalies revision rawContentType";

#[tokio::test]
async fn a_page_shows_every_field_exactly_as_the_single_call_does_whatever_is_selected() {
    for_each_app(async |app| {
        for file in fixture_names("events") {
            if file.ends_with(".json") {
                let (status, _) = app.post_fixture(&format!("events/{file}")).await;
                assert!(status < 300, "[{}] {file}", app.backend.name());
            }
        }
        dataset::ingest(app, &dataset::generate(40)).await;
        let selections = [
            SUMMARY.to_owned(),
            format!("{SUMMARY} {DETAILS} rawPayload"),
            "callId ...Details".to_owned(),
            "callId deviceId".to_owned(),
        ];
        for selection in selections {
            let fragment = if selection.contains("...Details") {
                format!("fragment Details on Call {{ {DETAILS} }}")
            } else {
                String::new()
            };
            let page = app
                .query(
                    &format!(
                        "query {{ calls(first: 500) {{ nodes {{ {selection} }} }} }} {fragment}"
                    ),
                    json!({}),
                )
                .await;
            let nodes = page["calls"]["nodes"].as_array().expect("nodes");
            assert!(nodes.len() > 40, "[{}]", app.backend.name());
            for node in nodes {
                let one = app
                    .query(
                        &format!(
                            "query($id: ID!) {{ call(callId: $id) {{ {selection} }} }} {fragment}"
                        ),
                        json!({ "id": node["callId"] }),
                    )
                    .await;
                assert_eq!(
                    node,
                    &one["call"],
                    "[{}] selecting {selection}",
                    app.backend.name()
                );
            }
        }
    })
    .await;
}

#[tokio::test]
async fn a_cursor_used_with_another_order_or_filter_is_a_clear_error() {
    for_each_app(async |app| {
        dataset::ingest(app, &dataset::generate(10)).await;
        let order = json!({ "field": "DURATION_SECONDS", "direction": "ASC" });
        let filter = json!({ "direction": "INCOMING" });
        let data = app
            .query(
                &page_query(),
                json!({ "first": 2, "order": order, "filter": filter }),
            )
            .await;
        let cursor = data["calls"]["pageInfo"]["endCursor"].clone();
        assert!(cursor.is_string());
        let cases = [
            (
                json!({ "first": 2, "after": cursor, "filter": filter }),
                "after",
                "orderBy",
            ),
            (
                json!({ "first": 2, "after": cursor, "order": order }),
                "after",
                "filter",
            ),
            (
                json!({ "last": 2, "before": cursor, "order": order, "filter": { "direction": "OUTGOING" } }),
                "before",
                "filter",
            ),
            (
                json!({ "first": 2, "after": "not-a-cursor" }),
                "after",
                "cursor",
            ),
        ];
        for (variables, argument, mentions) in cases {
            let response = app.graphql(&page_query(), variables.clone()).await;
            let error = &response["errors"][0];
            assert_eq!(
                error["extensions"]["code"],
                "BAD_USER_INPUT",
                "[{}] {variables}: {response}",
                app.backend.name()
            );
            assert_eq!(error["extensions"]["argument"], argument);
            let message = error["message"].as_str().expect("message");
            assert!(message.contains(mentions), "{message} mentions {mentions}");
        }
        let same = app
            .query(
                &page_query(),
                json!({ "first": 2, "after": cursor, "order": order, "filter": filter }),
            )
            .await;
        assert_eq!(same["calls"]["edges"].as_array().map(Vec::len), Some(2));
    })
    .await;
}

#[tokio::test]
async fn inverted_ranges_are_bad_user_input_not_empty_results() {
    for_each_app(async |app| {
        for (filter, argument) in [
            (
                json!({ "endedAt": { "from": "2026-03-02T00:00:00Z", "to": "2026-03-01T00:00:00Z" } }),
                "filter.endedAt",
            ),
            (
                json!({ "startedAt": { "from": "2026-03-02T00:00:00Z", "to": "2026-03-01T00:00:00Z" } }),
                "filter.startedAt",
            ),
            (
                json!({ "durationSeconds": { "min": 61, "max": 60 } }),
                "filter.durationSeconds",
            ),
        ] {
            let response = app
                .graphql(&page_query(), json!({ "filter": filter }))
                .await;
            let error = &response["errors"][0];
            assert_eq!(
                error["extensions"]["code"],
                "BAD_USER_INPUT",
                "[{}] {response}",
                app.backend.name()
            );
            assert_eq!(error["extensions"]["argument"], argument);
            assert_eq!(response["data"], Value::Null);
        }
    })
    .await;
}

#[tokio::test]
async fn oversized_deep_and_batched_requests_are_refused_with_a_code() {
    for_each_app(async |app| {
        let huge = format!("{{ calls {{ totalCount }} }} #{}", "x".repeat(70 * 1024));
        let response = app
            .client
            .post(app.url("/graphql"))
            .json(&json!({ "query": huge }))
            .send()
            .await
            .expect("request");
        assert_eq!(response.status().as_u16(), 413, "[{}]", app.backend.name());

        let deep = format!(
            "{{ calls {{ nodes {{ {} callId {} }} }} }}",
            "revisions { call { ".repeat(8),
            "} } ".repeat(8)
        );
        let response = app.graphql(&deep, json!({})).await;
        assert!(
            response["errors"][0]["extensions"]["code"].is_string(),
            "{response}"
        );
        assert!(response["data"].is_null(), "{response}");

        let batch = app
            .client
            .post(app.url("/graphql"))
            .json(&json!([{ "query": "{ calls { totalCount } }" }, { "query": "{ calls { totalCount } }" }]))
            .send()
            .await
            .expect("request");
        let status = batch.status().as_u16();
        let body = batch.text().await.unwrap_or_default();
        assert!(status >= 400, "a batch is refused: {status} {body}");

        let sql = app
            .graphql(
                "{ calls(filter: { customerName: \"'; DROP TABLE calls; --\" }) { totalCount } }",
                json!({}),
            )
            .await;
        assert_eq!(sql["data"]["calls"]["totalCount"], 0, "{sql}");
    })
    .await;
}

#[tokio::test]
async fn every_example_query_in_the_docs_runs_without_errors() {
    let docs = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/queries.md"))
        .expect("docs/queries.md");
    let examples: Vec<&str> = docs
        .split("```graphql")
        .skip(1)
        .filter_map(|block| block.split("```").next())
        .collect();
    assert!(examples.len() >= 6, "one example per capability");
    for_each_app(async |app| {
        dataset::ingest(app, &dataset::generate(200)).await;
        for example in &examples {
            let data = app.query(example, json!({})).await;
            assert!(data.is_object(), "[{}] {example}", app.backend.name());
        }
    })
    .await;
}
