//! The append-only reviews: what a reviewer found on a call, by which key, when.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "call_reviews")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub call_id: String,
    /// `OK`, `ISSUE` or `ESCALATE`.
    pub verdict: String,
    #[sea_orm(column_type = "Text")]
    pub note: String,
    /// None for a review made on open loopback (no key exists yet).
    pub key_id: Option<i64>,
    pub key_name: String,
    pub reviewed_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
