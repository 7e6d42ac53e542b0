//! The hash chains over the logs: `chain_links` (one row per chained log row: its chain, its
//! place `seq`, its `row_id` and its link), append-only like the logs themselves. The rows
//! already stored are chained here, in id order, so a database from before has one chain from
//! its first row (the canonical bytes and the link: `crate::chain`).
use crate::sql::append_only;
use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, Statement};

use crate::chain::{CHAINS, Chain, GENESIS, link};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// Rows read and linked per statement while chaining what is already stored.
const PAGE: u64 = 1_000;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let column = |name: &str| ColumnDef::new(Alias::new(name)).not_null().to_owned();
        manager
            .create_table(
                Table::create()
                    .table(Alias::new("chain_links"))
                    .if_not_exists()
                    .col(column("chain").string().to_owned())
                    .col(column("seq").big_integer().to_owned())
                    .col(column("row_id").big_integer().to_owned())
                    .col(column("link").string().to_owned())
                    .primary_key(
                        Index::create()
                            .col(Alias::new("chain"))
                            .col(Alias::new("seq")),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_chain_links_row")
                    .table(Alias::new("chain_links"))
                    .col(Alias::new("chain"))
                    .col(Alias::new("row_id"))
                    .unique()
                    .to_owned(),
            )
            .await?;
        for chain in CHAINS {
            chain_stored_rows(manager, chain).await?;
        }
        let db = manager.get_connection();
        for sql in append_only(db.get_database_backend(), "chain_links") {
            db.execute_unprepared(&sql).await?;
        }
        Ok(())
    }

    async fn down(&self, _manager: &SchemaManager) -> Result<(), DbErr> {
        Err(DbErr::Migration(
            "the log's hash chain is evidence: this migration is not reversed".into(),
        ))
    }
}

/// Links every row of `chain`'s table not linked yet, in id order, after its last link.
async fn chain_stored_rows(manager: &SchemaManager<'_>, chain: Chain) -> Result<(), DbErr> {
    let db = manager.get_connection();
    let backend = db.get_database_backend();
    let table = chain.table;
    let head = db
        .query_one_raw(Statement::from_string(
            backend,
            format!(
                "SELECT seq, link FROM chain_links WHERE chain = '{table}' \
                 ORDER BY seq DESC LIMIT 1"
            ),
        ))
        .await?;
    let (mut seq, mut previous, mut after) = match head {
        None => (0i64, GENESIS, i64::MIN),
        Some(row) => {
            let seq: i64 = row.try_get("", "seq")?;
            let hex_link: String = row.try_get("", "link")?;
            let previous = crate::chain::parse_link(&hex_link)
                .ok_or_else(|| DbErr::Custom(format!("chain {table}: malformed link")))?;
            let last = db
                .query_one_raw(Statement::from_string(
                    backend,
                    format!("SELECT MAX(row_id) AS m FROM chain_links WHERE chain = '{table}'"),
                ))
                .await?
                .map(|r| r.try_get::<i64>("", "m"))
                .transpose()?
                .unwrap_or(i64::MIN);
            (seq, previous, last)
        }
    };
    loop {
        let rows = db
            .query_all_raw(Statement::from_string(
                backend,
                format!(
                    "SELECT {} FROM {table} WHERE id > {after} ORDER BY id LIMIT {PAGE}",
                    chain.select_list()
                ),
            ))
            .await?;
        if rows.is_empty() {
            return Ok(());
        }
        let mut insert = Query::insert();
        insert.into_table(Alias::new("chain_links")).columns([
            Alias::new("chain"),
            Alias::new("seq"),
            Alias::new("row_id"),
            Alias::new("link"),
        ]);
        for row in &rows {
            let (id, bytes) = chain.canonical(row)?;
            previous = link(&previous, &bytes);
            seq += 1;
            after = id;
            insert.values_panic([
                table.into(),
                seq.into(),
                id.into(),
                hex::encode(previous).into(),
            ]);
        }
        manager.exec_stmt(insert).await?;
    }
}
