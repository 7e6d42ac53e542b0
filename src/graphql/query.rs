//! The query root: one call, pages of calls, and call statistics.
use async_graphql::{Context, ID, Object, SelectionField};

use super::access::{reads, viewer};
use super::access_log;
use super::inputs::{CallFilter, CallOrder};
use super::stats::{self, CallDimension, CallStatsResult};
use super::types::{Call, CallConnection};
use super::{GqlResult, Limits, gql};
use crate::domain::{self, CallField, PageFields, PagePart, PageRequest};
use crate::error::AppError;
use crate::store::reader::Reader;

/// Page size when neither `first` nor `last` is given.
pub const DEFAULT_PAGE_SIZE: u64 = 50;

pub struct Query;

/// Calls and their statistics.
#[Object]
impl Query {
    /// One concluded call by its DoubleTick `callId`; `null` when there is none.
    async fn call(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "DoubleTick's `callId`.")] call_id: ID,
    ) -> GqlResult<Option<Call>> {
        reads(ctx)?;
        let store = ctx.data::<Reader>()?;
        Ok(store.call(&call_id).await.map_err(gql)?.map(Call))
    }

    /// Concluded calls matching `filter`, newest `endedAt` first unless `orderBy` says
    /// otherwise, paged by cursor (`first`/`after` forward, `last`/`before` backward).
    #[graphql(
        complexity = "child_complexity * (first.or(last).unwrap_or(50).clamp(1, 500) as usize) + 1"
    )]
    async fn calls(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Which calls; all concluded calls when omitted.")] filter: Option<
            CallFilter,
        >,
        #[graphql(desc = "Ordering; `ENDED_AT DESC` when omitted.")] order_by: Option<CallOrder>,
        #[graphql(
            desc = "Page size going forward (default 50, at most the configured maximum, 500 by default)."
        )]
        first: Option<i64>,
        #[graphql(desc = "Cursor of the call to start after.")] after: Option<String>,
        #[graphql(desc = "Page size going backward.")] last: Option<i64>,
        #[graphql(desc = "Cursor of the call to end before.")] before: Option<String>,
    ) -> GqlResult<CallConnection> {
        reads(ctx)?;
        let store = ctx.data::<Reader>()?;
        let limits = ctx.data::<Limits>()?;
        let filter = filter
            .unwrap_or_default()
            .to_domain(limits.archiving)
            .map_err(gql)?;
        viewer(ctx)?.check_filter(&filter, "filter").map_err(gql)?;
        let order = order_by.map(domain::CallOrder::from).unwrap_or_default();
        let request =
            page_request(first, after, last, before, limits.max_page_size).map_err(gql)?;
        let page = store
            .page(&filter, order, &request, page_fields(ctx))
            .await
            .map_err(gql)?;
        Ok(CallConnection::new(page, filter))
    }

    /// Who read which client's calls, newest first (admin keys only).
    async fn access_log(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Which entries; all of them when omitted.")] filter: Option<
            access_log::AccessLogFilter,
        >,
        #[graphql(desc = "Page size (default 50, at most 500).")] first: Option<i64>,
        #[graphql(desc = "`endCursor` of the page before.")] after: Option<String>,
    ) -> GqlResult<access_log::AccessLogConnection> {
        access_log::access_log(ctx, filter, first, after).await
    }

    /// Statistics over the calls matching `filter`: totals, and one group per distinct
    /// value of the `groupBy` dimensions. Counting and aggregation run in the database.
    #[graphql(complexity = "super::cost::CALL_STATS + child_complexity")]
    async fn call_stats(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Which calls; all concluded calls when omitted.")] filter: Option<
            CallFilter,
        >,
        #[graphql(desc = "Dimensions to group by, in any combination; no groups when omitted.")]
        group_by: Option<Vec<CallDimension>>,
        #[graphql(
            desc = "IANA time zone of the HOUR/DAY/WEEK/MONTH buckets (e.g. `America/New_York`).",
            default_with = "Some(String::from(\"UTC\"))"
        )]
        time_zone: Option<String>,
        #[graphql(desc = "Calls shorter than this many seconds count as `shortCalls`.")]
        short_call_seconds: Option<i64>,
        #[graphql(desc = "Calls longer than this many seconds count as `longCalls`.")]
        long_call_seconds: Option<i64>,
    ) -> GqlResult<CallStatsResult> {
        reads(ctx)?;
        let store = ctx.data::<Reader>()?;
        let (total_percentiles, group_percentiles) = stats::wanted_percentiles(ctx.field());
        let measures = stats::wanted_measures(ctx.field());
        stats::call_stats(
            store,
            viewer(ctx)?,
            ctx.data::<Limits>()?.archiving,
            filter,
            group_by,
            time_zone.as_deref().unwrap_or("UTC"),
            short_call_seconds,
            long_call_seconds,
            (total_percentiles, group_percentiles, measures),
        )
        .await
    }
}

/// What the query selects under `calls` (fragments included): rows only when edges, nodes or
/// page info are asked for, raw bodies only when `rawPayload` is, the other details only
/// when a field beyond the summary is.
fn page_fields(ctx: &Context<'_>) -> PageFields {
    let mut fields = PageFields {
        rows: false,
        raw_payload: false,
        details: false,
        only: None,
    };
    let mut node = |call: SelectionField<'_>| {
        for field in call.selection_set() {
            match CallField::from_name(field.name()).map(CallField::part) {
                Some(PagePart::Summary) => {}
                Some(PagePart::RawPayload) => fields.raw_payload = true,
                None if field.name() == "__typename" => {}
                Some(PagePart::Details) | None => fields.details = true,
            }
        }
    };
    for field in ctx.field().selection_set() {
        match field.name() {
            "edges" => {
                for inner in field.selection_set().filter(|f| f.name() == "node") {
                    node(inner);
                }
                fields.rows = true;
            }
            "nodes" => {
                node(field);
                fields.rows = true;
            }
            "pageInfo" => fields.rows = true,
            _ => {}
        }
    }
    fields
}

fn page_request(
    first: Option<i64>,
    after: Option<String>,
    last: Option<i64>,
    before: Option<String>,
    max: u64,
) -> Result<PageRequest, AppError> {
    let size = |argument: &str, n: i64| -> Result<u64, AppError> {
        if n < 0 {
            return Err(AppError::bad_input(argument, "must not be negative"));
        }
        let n = n as u64;
        if n > max {
            return Err(AppError::bad_input(
                argument,
                format!("must be at most {max}"),
            ));
        }
        Ok(n)
    };
    if first.is_some() && last.is_some() {
        return Err(AppError::bad_input(
            "last",
            "give `first` or `last`, not both",
        ));
    }
    if last.is_some() || (first.is_none() && before.is_some()) {
        if after.is_some() {
            return Err(AppError::bad_input(
                "after",
                "use `before` when paging backward with `last`",
            ));
        }
        let last = size("last", last.unwrap_or(DEFAULT_PAGE_SIZE as i64))?;
        return Ok(PageRequest::Backward { last, before });
    }
    if before.is_some() {
        return Err(AppError::bad_input(
            "before",
            "use `after` when paging forward with `first`",
        ));
    }
    let first = size("first", first.unwrap_or(DEFAULT_PAGE_SIZE as i64))?;
    Ok(PageRequest::Forward { first, after })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `CallField` is the list the look-ahead reads; the `Call` type is what async-graphql
    /// generates from `graphql::types`. The compiler cannot compare the two, so this does.
    #[test]
    fn every_call_field_in_the_schema_is_a_call_field_and_back() {
        let sdl = crate::graphql::sdl();
        let start = sdl.find("type Call {").expect("type Call");
        let body = &sdl[start..];
        let body = &body[..body.find("\n}").expect("end of type Call")];
        let mut in_schema: Vec<&str> = body
            .lines()
            .skip(1)
            .filter_map(|line| {
                let line = line.trim();
                let end = line.find([':', '('])?;
                let name = &line[..end];
                (!name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric()))
                    .then_some(name)
            })
            .collect();
        let mut listed: Vec<&str> = CallField::ALL.iter().map(|f| f.name()).collect();
        in_schema.sort_unstable();
        listed.sort_unstable();
        assert_eq!(in_schema, listed);
        for field in CallField::ALL {
            assert_eq!(CallField::from_name(field.name()), Some(field));
        }
    }
}
