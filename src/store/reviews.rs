//! Reviews (`call_reviews`, append-only): recorded by a reviewer, read with their calls.
use chrono::Utc;
use entity::call_review;
use sea_orm::ActiveValue::Set;
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QueryOrder};

use super::Store;
use super::error::{db_error, write_error};
use crate::domain::{NewReview, Review, ReviewVerdict, Viewer};
use crate::error::AppError;

fn review(m: call_review::Model) -> Result<Review, AppError> {
    let verdict = ReviewVerdict::parse(&m.verdict).ok_or_else(|| {
        AppError::Internal(format!("review {} has the verdict `{}`", m.id, m.verdict))
    })?;
    Ok(Review {
        id: m.id,
        call_id: m.call_id,
        verdict,
        note: m.note,
        key_id: m.key_id,
        key_name: m.key_name,
        reviewed_at: m.reviewed_at,
    })
}

impl Store {
    /// Appends `review`, made by `by`, now; returns it as stored. The caller has checked that
    /// the call exists and that `by` may review it ([`super::reader::Reader::record_review`]).
    pub(crate) async fn append_review(
        &self,
        review_of: &NewReview,
        by: &Viewer,
    ) -> Result<Review, AppError> {
        let txn = self.begin_write().await.map_err(write_error)?;
        let row = call_review::ActiveModel {
            call_id: Set(review_of.call_id.clone()),
            verdict: Set(review_of.verdict.as_str().to_owned()),
            note: Set(review_of.note.clone()),
            key_id: Set(by.key_id),
            key_name: Set(by.key_name.clone()),
            reviewed_at: Set(Utc::now()),
            ..Default::default()
        }
        .insert(&txn)
        .await
        .map_err(write_error)?;
        txn.commit().await.map_err(write_error)?;
        self.committed();
        review(row)
    }

    /// The reviews of `call_ids`, by call id, oldest first within a call.
    pub async fn reviews_of(&self, call_ids: &[String]) -> Result<Vec<Review>, AppError> {
        if call_ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut reviews = Vec::new();
        // Bounded lists: a bundle may hold thousands of calls.
        for chunk in call_ids.chunks(500) {
            let rows = call_review::Entity::find()
                .filter(call_review::Column::CallId.is_in(chunk.iter().cloned()))
                .order_by_asc(call_review::Column::CallId)
                .order_by_asc(call_review::Column::Id)
                .all(&self.db)
                .await
                .map_err(db_error)?;
            for row in rows {
                reviews.push(review(row)?);
            }
        }
        reviews.sort_by(|a, b| a.call_id.cmp(&b.call_id).then(a.id.cmp(&b.id)));
        Ok(reviews)
    }
}
