//! Folding a call's distinct lifecycle events into its one current state.
use chrono::{DateTime, Utc};

use super::Anomaly;
use super::event::{CallEvent, CallFields, EventKind};

/// An event as stored: the event, and when and how it arrived.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppliedEvent {
    /// Arrival order; breaks ties between terminal events (the later delivery wins).
    pub seq: i64,
    pub event: CallEvent,
    pub fingerprint: String,
    pub received_at: DateTime<Utc>,
    pub content_type: String,
    pub raw_payload: String,
}

/// The merged state of one call, concluded or still in progress.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallState {
    pub call_id: String,
    pub status: String,
    pub fields: CallFields,
    pub concluded: bool,
    pub not_picked_count: i32,
    pub anomalies: Vec<Anomaly>,
    pub received_at: DateTime<Utc>,
    pub raw_content_type: String,
    pub raw_payload: String,
}

/// The state of a call given the set of its distinct events, in any arrival order.
///
/// Fields are overlaid in precedence order (initiated / not picked, then accepted, then
/// terminal), so a later rank overrides what an earlier rank said and only fills what it
/// left blank; the status is always the highest-ranked event's (its `callStatus`, or the
/// status its event name implies), and a "not picked" event never sets `pickedBy`. Within the non-terminal ranks the order is the fingerprint's, so the result does
/// not depend on arrival; among terminal events the later delivery wins (a corrected
/// redelivery, e.g. the recording URL arriving late). Returns `None` for no events.
pub fn fold(events: &[AppliedEvent]) -> Option<CallState> {
    let mut ordered: Vec<&AppliedEvent> = events.iter().collect();
    ordered.sort_by(|a, b| {
        let (ra, rb) = (a.event.rank(), b.event.rank());
        ra.cmp(&rb).then_with(|| {
            if ra == 3 {
                a.seq.cmp(&b.seq)
            } else {
                a.fingerprint.cmp(&b.fingerprint)
            }
        })
    });
    let last = *ordered.last()?;
    let mut fields = CallFields::default();
    for applied in &ordered {
        if applied.event.kind == EventKind::NotPicked {
            // `pickedBy` on a "not picked" event names the agent who did *not* answer.
            let mut stated = applied.event.fields.clone();
            stated.picked_by = None;
            fields.overlay(&stated);
        } else {
            fields.overlay(&applied.event.fields);
        }
    }
    let concluded = ordered.iter().any(|a| a.event.is_terminal());
    let not_picked_count = ordered
        .iter()
        .filter(|a| a.event.kind == EventKind::NotPicked)
        .count() as i32;
    // The status is the deciding event's own: a terminal event without `callStatus` must not
    // inherit `IN_PROGRESS` from the accepted event before it.
    let status = last
        .event
        .fields
        .status
        .clone()
        .unwrap_or_else(|| default_status(last.event.kind).to_owned());
    fields.status = Some(status.clone());
    let mut anomalies = fields.anomalies.clone();
    anomalies.extend(state_anomalies(&fields, concluded));
    anomalies.sort();
    anomalies.dedup();
    Some(CallState {
        call_id: last.event.call_id.clone(),
        status,
        fields,
        concluded,
        not_picked_count,
        anomalies,
        received_at: ordered.iter().map(|a| a.received_at).min()?,
        raw_content_type: last.content_type.clone(),
        raw_payload: last.raw_payload.clone(),
    })
}

fn default_status(kind: EventKind) -> &'static str {
    match kind {
        EventKind::IncomingInitiated | EventKind::OutgoingInitiated | EventKind::NotPicked => {
            "INITIATED"
        }
        EventKind::Accepted => "IN_PROGRESS",
        EventKind::Ended => "END",
        EventKind::Rejected => "REJECT",
        EventKind::Missed => "MISSED",
    }
}

/// Oddities visible only in the merged call (the timestamps against the duration).
fn state_anomalies(fields: &CallFields, concluded: bool) -> Vec<Anomaly> {
    let mut found = Vec::new();
    if !concluded {
        return found;
    }
    let duration = fields.duration_seconds.unwrap_or(0);
    if let (Some(started), Some(ended)) = (fields.started_at, fields.ended_at) {
        let elapsed_ms = (ended - started).num_milliseconds();
        if elapsed_ms < 0 {
            found.push(Anomaly::EndedBeforeStarted);
        }
        if (elapsed_ms - duration * 1000).abs() > 2000 {
            found.push(Anomaly::DurationMismatch);
        }
        if duration == 0 {
            found.push(Anomaly::AnsweredZeroDuration);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn applied(seq: i64, kind: EventKind, fields: CallFields) -> AppliedEvent {
        let event = CallEvent {
            kind,
            call_id: "c1".into(),
            fields,
            unread: Default::default(),
        };
        AppliedEvent {
            seq,
            fingerprint: event.fingerprint(),
            event,
            received_at: DateTime::<Utc>::from_timestamp(1_700_000_000 + seq, 0)
                .unwrap_or_default(),
            content_type: "application/json".into(),
            raw_payload: String::new(),
        }
    }

    #[test]
    fn a_late_accepted_event_does_not_override_the_terminal_one() {
        let ended = applied(
            1,
            EventKind::Ended,
            CallFields {
                status: Some("END".into()),
                picked_by: Some("agent-b".into()),
                ..Default::default()
            },
        );
        let accepted = applied(
            2,
            EventKind::Accepted,
            CallFields {
                status: Some("IN_PROGRESS".into()),
                picked_by: Some("agent-a".into()),
                chat_id: Some("chat".into()),
                ..Default::default()
            },
        );
        let state = fold(&[ended, accepted]).expect("events");
        assert_eq!(state.status, "END");
        assert_eq!(state.fields.picked_by.as_deref(), Some("agent-b"));
        assert_eq!(state.fields.chat_id.as_deref(), Some("chat"));
        assert!(state.concluded);
    }

    #[test]
    fn a_terminal_event_without_a_status_does_not_inherit_in_progress() {
        let accepted = applied(
            1,
            EventKind::Accepted,
            CallFields {
                status: Some("IN_PROGRESS".into()),
                ..Default::default()
            },
        );
        let missed = applied(2, EventKind::Missed, CallFields::default());
        let state = fold(&[accepted, missed]).expect("events");
        assert_eq!(state.status, "MISSED");
        assert_eq!(state.fields.status.as_deref(), Some("MISSED"));
    }

    #[test]
    fn the_agent_who_did_not_pick_up_is_not_the_one_who_picked_up() {
        let skipped = applied(
            1,
            EventKind::NotPicked,
            CallFields {
                picked_by: Some("agent-skipped".into()),
                ..Default::default()
            },
        );
        let missed = applied(2, EventKind::Missed, CallFields::default());
        let state = fold(&[skipped, missed]).expect("events");
        assert_eq!(state.fields.picked_by, None);
        assert_eq!(state.not_picked_count, 1);
    }
}
