//! A domain [`CallFilter`] as a sea-orm condition on the `calls` table.
use entity::call::Column;
use sea_orm::sea_query::{Expr, ExprTrait, Func, LikeExpr};
use sea_orm::{ColumnTrait, Condition};

use crate::domain::{CallFilter, IntRange, TimeRange};

/// Concluded calls matching `filter`.
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
