//! Properties: the parser never panics, valid payloads round-trip field by field, and lifecycle merging ignores order and repeats.

use chrono::{DateTime, FixedOffset, TimeZone, Utc};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{Map, Value, json};

use calltrail::domain::lifecycle::{AppliedEvent, fold};
use calltrail::domain::{CallEvent, CallFields, Direction, EventKind};
use calltrail::webhook::payload::{self, BodyFormat, Delivery};

use crate::kit;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

fn formats() -> Vec<BodyFormat> {
    vec![
        BodyFormat::Json,
        BodyFormat::Form,
        BodyFormat::Multipart {
            boundary: "XyZ".into(),
        },
    ]
}

/// Any JSON value, nested a few levels.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| json!(f)),
        "\\PC{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map("\\PC{0,8}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

const WIRE_KEYS: [&str; 20] = [
    "event",
    "callId",
    "callDirection",
    "callStatus",
    "durationInSeconds",
    "callStartedAt",
    "callEndedAt",
    "customerNumber",
    "wabaNumber",
    "pickedBy",
    "isNewCaller",
    "isChatAssigned",
    "recordingUrl",
    "rejectedBy",
    "channel",
    "from",
    "to",
    "response",
    "receivedAt",
    "unexpected",
];

/// Objects with DoubleTick's keys holding any values: the parser's hard cases.
fn wire_like_object() -> impl Strategy<Value = Map<String, Value>> {
    let value = prop_oneof![
        3 => any_json(),
        2 => prop_oneof![
            Just(json!("CALL_ENDED")),
            Just(json!("CALL_MISSED")),
            Just(json!("INCOMING")),
            Just(json!("2026-03-02T09:14:05.000Z")),
            Just(json!("2026-03-02T14:44:05+05:30")),
            Just(json!("-0")),
            Just(json!("1e309")),
            Just(json!(2147483648.0)),
            Just(json!(0.5)),
            Just(json!("")),
        ],
    ];
    prop::collection::btree_map(prop::sample::select(WIRE_KEYS.to_vec()), value, 0..20)
        .prop_map(|m| m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
}

#[test]
fn any_byte_string_in_any_format_never_panics_the_parser() {
    let rt = runtime();
    let mut runner = TestRunner::new(Config::with_cases(2000));
    runner
        .run(
            &(prop::collection::vec(any::<u8>(), 0..512), 0..3usize),
            |(bytes, format)| {
                let format = &formats()[format];
                let _ = rt.block_on(payload::parse(format, &bytes));
                Ok(())
            },
        )
        .expect("no panic");
}

#[test]
fn any_content_type_never_panics_format_detection() {
    let mut runner = TestRunner::new(Config::with_cases(2000));
    runner
        .run(
            &(
                prop::option::of("\\PC{0,80}|multipart/form-data; boundary=\\PC{0,20}"),
                prop::collection::vec(any::<u8>(), 0..16),
            ),
            |(content_type, bytes)| {
                let _ = BodyFormat::from_content_type(content_type.as_deref(), &bytes);
                Ok(())
            },
        )
        .expect("no panic");
}

#[test]
fn any_json_value_never_panics_the_parser_and_a_valid_answer_is_consistent() {
    let rt = runtime();
    let mut runner = TestRunner::new(Config::with_cases(3000));
    runner
        .run(
            &prop_oneof![any_json(), wire_like_object().prop_map(Value::Object)],
            |value| {
                let bytes = serde_json::to_vec(&value).expect("serialisable");
                match rt.block_on(payload::parse(&BodyFormat::Json, &bytes)) {
                    Ok(Delivery::Call(event)) => {
                        prop_assert!(!event.call_id.is_empty());
                        prop_assert!(event.fields.duration_seconds.is_none_or(|d| d >= 0));
                        if event.is_terminal() {
                            prop_assert!(event.fields.ended_at.is_some());
                            prop_assert!(event.fields.direction.is_some());
                        }
                    }
                    Ok(Delivery::NotACall { .. }) => {}
                    Err(rejected) => {
                        let status = rejected.error.status().as_u16();
                        prop_assert!(status == 400 || status == 422, "{status}");
                    }
                }
                Ok(())
            },
        )
        .expect("no panic, consistent verdicts");
}

/// A valid terminal delivery and what it must parse into.
#[derive(Clone, Debug)]
struct ValidCall {
    kind: EventKind,
    call_id: String,
    direction: Direction,
    texts: Vec<(&'static str, Option<String>)>,
    customer_number: String,
    started_at: Option<DateTime<Utc>>,
    ended_at: DateTime<Utc>,
    offset_seconds: i32,
    duration: f64,
    is_new_caller: Option<bool>,
}

const TEXT_KEYS: [&str; 13] = [
    "chatMessageId",
    "chatId",
    "customerName",
    "customerId",
    "failedReason",
    "pickedBy",
    "rejectedBy",
    "endedBy",
    "recordingUrl",
    "deviceId",
    "channelNumber",
    "from",
    "to",
];

fn valid_call() -> impl Strategy<Value = ValidCall> {
    (
        prop::sample::select(vec![
            EventKind::Ended,
            EventKind::Missed,
            EventKind::Rejected,
        ]),
        "[A-Za-z0-9_-]{1,24}",
        any::<bool>(),
        prop::collection::vec(prop::option::of("\\PC{1,16}"), TEXT_KEYS.len()),
        "[0-9]{6,15}",
        prop::option::of(1_600_000_000_000i64..1_900_000_000_000),
        1_600_000_000_000i64..1_900_000_000_000,
        prop::sample::select(vec![0, 19_800, -14_400, 3_600]),
        (
            0u32..200_000,
            prop::sample::select(vec![0.0, 0.25, 0.5, 0.75]),
        ),
        prop::option::of(any::<bool>()),
    )
        .prop_map(
            |(
                kind,
                call_id,
                incoming,
                texts,
                number,
                started,
                ended,
                offset,
                (whole, frac),
                flag,
            )| {
                ValidCall {
                    kind,
                    call_id,
                    direction: if incoming {
                        Direction::Incoming
                    } else {
                        Direction::Outgoing
                    },
                    texts: TEXT_KEYS.iter().copied().zip(texts).collect(),
                    customer_number: number,
                    started_at: started.and_then(|ms| Utc.timestamp_millis_opt(ms).single()),
                    ended_at: Utc.timestamp_millis_opt(ended).single().expect("in range"),
                    offset_seconds: offset,
                    duration: f64::from(whole) + frac,
                    is_new_caller: flag,
                }
            },
        )
}

fn wire_time(t: DateTime<Utc>, offset_seconds: i32) -> String {
    let offset = FixedOffset::east_opt(offset_seconds).expect("offset");
    t.with_timezone(&offset)
        .format("%Y-%m-%dT%H:%M:%S%.3f%:z")
        .to_string()
        .replace("+00:00", "Z")
}

impl ValidCall {
    fn to_json(&self) -> Value {
        let mut object = Map::new();
        object.insert("event".into(), json!(self.kind.as_wire()));
        object.insert("callId".into(), json!(self.call_id));
        object.insert("callDirection".into(), json!(self.direction.as_wire()));
        object.insert("callStatus".into(), json!("END"));
        object.insert("customerNumber".into(), json!(self.customer_number));
        object.insert("wabaNumber".into(), json!("918045671200"));
        for (key, value) in &self.texts {
            object.insert((*key).into(), json!(value.clone().unwrap_or_default()));
        }
        object.insert(
            "callStartedAt".into(),
            json!(
                self.started_at
                    .map(|t| wire_time(t, self.offset_seconds))
                    .unwrap_or_default()
            ),
        );
        object.insert(
            "callEndedAt".into(),
            json!(wire_time(self.ended_at, self.offset_seconds)),
        );
        object.insert("durationInSeconds".into(), json!(self.duration));
        if let Some(flag) = self.is_new_caller {
            object.insert("isNewCaller".into(), json!(flag));
        }
        Value::Object(object)
    }

    fn to_form(&self) -> String {
        let mut form = form_urlencoded::Serializer::new(String::new());
        for (key, value) in self.to_json().as_object().expect("object") {
            let text = match value {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            form.append_pair(key, &text);
        }
        form.finish()
    }

    fn check(&self, event: &CallEvent) -> Result<(), TestCaseError> {
        let f = &event.fields;
        prop_assert_eq!(event.kind, self.kind);
        prop_assert_eq!(&event.call_id, &self.call_id);
        prop_assert_eq!(f.direction, Some(self.direction));
        prop_assert_eq!(f.status.as_deref(), Some("END"));
        prop_assert_eq!(
            f.customer_number.as_deref(),
            Some(self.customer_number.as_str())
        );
        prop_assert_eq!(f.waba_number.as_deref(), Some("918045671200"));
        let read = [
            &f.chat_message_id,
            &f.chat_id,
            &f.customer_name,
            &f.customer_id,
            &f.failed_reason,
            &f.picked_by,
            &f.rejected_by,
            &f.ended_by,
            &f.recording_url,
            &f.device_id,
            &f.channel_number,
            &f.pstn_from,
            &f.pstn_to,
        ];
        for ((key, sent), got) in self.texts.iter().zip(read) {
            prop_assert_eq!(got, sent, "{}", key);
        }
        prop_assert_eq!(f.started_at, self.started_at);
        prop_assert_eq!(f.ended_at, Some(self.ended_at));
        // Half away from zero: 0.5 -> 1, 2.5 -> 3.
        let expected = (self.duration + 0.5).floor() as i64;
        prop_assert_eq!(f.duration_seconds, Some(expected));
        prop_assert_eq!(f.is_new_caller, self.is_new_caller);
        Ok(())
    }
}

#[test]
fn any_valid_payload_round_trips_field_by_field_as_json_and_as_a_form() {
    let rt = runtime();
    let mut runner = TestRunner::new(Config::with_cases(1500));
    runner
        .run(&valid_call(), |call| {
            let json_body = serde_json::to_vec(&call.to_json()).expect("json");
            let from_json = match rt.block_on(payload::parse(&BodyFormat::Json, &json_body)) {
                Ok(Delivery::Call(event)) => event,
                other => return Err(TestCaseError::fail(format!("{other:?}"))),
            };
            call.check(&from_json)?;
            let form_body = call.to_form();
            let from_form =
                match rt.block_on(payload::parse(&BodyFormat::Form, form_body.as_bytes())) {
                    Ok(Delivery::Call(event)) => event,
                    other => return Err(TestCaseError::fail(format!("{other:?}"))),
                };
            call.check(&from_form)?;
            prop_assert_eq!(
                from_form.fingerprint(),
                from_json.fingerprint(),
                "the same event whichever format carried it"
            );
            Ok(())
        })
        .expect("round trip");
}

fn lifecycle_event(kind: EventKind, seed: u8) -> CallEvent {
    let pick = |options: &[&str]| Some(options[usize::from(seed) % options.len()].to_owned());
    let mut fields = CallFields {
        direction: Some(Direction::Incoming),
        customer_number: Some("919811122233".into()),
        waba_number: Some("918045671200".into()),
        chat_id: seed.is_multiple_of(3).then(|| format!("chat_{seed}")),
        customer_name: pick(&["Meera", "Meera Iyer", ""]).filter(|s| !s.is_empty()),
        device_id: pick(&["d1", "d2"]),
        ..Default::default()
    };
    match kind {
        EventKind::Accepted => {
            fields.status = Some("IN_PROGRESS".into());
            fields.picked_by = pick(&["agent-a", "agent-b"]);
            fields.started_at = Utc.timestamp_opt(1_772_442_845, 0).single();
        }
        EventKind::NotPicked => {
            fields.status = Some("INITIATED".into());
            fields.picked_by = Some(format!("skipped-{seed}"));
        }
        EventKind::Ended | EventKind::Rejected | EventKind::Missed => {
            fields.status = Some(
                match kind {
                    EventKind::Ended => "END",
                    EventKind::Rejected => "REJECT",
                    _ => "MISSED",
                }
                .into(),
            );
            fields.ended_at = Utc.timestamp_opt(1_772_443_157, 0).single();
            fields.duration_seconds = Some(i64::from(seed) * 7);
            fields.recording_url = seed
                .is_multiple_of(2)
                .then(|| format!("https://r/{seed}.mp3"));
        }
        EventKind::IncomingInitiated | EventKind::OutgoingInitiated => {
            fields.status = Some("INITIATED".into());
        }
    }
    CallEvent {
        kind,
        call_id: "call_prop".into(),
        fields,
        unread: Default::default(),
    }
}

/// What the store does with an arrival sequence: keep each distinct event once, at its first arrival.
fn arrive(sequence: &[CallEvent]) -> Vec<AppliedEvent> {
    let base = Utc.timestamp_opt(1_800_000_000, 0).single().expect("time");
    let mut kept: Vec<AppliedEvent> = Vec::new();
    for (position, event) in sequence.iter().enumerate() {
        let fingerprint = event.fingerprint();
        if kept.iter().any(|k| k.fingerprint == fingerprint) {
            continue;
        }
        kept.push(AppliedEvent {
            seq: position as i64,
            event: event.clone(),
            raw_payload: fingerprint.clone(),
            fingerprint,
            received_at: base + chrono::Duration::seconds(position as i64),
            content_type: "application/json".into(),
        });
    }
    kept
}

fn lifecycle_set() -> impl Strategy<Value = (Vec<CallEvent>, CallEvent)> {
    let non_terminal = prop::collection::vec(
        (
            prop::sample::select(vec![
                EventKind::IncomingInitiated,
                EventKind::OutgoingInitiated,
                EventKind::Accepted,
                EventKind::NotPicked,
            ]),
            any::<u8>(),
        ),
        0..8,
    );
    let terminal = (
        prop::sample::select(vec![
            EventKind::Ended,
            EventKind::Rejected,
            EventKind::Missed,
        ]),
        any::<u8>(),
    );
    (non_terminal, terminal).prop_map(|(others, (kind, seed))| {
        (
            others
                .into_iter()
                .map(|(k, s)| lifecycle_event(k, s))
                .collect(),
            lifecycle_event(kind, seed),
        )
    })
}

#[test]
fn any_order_of_a_calls_events_with_repeats_ends_in_the_same_state() {
    let mut runner = TestRunner::new(Config::with_cases(3000));
    let strategy = lifecycle_set().prop_flat_map(|(others, terminal)| {
        let mut all = others.clone();
        all.push(terminal.clone());
        let n = all.len();
        (
            Just(all),
            Just(terminal),
            // A shuffled arrival order with repeats: indices into the distinct events.
            prop::collection::vec(0..n, n..3 * n + 1).prop_shuffle(),
        )
    });
    runner
        .run(&strategy, |(all, terminal, picks)| {
            let in_order = fold(&arrive(&all)).expect("events");
            // Every distinct event arrives at least once, in a shuffled order, some repeatedly.
            let mut shuffled: Vec<CallEvent> = picks.iter().map(|&i| all[i].clone()).collect();
            for (i, event) in all.iter().enumerate() {
                if !picks.contains(&i) {
                    shuffled.insert(i.min(shuffled.len()), event.clone());
                }
            }
            let mut reordered = fold(&arrive(&shuffled)).expect("events");
            reordered.received_at = in_order.received_at;
            prop_assert_eq!(&reordered, &in_order);
            prop_assert!(in_order.concluded);
            prop_assert_eq!(
                &in_order.status,
                terminal.fields.status.as_ref().expect("status")
            );
            prop_assert_eq!(in_order.fields.ended_at, terminal.fields.ended_at);
            prop_assert_eq!(
                in_order.fields.duration_seconds,
                terminal.fields.duration_seconds
            );
            let distinct_not_picked = all
                .iter()
                .filter(|e| e.kind == EventKind::NotPicked)
                .map(CallEvent::fingerprint)
                .collect::<std::collections::HashSet<_>>()
                .len();
            prop_assert_eq!(in_order.not_picked_count as usize, distinct_not_picked);
            Ok(())
        })
        .expect("order and repeats do not matter");
}

/// One call's lifecycle as DoubleTick would send it, built from the fixtures.
fn wire_events(call_id: &str) -> Vec<Value> {
    let load = |file: &str, changes: Value| {
        let mut body = kit::fixture_json(&format!("events/{file}"));
        body["callId"] = json!(call_id);
        if let (Some(target), Value::Object(changes)) = (body.as_object_mut(), changes) {
            target.extend(changes);
        }
        body
    };
    vec![
        load("call-incoming-initiated.json", json!({})),
        load(
            "call-incoming-initiated.json",
            json!({"event": "CALL_OUTGOING_INITIATED"}),
        ),
        load("call-accepted.json", json!({})),
        load("call-not-picked.json", json!({"pickedBy": "agent-a"})),
        load("call-not-picked.json", json!({"pickedBy": "agent-b"})),
        load("call-ended-incoming-recorded.json", json!({"chatId": ""})),
        load("call-missed.json", json!({})),
        load("call-rejected.json", json!({})),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_the_real_server_any_order_with_repeats_ends_in_the_same_call() {
    kit::for_each_app(async |app| {
        let query = format!(
            "query($id: ID!) {{ call(callId: $id) {{ {} }} }}",
            kit::CALL_FIELDS
        );
        let strategy = (
            prop::sample::subsequence((0..5usize).collect::<Vec<_>>(), 0..=5),
            5..8usize,
        )
            .prop_flat_map(|(others, terminal)| {
                let mut chosen = others.clone();
                chosen.push(terminal);
                let n = chosen.len();
                (
                    Just(chosen),
                    prop::collection::vec(0..n, 0..2 * n).prop_shuffle(),
                    Just(()).prop_perturb(move |_, mut rng| {
                        let mut order: Vec<usize> = (0..n).collect();
                        for i in (1..n).rev() {
                            order.swap(i, (rng.next_u32() as usize) % (i + 1));
                        }
                        order
                    }),
                )
            });
        let counter = std::sync::atomic::AtomicUsize::new(0);
        let mut runner = TestRunner::new(Config::with_cases(12));
        // The runner is synchronous: each case blocks this thread on the server's answers.
        let runtime = tokio::runtime::Handle::current();
        tokio::task::block_in_place(|| {
            runner.run(&strategy, |(chosen, repeats, order)| {
                let case = counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let canonical_id = format!("call_canonical_{case}");
                let shuffled_id = format!("call_shuffled_{case}");
                let canonical = wire_events(&canonical_id);
                let shuffled = wire_events(&shuffled_id);
                let mut sequence: Vec<usize> = order.iter().map(|&i| chosen[i]).collect();
                for r in repeats {
                    let at = (r * 7) % (sequence.len() + 1);
                    sequence.insert(at, chosen[r]);
                }
                let views = runtime.block_on(async {
                    for &i in &chosen {
                        let (status, _) = app
                            .post_webhook("application/json", canonical[i].to_string())
                            .await;
                        assert_eq!(status, 200);
                    }
                    for &i in &sequence {
                        let (status, _) = app
                            .post_webhook("application/json", shuffled[i].to_string())
                            .await;
                        assert_eq!(status, 200);
                    }
                    let mut views = Vec::new();
                    for id in [&canonical_id, &shuffled_id] {
                        let mut call = app.query(&query, json!({ "id": id })).await["call"].clone();
                        if let Some(object) = call.as_object_mut() {
                            // `revision` counts versions seen, which depends on arrival by
                            // design: an event arriving after the end changes a concluded call.
                            for key in ["callId", "receivedAt", "rawPayload", "revision"] {
                                object.remove(key);
                            }
                        }
                        views.push(call);
                    }
                    views
                });
                prop_assert_eq!(
                    &views[0],
                    &views[1],
                    "[{}] arrival {:?}",
                    app.backend.name(),
                    sequence
                );
                prop_assert!(views[0]["endedAt"].is_string());
                Ok(())
            })
        })
        .expect("order and repeats do not matter on the server");
    })
    .await;
}
