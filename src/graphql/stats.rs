//! `callStats`: grouped call statistics, with percentiles and histograms as field arguments.
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_graphql::{Enum, Object, SelectionField, SimpleObject, Value as ConstValue};
use tokio::sync::OnceCell;

use super::inputs::CallFilter;
use super::scalars::DateTime;
use super::types::CallDirection;
use super::{GqlResult, gql};
use crate::domain::Direction;
use crate::domain::Viewer;
use crate::domain::stats::{
    self, Aggregates, Dimension, GroupKey, HistogramBounds, KeyPart, Measures, StatsRequest,
};
use crate::error::AppError;
use crate::store::reader::Reader;
use crate::store::stats::BucketPlan;

/// What calls can be grouped by. Time dimensions bucket `endedAt` in the requested time zone.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum CallDimension {
    /// The agent who answered or dialled (`pickedBy`).
    PickedBy,
    /// Who hung up (`endedBy`).
    EndedBy,
    /// Incoming or outgoing.
    Direction,
    /// The business number.
    WabaNumber,
    /// The customer, by the digits of their number (formatting-insensitive); the key's
    /// `customerNumber` holds those digits.
    Customer,
    /// The call status (`END`, `MISSED`, `REJECT`, ...).
    Status,
    /// The channel (`PSTN`, or null for WhatsApp calls).
    Channel,
    /// Local hour. The two 01:00 hours of a fall-back night are two buckets.
    Hour,
    /// Local day, from local midnight (23 or 25 hours on a daylight-saving change).
    Day,
    /// ISO week, from Monday local midnight.
    Week,
    /// Calendar month, from the 1st at local midnight.
    Month,
}

impl From<CallDimension> for Dimension {
    fn from(d: CallDimension) -> Self {
        match d {
            CallDimension::PickedBy => Dimension::PickedBy,
            CallDimension::EndedBy => Dimension::EndedBy,
            CallDimension::Direction => Dimension::Direction,
            CallDimension::WabaNumber => Dimension::WabaNumber,
            CallDimension::Customer => Dimension::Customer,
            CallDimension::Status => Dimension::Status,
            CallDimension::Channel => Dimension::Channel,
            CallDimension::Hour => Dimension::Hour,
            CallDimension::Day => Dimension::Day,
            CallDimension::Week => Dimension::Week,
            CallDimension::Month => Dimension::Month,
        }
    }
}

pub struct CallStatsResult {
    total: CallStats,
    groups: Vec<CallStatsGroup>,
    /// The request's filter, for `archivedRecordings`.
    filter: crate::domain::CallFilter,
}

/// Statistics over the matching calls: the totals, and one entry per group.
#[Object]
impl CallStatsResult {
    /// Over every matching call.
    async fn total(&self) -> &CallStats {
        &self.total
    }
    /// One per distinct key: time buckets ascending, then the other dimensions in `groupBy`
    /// order, ascending, null last. With one time dimension and an `endedAt` range with both
    /// ends, every bucket of the range is present (with zero counts when it has no calls).
    async fn groups(&self) -> &[CallStatsGroup] {
        &self.groups
    }
    /// Matching calls whose current recording is archived (counted from the archive queue,
    /// not the rollup; over all matching calls, not per group).
    #[graphql(complexity = "super::cost::TOTAL_COUNT")]
    async fn archived_recordings(&self, ctx: &async_graphql::Context<'_>) -> GqlResult<i64> {
        let store = ctx.data::<Reader>()?;
        let mut filter = self.filter.clone();
        let archived = crate::domain::recording::JobState::Archived;
        filter.recording_states = Some(match filter.recording_states.take() {
            Some(states) => states.into_iter().filter(|s| *s == archived).collect(),
            None => vec![archived],
        });
        let count = store.count(&filter).await.map_err(gql)?;
        Ok(i64::try_from(count).unwrap_or(i64::MAX))
    }
}

/// A group of calls sharing a key.
#[derive(SimpleObject)]
pub struct CallStatsGroup {
    /// The group's values of the grouped dimensions.
    key: CallGroupKey,
    /// What was counted over the group.
    stats: CallStats,
}

/// The values that define a group. Only the grouped dimensions are set; a grouped
/// dimension the calls have no value for is null too.
#[derive(SimpleObject, Default)]
pub struct CallGroupKey {
    /// Grouped by `PICKED_BY`.
    picked_by: Option<String>,
    /// Grouped by `ENDED_BY`.
    ended_by: Option<String>,
    /// Grouped by `DIRECTION`.
    direction: Option<CallDirection>,
    /// Grouped by `WABA_NUMBER`.
    waba_number: Option<String>,
    /// Grouped by `CUSTOMER`: the digits of the customer's number.
    customer_number: Option<String>,
    /// Grouped by `STATUS`.
    status: Option<String>,
    /// Grouped by `CHANNEL`.
    channel: Option<String>,
    /// Grouped by `HOUR`, `DAY`, `WEEK` or `MONTH`: the instant the bucket began (local
    /// midnight for a day). With several time dimensions, the finest one.
    period: Option<DateTime>,
}

/// One histogram bucket: durations `fromSeconds <= d < toSeconds`.
#[derive(SimpleObject)]
pub struct HistogramBucket {
    /// Inclusive lower bound; null for the first, unbounded bucket.
    from_seconds: Option<i64>,
    /// Exclusive upper bound; null for the last, unbounded bucket.
    to_seconds: Option<i64>,
    /// Calls in the bucket.
    count: i64,
}

/// One statistics request, shared by its groups: each percentile or histogram asked for is
/// computed once, for all groups, in one database query.
struct StatsRun {
    store: Reader,
    request: StatsRequest,
    plan: BucketPlan,
    /// The percentiles the query asks for (read ahead): computed together, in one pass.
    wanted: Vec<f64>,
    wanted_values: OnceCell<Vec<PerGroup<f64>>>,
    percentiles: Computed<u64, f64>,
    histograms: Computed<Vec<i64>, Vec<i64>>,
    /// The aggregates of an ungrouped request, read only when a field needs them.
    totals: OnceCell<Aggregates>,
}

/// One value per group key, shared by the fields that read it.
type PerGroup<V> = Arc<HashMap<GroupKey, V>>;

/// Per argument value (`p`, or histogram bounds), the per-group results, computed once.
type Computed<A, V> = Mutex<HashMap<A, Arc<OnceCell<PerGroup<V>>>>>;

impl StatsRun {
    fn new(store: Reader, request: StatsRequest, plan: BucketPlan, wanted: Vec<f64>) -> Arc<Self> {
        Arc::new(StatsRun {
            store,
            request,
            plan,
            wanted,
            wanted_values: OnceCell::new(),
            percentiles: Mutex::new(HashMap::new()),
            histograms: Mutex::new(HashMap::new()),
            totals: OnceCell::new(),
        })
    }

    async fn totals(&self) -> Result<Aggregates, AppError> {
        self.totals
            .get_or_try_init(|| async {
                let groups = self.store.stats_groups(&self.request, &self.plan).await?;
                Ok::<_, AppError>(
                    groups
                        .into_iter()
                        .next()
                        .map(|g| g.aggregates)
                        .unwrap_or_else(|| Aggregates::empty(&self.request)),
                )
            })
            .await
            .cloned()
    }

    async fn percentiles(&self, p: f64) -> Result<Arc<HashMap<GroupKey, f64>>, AppError> {
        if let Some(i) = self.wanted.iter().position(|w| w.to_bits() == p.to_bits()) {
            let all = self
                .wanted_values
                .get_or_try_init(|| async {
                    let all = self
                        .store
                        .duration_percentiles(&self.request, &self.plan, &self.wanted)
                        .await?;
                    Ok::<_, AppError>(all.into_iter().map(Arc::new).collect::<Vec<_>>())
                })
                .await?;
            if let Some(values) = all.get(i) {
                return Ok(values.clone());
            }
        }
        let cell = {
            let mut cells = self
                .percentiles
                .lock()
                .map_err(|_| AppError::Internal("percentile cache poisoned".into()))?;
            cells.entry(p.to_bits()).or_default().clone()
        };
        cell.get_or_try_init(|| async {
            let mut one = self
                .store
                .duration_percentiles(&self.request, &self.plan, &[p])
                .await?;
            Ok::<_, AppError>(Arc::new(one.pop().unwrap_or_default()))
        })
        .await
        .cloned()
    }

    async fn histograms(
        &self,
        bounds: &HistogramBounds,
    ) -> Result<Arc<HashMap<GroupKey, Vec<i64>>>, AppError> {
        let cell = {
            let mut cells = self
                .histograms
                .lock()
                .map_err(|_| AppError::Internal("histogram cache poisoned".into()))?;
            cells.entry(bounds.bounds().to_vec()).or_default().clone()
        };
        cell.get_or_try_init(|| async {
            self.store
                .duration_histograms(&self.request, &self.plan, bounds)
                .await
                .map(Arc::new)
        })
        .await
        .cloned()
    }
}

pub struct CallStats {
    run: Arc<StatsRun>,
    key: GroupKey,
    /// Known up front for groups (and for totals summed from them); `None` for the totals of
    /// an ungrouped request, read from the database only if a field needs them.
    aggregates: Option<Aggregates>,
}

impl CallStats {
    async fn aggregates(&self) -> GqlResult<Aggregates> {
        match &self.aggregates {
            Some(a) => Ok(a.clone()),
            None => self.run.totals().await.map_err(gql),
        }
    }

    /// Whether the group is known to be empty without asking the database.
    fn known_empty(&self) -> bool {
        self.aggregates
            .as_ref()
            .or_else(|| self.run.totals.get())
            .is_some_and(|a| a.count == 0)
    }
}

/// Counts and durations over a group of calls. Durations are `durationSeconds` (talk time),
/// so unanswered calls count as 0 s.
#[Object]
impl CallStats {
    /// Calls in the group.
    async fn count(&self) -> GqlResult<i64> {
        Ok(self.aggregates().await?.count)
    }
    /// Sum of their durations.
    async fn total_duration_seconds(&self) -> GqlResult<i64> {
        Ok(self.aggregates().await?.total_duration_seconds)
    }
    /// Mean duration; null for an empty group.
    async fn average_duration_seconds(&self) -> GqlResult<Option<f64>> {
        Ok(self.aggregates().await?.average_duration_seconds())
    }
    /// Shortest duration; null for an empty group.
    async fn min_duration_seconds(&self) -> GqlResult<Option<i64>> {
        Ok(self.aggregates().await?.min_duration_seconds)
    }
    /// Longest duration; null for an empty group.
    async fn max_duration_seconds(&self) -> GqlResult<Option<i64>> {
        Ok(self.aggregates().await?.max_duration_seconds)
    }
    /// The `p` percentile of durations, exact and continuous (interpolated between the two
    /// nearest ranks, as PostgreSQL's `percentile_cont`); null for an empty group. Alias it
    /// to ask for several: `p50: durationPercentile(p: 0.5) p95: durationPercentile(p: 0.95)`.
    #[graphql(complexity = "super::cost::PERCENTILE")]
    async fn duration_percentile(
        &self,
        #[graphql(desc = "The rank, from 0 (shortest) to 1 (longest); 0.5 is the median.")] p: f64,
    ) -> GqlResult<Option<f64>> {
        let p = stats::percentile(p).map_err(gql)?;
        if self.known_empty() {
            return Ok(None);
        }
        let values = self.run.percentiles(p).await.map_err(gql)?;
        Ok(values.get(&self.key).copied())
    }
    /// How many calls fall in each duration bucket: `n` bounds make `n + 1` buckets, the
    /// first below the first bound, the last from the last bound up.
    #[graphql(complexity = "super::cost::HISTOGRAM")]
    async fn duration_histogram(
        &self,
        #[graphql(desc = "Bucket bounds in seconds, strictly increasing, at least one.")]
        bounds_seconds: Vec<i64>,
    ) -> GqlResult<Vec<HistogramBucket>> {
        let bounds = HistogramBounds::new(bounds_seconds).map_err(gql)?;
        let counts = if self.known_empty() {
            None
        } else {
            let all = self.run.histograms(&bounds).await.map_err(gql)?;
            all.get(&self.key).cloned()
        };
        Ok((0..bounds.bucket_count())
            .map(|i| {
                let (from_seconds, to_seconds) = bounds.bucket(i);
                HistogramBucket {
                    from_seconds,
                    to_seconds,
                    count: counts.as_ref().and_then(|c| c.get(i).copied()).unwrap_or(0),
                }
            })
            .collect())
    }
    /// Calls shorter than `shortCallSeconds`; null when it was not given.
    async fn short_calls(&self) -> GqlResult<Option<i64>> {
        Ok(self.aggregates().await?.short_calls)
    }
    /// Calls longer than `longCallSeconds`; null when it was not given.
    async fn long_calls(&self) -> GqlResult<Option<i64>> {
        Ok(self.aggregates().await?.long_calls)
    }
    /// Calls with a recording URL.
    async fn with_recording(&self) -> GqlResult<i64> {
        Ok(self.aggregates().await?.with_recording)
    }
    /// Calls that were picked up (`startedAt` is set).
    async fn answered_calls(&self) -> GqlResult<i64> {
        Ok(self.aggregates().await?.answered)
    }
    /// Calls with status `MISSED`.
    async fn missed_calls(&self) -> GqlResult<i64> {
        Ok(self.aggregates().await?.missed)
    }
    /// Calls with status `REJECT`.
    async fn rejected_calls(&self) -> GqlResult<i64> {
        Ok(self.aggregates().await?.rejected)
    }
    /// `answeredCalls / count`; null for an empty group.
    async fn answer_rate(&self) -> GqlResult<Option<f64>> {
        Ok(self.aggregates().await?.answer_rate())
    }
}

/// The measures a `callStats` selection reads, under `total` and under the groups' `stats`
/// together (the total is summed from the groups). A field this does not know asks for every
/// measure, so a field added later is never answered from a measure left out.
pub fn wanted_measures(call_stats: SelectionField<'_>) -> Measures {
    fn collect(stats: SelectionField<'_>, into: &mut Measures) {
        for field in stats.selection_set() {
            match field.name() {
                "count" | "durationPercentile" | "durationHistogram" | "shortCalls"
                | "longCalls" | "__typename" => {}
                "totalDurationSeconds" | "averageDurationSeconds" => into.total_duration = true,
                "minDurationSeconds" | "maxDurationSeconds" => into.min_max_duration = true,
                "withRecording" => into.with_recording = true,
                "answeredCalls" | "answerRate" => into.answered = true,
                "missedCalls" => into.missed = true,
                "rejectedCalls" => into.rejected = true,
                _ => *into = Measures::ALL,
            }
        }
    }
    let mut measures = Measures::COUNT;
    for field in call_stats.selection_set() {
        match field.name() {
            "total" => collect(field, &mut measures),
            "groups" => {
                for inner in field.selection_set() {
                    match inner.name() {
                        "stats" => collect(inner, &mut measures),
                        "key" | "__typename" => {}
                        _ => measures = Measures::ALL,
                    }
                }
            }
            "__typename" => {}
            _ => measures = Measures::ALL,
        }
    }
    measures
}

/// The percentiles a `callStats` selection asks for, read ahead so that each run computes
/// them in one pass: `(under total, under groups)`. Values that are not valid percentiles are
/// left out (their own field reports the error).
pub fn wanted_percentiles(call_stats: SelectionField<'_>) -> (Vec<f64>, Vec<f64>) {
    fn collect(stats: SelectionField<'_>, into: &mut Vec<f64>) {
        for field in stats.selection_set() {
            if field.name() != "durationPercentile" {
                continue;
            }
            let Ok(arguments) = field.arguments() else {
                continue;
            };
            for (name, value) in arguments {
                let p = match value {
                    ConstValue::Number(n) => n.as_f64(),
                    _ => None,
                };
                if let Some(p) = p.filter(|_| name.as_str() == "p")
                    && let Ok(p) = stats::percentile(p)
                    && !into.iter().any(|w| w.to_bits() == p.to_bits())
                {
                    into.push(p);
                }
            }
        }
    }
    let (mut total, mut groups) = (Vec::new(), Vec::new());
    for field in call_stats.selection_set() {
        match field.name() {
            "total" => collect(field, &mut total),
            "groups" => {
                for inner in field.selection_set().filter(|f| f.name() == "stats") {
                    collect(inner, &mut groups);
                }
            }
            _ => {}
        }
    }
    (total, groups)
}

/// Runs `callStats`: validates, aggregates the groups in the database, and sums them into the
/// totals (or, without groups, leaves the totals to the first field that needs them).
pub async fn call_stats(
    store: &Reader,
    viewer: &Viewer,
    archiving: bool,
    filter: Option<CallFilter>,
    group_by: Option<Vec<CallDimension>>,
    time_zone: &str,
    short_call_seconds: Option<i64>,
    long_call_seconds: Option<i64>,
    (total_percentiles, group_percentiles, measures): (Vec<f64>, Vec<f64>, Measures),
) -> GqlResult<CallStatsResult> {
    let filter = filter
        .unwrap_or_default()
        .to_domain(archiving)
        .map_err(gql)?;
    let dimensions = group_by
        .unwrap_or_default()
        .into_iter()
        .map(Dimension::from)
        .collect();
    let request = StatsRequest::new(
        filter,
        dimensions,
        time_zone,
        short_call_seconds,
        long_call_seconds,
    )
    .map_err(gql)?
    .with_measures(measures);
    viewer
        .check_filter(&request.filter, "filter")
        .map_err(gql)?;
    viewer.check_dimensions(&request.group_by).map_err(gql)?;
    let totals_request = request.ungrouped();
    let filter = request.filter.clone();
    let (total, groups) = if request.group_by.is_empty() {
        (None, Vec::new())
    } else {
        let plan = store.bucket_plan(&request).await.map_err(gql)?;
        let groups = store.stats_groups(&request, &plan).await.map_err(gql)?;
        // Every matching call is in exactly one group (a missing value is a group of its
        // own) and every measure is additive: the totals need no second pass over the data.
        let mut total = Aggregates::empty(&totals_request);
        for group in &groups {
            total.absorb(&group.aggregates);
        }
        let run = StatsRun::new(store.clone(), request, plan, group_percentiles);
        let groups = groups
            .into_iter()
            .map(|g| CallStatsGroup {
                key: group_key(&run.request, &g.key),
                stats: CallStats {
                    run: run.clone(),
                    key: g.key,
                    aggregates: Some(g.aggregates),
                },
            })
            .collect();
        (Some(total), groups)
    };
    let total = CallStats {
        run: StatsRun::new(
            store.clone(),
            totals_request,
            BucketPlan::default(),
            total_percentiles,
        ),
        key: Vec::new(),
        aggregates: total,
    };
    Ok(CallStatsResult {
        total,
        groups,
        filter,
    })
}

fn group_key(request: &StatsRequest, key: &GroupKey) -> CallGroupKey {
    let mut out = CallGroupKey::default();
    for (dimension, part) in request.group_by.iter().zip(key) {
        match (dimension.period(), part) {
            (Some(period), KeyPart::Bucket(bucket)) => {
                let start = period.start(*bucket, request.time_zone).map(DateTime);
                // Several time dimensions: the finest (latest starting) bucket wins.
                if out.period.is_none_or(|p| start.is_some_and(|s| s.0 > p.0)) {
                    out.period = start;
                }
            }
            (_, KeyPart::Text(value)) => {
                let value = value.clone();
                match dimension {
                    Dimension::PickedBy => out.picked_by = value,
                    Dimension::EndedBy => out.ended_by = value,
                    Dimension::Direction => {
                        out.direction = value
                            .as_deref()
                            .and_then(Direction::from_wire)
                            .map(Into::into)
                    }
                    Dimension::WabaNumber => out.waba_number = value,
                    Dimension::Customer => out.customer_number = value,
                    Dimension::Status => out.status = value,
                    Dimension::Channel => out.channel = value,
                    Dimension::Hour | Dimension::Day | Dimension::Week | Dimension::Month => {}
                }
            }
            (None, KeyPart::Bucket(_)) => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use async_graphql::resolver_utils::EnumType;

    use super::*;

    /// The exports name dimensions as GraphQL does (`groupBy=PICKED_BY`): one list, checked here.
    #[test]
    fn domain_dimension_names_are_the_graphql_enum_names() {
        let items = CallDimension::items();
        assert_eq!(items.len(), Dimension::ALL.len());
        for item in items {
            let dimension = Dimension::from(item.value);
            assert_eq!(dimension.name(), item.name);
            assert_eq!(Dimension::from_name(item.name), Some(dimension));
        }
    }
}
