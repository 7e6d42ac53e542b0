//! The delivery log: appended by ingestion, read by `calltrail replay`, the pages and the
//! evidence bundle.
use entity::delivery;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};

use super::Store;
use super::error::db_error;
use crate::error::AppError;

/// A delivery-log row as the pages and the evidence bundle show it: every column, the body
/// exactly as received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeliveryRow {
    pub id: i64,
    pub received_at: chrono::DateTime<chrono::Utc>,
    pub content_type: String,
    pub body: Vec<u8>,
    /// SHA-256 of `body` as logged when it arrived (lowercase hex).
    pub sha256: String,
    pub event: Option<String>,
    pub call_id: Option<String>,
    /// `stored`, `duplicate`, `rejected`...
    pub outcome: String,
    pub reason: Option<String>,
    pub replay_of: Option<i64>,
}

/// A logged delivery to re-process.
#[derive(Clone, Debug)]
pub struct LoggedDelivery {
    pub id: i64,
    pub received_at: chrono::DateTime<chrono::Utc>,
    pub content_type: String,
    pub body: Vec<u8>,
}

impl Store {
    /// Every logged delivery of the call `call_id`, in the order they arrived. A caller shows
    /// them only for a call its reader may see ([`super::reader::Reader`]).
    pub async fn deliveries_of(&self, call_id: &str) -> Result<Vec<DeliveryRow>, AppError> {
        Ok(delivery::Entity::find()
            .filter(delivery::Column::CallId.eq(call_id))
            .order_by_asc(delivery::Column::Id)
            .all(&self.db)
            .await
            .map_err(db_error)?
            .into_iter()
            .map(|d| DeliveryRow {
                id: d.id,
                received_at: d.received_at,
                content_type: d.content_type,
                body: d.body,
                sha256: d.sha256,
                event: d.event,
                call_id: d.call_id,
                outcome: d.outcome,
                reason: d.reason,
                replay_of: d.replay_of,
            })
            .collect())
    }

    /// Rejected deliveries that no later replay has turned into anything but another rejection.
    pub async fn unresolved_rejections(&self) -> Result<Vec<LoggedDelivery>, AppError> {
        let rejected = delivery::Entity::find()
            .filter(delivery::Column::Outcome.eq("rejected"))
            .filter(delivery::Column::ReplayOf.is_null())
            .order_by_asc(delivery::Column::Id)
            .all(&self.db)
            .await
            .map_err(db_error)?;
        let resolved: std::collections::HashSet<i64> = delivery::Entity::find()
            .filter(delivery::Column::ReplayOf.is_not_null())
            .filter(delivery::Column::Outcome.ne("rejected"))
            .all(&self.db)
            .await
            .map_err(db_error)?
            .into_iter()
            .filter_map(|d| d.replay_of)
            .collect();
        Ok(rejected
            .into_iter()
            .filter(|d| !resolved.contains(&d.id))
            .map(|d| LoggedDelivery {
                id: d.id,
                received_at: d.received_at,
                content_type: d.content_type,
                body: d.body,
            })
            .collect())
    }
}
