//! `accessLog`: who read which client's calls, for admin keys.
use async_graphql::{Context, ID, InputObject, Object, SimpleObject};

use super::access::viewer;
use super::scalars::DateTime;
use super::{GqlResult, gql};
use crate::error::AppError;
use crate::store::Store;
use crate::store::access::{AccessFilter, LoggedAccess};

/// Which access-log entries; all of them when omitted.
#[derive(InputObject, Default)]
pub struct AccessLogFilter {
    /// Reads made with this key (its id, as `calltrail keys list` shows).
    pub key_id: Option<ID>,
    /// Reads whose answer carried this call's customer identity.
    pub call_id: Option<ID>,
    /// Entries at or after this instant.
    pub from: Option<DateTime>,
    /// Entries before this instant.
    pub to: Option<DateTime>,
}

/// One logged read.
pub struct AccessLogEntry(LoggedAccess);

#[Object]
impl AccessLogEntry {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    /// When the read was answered.
    async fn at(&self) -> DateTime {
        DateTime(self.0.entry.at)
    }
    /// The key's id; `null` for a read on open loopback (no key existed).
    async fn key_id(&self) -> Option<ID> {
        self.0.entry.key_id.map(|k| ID(k.to_string()))
    }
    async fn key_name(&self) -> &str {
        &self.0.entry.key_name
    }
    /// `admin`, `reviewer` or `analyst`.
    async fn role(&self) -> &str {
        &self.0.entry.role
    }
    /// Where the read came in: `graphql`, `recording` (a playback of `GET /recordings/{callId}`),
    /// and later `export`.
    async fn surface(&self) -> &str {
        &self.0.entry.surface
    }
    /// The GraphQL operation's name, if it had one.
    async fn operation_name(&self) -> Option<&str> {
        self.0.entry.operation_name.as_deref()
    }
    /// SHA-256 (hex) of the query text.
    async fn query_sha256(&self) -> Option<&str> {
        self.0.entry.query_sha256.as_deref()
    }
    /// The client's address as calltrail saw it.
    async fn client_address(&self) -> Option<&str> {
        self.0.entry.client_address.as_deref()
    }
    /// The calls whose customer identity the answer carried.
    async fn call_ids(&self) -> Vec<ID> {
        self.0.entry.call_ids.iter().cloned().map(ID).collect()
    }
    /// A recording playback's byte range as asked (`0-99`, `100-`, `-500`), or `all`.
    async fn byte_range(&self) -> Option<&str> {
        self.0.entry.byte_range.as_deref()
    }
}

/// A page of access-log entries, newest first.
#[derive(SimpleObject)]
pub struct AccessLogConnection {
    pub nodes: Vec<AccessLogEntry>,
    /// Entries matching the filter in all.
    pub total_count: i64,
    /// More entries follow the last one (pass `endCursor` as `after`).
    pub has_next_page: bool,
    pub end_cursor: Option<String>,
}

/// Most entries per page.
const MAX_PAGE: i64 = 500;

pub async fn access_log(
    ctx: &Context<'_>,
    filter: Option<AccessLogFilter>,
    first: Option<i64>,
    after: Option<String>,
) -> GqlResult<AccessLogConnection> {
    viewer(ctx)?.require_admin("accessLog").map_err(gql)?;
    let store = ctx.data::<Store>()?;
    let filter = filter.unwrap_or_default();
    let id = |argument: &str, v: Option<ID>| -> GqlResult<Option<i64>> {
        v.map(|v| {
            v.parse::<i64>()
                .map_err(|_| gql(AppError::bad_input(argument, "not an id")))
        })
        .transpose()
    };
    let filter = AccessFilter {
        key_id: id("filter.keyId", filter.key_id)?,
        call_id: filter.call_id.map(|c| c.0),
        from: filter.from.map(|t| t.0),
        to: filter.to.map(|t| t.0),
    };
    let first = first.unwrap_or(50);
    if !(0..=MAX_PAGE).contains(&first) {
        return Err(gql(AppError::bad_input(
            "first",
            format!("must be between 0 and {MAX_PAGE}"),
        )));
    }
    let before = id("after", after.map(ID))?;
    let mut rows = store
        .access_log(&filter, first as u64 + 1, before)
        .await
        .map_err(gql)?;
    let has_next_page = rows.len() as i64 > first;
    rows.truncate(first as usize);
    let total_count = store.access_log_count(&filter).await.map_err(gql)? as i64;
    Ok(AccessLogConnection {
        end_cursor: rows.last().map(|r| r.id.to_string()),
        nodes: rows.into_iter().map(AccessLogEntry).collect(),
        total_count,
        has_next_page,
    })
}
