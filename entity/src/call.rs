//! One row per call, keyed by DoubleTick's `callId`, merged from every lifecycle event.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "calls")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    #[sea_orm(unique)]
    pub call_id: String,
    pub status: String,
    pub direction: Option<String>,
    pub customer_id: Option<String>,
    pub customer_name: Option<String>,
    pub customer_number: Option<String>,
    pub customer_digits: Option<String>,
    pub waba_number: Option<String>,
    pub picked_by: Option<String>,
    pub ended_by: Option<String>,
    pub rejected_by: Option<String>,
    pub device_id: Option<String>,
    pub chat_id: Option<String>,
    pub chat_message_id: Option<String>,
    pub channel: Option<String>,
    pub channel_number: Option<String>,
    pub pstn_from: Option<String>,
    pub pstn_to: Option<String>,
    pub failed_reason: Option<String>,
    pub started_at: Option<DateTimeUtc>,
    pub ended_at: Option<DateTimeUtc>,
    pub duration_seconds: i64,
    pub recording_url: Option<String>,
    pub is_new_caller: Option<bool>,
    pub is_chat_assigned: Option<bool>,
    pub not_picked_count: i32,
    pub anomalies: String,
    pub revision: i32,
    pub received_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub raw_content_type: String,
    pub raw_payload: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
