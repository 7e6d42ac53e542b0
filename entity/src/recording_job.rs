//! The archive queue: one row per call and recording link, updated as its archiving proceeds.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "recording_jobs")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub call_id: String,
    /// DoubleTick's `recordingUrl`, without the API key.
    pub url: String,
    /// `pending`, `retrying`, `archived`, `failed`, `gone`.
    pub state: String,
    pub attempts: i32,
    pub next_attempt_at: DateTimeUtc,
    /// A worker holds the job until then (a worker that died lets it go when this passes).
    pub leased_until: Option<DateTimeUtc>,
    /// Why the last attempt failed (never the API key, never the URL).
    pub last_error: Option<String>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
