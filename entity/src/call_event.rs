//! The distinct lifecycle events applied to a call: the set its row is folded from.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "call_events")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub call_id: String,
    pub fingerprint: String,
    pub event: String,
    pub rank: i32,
    pub fields: String,
    pub received_at: DateTimeUtc,
    pub content_type: String,
    pub raw_payload: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
