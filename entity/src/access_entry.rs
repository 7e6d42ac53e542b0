//! The append-only access log: who read which client's calls, when, and how.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "access_log")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub at: DateTimeUtc,
    /// None for a read on open loopback (no key exists yet).
    pub key_id: Option<i64>,
    pub key_name: String,
    pub role: String,
    /// What was read: `graphql`, and the later surfaces (`recording`, `export`).
    pub surface: String,
    pub operation_name: Option<String>,
    pub query_sha256: Option<String>,
    pub client_address: Option<String>,
    /// JSON array of the callIds whose identity the answer carried.
    pub call_ids: String,
    /// The bytes a recording playback asked for (`0-99`, `-500`, `all`); none elsewhere.
    pub byte_range: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
