//! The delivery log: appended by ingestion, read by `calltrail replay`.
use entity::delivery;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};

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

impl Store {
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
