//! Synthetic, realistic call traffic for benchmarks: deterministic from a seed, no I/O.
use chrono::{DateTime, Duration, SubsecRound, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;

use crate::domain::{CallEvent, CallFields, Direction, EventKind};

/// Agents answering and dialling calls.
pub const AGENTS: usize = 50;
/// Distinct customers.
pub const CUSTOMERS: usize = 200_000;
/// The business's WhatsApp numbers.
pub const BUSINESS_NUMBERS: [&str; 3] = ["918045671200", "918045671201", "918045671202"];
/// Seconds in the year of generated dates, ending at [`SeedSpec::end`].
const YEAR_SECONDS: i64 = 365 * 24 * 3600;

/// The `pickedBy` label of agent `index` (0-based).
pub fn agent(index: usize) -> String {
    format!("9197000{:05}", index + 1)
}

/// The customer number of customer `index` (0-based), digits only.
pub fn customer_number(index: usize) -> String {
    format!("91{}", 9_000_000_000u64 + index as u64 * 37)
}

/// What to generate: how many calls, from which seed, in the year before `end`.
#[derive(Clone, Copy, Debug)]
pub struct SeedSpec {
    pub calls: u64,
    pub seed: u64,
    /// Calls end within the 365 days before this instant (whole seconds).
    pub end: DateTime<Utc>,
}

/// One generated call: its terminal event, and the wire payload that would have carried it.
#[derive(Clone, Debug)]
pub struct SeedCall {
    pub event: CallEvent,
    pub payload: String,
}

/// Generates `spec.calls` calls, in order, the same ones for the same spec.
///
/// 50 agents, 200k customers (a few call often, most rarely), 3 business numbers, 60 %
/// incoming; ends spread over a year, mostly in Indian business hours; talk time
/// lognormal (median about 2 min) clamped to 5 s–1 h; 70 % of answered calls recorded.
/// Of incoming calls 4 % are missed and 2 % rejected; of outgoing calls 8 % are never
/// answered (ended without a start, duration 0).
pub fn generate(spec: SeedSpec) -> impl Iterator<Item = SeedCall> {
    let mut rng = StdRng::seed_from_u64(spec.seed);
    let start = spec.end.trunc_subsecs(0) - Duration::seconds(YEAR_SECONDS);
    (0..spec.calls).map(move |n| one_call(&mut rng, spec.seed, n, start))
}

/// The call id of the `n`th call generated from `seed`.
pub fn call_id(seed: u64, n: u64) -> String {
    format!("seed{seed}_{n:09}")
}

fn one_call(rng: &mut StdRng, seed: u64, n: u64, start: DateTime<Utc>) -> SeedCall {
    let call_id = call_id(seed, n);
    let direction = if rng.random_bool(0.6) {
        Direction::Incoming
    } else {
        Direction::Outgoing
    };
    // Skewed towards low indices: some customers call often, most rarely.
    let customer = ((rng.random::<f64>().powi(3)) * CUSTOMERS as f64) as usize % CUSTOMERS;
    let agent_label = agent(rng.random_range(0..AGENTS));
    let waba = BUSINESS_NUMBERS[rng.random_range(0..BUSINESS_NUMBERS.len())];
    // Up to a day before the end, so that even the longest call has ended by then.
    let day = rng.random_range(0..364i64);
    // 80 % during 09:00–19:00 IST (03:30–13:30 UTC), the rest at any time.
    let second_of_day = if rng.random_bool(0.8) {
        12_600 + rng.random_range(0..36_000i64)
    } else {
        rng.random_range(0..86_400i64)
    };
    let rang_at = start + Duration::seconds(day * 86_400 + second_of_day);
    let roll = rng.random::<f64>();
    let (kind, status, answered) = match direction {
        Direction::Incoming if roll < 0.04 => (EventKind::Missed, "MISSED", false),
        Direction::Incoming if roll < 0.06 => (EventKind::Rejected, "REJECT", false),
        Direction::Outgoing if roll < 0.08 => (EventKind::Ended, "END", false),
        _ => (EventKind::Ended, "END", true),
    };
    let ringing = rng.random_range(3..30i64);
    let (started_at, ended_at, duration) = if answered {
        let started = rang_at + Duration::seconds(ringing);
        let talk = lognormal_seconds(rng);
        (Some(started), started + Duration::seconds(talk), talk)
    } else {
        (None, rang_at + Duration::seconds(ringing), 0)
    };
    let recorded = answered && rng.random_bool(0.7);
    let recording_url = recorded.then(|| format!("https://recordings.doubletick.io/{call_id}.mp3"));
    let picked_by = (kind == EventKind::Ended).then(|| agent_label.clone());
    let rejected_by = (kind == EventKind::Rejected).then(|| agent_label.clone());
    let ended_by = answered.then(|| {
        if rng.random_bool(0.5) {
            agent_label.clone()
        } else {
            customer_number(customer)
        }
    });
    let (is_new_caller, is_chat_assigned) = if kind == EventKind::Missed {
        (Some(rng.random_bool(0.3)), Some(rng.random_bool(0.5)))
    } else {
        (None, None)
    };
    let fields = CallFields {
        status: Some(status.to_owned()),
        direction: Some(direction),
        customer_id: Some(format!("customer_{customer:06}")),
        customer_name: Some(format!("Customer {customer}")),
        customer_number: Some(customer_number(customer)),
        waba_number: Some(waba.to_owned()),
        picked_by,
        ended_by,
        rejected_by,
        device_id: Some(format!("device_{:03}", rng.random_range(0..120u32))),
        chat_id: Some(format!("chat_{customer:06}")),
        chat_message_id: Some(format!("msg_{call_id}")),
        channel: None,
        channel_number: None,
        pstn_from: None,
        pstn_to: None,
        failed_reason: None,
        started_at,
        ended_at: Some(ended_at),
        duration_seconds: Some(duration),
        recording_url,
        is_new_caller,
        is_chat_assigned,
        anomalies: Vec::new(),
    };
    let payload = wire_payload(kind, &call_id, &fields);
    SeedCall {
        event: CallEvent {
            kind,
            call_id,
            fields,
            unread: Default::default(),
        },
        payload,
    }
}

/// Talk time: lognormal with a median of 2 minutes, clamped to 5 s–1 h.
fn lognormal_seconds(rng: &mut StdRng) -> i64 {
    // Box–Muller: a standard normal from two uniforms.
    let u1 = rng.random::<f64>().max(f64::MIN_POSITIVE);
    let u2 = rng.random::<f64>();
    let normal = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
    let seconds = (120f64.ln() + 1.1 * normal).exp();
    (seconds.round() as i64).clamp(5, 3600)
}

/// The JSON body DoubleTick would have sent for this event (all 19 keys, `""` when absent).
pub fn wire_payload(kind: EventKind, call_id: &str, f: &CallFields) -> String {
    let text = |v: &Option<String>| v.clone().unwrap_or_default();
    let time = |t: Option<DateTime<Utc>>| {
        t.map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
            .unwrap_or_default()
    };
    let mut body = json!({
        "event": kind.as_wire(),
        "callId": call_id,
        "chatMessageId": text(&f.chat_message_id),
        "chatId": text(&f.chat_id),
        "wabaNumber": text(&f.waba_number),
        "customerNumber": text(&f.customer_number),
        "customerName": text(&f.customer_name),
        "customerId": text(&f.customer_id),
        "callDirection": f.direction.map(Direction::as_wire).unwrap_or_default(),
        "callStatus": text(&f.status),
        "failedReason": text(&f.failed_reason),
        "durationInSeconds": f.duration_seconds.unwrap_or(0),
        "callStartedAt": time(f.started_at),
        "callEndedAt": time(f.ended_at),
        "pickedBy": text(&f.picked_by),
        "rejectedBy": text(&f.rejected_by),
        "endedBy": text(&f.ended_by),
        "recordingUrl": text(&f.recording_url),
        "deviceId": text(&f.device_id),
    });
    if let (Some(new), Some(assigned)) = (f.is_new_caller, f.is_chat_assigned) {
        body["isNewCaller"] = json!(new);
        body["isChatAssigned"] = json!(assigned);
    }
    body.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(calls: u64, seed: u64) -> SeedSpec {
        SeedSpec {
            calls,
            seed,
            end: DateTime::<Utc>::from_timestamp(1_795_000_000, 0).unwrap_or_default(),
        }
    }

    #[test]
    fn the_same_seed_generates_the_same_calls() {
        let a: Vec<String> = generate(spec(200, 7)).map(|c| c.payload).collect();
        let b: Vec<String> = generate(spec(200, 7)).map(|c| c.payload).collect();
        let c: Vec<String> = generate(spec(200, 8)).map(|c| c.payload).collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn generated_calls_have_the_documented_mix() {
        let calls: Vec<SeedCall> = generate(spec(20_000, 1)).collect();
        let share = |p: &dyn Fn(&SeedCall) -> bool| {
            calls.iter().filter(|c| p(c)).count() as f64 / calls.len() as f64
        };
        let incoming = share(&|c| c.event.fields.direction == Some(Direction::Incoming));
        let missed = share(&|c| c.event.kind == EventKind::Missed);
        let answered = share(&|c| c.event.fields.started_at.is_some());
        assert!((0.57..0.63).contains(&incoming), "incoming {incoming}");
        assert!((0.015..0.035).contains(&missed), "missed {missed}");
        assert!((0.87..0.94).contains(&answered), "answered {answered}");
        let spec = spec(1, 1);
        for call in &calls {
            let f = &call.event.fields;
            let duration = f.duration_seconds.unwrap_or(-1);
            assert!((0..=3600).contains(&duration));
            assert_eq!(f.started_at.is_some(), duration >= 5);
            let ended = f.ended_at.unwrap_or(spec.end);
            assert!(ended > spec.end - Duration::seconds(YEAR_SECONDS));
            assert!(ended < spec.end);
        }
    }
}
