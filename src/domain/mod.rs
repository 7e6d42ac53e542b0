//! Pure types and rules of a call record: no HTTP, no SQL, no GraphQL.
pub mod call;
pub mod desk;
pub mod event;
pub mod filter;
pub mod lifecycle;
pub mod phone;
pub mod recording;
pub mod review;
pub mod stats;
pub mod viewer;

pub use call::{Anomaly, Call, Direction};
pub use event::{CallEvent, CallFields, EventKind, FieldError};
pub use filter::{
    CallField, CallFilter, CallOrder, FieldSet, IntRange, OrderField, PageFields, PagePart,
    PageRequest, SortDirection, TimeRange,
};
pub use lifecycle::{CallState, fold};
pub use review::{NewReview, Review, ReviewVerdict};
pub use viewer::{Role, Scope, Viewer};
