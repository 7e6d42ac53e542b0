//! Which deliveries of a batch can be written together, and writing them so.
use std::collections::HashMap;

use chrono::Utc;
use entity::delivery;
use sea_orm::DatabaseTransaction;

use super::apply::{Logged, apply, delivery_row, event_row};
use super::{Incoming, Outcome, Receipt, Verdict};
use crate::domain::fold;
use crate::error::AppError;
use crate::store::calls::model_from_state;
use crate::store::dialect::Dialect;

/// Applies a batch with a few statements for the whole batch wherever that gives exactly what
/// [`apply_each`] would, and delivery by delivery elsewhere.
///
/// The batched deliveries are the ones whose effect cannot depend on another delivery: rejected
/// and not-a-call ones (their only write is the log row), and the first event of a call that has
/// no row yet and no other event in this batch (folded alone, as `apply_event` does for a new
/// call). Their event, call, rollup and log rows are written together ([`Dialect::write_new`]);
/// then the rest go through [`apply`] in arrival order, so a call's second
/// event sees its first. A check that fails (an event already stored for a call with no row, log
/// ids not matching their rows) fails the batch, which is then retried delivery by delivery.
pub(super) async fn apply_batch(
    dialect: Dialect,
    txn: &DatabaseTransaction,
    incomings: &[&Incoming],
) -> Result<Vec<Receipt>, AppError> {
    let mut events_per_call: HashMap<&str, usize> = HashMap::new();
    for incoming in incomings {
        if let Verdict::Call(event) = &incoming.verdict {
            *events_per_call.entry(event.call_id.as_str()).or_default() += 1;
        }
    }
    let alone: Vec<&str> = events_per_call
        .iter()
        .filter(|(_, n)| **n == 1)
        .map(|(id, _)| *id)
        .collect();
    let stored = dialect.existing_calls(txn, &alone).await?;

    let now = Utc::now();
    let mut later = Vec::new();
    let mut logged: Vec<(usize, Logged)> = Vec::new();
    let mut events = Vec::new();
    let mut calls = Vec::new();
    for (index, incoming) in incomings.iter().enumerate() {
        let summary = match &incoming.verdict {
            Verdict::Call(event) => {
                let first_and_only = events_per_call.get(event.call_id.as_str()) == Some(&1)
                    && !stored.contains(&event.call_id);
                if !first_and_only {
                    later.push(index);
                    continue;
                }
                let (row, applied) = event_row(incoming, event)?;
                let state = fold(std::slice::from_ref(&applied))
                    .ok_or_else(|| AppError::Internal("no events to fold".into()))?;
                events.push(row);
                calls.push(model_from_state(&state, 1, now));
                let outcome = if state.concluded {
                    Outcome::Stored
                } else {
                    Outcome::Merged
                };
                Logged::applied(event, outcome, state.concluded)
            }
            verdict => Logged::not_applied(verdict)?,
        };
        logged.push((index, summary));
    }

    let rows: Vec<delivery::ActiveModel> = logged
        .iter()
        .map(|(index, summary)| delivery_row(incomings[*index], summary))
        .collect();
    let ids = if rows.is_empty() {
        Vec::new()
    } else {
        dialect.write_new(txn, &events, &calls, &rows).await?
    };

    let mut receipts: Vec<Option<Receipt>> = vec![None; incomings.len()];
    for ((index, summary), delivery_id) in logged.into_iter().zip(ids) {
        receipts[index] = Some(Receipt {
            delivery_id,
            outcome: summary.outcome,
            call_id: summary.call_id,
            concluded: summary.concluded,
        });
    }
    for index in later {
        receipts[index] = Some(apply(txn, incomings[index]).await?);
    }
    receipts
        .into_iter()
        .map(|r| r.ok_or_else(|| AppError::Internal("a delivery left unanswered".into())))
        .collect()
}
