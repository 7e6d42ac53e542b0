//! The access log: who read which client's calls. Rows are written by the webhook writer's
//! group commit (`store::ingest`), before the answer they record leaves; read by admins.
use chrono::{DateTime, Utc};
use entity::{access_call, access_entry};
use sea_orm::ActiveValue::Set;
use sea_orm::sea_query::Query;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, DatabaseTransaction, EntityTrait, PaginatorTrait,
    QueryFilter, QueryOrder, QuerySelect,
};

use super::Store;
use super::error::{db_error, write_error};
use crate::error::AppError;

/// One read to record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessEntry {
    pub at: DateTime<Utc>,
    pub key_id: Option<i64>,
    pub key_name: String,
    pub role: String,
    /// `graphql`, `recording`, `export`.
    pub surface: String,
    pub operation_name: Option<String>,
    pub query_sha256: Option<String>,
    pub client_address: Option<String>,
    /// The calls whose identity the answer carried, sorted, each once.
    pub call_ids: Vec<String>,
    /// A recording playback's byte range (`0-99`, `100-`, `-500`, or `all`).
    pub byte_range: Option<String>,
}

/// A logged read, as admins query it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoggedAccess {
    pub id: i64,
    pub entry: AccessEntry,
}

/// Which log rows an admin asks for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AccessFilter {
    pub key_id: Option<i64>,
    pub call_id: Option<String>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
}

/// Appends `entry` inside the writer's transaction; returns its id.
pub(crate) async fn append(
    txn: &DatabaseTransaction,
    entry: &AccessEntry,
) -> Result<i64, AppError> {
    let row = access_entry::ActiveModel {
        at: Set(entry.at),
        key_id: Set(entry.key_id),
        key_name: Set(entry.key_name.clone()),
        role: Set(entry.role.clone()),
        surface: Set(entry.surface.clone()),
        operation_name: Set(entry.operation_name.clone()),
        query_sha256: Set(entry.query_sha256.clone()),
        client_address: Set(entry.client_address.clone()),
        call_ids: Set(serde_json::to_string(&entry.call_ids).unwrap_or_else(|_| "[]".into())),
        byte_range: Set(entry.byte_range.clone()),
        ..Default::default()
    }
    .insert(txn)
    .await
    .map_err(write_error)?;
    if !entry.call_ids.is_empty() {
        access_call::Entity::insert_many(entry.call_ids.iter().map(|call_id| {
            access_call::ActiveModel {
                access_id: Set(row.id),
                call_id: Set(call_id.clone()),
            }
        }))
        .exec_without_returning(txn)
        .await
        .map_err(write_error)?;
    }
    Ok(row.id)
}

fn condition(filter: &AccessFilter) -> Condition {
    let mut c = Condition::all();
    if let Some(key) = filter.key_id {
        c = c.add(access_entry::Column::KeyId.eq(key));
    }
    if let Some(call_id) = &filter.call_id {
        c = c.add(
            access_entry::Column::Id.in_subquery(
                Query::select()
                    .column(access_call::Column::AccessId)
                    .from(access_call::Entity)
                    .and_where(access_call::Column::CallId.eq(call_id.clone()))
                    .to_owned(),
            ),
        );
    }
    if let Some(from) = filter.from {
        c = c.add(access_entry::Column::At.gte(from));
    }
    if let Some(to) = filter.to {
        c = c.add(access_entry::Column::At.lt(to));
    }
    c
}

impl Store {
    /// The log rows matching `filter`, newest first: `first` of them with ids below `before`.
    pub async fn access_log(
        &self,
        filter: &AccessFilter,
        first: u64,
        before: Option<i64>,
    ) -> Result<Vec<LoggedAccess>, AppError> {
        let mut query = access_entry::Entity::find().filter(condition(filter));
        if let Some(before) = before {
            query = query.filter(access_entry::Column::Id.lt(before));
        }
        let rows = query
            .order_by_desc(access_entry::Column::Id)
            .limit(first)
            .all(&self.db)
            .await
            .map_err(db_error)?;
        rows.into_iter()
            .map(|m| {
                let call_ids = serde_json::from_str(&m.call_ids)
                    .map_err(|e| AppError::Internal(format!("access log call ids: {e}")))?;
                Ok(LoggedAccess {
                    id: m.id,
                    entry: AccessEntry {
                        at: m.at,
                        key_id: m.key_id,
                        key_name: m.key_name,
                        role: m.role,
                        surface: m.surface,
                        operation_name: m.operation_name,
                        query_sha256: m.query_sha256,
                        client_address: m.client_address,
                        call_ids,
                        byte_range: m.byte_range,
                    },
                })
            })
            .collect()
    }

    /// How many log rows match `filter`.
    pub async fn access_log_count(&self, filter: &AccessFilter) -> Result<u64, AppError> {
        access_entry::Entity::find()
            .filter(condition(filter))
            .count(&self.db)
            .await
            .map_err(db_error)
    }
}
