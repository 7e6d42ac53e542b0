//! The hash chains over the logs (`deliveries`, `access_log`): each batch's new rows are linked
//! in the writer's transaction, after the head the chain had when the batch took its lock. The
//! bytes and the link are defined in `migration::chain`, which the migration that chained the
//! rows stored before also uses.
use migration::chain::{Chain, GENESIS, link, parse_link};
use sea_orm::sea_query::{Alias, Expr, ExprTrait, Query};
use sea_orm::{ConnectionTrait, DatabaseTransaction, DbErr, QueryResult};

use super::dialect::Dialect;
use super::error::write_error;
use crate::error::AppError;

/// A chain's last link: its place and its value (lowercase hex).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Head {
    pub seq: i64,
    pub link: String,
}

/// Links the rows `ids` of `chain`'s table (written by this transaction), in id order, after
/// the chain's head. On PostgreSQL the transaction first takes the chain's lock, held until it
/// commits, so instances sharing the database extend one chain in turn (once per batch).
pub(crate) async fn extend(
    txn: &DatabaseTransaction,
    dialect: Dialect,
    chain: Chain,
    ids: &[i64],
) -> Result<(), AppError> {
    if ids.is_empty() {
        return Ok(());
    }
    dialect.lock_chain(txn, chain.table).await?;
    let head = head(txn, chain).await.map_err(write_error)?;
    let (mut seq, mut previous) = match head {
        None => (0, GENESIS),
        Some(head) => (
            head.seq,
            parse_link(&head.link).ok_or_else(|| malformed(chain, head.seq))?,
        ),
    };
    let mut ids = ids.to_vec();
    ids.sort_unstable();
    let mut select = Query::select();
    for (column, _, _) in chain.columns {
        select.column(Alias::new(*column));
    }
    select
        .from(Alias::new(chain.table))
        .and_where(Expr::col(Alias::new("id")).is_in(ids.iter().copied()))
        .order_by(Alias::new("id"), sea_orm::sea_query::Order::Asc);
    let rows = txn.query_all(&select).await.map_err(write_error)?;
    if rows.len() != ids.len() {
        return Err(AppError::Internal(format!(
            "{} of {} new {} rows read back to chain",
            rows.len(),
            ids.len(),
            chain.table
        )));
    }
    let mut insert = Query::insert();
    insert.into_table(Alias::new("chain_links")).columns([
        Alias::new("chain"),
        Alias::new("seq"),
        Alias::new("row_id"),
        Alias::new("link"),
    ]);
    for row in &rows {
        let (id, bytes) = chain.canonical(row).map_err(write_error)?;
        previous = link(&previous, &bytes);
        seq += 1;
        insert
            .values([
                chain.table.into(),
                seq.into(),
                id.into(),
                hex::encode(previous).into(),
            ])
            .map_err(|e| AppError::Internal(format!("chain insert: {e}")))?;
    }
    txn.execute(&insert).await.map_err(write_error)?;
    Ok(())
}

fn malformed(chain: Chain, seq: i64) -> AppError {
    AppError::Internal(format!("chain {} link {seq} is malformed", chain.table))
}

/// The last link of `chain`, if it has any.
pub(crate) async fn head(db: &impl ConnectionTrait, chain: Chain) -> Result<Option<Head>, DbErr> {
    let select = Query::select()
        .columns([Alias::new("seq"), Alias::new("link")])
        .from(Alias::new("chain_links"))
        .and_where(Expr::col(Alias::new("chain")).eq(chain.table))
        .order_by(Alias::new("seq"), sea_orm::sea_query::Order::Desc)
        .limit(1)
        .to_owned();
    db.query_one(&select)
        .await?
        .map(|row: QueryResult| {
            Ok(Head {
                seq: row.try_get("", "seq")?,
                link: row.try_get("", "link")?,
            })
        })
        .transpose()
}
