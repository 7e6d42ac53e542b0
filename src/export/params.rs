//! An export's query string, read once into domain values: the `CallFilter` of GraphQL as
//! flat parameters (docs/exports.md lists the mapping), the ordering, the columns and the time
//! zone. An unknown parameter is refused, so a misspelt filter never exports every call.
use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use crate::domain::filter::customer_digits;
use crate::domain::recording::Shown;
use crate::domain::stats::{Dimension, StatsRequest};
use crate::domain::{
    CallField, CallFilter, CallOrder, Direction, IntRange, OrderField, SortDirection, TimeRange,
};
use crate::error::AppError;

/// The parameters of a query string, in order, each `name=value` decoded.
pub struct Query(Vec<(String, String)>);

impl Query {
    pub fn parse(raw: Option<&str>) -> Query {
        Query(
            form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    /// The parameters `pairs`, as if they had come in a query string (the command line's
    /// flags, mapped to the parameters they stand for).
    pub fn from_pairs(pairs: Vec<(String, String)>) -> Query {
        Query(pairs)
    }

    /// Every parameter, in order, as given.
    pub fn pairs(&self) -> &[(String, String)] {
        &self.0
    }

    /// Every value of `name`.
    fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The one value of `name`; given twice is an error.
    fn one(&self, name: &str) -> Result<Option<&str>, AppError> {
        match self.all(name).as_slice() {
            [] => Ok(None),
            [one] => Ok(Some(one)),
            _ => Err(AppError::bad_input(name, "give this parameter once")),
        }
    }

    /// Every value of `name`, or `None` when it is absent (a list filter not applied).
    fn list(&self, name: &str) -> Option<Vec<String>> {
        let values = self.all(name);
        (!values.is_empty()).then(|| values.into_iter().map(str::to_owned).collect())
    }

    fn refuse_unknown(&self, known: &[&str]) -> Result<(), AppError> {
        match self.0.iter().find(|(k, _)| !known.contains(&k.as_str())) {
            Some((name, _)) => Err(AppError::bad_input(
                name.as_str(),
                format!(
                    "not a parameter of this export; known: {}",
                    known.join(", ")
                ),
            )),
            None => Ok(()),
        }
    }
}

/// The filter parameters, shared by every export.
const FILTER_PARAMETERS: [&str; 20] = [
    "callId",
    "customerId",
    "customerNumber",
    "customerName",
    "pickedBy",
    "endedBy",
    "wabaNumber",
    "direction",
    "status",
    "channel",
    "endedAtFrom",
    "endedAtTo",
    "startedAtFrom",
    "startedAtTo",
    "durationMin",
    "durationMax",
    "hasRecording",
    "hasAnomalies",
    "recordingState",
    "reviewed",
];

/// `GET /export/calls.{csv,ndjson}`: which calls, in which order, which columns.
#[derive(Clone, Debug)]
pub struct CallsExport {
    pub filter: CallFilter,
    pub order: CallOrder,
    pub fields: Vec<CallField>,
    /// Whether `fields=` chose the columns (else: every scalar field the reader may read).
    pub fields_chosen: bool,
    /// Adds `startedAtLocal` and `endedAtLocal` in this zone.
    pub time_zone: Option<Tz>,
}

impl CallsExport {
    /// `archiving`: whether recordings are fetched (what `NOT_CONFIGURED` and `PENDING` mean).
    pub fn parse(query: &Query, archiving: bool) -> Result<CallsExport, AppError> {
        let mut known = FILTER_PARAMETERS.to_vec();
        known.extend(["orderBy", "orderDirection", "fields", "timeZone"]);
        query.refuse_unknown(&known)?;
        let filter = filter(query, archiving)?;
        let field = match query.one("orderBy")? {
            None | Some("ENDED_AT") => OrderField::EndedAt,
            Some("STARTED_AT") => OrderField::StartedAt,
            Some("DURATION_SECONDS") => OrderField::DurationSeconds,
            Some("RECEIVED_AT") => OrderField::ReceivedAt,
            Some(other) => {
                return Err(AppError::bad_input(
                    "orderBy",
                    format!(
                        "`{other}` is not ENDED_AT, STARTED_AT, DURATION_SECONDS or RECEIVED_AT"
                    ),
                ));
            }
        };
        let direction = match query.one("orderDirection")? {
            None | Some("DESC") => SortDirection::Desc,
            Some("ASC") => SortDirection::Asc,
            Some(other) => {
                return Err(AppError::bad_input(
                    "orderDirection",
                    format!("`{other}` is not ASC or DESC"),
                ));
            }
        };
        let named: Vec<&str> = query
            .all("fields")
            .into_iter()
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .collect();
        let mut fields = Vec::new();
        for name in &named {
            let field = CallField::from_name(name)
                .filter(|f| f.is_scalar())
                .ok_or_else(|| {
                    AppError::bad_input(
                        "fields",
                        format!("`{name}` is not a scalar field of Call (see docs/exports.md)"),
                    )
                })?;
            if !fields.contains(&field) {
                fields.push(field);
            }
        }
        let fields_chosen = !fields.is_empty();
        if !fields_chosen {
            fields = CallField::ALL
                .into_iter()
                .filter(|f| f.is_scalar())
                .collect();
        }
        Ok(CallsExport {
            filter,
            order: CallOrder { field, direction },
            fields,
            fields_chosen,
            time_zone: query.one("timeZone")?.map(time_zone).transpose()?,
        })
    }
}

/// `GET /export/stats.csv`: a `callStats` request.
#[derive(Clone, Debug)]
pub struct StatsExport {
    pub request: StatsRequest,
    /// Duration percentiles to add as columns (`p=0.5&p=0.95`).
    pub percentiles: Vec<f64>,
}

impl StatsExport {
    pub fn parse(query: &Query, archiving: bool) -> Result<StatsExport, AppError> {
        let mut known = FILTER_PARAMETERS.to_vec();
        known.extend([
            "groupBy",
            "timeZone",
            "shortCallSeconds",
            "longCallSeconds",
            "p",
        ]);
        query.refuse_unknown(&known)?;
        let filter = filter(query, archiving)?;
        let mut group_by = Vec::new();
        for name in query.all("groupBy").into_iter().flat_map(|v| v.split(',')) {
            let name = name.trim();
            let dimension = Dimension::from_name(name).ok_or_else(|| {
                let names: Vec<&str> = Dimension::ALL.iter().map(|d| d.name()).collect();
                AppError::bad_input(
                    "groupBy",
                    format!("`{name}` is not one of {}", names.join(", ")),
                )
            })?;
            group_by.push(dimension);
        }
        let request = StatsRequest::new(
            filter,
            group_by,
            query.one("timeZone")?.unwrap_or("UTC"),
            integer(query, "shortCallSeconds")?,
            integer(query, "longCallSeconds")?,
        )?;
        let mut percentiles = Vec::new();
        for value in query.all("p") {
            let p = value
                .parse::<f64>()
                .ok()
                .and_then(|p| crate::domain::stats::percentile(p).ok())
                .ok_or_else(|| {
                    AppError::bad_input("p", format!("`{value}` is not a number from 0 to 1"))
                })?;
            if !percentiles.contains(&p) {
                percentiles.push(p);
            }
        }
        Ok(StatsExport {
            request,
            percentiles,
        })
    }
}

/// The parameters of `GET /export/evidence.zip` (and the flags of `calltrail evidence`).
pub const EVIDENCE_PARAMETERS: [&str; 5] = [
    "customerNumber",
    "pickedBy",
    "callId",
    "endedAtFrom",
    "endedAtTo",
];

/// `GET /export/evidence.zip`: whose calls (a customer, agents or calls by id), over which
/// period of `endedAt`.
#[derive(Clone, Debug)]
pub struct EvidenceExport {
    pub filter: CallFilter,
    /// The parameters as given, in order (the bundle's manifest records them).
    pub asked: Vec<(String, String)>,
}

impl EvidenceExport {
    /// Refuses a bundle that names nobody: it is for one customer, agent or set of calls.
    pub fn parse(query: &Query, archiving: bool) -> Result<EvidenceExport, AppError> {
        query.refuse_unknown(&EVIDENCE_PARAMETERS)?;
        let filter = filter(query, archiving)?;
        if filter.customer_digits.is_none()
            && filter.picked_by.is_none()
            && filter.call_ids.is_none()
        {
            return Err(AppError::bad_input(
                "customerNumber",
                "say whose calls the bundle holds: customerNumber, pickedBy or callId",
            ));
        }
        Ok(EvidenceExport {
            filter,
            asked: query.pairs().to_vec(),
        })
    }
}

fn filter(query: &Query, archiving: bool) -> Result<CallFilter, AppError> {
    let range = |name: &str, from: &str, to: &str| -> Result<Option<TimeRange>, AppError> {
        let (from, to) = (instant(query, from)?, instant(query, to)?);
        if from.is_none() && to.is_none() {
            return Ok(None);
        }
        TimeRange::new(name, from, to).map(Some)
    };
    let duration = {
        let (min, max) = (
            integer(query, "durationMin")?,
            integer(query, "durationMax")?,
        );
        match (min, max) {
            (None, None) => None,
            _ => Some(IntRange::new("durationMin", min, max)?),
        }
    };
    Ok(CallFilter {
        call_ids: query.list("callId"),
        customer_id: query.one("customerId")?.map(str::to_owned),
        customer_digits: query
            .one("customerNumber")?
            .map(|n| customer_digits("customerNumber", n))
            .transpose()?,
        customer_name: query.one("customerName")?.map(str::to_lowercase),
        picked_by: query.list("pickedBy"),
        ended_by: query.list("endedBy"),
        waba_numbers: query.list("wabaNumber"),
        direction: query
            .one("direction")?
            .map(|d| {
                Direction::from_wire(d).ok_or_else(|| {
                    AppError::bad_input("direction", format!("`{d}` is not INCOMING or OUTGOING"))
                })
            })
            .transpose()?,
        statuses: query.list("status"),
        channel: query.one("channel")?.map(str::to_owned),
        ended_at: range("endedAtFrom", "endedAtFrom", "endedAtTo")?,
        started_at: range("startedAtFrom", "startedAtFrom", "startedAtTo")?,
        duration_seconds: duration,
        has_recording: boolean(query, "hasRecording")?,
        has_anomalies: boolean(query, "hasAnomalies")?,
        recording_states: query
            .list("recordingState")
            .map(|names| {
                names
                    .iter()
                    .map(|name| {
                        Shown::from_name(name).ok_or_else(|| {
                            let known: Vec<&str> = Shown::ALL.iter().map(|s| s.name()).collect();
                            AppError::bad_input(
                                "recordingState",
                                format!("`{name}` is not one of {}", known.join(", ")),
                            )
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()
                    .map(|shown| Shown::filter(&shown, archiving))
            })
            .transpose()?,
        reviewed: boolean(query, "reviewed")?,
    })
}

fn instant(query: &Query, name: &str) -> Result<Option<DateTime<Utc>>, AppError> {
    query
        .one(name)?
        .map(|v| {
            DateTime::parse_from_rfc3339(v)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|_| {
                    AppError::bad_input(
                        name,
                        format!("`{v}` is not an RFC 3339 instant like 2026-03-02T09:19:17Z"),
                    )
                })
        })
        .transpose()
}

fn integer(query: &Query, name: &str) -> Result<Option<i64>, AppError> {
    query
        .one(name)?
        .map(|v| {
            v.parse::<i64>()
                .map_err(|_| AppError::bad_input(name, format!("`{v}` is not a whole number")))
        })
        .transpose()
}

fn boolean(query: &Query, name: &str) -> Result<Option<bool>, AppError> {
    query
        .one(name)?
        .map(|v| match v {
            "true" => Ok(true),
            "false" => Ok(false),
            _ => Err(AppError::bad_input(
                name,
                format!("`{v}` is not true or false"),
            )),
        })
        .transpose()
}

fn time_zone(name: &str) -> Result<Tz, AppError> {
    name.parse().map_err(|_| {
        AppError::bad_input(
            "timeZone",
            format!("`{name}` is not an IANA time zone (e.g. `Asia/Kolkata`)"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(q: &str) -> Result<CallsExport, AppError> {
        CallsExport::parse(&Query::parse(Some(q)), true)
    }

    fn argument(e: AppError) -> String {
        match e {
            AppError::BadUserInput { argument, .. } => argument,
            other => panic!("not a bad input: {other:?}"),
        }
    }

    #[test]
    fn the_filter_parameters_read_as_the_graphql_filter_does() {
        let export = parse(
            "pickedBy=a&pickedBy=b%20c&endedAtFrom=2026-03-01T00:00:00%2B05:30&endedAtTo=2026-04-01T00:00:00Z&durationMin=30&direction=INCOMING&customerNumber=%2B91%2098111-22233&hasRecording=true&orderBy=DURATION_SECONDS&orderDirection=ASC&fields=callId,durationSeconds&fields=pickedBy&timeZone=Asia/Kolkata",
        )
        .expect("parses");
        let f = &export.filter;
        assert_eq!(f.picked_by, Some(vec!["a".to_owned(), "b c".to_owned()]));
        assert_eq!(f.customer_digits.as_deref(), Some("919811122233"));
        assert_eq!(f.direction, Some(Direction::Incoming));
        assert_eq!(f.has_recording, Some(true));
        let ended = f.ended_at.expect("range");
        assert_eq!(
            ended.from.map(|t| t.to_rfc3339()),
            Some("2026-02-28T18:30:00+00:00".into())
        );
        assert_eq!(
            f.duration_seconds,
            Some(IntRange {
                min: Some(30),
                max: None
            })
        );
        assert_eq!(export.order.field, OrderField::DurationSeconds);
        assert_eq!(export.order.direction, SortDirection::Asc);
        assert_eq!(
            export.fields,
            [
                CallField::CallId,
                CallField::DurationSeconds,
                CallField::PickedBy
            ]
        );
        assert!(export.time_zone.is_some());
    }

    #[test]
    fn without_parameters_every_scalar_field_in_the_default_order() {
        let export = parse("").expect("parses");
        assert_eq!(export.filter, CallFilter::default());
        assert_eq!(export.order, CallOrder::default());
        assert!(!export.fields_chosen);
        assert!(!export.fields.contains(&CallField::Revisions));
        assert_eq!(export.fields.len(), CallField::ALL.len() - 3);
        assert!(!export.fields.contains(&CallField::Recording));
        assert!(!export.fields.contains(&CallField::Reviews));
    }

    #[test]
    fn each_bad_parameter_is_named() {
        for (query, named) in [
            ("pickedby=a", "pickedby"),
            ("token=x", "token"),
            ("durationMin=ten", "durationMin"),
            ("durationMin=9&durationMax=3", "durationMin"),
            ("endedAtFrom=yesterday", "endedAtFrom"),
            (
                "endedAtFrom=2026-02-01T00:00:00Z&endedAtTo=2026-01-01T00:00:00Z",
                "endedAtFrom",
            ),
            ("direction=SIDEWAYS", "direction"),
            ("customerNumber=--", "customerNumber"),
            ("hasRecording=yes", "hasRecording"),
            ("orderBy=NAME", "orderBy"),
            ("orderDirection=UP", "orderDirection"),
            ("fields=revisions", "fields"),
            ("fields=nope", "fields"),
            ("timeZone=Mars/Olympus", "timeZone"),
            ("customerId=a&customerId=b", "customerId"),
            ("recordingState=LOST", "recordingState"),
        ] {
            let e = parse(query).expect_err(query);
            assert_eq!(argument(e), named, "{query}");
        }
        for (query, named) in [
            ("groupBy=DAYS", "groupBy"),
            ("p=2", "p"),
            ("timeZone=Nowhere", "timeZone"),
            ("shortCallSeconds=-1", "shortCallSeconds"),
            ("fields=callId", "fields"),
        ] {
            let e = StatsExport::parse(&Query::parse(Some(query)), true).expect_err(query);
            assert_eq!(argument(e), named, "{query}");
        }
        for (query, named) in [
            ("", "customerNumber"),
            ("endedAtFrom=2026-03-01T00:00:00Z", "customerNumber"),
            ("customerNumber=--", "customerNumber"),
            ("pickedBy=a&durationMin=3", "durationMin"),
            ("callId=c&endedAtTo=soon", "endedAtTo"),
            ("callId=c&fields=callId", "fields"),
        ] {
            let e = EvidenceExport::parse(&Query::parse(Some(query)), true).expect_err(query);
            assert_eq!(argument(e), named, "{query}");
        }
    }

    #[test]
    fn an_evidence_bundle_names_a_customer_agents_or_calls_over_a_period() {
        let export = EvidenceExport::parse(
            &Query::parse(Some(
                "customerNumber=%2B91%2098111-22233&endedAtFrom=2026-03-01T00:00:00Z&endedAtTo=2026-04-01T00:00:00Z",
            )),
            true,
        )
        .expect("parses");
        assert_eq!(
            export.filter.customer_digits.as_deref(),
            Some("919811122233")
        );
        assert!(export.filter.ended_at.is_some());
        assert_eq!(
            export.asked[0],
            ("customerNumber".into(), "+91 98111-22233".into())
        );
        let by_call =
            EvidenceExport::parse(&Query::parse(Some("callId=a&callId=b")), true).expect("parses");
        assert_eq!(by_call.filter.call_ids, Some(vec!["a".into(), "b".into()]));
    }
}
