//! What an evidence bundle reads besides the calls: each call's events, its logged deliveries
//! (raw bodies and places on the chain), the access-log rows that touched it, and the chains'
//! heads at the moment the bundle is made. Reads for calls go through the [`Reader`], which
//! keeps only the calls in its scope; log rows are read only up to a chain place, so a bundle
//! holds what its heads cover and nothing written after.
use entity::call_event;
use migration::chain::{ACCESS_LOG, CHAINS, Chain, DELIVERIES, GENESIS};
use sea_orm::sea_query::{Alias, Expr, ExprTrait, JoinType, Order, Query, SelectStatement};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QueryResult};

use super::Store;
use super::chain::{Head, head};
use super::error::db_error;
use super::ingest::applied_event;
use super::reader::Reader;
use crate::domain::lifecycle::AppliedEvent;
use crate::domain::{Call, Review};
use crate::error::AppError;

/// A log row's place on its chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainPlace {
    pub seq: i64,
    /// Its link (lowercase hex).
    pub link: String,
    /// The link before it (the genesis, 64 zeros, for the first row).
    pub previous: String,
}

/// A chained log row as a bundle carries it: the texts of its chained columns, in the order of
/// [`Chain::columns`] (what `migration::chain::encode` turns into the canonical bytes), and its
/// place.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainedRow {
    pub id: i64,
    pub texts: Vec<Option<String>>,
    pub place: ChainPlace,
}

/// A logged delivery with its body exactly as received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoggedBody {
    pub row: ChainedRow,
    pub body: Vec<u8>,
}

impl Store {
    /// The last link of every chain, now.
    pub async fn chain_heads(&self) -> Result<Vec<(Chain, Option<Head>)>, AppError> {
        let mut heads = Vec::with_capacity(CHAINS.len());
        for chain in CHAINS {
            heads.push((chain, head(&self.db, chain).await.map_err(db_error)?));
        }
        Ok(heads)
    }

    /// The rows of `select` (which selects `chain`'s columns and `chain_seq`, `chain_link`),
    /// with their places, the link before each read too.
    async fn chained_rows(
        &self,
        chain: Chain,
        select: &SelectStatement,
    ) -> Result<Vec<(ChainedRow, QueryResult)>, AppError> {
        let rows = self.db.query_all(select).await.map_err(db_error)?;
        let mut read = Vec::with_capacity(rows.len());
        for row in rows {
            let (id, texts) = chain.texts(&row).map_err(db_error)?;
            let seq: i64 = row.try_get("", "chain_seq").map_err(db_error)?;
            let link: String = row.try_get("", "chain_link").map_err(db_error)?;
            let place = ChainPlace {
                seq,
                link,
                previous: String::new(),
            };
            read.push((ChainedRow { id, texts, place }, row));
        }
        let before: Vec<i64> = read
            .iter()
            .map(|(r, _)| r.place.seq - 1)
            .filter(|s| *s > 0)
            .collect();
        let mut previous = std::collections::HashMap::with_capacity(before.len());
        if !before.is_empty() {
            let links = self
                .db
                .query_all(
                    Query::select()
                        .columns([Alias::new("seq"), Alias::new("link")])
                        .from(Alias::new("chain_links"))
                        .and_where(Expr::col(Alias::new("chain")).eq(chain.table))
                        .and_where(Expr::col(Alias::new("seq")).is_in(before)),
                )
                .await
                .map_err(db_error)?;
            for l in links {
                let seq: i64 = l.try_get("", "seq").map_err(db_error)?;
                let link: String = l.try_get("", "link").map_err(db_error)?;
                previous.insert(seq, link);
            }
        }
        for (row, _) in &mut read {
            row.place.previous = if row.place.seq <= 1 {
                hex::encode(GENESIS)
            } else {
                previous.remove(&(row.place.seq - 1)).ok_or_else(|| {
                    AppError::Internal(format!(
                        "chain {} has no link {}",
                        chain.table,
                        row.place.seq - 1
                    ))
                })?
            };
        }
        Ok(read)
    }
}

/// `chain`'s columns of its table (as `t`) joined with each row's link (as `chain_seq`,
/// `chain_link`), for rows at or before `upto` on the chain and after id `after`, by id.
fn chained_select(chain: Chain, upto: i64, after: i64, limit: u64) -> SelectStatement {
    let (t, l) = (Alias::new("t"), Alias::new("l"));
    let mut select = Query::select();
    for (column, _, _) in chain.columns {
        select.column((t.clone(), Alias::new(*column)));
    }
    select
        .expr_as(
            Expr::col((l.clone(), Alias::new("seq"))),
            Alias::new("chain_seq"),
        )
        .expr_as(
            Expr::col((l.clone(), Alias::new("link"))),
            Alias::new("chain_link"),
        )
        .from_as(Alias::new(chain.table), t.clone())
        .join_as(
            JoinType::InnerJoin,
            Alias::new("chain_links"),
            l.clone(),
            Expr::col((l.clone(), Alias::new("row_id")))
                .equals((t.clone(), Alias::new("id")))
                .and(Expr::col((l.clone(), Alias::new("chain"))).eq(chain.table)),
        )
        .and_where(Expr::col((t.clone(), Alias::new("id"))).gt(after))
        .and_where(Expr::col((l, Alias::new("seq"))).lte(upto))
        .order_by((t, Alias::new("id")), Order::Asc)
        .limit(limit);
    select
}

impl Reader {
    /// The ids of those of `calls` in this reader's scope.
    fn admitted(&self, calls: &[Call]) -> Vec<String> {
        calls
            .iter()
            .filter(|c| self.scope().admits(c))
            .map(|c| c.call_id.clone())
            .collect()
    }

    /// The stored events of `calls` (calls this reader read), by call and arrival.
    pub async fn events(&self, calls: &[Call]) -> Result<Vec<AppliedEvent>, AppError> {
        let ids = self.admitted(calls);
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        call_event::Entity::find()
            .filter(call_event::Column::CallId.is_in(ids))
            .order_by_asc(call_event::Column::CallId)
            .order_by_asc(call_event::Column::Id)
            .all(&self.store().db)
            .await
            .map_err(db_error)?
            .into_iter()
            .map(applied_event)
            .collect()
    }

    /// The reviews of `calls` (calls this reader read), by call and id.
    pub async fn reviews_of(&self, calls: &[Call]) -> Result<Vec<Review>, AppError> {
        self.store().reviews_of(&self.admitted(calls)).await
    }

    /// Up to `limit` logged deliveries of `calls` (calls this reader read) with ids after
    /// `after`, at or before place `upto` on their chain, by id, with their bodies.
    pub async fn logged_bodies(
        &self,
        calls: &[Call],
        upto: i64,
        after: i64,
        limit: u64,
    ) -> Result<Vec<LoggedBody>, AppError> {
        let ids = self.admitted(calls);
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut select = chained_select(DELIVERIES, upto, after, limit);
        select
            .column((Alias::new("t"), Alias::new("body")))
            .and_where(Expr::col((Alias::new("t"), Alias::new("call_id"))).is_in(ids));
        self.store()
            .chained_rows(DELIVERIES, &select)
            .await?
            .into_iter()
            .map(|(row, result)| {
                let body: Vec<u8> = result.try_get("", "body").map_err(db_error)?;
                Ok(LoggedBody { row, body })
            })
            .collect()
    }

    /// Up to `limit` access-log rows that touched any of `calls` (calls this reader read),
    /// with ids after `after`, at or before place `upto` on their chain, by id.
    pub async fn access_rows(
        &self,
        calls: &[Call],
        upto: i64,
        after: i64,
        limit: u64,
    ) -> Result<Vec<ChainedRow>, AppError> {
        let ids = self.admitted(calls);
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut select = chained_select(ACCESS_LOG, upto, after, limit);
        select.and_where(
            Expr::col((Alias::new("t"), Alias::new("id"))).in_subquery(
                Query::select()
                    .column(Alias::new("access_id"))
                    .from(Alias::new("access_log_calls"))
                    .and_where(Expr::col(Alias::new("call_id")).is_in(ids))
                    .to_owned(),
            ),
        );
        Ok(self
            .store()
            .chained_rows(ACCESS_LOG, &select)
            .await?
            .into_iter()
            .map(|(row, _)| row)
            .collect())
    }
}
