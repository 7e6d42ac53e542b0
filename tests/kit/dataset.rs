//! A generated, reproducible call dataset, posted through the real webhook, and its rows kept for expectations.

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use futures_util::StreamExt;
use serde_json::{Value, json};

use super::TestApp;

/// One generated call, as the test knows it (independently of calltrail).
#[derive(Clone, Debug)]
pub struct GenCall {
    pub call_id: String,
    pub direction: &'static str,
    /// `END`, `MISSED` or `REJECT`.
    pub status: &'static str,
    /// As sent (sometimes formatted: `+91 98...`).
    pub customer_number: String,
    /// Digits of the number.
    pub customer_digits: String,
    pub customer_name: String,
    pub customer_id: String,
    pub waba_number: &'static str,
    pub picked_by: Option<&'static str>,
    pub ended_by: Option<String>,
    pub channel: Option<&'static str>,
    pub started_at: Option<DateTime<Utc>>,
    pub ended_at: DateTime<Utc>,
    pub duration_seconds: i64,
    pub recording: bool,
}

pub const AGENTS: [&str; 5] = [
    "919700011122",
    "919700022233",
    "919700033344",
    "Priya Sharma",
    "Arjun Nair",
];
pub const WABA_NUMBERS: [&str; 3] = ["918045671200", "918045671201", "918045671202"];
const NAMES: [&str; 6] = [
    "Meera Iyer",
    "Sanjay Gupta",
    "Divya Menon",
    "Kavya Reddy",
    "Rahul Verma",
    "Anita Desai",
];
/// Durations repeat so that orderings by duration have many ties.
const DURATIONS: [i64; 12] = [1, 5, 12, 30, 45, 60, 61, 95, 120, 312, 600, 1800];

/// A small deterministic generator (xorshift64*), so every run sees the same dataset.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// First instant of the dataset: the data spans 2026-03-01 to 2026-03-21 (UTC), across the
/// US daylight-saving change of 2026-03-08.
pub fn start() -> DateTime<Utc> {
    "2026-03-01T00:00:00Z".parse().expect("instant")
}

/// `n` calls: several agents, customers and business numbers, both directions, missed and
/// rejected calls, runs of calls ending at the same instant, and some calls placed exactly
/// around New York midnight on the daylight-saving day.
pub fn generate(n: usize) -> Vec<GenCall> {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut calls: Vec<GenCall> = Vec::with_capacity(n);
    let twenty_days_in_minutes = 20 * 24 * 60;
    for i in 0..n {
        let ended_at = if i % 7 == 3 && i > 0 {
            // Same end time as the previous call: ties in every ordering by endedAt.
            calls[i - 1].ended_at
        } else if i % 97 == 0 {
            // Around New York midnight (05:00Z in winter, 04:00Z in summer) near the change.
            let day = 5 + (i / 97) as i64 % 6;
            start() + Duration::days(day) + Duration::hours(4) + Duration::minutes(30)
        } else {
            start() + Duration::minutes(rng.below(twenty_days_in_minutes) as i64)
        };
        let direction = if rng.below(3) == 0 {
            "OUTGOING"
        } else {
            "INCOMING"
        };
        let roll = rng.below(10);
        let status = match roll {
            0 => "MISSED",
            1 => "REJECT",
            _ => "END",
        };
        let customer = rng.below(40) as usize;
        let customer_digits = format!("9198110{customer:05}");
        let customer_number = if customer.is_multiple_of(5) {
            format!(
                "+{} {}-{}",
                &customer_digits[..2],
                &customer_digits[2..7],
                &customer_digits[7..]
            )
        } else {
            customer_digits.clone()
        };
        let agent = AGENTS[rng.below(AGENTS.len() as u64) as usize];
        let never_answered = status == "END" && direction == "OUTGOING" && rng.below(8) == 0;
        let answered = status == "END" && !never_answered;
        let duration_seconds = if answered {
            DURATIONS[rng.below(DURATIONS.len() as u64) as usize]
        } else {
            0
        };
        let started_at = answered.then(|| ended_at - Duration::seconds(duration_seconds));
        let picked_by = (status == "END").then_some(agent);
        let ended_by = answered.then(|| {
            if rng.below(2) == 0 {
                agent.to_owned()
            } else {
                customer_digits.clone()
            }
        });
        let channel = (rng.below(6) == 0).then_some("PSTN");
        let recording = answered && rng.below(3) != 0;
        calls.push(GenCall {
            call_id: format!("gen_{i:05}"),
            direction,
            status,
            customer_number,
            customer_digits,
            customer_name: NAMES[customer % NAMES.len()].to_owned(),
            customer_id: format!("customer_{customer:03}"),
            waba_number: WABA_NUMBERS[rng.below(WABA_NUMBERS.len() as u64) as usize],
            picked_by,
            ended_by,
            channel,
            started_at,
            ended_at,
            duration_seconds,
            recording,
        });
    }
    calls
}

fn stamp(t: Option<DateTime<Utc>>) -> String {
    t.map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true))
        .unwrap_or_default()
}

impl GenCall {
    /// Moves the call to end at `t`, keeping its duration (an answered call starts that long before).
    pub fn end_at(&mut self, t: DateTime<Utc>) {
        self.ended_at = t;
        self.started_at = self
            .started_at
            .map(|_| t - Duration::seconds(self.duration_seconds));
    }

    /// The DoubleTick delivery for this call.
    pub fn payload(&self) -> Value {
        let event = match self.status {
            "MISSED" => "CALL_MISSED",
            "REJECT" => "CALL_REJECTED",
            _ => "CALL_ENDED",
        };
        let mut body = json!({
            "event": event,
            "callId": self.call_id,
            "chatMessageId": format!("msg_{}", self.call_id),
            "chatId": format!("chat_{}", self.customer_id),
            "wabaNumber": self.waba_number,
            "customerNumber": self.customer_number,
            "customerName": self.customer_name,
            "customerId": self.customer_id,
            "callDirection": self.direction,
            "callStatus": self.status,
            "failedReason": "",
            "durationInSeconds": self.duration_seconds,
            "callStartedAt": stamp(self.started_at),
            "callEndedAt": stamp(Some(self.ended_at)),
            "pickedBy": self.picked_by.unwrap_or_default(),
            "rejectedBy": if self.status == "REJECT" { AGENTS[0] } else { "" },
            "endedBy": self.ended_by.clone().unwrap_or_default(),
            "recordingUrl": if self.recording {
                format!("https://recordings.doubletick.io/{}.mp3", self.call_id)
            } else {
                String::new()
            },
            "deviceId": "device_gen",
        });
        if let Some(channel) = self.channel {
            body["channel"] = json!(channel);
        }
        body
    }
}

/// Posts every call through `POST /webhooks/doubletick`, 16 requests in flight.
pub async fn ingest(app: &TestApp, calls: &[GenCall]) {
    let statuses: Vec<(String, u16)> = futures_util::stream::iter(calls)
        .map(|call| async move {
            let body = serde_json::to_vec(&call.payload()).expect("json");
            let (status, _) = app.post_webhook("application/json", body).await;
            (call.call_id.clone(), status)
        })
        .buffer_unordered(16)
        .collect()
        .await;
    let refused: Vec<_> = statuses.iter().filter(|(_, s)| *s != 200).collect();
    assert!(
        refused.is_empty(),
        "[{}] deliveries refused: {:?}",
        app.backend.name(),
        &refused[..refused.len().min(5)]
    );
}
