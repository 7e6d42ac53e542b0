//! A domain [`CallFilter`] as a sea-orm condition on the `calls` table.
//!
//! A search by part of a customer's name is first looked up in the customers' names
//! (`customer_names`, one row per customer and name, trigram-indexed): when few customers
//! match, their calls are read from the customer-number index instead of every call's name
//! being matched in turn (a scan of the whole log: 7–9 s at 1M calls).
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use entity::call::Column;
use sea_orm::sea_query::{Expr, ExprTrait, Func, LikeExpr};
use sea_orm::{ColumnTrait, Condition, ConnectionTrait, Statement};

use super::Store;
use super::error::db_error;
use crate::domain::{CallFilter, IntRange, TimeRange};
use crate::error::AppError;

/// The most customers a name search reads by customer number. Past it the name is common
/// (`"kumar"`, a single letter) and the calls in the list's order match often enough that
/// walking them finds a page sooner than reading every such customer's calls and sorting.
const NAMED_CUSTOMERS: usize = 200;

impl Store {
    /// The condition of `filter`, with a name search narrowed to the customers it matches
    /// when they are few (one indexed lookup first). Each call's own name is still matched,
    /// so the answer is the same either way.
    pub(super) async fn condition(&self, filter: &CallFilter) -> Result<Condition, AppError> {
        let mut c = condition(filter);
        if let Some(name) = &filter.customer_name
            && let Some(digits) = self.customers_named(name).await?
        {
            c = c.add(Column::CustomerDigits.is_in(digits));
        }
        Ok(c)
    }

    /// The numbers (digits) of the customers whose lower-cased name holds `name`, unless
    /// there are more than [`NAMED_CUSTOMERS`].
    async fn customers_named(&self, name: &str) -> Result<Option<Vec<String>>, AppError> {
        if let Some(known) = self.names.as_ref().and_then(|n| n.get(name)) {
            return Ok(known);
        }
        let found = self.look_up_customers_named(name).await?;
        if let Some(names) = &self.names {
            names.keep(name, found.clone());
        }
        Ok(found)
    }

    async fn look_up_customers_named(&self, name: &str) -> Result<Option<Vec<String>>, AppError> {
        let pattern = format!("%{}%", escape_like(name));
        let limit = NAMED_CUSTOMERS as u64 + 1;
        let (sql, values) = self.dialect().customers_named(&pattern, name, limit);
        let rows = self
            .db
            .query_all_raw(Statement::from_sql_and_values(self.backend(), sql, values))
            .await
            .map_err(db_error)?;
        if rows.len() > NAMED_CUSTOMERS {
            return Ok(None);
        }
        let mut digits = rows
            .iter()
            .map(|row| row.try_get_by_index::<String>(0))
            .collect::<Result<Vec<_>, _>>()
            .map_err(db_error)?;
        digits.sort_unstable();
        digits.dedup();
        Ok(Some(digits))
    }
}

/// One reader's name lookups: the customers each name matched ([`Store::customers_named`]'s
/// answers). A reader lives for one request, so a page, its count and its statistics look a
/// name up once and agree on it; a new customer's name is seen by the next request.
#[derive(Clone, Debug, Default)]
pub(super) struct NameLookups(Arc<Mutex<HashMap<String, Option<Vec<String>>>>>);

impl NameLookups {
    fn get(&self, name: &str) -> Option<Option<Vec<String>>> {
        self.0.lock().ok()?.get(name).cloned()
    }

    fn keep(&self, name: &str, customers: Option<Vec<String>>) {
        if let Ok(mut known) = self.0.lock() {
            known.insert(name.to_owned(), customers);
        }
    }
}

/// Concluded calls matching `filter` (a name search matched on every call's name).
pub fn condition(filter: &CallFilter) -> Condition {
    let mut c = Condition::all().add(Column::EndedAt.is_not_null());
    if let Some(ids) = &filter.call_ids {
        c = c.add(Column::CallId.is_in(ids.clone()));
    }
    if let Some(id) = &filter.customer_id {
        c = c.add(Column::CustomerId.eq(id.clone()));
    }
    if let Some(digits) = &filter.customer_digits {
        c = c.add(Column::CustomerDigits.eq(digits.clone()));
    }
    if let Some(name) = &filter.customer_name {
        let pattern = format!("%{}%", escape_like(name));
        c = c.add(
            Expr::expr(Func::lower(Expr::col(Column::CustomerName)))
                .like(LikeExpr::new(pattern).escape('\\')),
        );
    }
    if let Some(agents) = &filter.picked_by {
        c = c.add(Column::PickedBy.is_in(agents.clone()));
    }
    if let Some(enders) = &filter.ended_by {
        c = c.add(Column::EndedBy.is_in(enders.clone()));
    }
    if let Some(numbers) = &filter.waba_numbers {
        c = c.add(Column::WabaNumber.is_in(numbers.clone()));
    }
    if let Some(direction) = filter.direction {
        c = c.add(Column::Direction.eq(direction.as_wire()));
    }
    if let Some(statuses) = &filter.statuses {
        c = c.add(Column::Status.is_in(statuses.clone()));
    }
    if let Some(channel) = &filter.channel {
        c = c.add(Column::Channel.eq(channel.clone()));
    }
    if let Some(range) = &filter.ended_at {
        c = time_range(c, Column::EndedAt, range);
    }
    if let Some(range) = &filter.started_at {
        c = time_range(c, Column::StartedAt, range);
    }
    if let Some(range) = &filter.duration_seconds {
        c = int_range(c, Column::DurationSeconds, range);
    }
    if let Some(has) = filter.has_recording {
        c = c.add(if has {
            Column::RecordingUrl.is_not_null()
        } else {
            Column::RecordingUrl.is_null()
        });
    }
    if let Some(states) = &filter.recording_states {
        c = c.add(recording_in(states));
    }
    if let Some(reviewed) = filter.reviewed {
        c = c.add(if reviewed {
            Condition::all().add(Expr::exists(reviews_of_the_call()))
        } else {
            Condition::all().add(Expr::exists(reviews_of_the_call()).not())
        });
    }
    if let Some(has) = filter.has_anomalies {
        c = c.add(if has {
            Column::Anomalies.ne("")
        } else {
            Column::Anomalies.eq("")
        });
    }
    c
}

/// Calls whose length is within `short`, or that have anomalies: what waits for review.
pub fn short_or_anomalous(short: IntRange) -> Condition {
    Condition::any()
        .add(int_range(Condition::all(), Column::DurationSeconds, &short))
        .add(Column::Anomalies.ne(""))
}

/// The reviews of the call in hand (`call_reviews` rows of its call id).
fn reviews_of_the_call() -> sea_orm::sea_query::SelectStatement {
    use sea_orm::sea_query::{Alias, Query};
    let reviews = Alias::new("call_reviews");
    Query::select()
        .expr(Expr::val(1))
        .from(reviews.clone())
        .and_where(
            Expr::col((reviews, Alias::new("call_id")))
                .equals((Alias::new("calls"), Alias::new("call_id"))),
        )
        .to_owned()
}

/// The call's current recording link has an archive job in one of `states`.
fn recording_in(states: &[crate::domain::recording::JobState]) -> Condition {
    use sea_orm::sea_query::{Alias, Query};
    if states.is_empty() {
        return Condition::all().add(Expr::cust("1 = 0"));
    }
    let jobs = Alias::new("recording_jobs");
    let calls = Alias::new("calls");
    let col = |table: &Alias, name: &str| Expr::col((table.clone(), Alias::new(name)));
    let exists = Query::select()
        .expr(Expr::val(1))
        .from(jobs.clone())
        .and_where(col(&jobs, "call_id").equals((calls.clone(), Alias::new("call_id"))))
        .and_where(col(&jobs, "url").equals((calls, Alias::new("recording_url"))))
        .and_where(col(&jobs, "state").is_in(states.iter().map(|s| s.as_str())))
        .to_owned();
    Condition::all().add(Expr::exists(exists))
}

fn time_range(mut c: Condition, column: Column, range: &TimeRange) -> Condition {
    if let Some(from) = range.from {
        c = c.add(column.gte(from));
    }
    if let Some(to) = range.to {
        c = c.add(column.lt(to));
    }
    c
}

fn int_range(mut c: Condition, column: Column, range: &IntRange) -> Condition {
    if let Some(min) = range.min {
        c = c.add(column.gte(min));
    }
    if let Some(max) = range.max {
        c = c.add(column.lte(max));
    }
    c
}

fn escape_like(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for ch in text.chars() {
        if matches!(ch, '%' | '_' | '\\') {
            escaped.push('\\');
        }
        escaped.push(ch);
    }
    escaped
}
