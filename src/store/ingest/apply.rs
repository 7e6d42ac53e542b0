//! One delivery applied inside the batch's transaction: its log row, its event (skipped when
//! already stored), the call refolded from its events, a revision when a concluded call changes,
//! and the rollup kept equal to the calls.
use chrono::Utc;
use entity::{call, call_event, call_revision, delivery};
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ActiveModelTrait, ActiveValue, ActiveValue::Set, ColumnTrait, DatabaseTransaction, EntityTrait,
    PaginatorTrait, QueryFilter, QueryOrder,
};
use sha2::{Digest, Sha256};

use super::{Incoming, Outcome, Receipt, Verdict};
use crate::domain::lifecycle::{AppliedEvent, fold};
use crate::domain::{CallEvent, EventKind};
use crate::error::AppError;
use crate::store::calls::{call_from_model, model_from_state};
use crate::store::error::write_error;
use crate::store::rollup;

/// Applies each delivery in turn: the path every delivery took before batching, and the one a
/// delivery retried alone takes.
pub(super) async fn apply_each(
    txn: &DatabaseTransaction,
    incomings: &[&Incoming],
) -> Result<Vec<Receipt>, AppError> {
    let mut receipts = Vec::with_capacity(incomings.len());
    for incoming in incomings {
        receipts.push(apply(txn, incoming).await?);
    }
    Ok(receipts)
}

/// An event already stored for its call (the same fingerprint) is skipped, not an error.
pub(crate) fn skip_stored_event() -> OnConflict {
    OnConflict::columns([call_event::Column::CallId, call_event::Column::Fingerprint])
        .do_nothing()
        .to_owned()
}

/// A batch's new calls have no stored events; an event that was already stored means the
/// batch misjudged a call as new.
pub(crate) fn all_events_new(inserted: impl TryInto<usize>, events: usize) -> Result<(), AppError> {
    match inserted.try_into() {
        Ok(n) if n == events => Ok(()),
        _ => Err(AppError::Internal(format!(
            "not all the events of {events} new calls were new"
        ))),
    }
}

/// The ids of log rows written by one multi-row insert, in the order of `rows`, from the
/// `(id, sha256, outcome)` it returned.
///
/// `RETURNING` lists rows in no promised order, but a multi-row INSERT takes ids in the order of
/// its rows (SQLite's rowids under the write lock, PostgreSQL's sequence), so the ids sorted are
/// the rows' ids in order. Each is checked against its row's body hash and outcome; a mismatch
/// fails the batch rather than answer a delivery with another's id.
pub(crate) fn ids_in_row_order(
    rows: &[delivery::ActiveModel],
    mut written: Vec<(i64, String, String)>,
) -> Result<Vec<i64>, AppError> {
    written.sort_unstable_by_key(|(id, _, _)| *id);
    if written.len() != rows.len() {
        return Err(AppError::Internal(format!(
            "{} log rows written, {} returned",
            rows.len(),
            written.len()
        )));
    }
    let mut ids = Vec::with_capacity(rows.len());
    for (row, (id, sha256, outcome)) in rows.iter().zip(written) {
        let matches = row.sha256.as_ref() == &sha256 && row.outcome.as_ref() == &outcome;
        if !matches {
            return Err(AppError::Internal(
                "log ids returned out of row order".into(),
            ));
        }
        ids.push(id);
    }
    Ok(ids)
}

/// What the log records about a delivery, and what its receipt says.
pub(super) struct Logged {
    pub(super) outcome: Outcome,
    pub(super) event: Option<String>,
    pub(super) call_id: Option<String>,
    pub(super) reason: Option<String>,
    pub(super) concluded: bool,
}

impl Logged {
    /// A delivery whose event was applied to its call.
    pub(super) fn applied(event: &CallEvent, outcome: Outcome, concluded: bool) -> Logged {
        Logged {
            outcome,
            event: Some(event.kind.as_wire().to_owned()),
            call_id: Some(event.call_id.clone()),
            reason: None,
            concluded,
        }
    }

    /// A delivery that changes no call: ignored (not a call event) or rejected, with why.
    pub(super) fn not_applied(verdict: &Verdict) -> Result<Logged, AppError> {
        let (outcome, event, call_id, reason) = match verdict {
            Verdict::NotACall {
                event,
                call_id,
                reason,
            } => (Outcome::Ignored, event, call_id, reason),
            Verdict::Rejected {
                event,
                call_id,
                reason,
            } => (Outcome::Rejected, event, call_id, reason),
            Verdict::Call(_) => {
                return Err(AppError::Internal(
                    "a call event taken for a refusal".into(),
                ));
            }
        };
        Ok(Logged {
            outcome,
            event: event.clone(),
            call_id: call_id.clone(),
            reason: Some(reason.clone()),
            concluded: false,
        })
    }
}

/// The log row of a delivery.
pub(super) fn delivery_row(incoming: &Incoming, summary: &Logged) -> delivery::ActiveModel {
    delivery::ActiveModel {
        received_at: Set(incoming.received_at),
        content_type: Set(incoming.content_type.clone()),
        body: Set(incoming.body.clone()),
        sha256: Set(hex::encode(Sha256::digest(&incoming.body))),
        event: Set(summary.event.clone()),
        call_id: Set(summary.call_id.clone()),
        outcome: Set(summary.outcome.as_str().to_owned()),
        reason: Set(summary.reason.clone()),
        replay_of: Set(incoming.replay_of),
        ..Default::default()
    }
}

/// Logs one delivery and applies its event to its call, inside the batch's transaction.
pub(super) async fn apply(
    txn: &DatabaseTransaction,
    incoming: &Incoming,
) -> Result<Receipt, AppError> {
    let summary = match &incoming.verdict {
        Verdict::Call(event) => {
            let (outcome, concluded) = apply_event(txn, incoming, event).await?;
            Logged::applied(event, outcome, concluded)
        }
        verdict => Logged::not_applied(verdict)?,
    };
    let logged = delivery_row(incoming, &summary)
        .insert(txn)
        .await
        .map_err(write_error)?;
    Ok(Receipt {
        delivery_id: logged.id,
        outcome: summary.outcome,
        call_id: summary.call_id,
        concluded: summary.concluded,
    })
}

/// The `call_events` row of an event, and the event as folded.
pub(super) fn event_row(
    incoming: &Incoming,
    event: &CallEvent,
) -> Result<(call_event::ActiveModel, AppliedEvent), AppError> {
    let fingerprint = event.fingerprint();
    let raw_payload = String::from_utf8_lossy(&incoming.body).into_owned();
    let fields =
        serde_json::to_string(&event.fields).map_err(|e| AppError::Internal(e.to_string()))?;
    let row = call_event::ActiveModel {
        call_id: Set(event.call_id.clone()),
        fingerprint: Set(fingerprint.clone()),
        event: Set(event.kind.as_wire().to_owned()),
        rank: Set(event.rank()),
        fields: Set(fields),
        received_at: Set(incoming.received_at),
        content_type: Set(incoming.content_type.clone()),
        raw_payload: Set(raw_payload.clone()),
        ..Default::default()
    };
    let applied = AppliedEvent {
        seq: i64::MAX,
        event: event.clone(),
        fingerprint,
        received_at: incoming.received_at,
        content_type: incoming.content_type.clone(),
        raw_payload,
    };
    Ok((row, applied))
}

/// Records the event if it is new, and refolds its call. Returns the outcome and whether the
/// call is concluded afterwards.
async fn apply_event(
    txn: &DatabaseTransaction,
    incoming: &Incoming,
    event: &CallEvent,
) -> Result<(Outcome, bool), AppError> {
    let (row, this) = event_row(incoming, event)?;
    let existing = call::Entity::find()
        .filter(call::Column::CallId.eq(&event.call_id))
        .one(txn)
        .await
        .map_err(write_error)?;
    let inserted = if existing.is_some() && stored_before_v1(txn, event).await? {
        0
    } else {
        call_event::Entity::insert(row)
            .on_conflict(skip_stored_event())
            .exec_without_returning(txn)
            .await
            .map_err(write_error)?
    };
    if inserted == 0 {
        let concluded = existing.as_ref().is_some_and(|m| m.ended_at.is_some());
        return Ok((Outcome::Duplicate, concluded));
    }

    let events = match &existing {
        None => vec![this],
        Some(_) => load_events(txn, &event.call_id).await?,
    };
    let state = fold(&events).ok_or_else(|| AppError::Internal("no events to fold".into()))?;
    let now = Utc::now();

    let Some(old) = existing else {
        let model = model_from_state(&state, 1, now);
        rollup::record_change(txn, None, &model).await?;
        call::Entity::insert(model)
            .exec_without_returning(txn)
            .await
            .map_err(write_error)?;
        let outcome = if state.concluded {
            Outcome::Stored
        } else {
            Outcome::Merged
        };
        return Ok((outcome, state.concluded));
    };

    let was_concluded = old.ended_at.is_some();
    let mut model = model_from_state(&state, old.revision, now);
    model.id = Set(old.id);
    let changed = content_differs(&old, &model);
    if !changed {
        return Ok((Outcome::Merged, was_concluded));
    }
    let outcome = if was_concluded {
        let previous = call_from_model(old.clone())?;
        let snapshot =
            serde_json::to_string(&previous).map_err(|e| AppError::Internal(e.to_string()))?;
        call_revision::ActiveModel {
            call_id: Set(old.call_id.clone()),
            revision: Set(old.revision),
            replaced_at: Set(now),
            snapshot: Set(snapshot),
            ..Default::default()
        }
        .insert(txn)
        .await
        .map_err(write_error)?;
        model.revision = Set(old.revision + 1);
        Outcome::Updated
    } else if state.concluded {
        Outcome::Stored
    } else {
        Outcome::Merged
    };
    model.clone().update(txn).await.map_err(write_error)?;
    rollup::record_change(txn, Some(&old), &model).await?;
    Ok((outcome, state.concluded))
}

/// Whether `event` was stored by a calltrail before fingerprint version 1, under the
/// fingerprint that version gave it (a database made then keeps those rows as they are).
async fn stored_before_v1(txn: &DatabaseTransaction, event: &CallEvent) -> Result<bool, AppError> {
    let found = call_event::Entity::find()
        .filter(call_event::Column::CallId.eq(&event.call_id))
        .filter(call_event::Column::Fingerprint.eq(event.legacy_fingerprint()))
        .count(txn)
        .await
        .map_err(write_error)?;
    Ok(found > 0)
}

async fn load_events(
    txn: &DatabaseTransaction,
    call_id: &str,
) -> Result<Vec<AppliedEvent>, AppError> {
    let rows = call_event::Entity::find()
        .filter(call_event::Column::CallId.eq(call_id))
        .order_by_asc(call_event::Column::Id)
        .all(txn)
        .await
        .map_err(write_error)?;
    rows.into_iter().map(applied_event).collect()
}

/// A stored `call_events` row as the event fold takes it.
pub(crate) fn applied_event(row: call_event::Model) -> Result<AppliedEvent, AppError> {
    let kind = EventKind::from_wire(&row.event)
        .ok_or_else(|| AppError::Internal(format!("unknown stored event {}", row.event)))?;
    let fields =
        serde_json::from_str(&row.fields).map_err(|e| AppError::Internal(e.to_string()))?;
    Ok(AppliedEvent {
        seq: row.id,
        event: CallEvent {
            kind,
            call_id: row.call_id,
            fields,
            unread: Default::default(),
        },
        fingerprint: row.fingerprint,
        received_at: row.received_at,
        content_type: row.content_type,
        raw_payload: row.raw_payload,
    })
}

/// Whether the refolded call differs from the stored one in anything a reader sees.
///
/// Every column is named (no `..`): a column added to `calls` does not compile here until it
/// is listed as content, or as identity and bookkeeping, which a change to alone does not make
/// a new revision.
fn content_differs(old: &call::Model, new: &call::ActiveModel) -> bool {
    first_difference(old, new).is_some()
}

/// The first column in which the refolded call differs from the stored one in anything a
/// reader sees (what `calltrail verify` names).
pub(crate) fn first_difference(old: &call::Model, new: &call::ActiveModel) -> Option<&'static str> {
    macro_rules! differs {
        (not content: $($skip:ident),*; content: $($f:ident),*) => {{
            let call::ActiveModel { $($skip: _,)* $($f,)* } = new;
            None $( .or_else(|| matches!($f, ActiveValue::Set(v) if *v != old.$f).then_some(stringify!($f))) )*
        }};
    }
    differs!(
        not content: id, call_id, revision, received_at, updated_at, raw_content_type, raw_payload;
        content: status,
        direction,
        customer_id,
        customer_name,
        customer_number,
        customer_digits,
        waba_number,
        picked_by,
        ended_by,
        rejected_by,
        device_id,
        chat_id,
        chat_message_id,
        channel,
        channel_number,
        pstn_from,
        pstn_to,
        failed_reason,
        started_at,
        ended_at,
        duration_seconds,
        recording_url,
        is_new_caller,
        is_chat_assigned,
        not_picked_count,
        anomalies
    )
}
