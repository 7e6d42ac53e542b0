//! The append-only evidence of an archived recording: which call and link, its SHA-256, size
//! and type, and when.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "recordings")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub call_id: String,
    pub url: String,
    /// Hex SHA-256 of the bytes: also the object's name in the store.
    pub sha256: String,
    pub bytes: i64,
    pub content_type: String,
    pub archived_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
