//! The fingerprint of every fixture, pinned: a redelivery is recognised by its fingerprint,
//! so a change that moves one would make an upgraded calltrail store DoubleTick's retries as
//! new events (and count a redelivered `CALL_NOT_PICKED` twice). Version 1 is the canonical
//! encoding of what DoubleTick sent; version 0 is what calltrail stored before it (the values
//! below are the ones the binary of commit a9ee24c stored, read from
//! `tests/fixtures/upgrade/v0.sqlite`).

use calltrail::domain::CallEvent;
use calltrail::store::ingest::Verdict;
use calltrail::webhook::judge;
use chrono::{TimeZone, Utc};

use crate::kit::{fixture_bytes, fixture_names};

/// (fixture, version 1, version 0)
#[rustfmt::skip]
const PINNED: &[(&str, &str, &str)] = &[
    ("events/call-accepted.json", "v1:21d6e26a1c95c3ac405486da1c587549e39c24dc3f62cea00ba3d6a195a7d5f5", "1fa81d59e2e5aeeb1fd24515eaafcfed83be58347d025fad67df7c9f392a9bb0"),
    ("events/call-ended-form-urlencoded.txt", "v1:5d648caaafd279b2de4eb8c2c455ab05dfe84a57627f6a007658e4bc7f30e9ae", "b4285e953defad3ca45a9b0641ea1709a048222ac4d29477d0a9d3f5047e9ee0"),
    ("events/call-ended-incoming-recorded.json", "v1:0ad4c9eaced53247ea1f6c805ff0c66d7a22dc02383366d52341ef484e3e3b32", "dd76983fdab7157b4ed84fe586872b2ac424effb4499f7c0da226a22b80c5807"),
    ("events/call-ended-outgoing-customer-hung-up.json", "v1:e3a1f918c40660ddd8caa7c052e785b93034699e954f1798acb366b45d2b031d", "c95fa42ac58e6972144482dc44a576210198b9a9c5b2b26c551a8f56e7479c49"),
    ("events/call-ended-outgoing-never-answered.json", "v1:0b1195ad46e243120fb9d5cdebfb48a843c84731850bf4584a3654d3ee3f1634", "f43ef4d2862ef924a524535f540dca1cf92fc93e09dec7d10248a1044995a70c"),
    ("events/call-ended-pstn.json", "v1:6756e99ebc503957c4c43fa9b79854bb190105ee665900b62b1eab9177e1475a", "10f231f0dba8b6cf55feed2071ac24687e61303131805829c353acfeb0736ea1"),
    ("events/call-incoming-initiated.json", "v1:ed8680ca4ebcc150413babc1e4fc497b92569c42fcbde183b8a8fa5264d97f44", "f493930834203eed6661ea6eaa5070d5694ba9f0b88ba3000079926819d1ef72"),
    ("events/call-missed.json", "v1:632efa2cb9d15327d1b10d619cda1d8a24720a11bf42db1edb3141cecc5e556f", "ce4c0679c4736239a4658f2fc9d50b0c3471f0473c807071d2bcd6347d182d36"),
    ("events/call-not-picked.json", "v1:49f702230feae2e6ebe035278b6a446c08c371d8ef9b5c2c28faac1f907e7596", "a49eae8a81316c4cd22a5a236ea586f7a0cd78e0694bdbabf2233879287b6669"),
    ("events/call-rejected.json", "v1:cd37b1aafd48a2b45bcdf648623eedcad60be50acb7f914ea49022b18d3a0bb5", "bee570575b0b3228210fc2ee4875321e7e247de7ccf409ec89bd9319caffefe1"),
    ("suspicious/duration-as-string.json", "v1:3092b60042be478e7562f4bcd174a75be3c5fdfe9991f79840ff1450e41c714e", "4d27726e0cd6a67550e8819a9cf34eb58e0a939e691434ab12d0f0b361cd0ba1"),
    ("suspicious/duration-disagrees-with-timestamps.json", "v1:576225f958676001caedd05a295383ae5696510316992ba1bcbd714e3d40ab3d", "2d4f39567ca567fd95c14b135551f9c3230da28dcdc3cfda7828234e30b81c1c"),
    ("suspicious/ended-before-started.json", "v1:9a02dfb77bf4aa6445c59d27d2529e8f939be5b37daad25bc3fbe2950dd65d43", "e0f9ba927c3b52cb645c588f844829fca75518349c792458bc11bf0f97197f8d"),
    ("suspicious/fractional-duration-formatted-number-extra-field.json", "v1:72bd8ca231518ffbbe87af6c3296f0b253750604548f73db3122f3e1c97ebdd7", "80de9d92f0e903fe6befcf0c84c0102c4d9c79d191bea65a2f900e9c3a38b717"),
    ("suspicious/offset-timestamps.json", "v1:30e94258a3bcc2fb320cb728771a7fdd12e8316c0fdb43d3467391c31990a04a", "fa16b02b0d2f244667498dc5bdd28e86b80a3c4c3ca0262a7c63043c1935aabf"),
];

async fn event_of(relative: &str) -> CallEvent {
    let content_type = if relative.ends_with("form-urlencoded.txt") {
        "application/x-www-form-urlencoded"
    } else {
        "application/json"
    };
    let arrived = Utc
        .with_ymd_and_hms(2026, 3, 2, 10, 0, 0)
        .single()
        .expect("time");
    match judge(Some(content_type), &fixture_bytes(relative), arrived).await {
        (Verdict::Call(event), None) => *event,
        (other, _) => panic!("{relative} is not a call event: {other:?}"),
    }
}

fn call_fixtures() -> Vec<String> {
    ["events", "suspicious"]
        .into_iter()
        .flat_map(|folder| {
            fixture_names(folder)
                .into_iter()
                .filter(|n| n != "call-permission-reply.json")
                .map(move |n| format!("{folder}/{n}"))
        })
        .collect()
}

#[tokio::test]
async fn every_fixture_keeps_its_fingerprints_of_both_versions() {
    let mut actual = Vec::new();
    for relative in call_fixtures() {
        let event = event_of(&relative).await;
        actual.push((relative, event.fingerprint(), event.legacy_fingerprint()));
    }
    let table: String = actual
        .iter()
        .map(|(f, v1, v0)| format!("    (\"{f}\", \"{v1}\", \"{v0}\"),\n"))
        .collect();
    let pinned: Vec<(String, String, String)> = PINNED
        .iter()
        .map(|(f, v1, v0)| (f.to_string(), v1.to_string(), v0.to_string()))
        .collect();
    assert_eq!(
        actual, pinned,
        "fingerprints moved; a fingerprint never changes (add a version instead). Now:\n{table}"
    );
}

#[tokio::test]
async fn version_one_encodes_what_doubletick_sent_whatever_carried_it() {
    let json = event_of("events/call-ended-incoming-recorded.json").await;
    let form = event_of("events/call-ended-form-urlencoded.txt").await;
    let canonical = form.canonical();
    assert!(
        canonical.starts_with("calltrail.event.v1\n{\"callDirection\":\"INCOMING\","),
        "{canonical}"
    );
    // Timestamps as RFC 3339 UTC with milliseconds, durations as whole seconds.
    assert!(
        canonical.contains("\"callEndedAt\":\"2026-03-02T09:19:17.000Z\""),
        "{canonical}"
    );
    assert!(
        canonical.contains("\"durationInSeconds\":312"),
        "{canonical}"
    );
    // Empty values are not part of it; calltrail's findings (anomalies) are not either.
    assert!(!canonical.contains("failedReason"), "{canonical}");
    assert!(!canonical.to_lowercase().contains("anomal"), "{canonical}");
    // A key calltrail does not read is part of it, as sent.
    let extra = event_of("suspicious/fractional-duration-formatted-number-extra-field.json").await;
    assert!(!extra.unread.is_empty());
    for key in extra.unread.keys() {
        assert!(extra.canonical().contains(&format!("\"{key}\":")), "{key}");
    }
    // The same delivery sent as a form instead of JSON says the same: one fingerprint.
    let body: serde_json::Value =
        serde_json::from_slice(&fixture_bytes("events/call-ended-incoming-recorded.json"))
            .expect("fixture");
    let mut encoded = form_urlencoded::Serializer::new(String::new());
    for (key, value) in body.as_object().expect("object") {
        let text = match value {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Null => String::new(),
            other => other.to_string(),
        };
        encoded.append_pair(key, &text);
    }
    let arrived = Utc
        .with_ymd_and_hms(2026, 3, 2, 10, 0, 0)
        .single()
        .expect("time");
    let as_form = match judge(
        Some("application/x-www-form-urlencoded"),
        encoded.finish().as_bytes(),
        arrived,
    )
    .await
    {
        (Verdict::Call(event), None) => *event,
        (other, _) => panic!("the form is not a call event: {other:?}"),
    };
    assert_eq!(as_form.fingerprint(), json.fingerprint());
    assert_ne!(
        form.fingerprint(),
        json.fingerprint(),
        "two different calls"
    );
}
