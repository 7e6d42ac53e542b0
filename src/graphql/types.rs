//! Output types, mapped from domain types.
use async_graphql::{ComplexObject, Context, Enum, ID, Object, SimpleObject};

use super::access::identity;
use super::scalars::DateTime;
use super::{GqlResult, gql};
use crate::domain::call::CallRevision as DomainRevision;
use crate::domain::recording::{JobState, RecordingStatus, Shown};
use crate::domain::{self, Anomaly};
use crate::store::calls::Page;
use crate::store::reader::Reader;

/// Who placed the call.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum CallDirection {
    /// The customer called the business.
    Incoming,
    /// The business called the customer.
    Outgoing,
}

impl From<domain::Direction> for CallDirection {
    fn from(d: domain::Direction) -> Self {
        match d {
            domain::Direction::Incoming => CallDirection::Incoming,
            domain::Direction::Outgoing => CallDirection::Outgoing,
        }
    }
}

impl From<CallDirection> for domain::Direction {
    fn from(d: CallDirection) -> Self {
        match d {
            CallDirection::Incoming => domain::Direction::Incoming,
            CallDirection::Outgoing => domain::Direction::Outgoing,
        }
    }
}

/// Something odd about a call as DoubleTick sent it. The call is stored all the same.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum CallAnomaly {
    /// `durationInSeconds` differs from `callEndedAt - callStartedAt` by more than 2 s.
    DurationMismatch,
    /// `callEndedAt` is before `callStartedAt`.
    EndedBeforeStarted,
    /// Picked up (`callStartedAt` set) but 0 s long.
    AnsweredZeroDuration,
    /// `durationInSeconds` arrived as a JSON string.
    DurationAsString,
    /// `durationInSeconds` had a fraction; stored rounded to the nearest second (half away from zero).
    DurationFractional,
    /// A timestamp carried a non-UTC offset; stored as the same instant in UTC.
    TimestampOffset,
    /// `customerNumber` carried formatting; matching uses its digits.
    FormattedPhoneNumber,
    /// The payload had undocumented keys; they are kept in `rawPayload`.
    UnknownFields,
    /// `callStartedAt` or `callEndedAt` is before 2000-01-01 or more than a day after the
    /// delivery arrived: stored as sent, and left out of the planning of time buckets.
    ImplausibleTimestamp,
}

impl From<Anomaly> for CallAnomaly {
    fn from(a: Anomaly) -> Self {
        match a {
            Anomaly::DurationMismatch => CallAnomaly::DurationMismatch,
            Anomaly::EndedBeforeStarted => CallAnomaly::EndedBeforeStarted,
            Anomaly::AnsweredZeroDuration => CallAnomaly::AnsweredZeroDuration,
            Anomaly::DurationAsString => CallAnomaly::DurationAsString,
            Anomaly::DurationFractional => CallAnomaly::DurationFractional,
            Anomaly::TimestampOffset => CallAnomaly::TimestampOffset,
            Anomaly::FormattedPhoneNumber => CallAnomaly::FormattedPhoneNumber,
            Anomaly::UnknownFields => CallAnomaly::UnknownFields,
            Anomaly::ImplausibleTimestamp => CallAnomaly::ImplausibleTimestamp,
        }
    }
}

pub struct Call(pub domain::Call);

/// A concluded business call: ended, rejected, missed or failed. DoubleTick's `""` is `null` here.
#[Object]
impl Call {
    /// DoubleTick's `callId`, the same for every event of one call.
    async fn call_id(&self) -> ID {
        ID(self.0.call_id.clone())
    }
    /// `callStatus` as sent: `END`, `MISSED`, `REJECT`, `FAILED`, ...
    async fn status(&self) -> &str {
        &self.0.status
    }
    /// `callDirection`.
    async fn direction(&self) -> CallDirection {
        self.0.direction.into()
    }
    /// `customerId`: DoubleTick's customer id. Customer identity: FORBIDDEN to analyst keys.
    async fn customer_id(&self, ctx: &Context<'_>) -> GqlResult<Option<&str>> {
        identity(ctx, &self.0, "customerId")?;
        Ok(self.0.customer_id.as_deref())
    }
    /// `customerName`: the customer's display name. Customer identity: FORBIDDEN to analyst
    /// keys.
    async fn customer_name(&self, ctx: &Context<'_>) -> GqlResult<Option<&str>> {
        identity(ctx, &self.0, "customerName")?;
        Ok(self.0.customer_name.as_deref())
    }
    /// `customerNumber`, exactly as sent (filters match it by its digits). Always present;
    /// `null` only with a FORBIDDEN error (customer identity, refused to analyst keys).
    async fn customer_number(&self, ctx: &Context<'_>) -> GqlResult<Option<&str>> {
        identity(ctx, &self.0, "customerNumber")?;
        Ok(Some(&self.0.customer_number))
    }
    /// `wabaNumber`: the business's WhatsApp number.
    async fn waba_number(&self) -> &str {
        &self.0.waba_number
    }
    /// `pickedBy`: the agent who answered (incoming) or dialled (outgoing); a number or a name.
    async fn picked_by(&self) -> Option<&str> {
        self.0.picked_by.as_deref()
    }
    /// `endedBy`: who hung up, agent or customer, number or name.
    async fn ended_by(&self) -> Option<&str> {
        self.0.ended_by.as_deref()
    }
    /// `rejectedBy`: who rejected the call (rejected calls only).
    async fn rejected_by(&self) -> Option<&str> {
        self.0.rejected_by.as_deref()
    }
    /// `deviceId`: opaque, for audit.
    async fn device_id(&self) -> Option<&str> {
        self.0.device_id.as_deref()
    }
    /// `chatId`: the conversation.
    async fn chat_id(&self) -> Option<&str> {
        self.0.chat_id.as_deref()
    }
    /// `chatMessageId`: the message linking the call to the chat thread.
    async fn chat_message_id(&self) -> Option<&str> {
        self.0.chat_message_id.as_deref()
    }
    /// `channel`: `PSTN` for phone-line calls, `null` for WhatsApp calls.
    async fn channel(&self) -> Option<&str> {
        self.0.channel.as_deref()
    }
    /// `channelNumber`: the business phone line of a PSTN call.
    async fn channel_number(&self) -> Option<&str> {
        self.0.channel_number.as_deref()
    }
    /// `from` of a PSTN call.
    async fn pstn_from(&self) -> Option<&str> {
        self.0.pstn_from.as_deref()
    }
    /// `to` of a PSTN call.
    async fn pstn_to(&self) -> Option<&str> {
        self.0.pstn_to.as_deref()
    }
    /// `failedReason`, for failed calls.
    async fn failed_reason(&self) -> Option<&str> {
        self.0.failed_reason.as_deref()
    }
    /// `callStartedAt`: when the call was picked up; `null` when it never was.
    async fn started_at(&self) -> Option<DateTime> {
        self.0.started_at.map(DateTime)
    }
    /// `callEndedAt`: the canonical time of a call; ordering and date filters default to it.
    async fn ended_at(&self) -> DateTime {
        DateTime(self.0.ended_at)
    }
    /// `durationInSeconds`: talk time in whole seconds.
    async fn duration_seconds(&self) -> i64 {
        self.0.duration_seconds
    }
    /// `recordingUrl` as sent (it opens only with the account's DoubleTick API key, which
    /// calltrail holds and never shows: play it from `recording.playbackPath`); `null` when
    /// none. Refused (FORBIDDEN) to analyst keys.
    async fn recording_url(&self, ctx: &Context<'_>) -> GqlResult<Option<&str>> {
        identity(ctx, &self.0, "recordingUrl")?;
        Ok(self.0.recording_url.as_deref())
    }
    /// The recording of this call as calltrail archives it; `null` when the call has none.
    /// Its state, size and checksum are open to every role; `playbackPath` is refused
    /// (FORBIDDEN) to analyst keys, as playback is.
    #[graphql(complexity = "super::cost::RECORDING")]
    async fn recording(&self, ctx: &Context<'_>) -> GqlResult<Option<Recording>> {
        if self.0.recording_url.is_none() {
            return Ok(None);
        }
        let store = ctx.data::<Reader>()?;
        let archiving = ctx.data::<super::Limits>()?.archiving;
        let status = Box::pin(store.recording(&self.0)).await.map_err(gql)?;
        Ok(status.map(|status| Recording {
            status,
            archiving,
            call: self.0.clone(),
        }))
    }
    /// `isNewCaller` (missed calls).
    async fn is_new_caller(&self) -> Option<bool> {
        self.0.is_new_caller
    }
    /// `isChatAssigned` (missed calls).
    async fn is_chat_assigned(&self) -> Option<bool> {
        self.0.is_chat_assigned
    }
    /// How many `CALL_NOT_PICKED` events arrived: agents skipped while the call rang.
    async fn not_picked_count(&self) -> i32 {
        self.0.not_picked_count
    }
    /// Oddities in what DoubleTick sent; empty for a clean call.
    async fn anomalies(&self) -> Vec<CallAnomaly> {
        self.0.anomalies.iter().copied().map(Into::into).collect()
    }
    /// When calltrail first received an event of this call.
    async fn received_at(&self) -> DateTime {
        DateTime(self.0.received_at)
    }
    /// When this version of the call was stored.
    async fn updated_at(&self) -> DateTime {
        DateTime(self.0.updated_at)
    }
    /// Version number: 1, then one more each time a later delivery changed the concluded call.
    async fn revision(&self) -> i32 {
        self.0.revision
    }
    /// `Content-Type` of the delivery this version was built from.
    async fn raw_content_type(&self) -> &str {
        &self.0.raw_content_type
    }
    /// The body of the delivery this version was built from, exactly as received. Always
    /// present; `null` only with a FORBIDDEN error (refused to analyst keys).
    async fn raw_payload(&self, ctx: &Context<'_>) -> GqlResult<Option<&str>> {
        identity(ctx, &self.0, "rawPayload")?;
        Ok(Some(&self.0.raw_payload))
    }
    /// Earlier versions of this call, oldest first (empty when it never changed); `null` only
    /// with a FORBIDDEN error (refused to analyst keys).
    #[graphql(complexity = "super::cost::REVISIONS")]
    async fn revisions(&self, ctx: &Context<'_>) -> GqlResult<Option<Vec<CallRevision>>> {
        identity(ctx, &self.0, "revisions")?;
        let store = ctx.data::<Reader>()?;
        // Boxed: every field of `Call` is resolved through one future sized for its largest
        // field, and async-graphql moves that future onto the heap for each field of each call.
        let revisions = Box::pin(store.revisions(&self.0)).await.map_err(gql)?;
        Ok(Some(revisions.into_iter().map(CallRevision).collect()))
    }
    /// Its reviews, oldest first (empty when not reviewed yet); `null` only with a FORBIDDEN
    /// error (refused to analyst keys).
    #[graphql(complexity = "super::cost::REVIEWS")]
    async fn reviews(&self, ctx: &Context<'_>) -> GqlResult<Option<Vec<super::review::Review>>> {
        super::review::of_call(ctx, self).await
    }
}

pub struct CallRevision(pub DomainRevision);

/// An earlier version of a call, replaced by a later delivery.
#[Object]
impl CallRevision {
    /// The version number it had.
    async fn revision(&self) -> i32 {
        self.0.revision
    }
    /// When a later delivery replaced it.
    async fn replaced_at(&self) -> DateTime {
        DateTime(self.0.replaced_at)
    }
    /// The call as it was.
    async fn call(&self) -> Call {
        Call(self.0.call.clone())
    }
}

/// Where a page sits in the whole list.
#[derive(SimpleObject)]
pub struct PageInfo {
    /// More calls follow the last one of this page.
    pub has_next_page: bool,
    /// Calls precede the first one of this page.
    pub has_previous_page: bool,
    /// Cursor of the first call of the page.
    pub start_cursor: Option<String>,
    /// Cursor of the last call of the page; pass it as `after` for the next page.
    pub end_cursor: Option<String>,
}

pub struct CallEdge {
    call: Call,
    cursor: String,
}

/// A call and its position in the list.
#[Object]
impl CallEdge {
    /// Opaque position; valid only with the same `filter` and `orderBy`.
    async fn cursor(&self) -> &str {
        &self.cursor
    }
    /// The call.
    async fn node(&self) -> &Call {
        &self.call
    }
}

/// One page of calls (a Relay connection).
#[derive(SimpleObject)]
#[graphql(complex)]
pub struct CallConnection {
    /// Calls of this page, with their cursors.
    pub edges: Vec<CallEdge>,
    /// Where this page sits.
    pub page_info: PageInfo,
    #[graphql(skip)]
    pub filter: domain::CallFilter,
}

#[ComplexObject]
impl CallConnection {
    /// Calls of this page.
    async fn nodes(&self) -> Vec<&Call> {
        self.edges.iter().map(|e| &e.call).collect()
    }
    /// How many calls match the filter in all (computed only when asked for).
    #[graphql(complexity = "super::cost::TOTAL_COUNT")]
    async fn total_count(&self, ctx: &Context<'_>) -> GqlResult<i64> {
        let store = ctx.data::<Reader>()?;
        let count = store.count(&self.filter).await.map_err(gql)?;
        Ok(count as i64)
    }
}

impl CallConnection {
    pub fn new(page: Page, filter: domain::CallFilter) -> Self {
        let page_info = PageInfo {
            has_next_page: page.has_next_page,
            has_previous_page: page.has_previous_page,
            start_cursor: page.items.first().map(|(_, c)| c.clone()),
            end_cursor: page.items.last().map(|(_, c)| c.clone()),
        };
        CallConnection {
            edges: page
                .items
                .into_iter()
                .map(|(call, cursor)| CallEdge {
                    call: Call(call),
                    cursor,
                })
                .collect(),
            page_info,
            filter,
        }
    }
}

/// Where the archiving of a recording stands.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum RecordingState {
    /// Not archived, and no DoubleTick API key is configured to fetch it
    /// (`--doubletick-api-key`); see `lastError`.
    NotConfigured,
    /// Queued; no attempt has finished yet.
    Pending,
    /// In the archive: `sha256`, `bytes`, `contentType` and `archivedAt` say what was stored.
    Archived,
    /// An attempt failed in a way a later one may fix (a timeout, a 5xx): tried again after a
    /// back-off, until the retry window passes.
    Retrying,
    /// Given up: not audio, larger than the size cap, refused, or retried for the whole window
    /// (`lastError` says which).
    Failed,
    /// DoubleTick answered 404 or 410: the recording is no longer there.
    Gone,
}

impl RecordingState {
    /// The state shown for a job in `state` (none when never queued), given whether recordings
    /// are fetched at all.
    pub fn of(state: Option<JobState>, archiving: bool) -> RecordingState {
        Shown::of(state, archiving).into()
    }
}

impl From<Shown> for RecordingState {
    fn from(s: Shown) -> Self {
        match s {
            Shown::NotConfigured => RecordingState::NotConfigured,
            Shown::Pending => RecordingState::Pending,
            Shown::Archived => RecordingState::Archived,
            Shown::Retrying => RecordingState::Retrying,
            Shown::Failed => RecordingState::Failed,
            Shown::Gone => RecordingState::Gone,
        }
    }
}

impl From<RecordingState> for Shown {
    fn from(s: RecordingState) -> Self {
        match s {
            RecordingState::NotConfigured => Shown::NotConfigured,
            RecordingState::Pending => Shown::Pending,
            RecordingState::Archived => Shown::Archived,
            RecordingState::Retrying => Shown::Retrying,
            RecordingState::Failed => Shown::Failed,
            RecordingState::Gone => Shown::Gone,
        }
    }
}

/// A call's recording as calltrail keeps it.
pub struct Recording {
    status: RecordingStatus,
    archiving: bool,
    call: domain::Call,
}

/// A call's recording: its archiving state, what was archived, and where it plays.
#[Object]
impl Recording {
    async fn state(&self) -> RecordingState {
        RecordingState::of(self.status.state, self.archiving)
    }
    /// SHA-256 (hex) of the archived bytes; also the `ETag` of its playback.
    async fn sha256(&self) -> Option<&str> {
        self.status.archived.as_ref().map(|a| a.sha256.as_str())
    }
    /// Size of the archived recording in bytes.
    async fn bytes(&self) -> Option<i64> {
        self.status.archived.as_ref().map(|a| a.bytes)
    }
    /// Its content type (`audio/mpeg`, ...).
    async fn content_type(&self) -> Option<&str> {
        self.status
            .archived
            .as_ref()
            .map(|a| a.content_type.as_str())
    }
    /// When it was archived.
    async fn archived_at(&self) -> Option<DateTime> {
        self.status
            .archived
            .as_ref()
            .map(|a| DateTime(a.archived_at))
    }
    /// Fetch attempts made so far.
    async fn attempts(&self) -> i32 {
        self.status.attempts
    }
    /// Why the last attempt failed, or why nothing is fetched; never the key nor the link.
    async fn last_error(&self) -> Option<String> {
        self.status.last_error_shown(self.archiving)
    }
    /// Where it plays: `GET` this path with the same API key (`Range` requests answered).
    /// Refused (FORBIDDEN) to analyst keys.
    async fn playback_path(&self, ctx: &Context<'_>) -> GqlResult<Option<String>> {
        identity(ctx, &self.call, "recording.playbackPath")?;
        Ok(Some(crate::recordings::playback::playback_path(
            &self.call.call_id,
        )))
    }
}
