//! sea-orm entities for calltrail's tables: plain data, no API derives.
pub mod access_call;
pub mod access_entry;
pub mod api_key;
pub mod call;
pub mod call_bucket;
pub mod call_event;
pub mod call_review;
pub mod call_revision;
pub mod delivery;
pub mod desk_session;
pub mod recording;
pub mod recording_job;
