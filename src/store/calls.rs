//! Reading calls: one by id, keyset pages of a filtered list, counts, revisions.
use chrono::{DateTime, Utc};
use entity::{call, call_revision};
use sea_orm::ActiveValue::{NotSet, Set};
use sea_orm::sea_query::{Expr, ExprTrait, NullOrdering};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DbErr, EntityTrait, Iterable, Order, PaginatorTrait,
    QueryFilter, QueryOrder, QueryResult, QuerySelect, QueryTrait, Value,
};

use super::Store;
use super::error::{db_error, defect};
use crate::domain::call::CallRevision;
use crate::domain::filter::{CallField, Cursor, CursorKey, CursorPrefix, PagePart};
use crate::domain::lifecycle::CallState;
use crate::domain::phone;
use crate::domain::{
    Anomaly, Call, CallFilter, CallOrder, Direction, OrderField, PageFields, PageRequest,
    SortDirection,
};
use crate::error::AppError;

/// One page of an ordered call list.
#[derive(Clone, Debug)]
pub struct Page {
    /// Calls with the cursor of each.
    pub items: Vec<(Call, String)>,
    pub has_next_page: bool,
    pub has_previous_page: bool,
}

impl Store {
    /// The concluded call with DoubleTick id `call_id`.
    pub(super) async fn call(&self, call_id: &str) -> Result<Option<Call>, AppError> {
        let model = call::Entity::find()
            .filter(call::Column::CallId.eq(call_id))
            .filter(call::Column::EndedAt.is_not_null())
            .one(&self.db)
            .await
            .map_err(db_error)?;
        model.map(call_from_model).transpose()
    }

    /// How many concluded calls match `filter`, counted in the database.
    pub(super) async fn count(&self, filter: &CallFilter) -> Result<u64, AppError> {
        call::Entity::find()
            .filter(self.condition(filter).await?)
            .count(&self.db)
            .await
            .map_err(db_error)
    }

    /// How many concluded calls match `filter`, counting no further than `cap`: a count the
    /// database can stop early, so a page's total costs at most `cap` index entries.
    pub(super) async fn count_up_to(
        &self,
        filter: &CallFilter,
        extra: Condition,
        cap: u64,
    ) -> Result<u64, AppError> {
        let inner = call::Entity::find()
            .select_only()
            .column(call::Column::Id)
            .filter(self.condition(filter).await?)
            .filter(extra)
            .limit(cap)
            .into_query();
        let statement = sea_orm::sea_query::Query::select()
            .expr_as(Expr::cust("COUNT(*)"), sea_orm::sea_query::Alias::new("n"))
            .from_subquery(inner, sea_orm::sea_query::Alias::new("capped"))
            .to_owned();
        let row = self
            .db
            .query_one_raw(self.backend().build(&statement))
            .await
            .map_err(db_error)?;
        let n: i64 = match row {
            Some(row) => row.try_get("", "n").map_err(db_error)?,
            None => 0,
        };
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// One keyset page: rows strictly after (or before) the cursor in `order`, tie-broken by id.
    pub(super) async fn page(
        &self,
        filter: &CallFilter,
        order: CallOrder,
        request: &PageRequest,
        fields: PageFields,
    ) -> Result<Page, AppError> {
        self.page_where(filter, Condition::all(), order, request, fields, false)
            .await
    }

    /// The same, over the calls that also meet `extra` (a condition no [`CallFilter`] field
    /// says, such as the review queue's "short or anomalous"). With `walk_order`, a length
    /// range is checked row by row while the ordering's index is walked (the desk's short and
    /// long calls are too many for the length index to pay).
    pub(super) async fn page_where(
        &self,
        filter: &CallFilter,
        extra: Condition,
        order: CallOrder,
        request: &PageRequest,
        fields: PageFields,
        walk_order: bool,
    ) -> Result<Page, AppError> {
        let (size, cursor, backward) = match request {
            PageRequest::Forward { first, after } => (*first, after.as_deref(), false),
            PageRequest::Backward { last, before } => (*last, before.as_deref(), true),
        };
        let argument = if backward { "before" } else { "after" };
        let position = cursor
            .map(|c| Cursor::decode(argument, c, &order, filter))
            .transpose()?;
        if !fields.rows {
            // Only `totalCount` was asked for: the cursor is still checked, no row is read.
            return Ok(Page {
                items: Vec::new(),
                has_next_page: false,
                has_previous_page: false,
            });
        }
        // The ordering's column is read whatever else is: the cursors are made of it.
        let fields = PageFields {
            only: fields.only.map(|only| only.with(order.field.field())),
            ..fields
        };
        let column = order_column(order.field);
        let nullable = order.field == OrderField::StartedAt;
        // Scanning backward walks the list in reverse; then the rows are flipped back.
        let ascending = (order.direction == SortDirection::Asc) != backward;
        let nulls_last = !backward;

        let (filter_sql, extra) = match (filter.duration_seconds, order.field, walk_order) {
            (Some(range), field, true) if field != OrderField::DurationSeconds => {
                // `duration_seconds + 0` is no column an index serves: the length is checked
                // on each row as the ordering's index is walked, rather than all calls of
                // that length read from the length index and sorted (a tenth of the calls
                // are short: 94 000 rows sorted to show 50, 550 ms at 1M calls on SQLite).
                let length = Expr::col(call::Column::DurationSeconds).add(0);
                let mut extra = Condition::all().add(extra);
                if let Some(min) = range.min {
                    extra = extra.add(length.clone().gte(min));
                }
                if let Some(max) = range.max {
                    extra = extra.add(length.lte(max));
                }
                let without = CallFilter {
                    duration_seconds: None,
                    ..filter.clone()
                };
                (without, extra)
            }
            _ => (filter.clone(), extra),
        };
        let mut select = call::Entity::find()
            .filter(self.condition(&filter_sql).await?)
            .filter(extra);
        // Read only what the reader shows: the raw body is most of a row's bytes, and every
        // value read is copied several times on its way out (sqlx copies each one, then the
        // model, the domain call and the GraphQL value). Unread fields keep their defaults.
        select = select.select_only();
        for column in call::Column::iter().filter(|c| is_read(*c, fields)) {
            select = select.column(column);
        }
        if let Some(position) = &position {
            select = select.filter(after_position(
                column, nullable, ascending, nulls_last, position,
            ));
        }
        let ord = if ascending { Order::Asc } else { Order::Desc };
        if nullable {
            let nulls = if nulls_last {
                NullOrdering::Last
            } else {
                NullOrdering::First
            };
            select = select.order_by_with_nulls(column, ord.clone(), nulls);
        } else {
            select = select.order_by(column, ord.clone());
        }
        let statement = select
            .order_by(call::Column::Id, ord)
            .limit(size + 1)
            .build(self.backend());
        let mut rows = self
            .db
            .query_all_raw(statement)
            .await
            .map_err(db_error)?
            .iter()
            .map(|row| model_by_position(row, fields))
            .collect::<Result<Vec<_>, _>>()
            .map_err(defect)?;
        let more = rows.len() as u64 > size;
        rows.truncate(size as usize);
        if backward {
            rows.reverse();
        }
        let prefix = CursorPrefix::new(&order, filter);
        let items = rows
            .into_iter()
            .map(|m| {
                let cursor = prefix.encode(&cursor_key(&m, order.field), m.id);
                call_from_model(m).map(|c| (c, cursor))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let (has_next_page, has_previous_page) = if backward {
            (position.is_some(), more)
        } else {
            (more, position.is_some())
        };
        Ok(Page {
            items,
            has_next_page,
            has_previous_page,
        })
    }

    /// Earlier versions of a call, oldest first.
    pub(super) async fn revisions(&self, call_id: &str) -> Result<Vec<CallRevision>, AppError> {
        let rows = call_revision::Entity::find()
            .filter(call_revision::Column::CallId.eq(call_id))
            .order_by_asc(call_revision::Column::Revision)
            .all(&self.db)
            .await
            .map_err(db_error)?;
        rows.into_iter()
            .map(|r| {
                let call: Call = serde_json::from_str(&r.snapshot)
                    .map_err(|e| AppError::Internal(format!("revision snapshot: {e}")))?;
                Ok(CallRevision {
                    revision: r.revision,
                    replaced_at: r.replaced_at,
                    call,
                })
            })
            .collect()
    }
}

/// Whether a page reads `column`: the keys every ordering and cursor need always; each
/// field's column by its [`PagePart`]: the summary always (or, with [`PageFields::only`],
/// those fields and the ones every call needs), the raw body only when asked for, the rest
/// when any detail is asked for.
fn is_read(column: call::Column, fields: PageFields) -> bool {
    use call::Column as C;
    let field = match column {
        C::Id | C::CallId => return true,
        C::CustomerDigits => return fields.details,
        C::Status => CallField::Status,
        C::Direction => CallField::Direction,
        C::CustomerId => CallField::CustomerId,
        C::CustomerName => CallField::CustomerName,
        C::CustomerNumber => CallField::CustomerNumber,
        C::WabaNumber => CallField::WabaNumber,
        C::PickedBy => CallField::PickedBy,
        C::EndedBy => CallField::EndedBy,
        C::RejectedBy => CallField::RejectedBy,
        C::DeviceId => CallField::DeviceId,
        C::ChatId => CallField::ChatId,
        C::ChatMessageId => CallField::ChatMessageId,
        C::Channel => CallField::Channel,
        C::ChannelNumber => CallField::ChannelNumber,
        C::PstnFrom => CallField::PstnFrom,
        C::PstnTo => CallField::PstnTo,
        C::FailedReason => CallField::FailedReason,
        C::StartedAt => CallField::StartedAt,
        C::EndedAt => CallField::EndedAt,
        C::DurationSeconds => CallField::DurationSeconds,
        C::RecordingUrl => CallField::RecordingUrl,
        C::IsNewCaller => CallField::IsNewCaller,
        C::IsChatAssigned => CallField::IsChatAssigned,
        C::NotPickedCount => CallField::NotPickedCount,
        C::Anomalies => CallField::Anomalies,
        C::ReceivedAt => CallField::ReceivedAt,
        C::UpdatedAt => CallField::UpdatedAt,
        C::Revision => CallField::Revision,
        C::RawContentType => CallField::RawContentType,
        C::RawPayload => CallField::RawPayload,
    };
    // A call cannot be made without these (`call_from_model`).
    let needed = matches!(
        field,
        CallField::Direction
            | CallField::EndedAt
            | CallField::CustomerNumber
            | CallField::WabaNumber
    );
    match field.part() {
        PagePart::Summary => needed || fields.only.is_none_or(|only| only.contains(field)),
        PagePart::RawPayload => fields.raw_payload,
        PagePart::Details => fields.details,
    }
}

/// A page row read by position: the read columns come in the entity's column order, as
/// `page` selects them; unread ones keep their defaults (their fields were not asked for).
/// sea-orm's reader by name formats and looks up every column name of every row, a fifth of
/// a page request's instructions by callgrind.
fn model_by_position(row: &QueryResult, fields: PageFields) -> Result<call::Model, DbErr> {
    use call::Column as C;
    let mut position = 0;
    macro_rules! read {
        ($column:expr) => {{
            if is_read($column, fields) {
                position += 1;
                row.try_get_by_index(position - 1)?
            } else {
                Default::default()
            }
        }};
    }
    Ok(call::Model {
        id: read!(C::Id),
        call_id: read!(C::CallId),
        status: read!(C::Status),
        direction: read!(C::Direction),
        customer_id: read!(C::CustomerId),
        customer_name: read!(C::CustomerName),
        customer_number: read!(C::CustomerNumber),
        customer_digits: read!(C::CustomerDigits),
        waba_number: read!(C::WabaNumber),
        picked_by: read!(C::PickedBy),
        ended_by: read!(C::EndedBy),
        rejected_by: read!(C::RejectedBy),
        device_id: read!(C::DeviceId),
        chat_id: read!(C::ChatId),
        chat_message_id: read!(C::ChatMessageId),
        channel: read!(C::Channel),
        channel_number: read!(C::ChannelNumber),
        pstn_from: read!(C::PstnFrom),
        pstn_to: read!(C::PstnTo),
        failed_reason: read!(C::FailedReason),
        started_at: read!(C::StartedAt),
        ended_at: read!(C::EndedAt),
        duration_seconds: read!(C::DurationSeconds),
        recording_url: read!(C::RecordingUrl),
        is_new_caller: read!(C::IsNewCaller),
        is_chat_assigned: read!(C::IsChatAssigned),
        not_picked_count: read!(C::NotPickedCount),
        anomalies: read!(C::Anomalies),
        revision: read!(C::Revision),
        received_at: read!(C::ReceivedAt),
        updated_at: read!(C::UpdatedAt),
        raw_content_type: read!(C::RawContentType),
        raw_payload: read!(C::RawPayload),
    })
}

fn order_column(field: OrderField) -> call::Column {
    match field {
        OrderField::EndedAt => call::Column::EndedAt,
        OrderField::StartedAt => call::Column::StartedAt,
        OrderField::DurationSeconds => call::Column::DurationSeconds,
        OrderField::ReceivedAt => call::Column::ReceivedAt,
    }
}

fn cursor_key(model: &call::Model, field: OrderField) -> CursorKey {
    let time = |t: Option<DateTime<Utc>>| t.map_or(CursorKey::Null, CursorKey::Time);
    match field {
        OrderField::EndedAt => time(model.ended_at),
        OrderField::StartedAt => time(model.started_at),
        OrderField::DurationSeconds => CursorKey::Int(model.duration_seconds),
        OrderField::ReceivedAt => CursorKey::Time(model.received_at),
    }
}

/// Rows strictly after `position` when walking `column` in the given direction, with
/// NULL keys (only `started_at` has them) either after or before every non-null key.
fn after_position(
    column: call::Column,
    nullable: bool,
    ascending: bool,
    nulls_last: bool,
    position: &Cursor,
) -> Condition {
    let id_after = if ascending {
        call::Column::Id.gt(position.id)
    } else {
        call::Column::Id.lt(position.id)
    };
    let value: Option<Value> = match &position.key {
        CursorKey::Time(t) => Some((*t).into()),
        CursorKey::Int(i) => Some((*i).into()),
        CursorKey::Null => None,
    };
    match value {
        Some(v) => {
            // A row-value comparison, `(key, id) > (v, i)`, is what lets both databases seek
            // the index to the cursor; the equivalent `key > v OR (key = v AND id > i)` makes
            // them read every row before it (page 200 cost 30x page 1 on PostgreSQL).
            let row = Expr::tuple([Expr::col(column), Expr::col(call::Column::Id)]);
            let at = Expr::tuple([Expr::val(v), Expr::val(position.id)]);
            let non_null_after =
                Condition::any().add(if ascending { row.gt(at) } else { row.lt(at) });
            if !nullable {
                non_null_after
            } else if nulls_last {
                non_null_after.add(column.is_null())
            } else {
                Condition::all()
                    .add(non_null_after)
                    .add(column.is_not_null())
            }
        }
        None => {
            let in_null_block = Condition::all().add(column.is_null()).add(id_after);
            if nulls_last {
                in_null_block
            } else {
                Condition::any()
                    .add(in_null_block)
                    .add(column.is_not_null())
            }
        }
    }
}

/// The stored row for a folded call state.
pub(crate) fn model_from_state(
    state: &CallState,
    revision: i32,
    now: DateTime<Utc>,
) -> call::ActiveModel {
    let f = &state.fields;
    let ended_at = if state.concluded { f.ended_at } else { None };
    call::ActiveModel {
        id: NotSet,
        call_id: Set(state.call_id.clone()),
        status: Set(state.status.clone()),
        direction: Set(f.direction.map(|d| d.as_wire().to_owned())),
        customer_id: Set(f.customer_id.clone()),
        customer_name: Set(f.customer_name.clone()),
        customer_number: Set(f.customer_number.clone()),
        customer_digits: Set(f.customer_number.as_deref().map(phone::digits)),
        waba_number: Set(f.waba_number.clone()),
        picked_by: Set(f.picked_by.clone()),
        ended_by: Set(f.ended_by.clone()),
        rejected_by: Set(f.rejected_by.clone()),
        device_id: Set(f.device_id.clone()),
        chat_id: Set(f.chat_id.clone()),
        chat_message_id: Set(f.chat_message_id.clone()),
        channel: Set(f.channel.clone()),
        channel_number: Set(f.channel_number.clone()),
        pstn_from: Set(f.pstn_from.clone()),
        pstn_to: Set(f.pstn_to.clone()),
        failed_reason: Set(f.failed_reason.clone()),
        started_at: Set(f.started_at),
        ended_at: Set(ended_at),
        duration_seconds: Set(f.duration_seconds.unwrap_or(0)),
        recording_url: Set(f.recording_url.clone()),
        is_new_caller: Set(f.is_new_caller),
        is_chat_assigned: Set(f.is_chat_assigned),
        not_picked_count: Set(state.not_picked_count),
        anomalies: Set(Anomaly::join(&state.anomalies)),
        revision: Set(revision),
        received_at: Set(state.received_at),
        updated_at: Set(now),
        raw_content_type: Set(state.raw_content_type.clone()),
        raw_payload: Set(state.raw_payload.clone()),
    }
}

/// A stored concluded row as a domain call.
pub(crate) fn call_from_model(m: call::Model) -> Result<Call, AppError> {
    let broken = |what: &str| AppError::Internal(format!("call {} has no {what}", m.call_id));
    let direction = m
        .direction
        .as_deref()
        .and_then(Direction::from_wire)
        .ok_or_else(|| broken("direction"))?;
    let ended_at = m.ended_at.ok_or_else(|| broken("end time"))?;
    let customer_number = m
        .customer_number
        .clone()
        .ok_or_else(|| broken("customer number"))?;
    let waba_number = m
        .waba_number
        .clone()
        .ok_or_else(|| broken("business number"))?;
    Ok(Call {
        id: m.id,
        call_id: m.call_id,
        status: m.status,
        direction,
        customer_id: m.customer_id,
        customer_name: m.customer_name,
        customer_number,
        waba_number,
        picked_by: m.picked_by,
        ended_by: m.ended_by,
        rejected_by: m.rejected_by,
        device_id: m.device_id,
        chat_id: m.chat_id,
        chat_message_id: m.chat_message_id,
        channel: m.channel,
        channel_number: m.channel_number,
        pstn_from: m.pstn_from,
        pstn_to: m.pstn_to,
        failed_reason: m.failed_reason,
        started_at: m.started_at,
        ended_at,
        duration_seconds: m.duration_seconds,
        recording_url: m.recording_url,
        is_new_caller: m.is_new_caller,
        is_chat_assigned: m.is_chat_assigned,
        not_picked_count: m.not_picked_count,
        anomalies: Anomaly::split(&m.anomalies),
        revision: m.revision,
        received_at: m.received_at,
        updated_at: m.updated_at,
        raw_content_type: m.raw_content_type,
        raw_payload: m.raw_payload,
    })
}
