//! An API key for reading calls: only a hash of the key is kept, beside a public prefix.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "api_keys")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub name: String,
    pub role: String,
    #[sea_orm(unique)]
    pub prefix: String,
    pub secret_sha256: String,
    /// JSON array of business numbers the key is limited to (empty: all).
    pub waba_numbers: String,
    /// JSON array of agents the key is limited to (empty: all).
    pub agents: String,
    pub created_at: DateTimeUtc,
    pub expires_at: Option<DateTimeUtc>,
    pub revoked_at: Option<DateTimeUtc>,
    pub last_used_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
