//! Reads as one reader may make them: every call read goes through a [`Reader`], which narrows
//! it to the reader's scope here, once, whatever surface asks (GraphQL, exports, pages).
use std::collections::HashMap;

use super::Store;
use super::calls::Page;
use super::filter::short_or_anomalous;
use super::stats::BucketPlan;
use crate::domain::call::CallRevision;
use crate::domain::stats::{GroupKey, HistogramBounds, StatsGroup, StatsRequest};
use crate::domain::{
    Call, CallFilter, CallOrder, IntRange, NewReview, PageFields, PageRequest, Review, Scope,
    Viewer,
};
use crate::error::AppError;

/// The store as seen by one reader's scope.
#[derive(Clone, Debug)]
pub struct Reader {
    store: Store,
    scope: Scope,
}

impl Store {
    /// Reads limited to `scope`, for one request: a name search is looked up once for all of
    /// its reads.
    pub fn reader(&self, scope: Scope) -> Reader {
        Reader {
            store: Store {
                names: Some(super::filter::NameLookups::default()),
                ..self.clone()
            },
            scope,
        }
    }
}

impl Reader {
    pub fn scope(&self) -> &Scope {
        &self.scope
    }

    /// The store under this reader, for the reads of sibling modules (which narrow first).
    pub(super) fn store(&self) -> &Store {
        &self.store
    }

    /// One concluded call, if it exists and is in scope.
    pub async fn call(&self, call_id: &str) -> Result<Option<Call>, AppError> {
        let call = self.store.call(call_id).await?;
        Ok(call.filter(|c| self.scope.admits(c)))
    }

    pub async fn count(&self, filter: &CallFilter) -> Result<u64, AppError> {
        self.store.count(&self.scope.restrict(filter)).await
    }

    pub async fn page(
        &self,
        filter: &CallFilter,
        order: CallOrder,
        request: &PageRequest,
        fields: PageFields,
    ) -> Result<Page, AppError> {
        self.store
            .page(&self.scope.restrict(filter), order, request, fields)
            .await
    }

    /// How many calls match `filter`, counting no further than `cap`.
    pub async fn count_up_to(&self, filter: &CallFilter, cap: u64) -> Result<u64, AppError> {
        self.store
            .count_up_to(&self.scope.restrict(filter), sea_orm::Condition::all(), cap)
            .await
    }

    /// How many calls match `filter` and are short (`short`: their length) or anomalous,
    /// counting no further than `cap`: the review queue's size.
    pub async fn flagged_count_up_to(
        &self,
        filter: &CallFilter,
        short: IntRange,
        cap: u64,
    ) -> Result<u64, AppError> {
        self.store
            .count_up_to(&self.scope.restrict(filter), short_or_anomalous(short), cap)
            .await
    }

    /// A page of the calls matching `filter` that are short (`short`: their length) or
    /// anomalous.
    pub async fn flagged_page(
        &self,
        filter: &CallFilter,
        short: IntRange,
        order: CallOrder,
        request: &PageRequest,
        fields: PageFields,
    ) -> Result<Page, AppError> {
        self.store
            .page_where(
                &self.scope.restrict(filter),
                short_or_anomalous(short),
                order,
                request,
                fields,
                true,
            )
            .await
    }

    /// A page as the desk reads it: like [`Reader::page`], but a length range is checked on
    /// each row while the ordering's index is walked (the desk's short and long calls).
    pub async fn page_in_order(
        &self,
        filter: &CallFilter,
        order: CallOrder,
        request: &PageRequest,
        fields: PageFields,
    ) -> Result<Page, AppError> {
        self.store
            .page_where(
                &self.scope.restrict(filter),
                sea_orm::Condition::all(),
                order,
                request,
                fields,
                true,
            )
            .await
    }

    /// The earlier versions of `call` (a call this reader read); none for a call out of scope.
    /// The call in hand says whether it is in scope: no second read of it.
    pub async fn revisions(&self, call: &Call) -> Result<Vec<CallRevision>, AppError> {
        if !self.scope.admits(call) {
            return Ok(Vec::new());
        }
        self.store.revisions(&call.call_id).await
    }

    /// How the recording of `call` (a call this reader read) stands; none for a call out of
    /// scope or without a recording link.
    pub async fn recording(
        &self,
        call: &Call,
    ) -> Result<Option<crate::domain::recording::RecordingStatus>, AppError> {
        let Some(url) = call.recording_url.as_deref() else {
            return Ok(None);
        };
        if !self.scope.admits(call) {
            return Ok(None);
        }
        self.store
            .recording_status(&call.call_id, url)
            .await
            .map(Some)
    }

    pub async fn bucket_plan(&self, request: &StatsRequest) -> Result<BucketPlan, AppError> {
        self.store
            .bucket_plan(&self.scope.restrict_stats(request))
            .await
    }

    pub async fn stats_groups(
        &self,
        request: &StatsRequest,
        plan: &BucketPlan,
    ) -> Result<Vec<StatsGroup>, AppError> {
        self.store
            .stats_groups(&self.scope.restrict_stats(request), plan)
            .await
    }

    pub async fn duration_percentiles(
        &self,
        request: &StatsRequest,
        plan: &BucketPlan,
        ps: &[f64],
    ) -> Result<Vec<HashMap<GroupKey, f64>>, AppError> {
        self.store
            .duration_percentiles(&self.scope.restrict_stats(request), plan, ps)
            .await
    }

    pub async fn duration_histograms(
        &self,
        request: &StatsRequest,
        plan: &BucketPlan,
        bounds: &HistogramBounds,
    ) -> Result<HashMap<GroupKey, Vec<i64>>, AppError> {
        self.store
            .duration_histograms(&self.scope.restrict_stats(request), plan, bounds)
            .await
    }

    /// The logged deliveries of `call` (a call this reader read), oldest first; none for a call
    /// out of scope.
    pub async fn deliveries(
        &self,
        call: &Call,
    ) -> Result<Vec<super::deliveries::DeliveryRow>, AppError> {
        if !self.scope.admits(call) {
            return Ok(Vec::new());
        }
        self.store.deliveries_of(&call.call_id).await
    }

    /// The reviews of `call` (a call this reader read), oldest first; none for a call out of
    /// scope.
    pub async fn reviews(&self, call: &Call) -> Result<Vec<Review>, AppError> {
        if !self.scope.admits(call) {
            return Ok(Vec::new());
        }
        self.store
            .reviews_of(std::slice::from_ref(&call.call_id))
            .await
    }

    /// Records `review` as made by `by` (this reader's viewer): only a reviewer or an admin
    /// may (FORBIDDEN otherwise), and only on a concluded call in scope (NOT_FOUND otherwise).
    /// Returns the call reviewed and the review as stored.
    pub async fn record_review(
        &self,
        by: &Viewer,
        review: &NewReview,
    ) -> Result<(Call, Review), AppError> {
        by.require_identity("reviewCall")?;
        let Some(call) = self.call(&review.call_id).await? else {
            return Err(AppError::NotFound);
        };
        let stored = self.store.append_review(review, by).await?;
        Ok((call, stored))
    }
}
