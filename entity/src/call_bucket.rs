//! Concluded calls pre-aggregated per 15-minute UTC bucket of `ended_at` and direction.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "call_buckets")]
pub struct Model {
    /// Epoch seconds of the bucket's start, a multiple of 900.
    #[sea_orm(primary_key, auto_increment = false)]
    pub bucket_start: i64,
    /// `INCOMING`, `OUTGOING`, or `""` when the call has none.
    #[sea_orm(primary_key, auto_increment = false)]
    pub direction: String,
    pub calls: i64,
    pub total_duration_seconds: i64,
    pub min_duration_seconds: i64,
    pub max_duration_seconds: i64,
    pub with_recording: i64,
    pub answered: i64,
    pub missed: i64,
    pub rejected: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
