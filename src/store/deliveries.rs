//! The delivery log: appended by ingestion, read by `calltrail replay` and shown with each
//! call on the reviewer desk.
use entity::delivery;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use super::Store;
use super::error::db_error;
use crate::error::AppError;

/// A logged delivery to re-process.
#[derive(Clone, Debug)]
pub struct LoggedDelivery {
    pub id: i64,
    pub received_at: chrono::DateTime<chrono::Utc>,
    pub content_type: String,
    pub body: Vec<u8>,
}

/// A logged delivery of one call as the desk lists it: what arrived and what became of it,
/// without its body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeliveryRow {
    pub id: i64,
    pub received_at: chrono::DateTime<chrono::Utc>,
    pub content_type: String,
    /// Hex SHA-256 of the body as received.
    pub sha256: String,
    pub event: Option<String>,
    pub outcome: String,
    pub reason: Option<String>,
    pub replay_of: Option<i64>,
}

/// A [`DeliveryRow`] as selected, column by column.
type DeliveryTuple = (
    i64,
    chrono::DateTime<chrono::Utc>,
    String,
    String,
    Option<String>,
    String,
    Option<String>,
    Option<i64>,
);

/// Most deliveries listed for one call.
pub const MAX_DELIVERIES_SHOWN: u64 = 200;

impl Store {
    /// The logged deliveries of call `call_id`, oldest first (at most
    /// [`MAX_DELIVERIES_SHOWN`]).
    pub(super) async fn deliveries_of(&self, call_id: &str) -> Result<Vec<DeliveryRow>, AppError> {
        use delivery::Column as C;
        let rows: Vec<DeliveryTuple> = delivery::Entity::find()
            .select_only()
            .columns([
                C::Id,
                C::ReceivedAt,
                C::ContentType,
                C::Sha256,
                C::Event,
                C::Outcome,
                C::Reason,
                C::ReplayOf,
            ])
            .filter(C::CallId.eq(call_id))
            .order_by_asc(C::Id)
            .limit(MAX_DELIVERIES_SHOWN)
            .into_tuple()
            .all(&self.db)
            .await
            .map_err(db_error)?;
        Ok(rows
            .into_iter()
            .map(
                |(id, received_at, content_type, sha256, event, outcome, reason, replay_of)| {
                    DeliveryRow {
                        id,
                        received_at,
                        content_type,
                        sha256,
                        event,
                        outcome,
                        reason,
                        replay_of,
                    }
                },
            )
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
