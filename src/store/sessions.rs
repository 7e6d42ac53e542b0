//! The reviewer desk's sessions, kept in the database so every instance on it shares them:
//! opened at sign-in, found again by the hash of the cookie's token, kept alive while used,
//! ended by sign-out, by idle expiry, or by the revocation of their key.
use chrono::{DateTime, Utc};
use entity::desk_session;
use sea_orm::ActiveValue::Set;
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter};

use super::Store;
use super::error::db_error;
use crate::error::AppError;

/// A session to open.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewSession {
    /// Hex SHA-256 of the cookie's token.
    pub token_sha256: String,
    pub key_id: i64,
    pub csrf_token: String,
    pub now: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// A stored session, found by its token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredSession {
    pub id: i64,
    pub key_id: i64,
    pub csrf_token: String,
    pub last_seen_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

impl Store {
    pub async fn open_session(&self, new: NewSession) -> Result<(), AppError> {
        desk_session::ActiveModel {
            token_sha256: Set(new.token_sha256),
            key_id: Set(new.key_id),
            csrf_token: Set(new.csrf_token),
            created_at: Set(new.now),
            last_seen_at: Set(new.now),
            expires_at: Set(new.expires_at),
            ..Default::default()
        }
        .insert(&self.writer)
        .await
        .map_err(db_error)?;
        Ok(())
    }

    /// The session whose token hashes to `token_sha256`, whether or not it has expired.
    pub async fn session_by_token(
        &self,
        token_sha256: &str,
    ) -> Result<Option<StoredSession>, AppError> {
        let found = desk_session::Entity::find()
            .filter(desk_session::Column::TokenSha256.eq(token_sha256))
            .one(&self.db)
            .await
            .map_err(db_error)?;
        Ok(found.map(|m| StoredSession {
            id: m.id,
            key_id: m.key_id,
            csrf_token: m.csrf_token,
            last_seen_at: m.last_seen_at,
            expires_at: m.expires_at,
        }))
    }

    /// Records that session `id` was used at `now`; it now ends at `expires_at`.
    pub async fn touch_session(
        &self,
        id: i64,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<(), AppError> {
        desk_session::Entity::update_many()
            .col_expr(desk_session::Column::LastSeenAt, now.into())
            .col_expr(desk_session::Column::ExpiresAt, expires_at.into())
            .filter(desk_session::Column::Id.eq(id))
            .exec(&self.writer)
            .await
            .map_err(db_error)?;
        Ok(())
    }

    /// Ends session `id` (sign-out, expiry, a revoked key).
    pub async fn end_session(&self, id: i64) -> Result<(), AppError> {
        desk_session::Entity::delete_many()
            .filter(desk_session::Column::Id.eq(id))
            .exec(&self.writer)
            .await
            .map_err(db_error)?;
        Ok(())
    }

    /// Deletes every session that ended before `now`; how many.
    pub async fn end_expired_sessions(&self, now: DateTime<Utc>) -> Result<u64, AppError> {
        let done = desk_session::Entity::delete_many()
            .filter(desk_session::Column::ExpiresAt.lte(now))
            .exec(&self.writer)
            .await
            .map_err(db_error)?;
        Ok(done.rows_affected)
    }
}
