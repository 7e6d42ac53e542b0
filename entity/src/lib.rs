//! sea-orm entities for calltrail's tables: plain data, no API derives.
pub mod call;
pub mod call_bucket;
pub mod call_event;
pub mod call_revision;
pub mod delivery;
