//! One callId an access-log entry returned the identity of: what "who read client X's calls"
//! searches.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "access_log_calls")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub access_id: i64,
    #[sea_orm(primary_key, auto_increment = false)]
    pub call_id: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
