//! Reviews over GraphQL: the `reviewCall` mutation (the only mutation) and the `Review` type.
use async_graphql::{Context, Enum, ID, Object, SimpleObject};

use super::access::identity;
use super::scalars::DateTime;
use super::types::Call;
use super::{GqlResult, gql};
use crate::domain::{self, NewReview};
use crate::store::reader::Reader;

/// What a review found.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum ReviewVerdict {
    /// Nothing wrong.
    Ok,
    /// Something was wrong; the note says what.
    Issue,
    /// Needs someone senior; the note says why.
    Escalate,
}

impl From<domain::ReviewVerdict> for ReviewVerdict {
    fn from(v: domain::ReviewVerdict) -> Self {
        match v {
            domain::ReviewVerdict::Ok => ReviewVerdict::Ok,
            domain::ReviewVerdict::Issue => ReviewVerdict::Issue,
            domain::ReviewVerdict::Escalate => ReviewVerdict::Escalate,
        }
    }
}

impl From<ReviewVerdict> for domain::ReviewVerdict {
    fn from(v: ReviewVerdict) -> Self {
        match v {
            ReviewVerdict::Ok => domain::ReviewVerdict::Ok,
            ReviewVerdict::Issue => domain::ReviewVerdict::Issue,
            ReviewVerdict::Escalate => domain::ReviewVerdict::Escalate,
        }
    }
}

/// A review of a call: kept for good; a later review adds to it, never replaces it.
#[derive(SimpleObject, Clone, Debug)]
pub struct Review {
    /// Its number, in the order reviews were recorded.
    pub id: ID,
    /// The call reviewed.
    pub call_id: ID,
    pub verdict: ReviewVerdict,
    /// What the reviewer noted (may be empty for `OK`).
    pub note: String,
    /// The name of the API key that recorded it.
    pub reviewed_by: String,
    /// When it was recorded.
    pub reviewed_at: DateTime,
}

impl From<domain::Review> for Review {
    fn from(r: domain::Review) -> Self {
        Review {
            id: ID(r.id.to_string()),
            call_id: ID(r.call_id),
            verdict: r.verdict.into(),
            note: r.note,
            reviewed_by: r.key_name,
            reviewed_at: DateTime(r.reviewed_at),
        }
    }
}

pub struct Mutation;

/// What a reviewer records.
#[Object]
impl Mutation {
    /// Records a review of a concluded call (reviewer and admin keys; a scoped key only on its
    /// calls: NOT_FOUND otherwise). Appended: the call's earlier reviews stay as they were.
    async fn review_call(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "DoubleTick's `callId`.")] call_id: ID,
        #[graphql(desc = "What the review found.")] verdict: ReviewVerdict,
        #[graphql(
            desc = "What was found (at most 4000 characters; required unless the verdict is OK)."
        )]
        note: Option<String>,
    ) -> GqlResult<Review> {
        super::access::reads(ctx)?;
        let review =
            NewReview::new(&call_id, verdict.into(), note.as_deref().unwrap_or("")).map_err(gql)?;
        let viewer = super::access::viewer(ctx)?;
        let reader = ctx.data::<Reader>()?;
        let (call, stored) = reader.record_review(viewer, &review).await.map_err(gql)?;
        // The reviewer acted on this client's call: the access log names it.
        identity(ctx, &call, "reviews")?;
        Ok(stored.into())
    }
}

/// `Call.reviews`.
pub(super) async fn of_call(ctx: &Context<'_>, call: &Call) -> GqlResult<Option<Vec<Review>>> {
    identity(ctx, &call.0, "reviews")?;
    let reader = ctx.data::<Reader>()?;
    let reviews = Box::pin(reader.reviews(&call.0)).await.map_err(gql)?;
    Ok(Some(reviews.into_iter().map(Review::from).collect()))
}
