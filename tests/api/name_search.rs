//! A search by part of a customer's name answers the same whichever way the store reads it:
//! narrowed to the few customers the names' trigram index finds, matched on every call when
//! the name is common (more than 200 customers), or scanned when the text is under three
//! characters. Each answer is checked against the names the calls were sent with, through
//! the call list, its total, the statistics and the CSV export.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use crate::kit::dataset::{self, GenCall};
use crate::kit::{TestApp, for_each_app};

/// Customers 0..250 are "Client N Shah": "shah" matches more than 200 of them.
const SHAHS: usize = 250;
const CUSTOMERS: usize = 260;

fn name_of(customer: usize, call: usize) -> String {
    match customer {
        c if c < SHAHS => format!("Client {c} Shah"),
        250 => "Meera Iyer".into(),
        251 => "100% Pure_Tea Co".into(),
        252 => "O\"Brien & Sons".into(),
        // The same customer under two names: a search matches only the calls with its name.
        253 if call.is_multiple_of(2) => "Ravi Kumar".into(),
        253 => "Ravi K. Menon".into(),
        254 => "Anaïs Dubois".into(),
        255 => long_name(),
        c => format!("Zoë Xu {c}"),
    }
}

/// A name of 6 000 letters that do not repeat or compress: more than any B-tree entry holds
/// (PostgreSQL's stop at 2 704 bytes), as a sender may send it.
fn long_name() -> String {
    let mut state: u32 = 0x9e37_79b9;
    let letters: String = (0..6000)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            char::from(b'a' + (state % 26) as u8)
        })
        .collect();
    format!("Long {letters}")
}

fn calls() -> Vec<GenCall> {
    let mut calls = dataset::generate(2 * CUSTOMERS + 40);
    for (i, call) in calls.iter_mut().enumerate() {
        let customer = i % CUSTOMERS;
        call.customer_digits = format!("9198220{customer:05}");
        call.customer_number = call.customer_digits.clone();
        call.customer_id = format!("client_{customer:03}");
        call.customer_name = name_of(customer, i / CUSTOMERS);
    }
    calls
}

/// Every call id of the list, paged 100 at a time, and the first page's total.
async fn listed(app: &TestApp, filter: &Value) -> (BTreeSet<String>, i64) {
    let mut ids = BTreeSet::new();
    let mut after = Value::Null;
    let mut total = None;
    loop {
        let data = app
            .query(
                "query($f: CallFilter, $after: String) { calls(filter: $f, first: 100, after: $after) \
                 { totalCount nodes { callId } pageInfo { hasNextPage endCursor } } }",
                json!({ "f": filter, "after": after }),
            )
            .await;
        let page = &data["calls"];
        total.get_or_insert(page["totalCount"].as_i64().expect("totalCount"));
        for node in page["nodes"].as_array().expect("nodes") {
            ids.insert(node["callId"].as_str().expect("callId").to_owned());
        }
        if page["pageInfo"]["hasNextPage"] != json!(true) {
            return (ids, total.unwrap_or_default());
        }
        after = page["pageInfo"]["endCursor"].clone();
    }
}

#[tokio::test]
async fn a_name_search_finds_exactly_the_calls_whose_name_holds_the_text_by_every_path() {
    for_each_app(async |app| {
        let sent = calls();
        dataset::ingest(app, &sent).await;
        let searches = [
            "SHAH",      // every "Client N Shah": more than 200 customers, matched call by call
            "client 12", // Client 12, 112, 120..129, 212: a few customers, narrowed
            "iyer",
            "100%",
            "pure_tea",
            "_",  // a LIKE wildcard as text, under three characters
            "%",  // the same
            "sh", // two characters: no trigram
            "o\"brien",
            "kumar",
            "k. menon",
            "ravi k",
            "anaïs",
            "zoë xu 25",
            "nobody at all",
        ];
        let inside_the_long_name = long_name()[3000..3012].to_owned();
        for text in searches.into_iter().chain([inside_the_long_name.as_str()]) {
            let needle = text.to_lowercase();
            let expected: BTreeSet<String> = sent
                .iter()
                .filter(|c| c.customer_name.to_lowercase().contains(&needle))
                .map(|c| c.call_id.clone())
                .collect();
            let filter = json!({ "customerName": text });
            let (ids, total) = listed(app, &filter).await;
            let at = format!("[{}] {text:?}", app.backend.name());
            assert_eq!(ids, expected, "{at}: the calls listed");
            assert_eq!(total, expected.len() as i64, "{at}: totalCount");

            let stats = app
                .query(
                    "query($f: CallFilter) { callStats(filter: $f, groupBy: [PICKED_BY]) \
                     { total { count } groups { stats { count } } } }",
                    json!({ "f": filter }),
                )
                .await;
            let grouped: i64 = stats["callStats"]["groups"]
                .as_array()
                .expect("groups")
                .iter()
                .map(|g| g["stats"]["count"].as_i64().expect("count"))
                .sum();
            let count = stats["callStats"]["total"]["count"].as_i64();
            assert_eq!(count, Some(expected.len() as i64), "{at}: callStats total");
            assert_eq!(grouped, expected.len() as i64, "{at}: callStats groups");

            let csv = app
                .client
                .get(app.url("/export/calls.csv"))
                .query(&[("customerName", text), ("fields", "callId")])
                .send()
                .await
                .expect("export");
            assert_eq!(csv.status(), 200, "{at}: export");
            let body = csv.text().await.expect("csv");
            let exported: BTreeSet<String> = body
                .lines()
                .skip(1)
                .map(|line| line.trim_matches('"').to_owned())
                .collect();
            assert_eq!(exported, expected, "{at}: calls.csv");
        }
        // The texts above reach each path: more than 200 customers, a few, none.
        let customers = |text: &str| {
            sent.iter()
                .filter(|c| c.customer_name.to_lowercase().contains(text))
                .map(|c| c.customer_digits.clone())
                .collect::<BTreeSet<_>>()
                .len()
        };
        assert!(customers("shah") > 200 && customers("client 12") < 20);
        assert_eq!(customers(&inside_the_long_name), 1);
        assert_eq!(customers("nobody at all"), 0);
    })
    .await;
}
