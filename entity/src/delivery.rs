//! The append-only log of every authenticated webhook delivery, with its outcome.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "deliveries")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub received_at: DateTimeUtc,
    pub content_type: String,
    pub body: Vec<u8>,
    pub sha256: String,
    pub event: Option<String>,
    pub call_id: Option<String>,
    pub outcome: String,
    pub reason: Option<String>,
    pub replay_of: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
