//! API keys: created, listed, revoked, and found again from what a client presents. Only a
//! SHA-256 of each key is stored, beside its short public prefix.
use std::sync::atomic::{AtomicBool, Ordering};

use chrono::{DateTime, Utc};
use entity::api_key;
use sea_orm::ActiveValue::Set;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
};

use super::Store;
use super::error::db_error;
use crate::domain::{Role, Scope};
use crate::error::AppError;

/// A key as listed: everything but its secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyInfo {
    pub id: i64,
    pub name: String,
    pub role: Role,
    pub scope: Scope,
    pub prefix: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
}

impl KeyInfo {
    /// Whether the key is good right now.
    pub fn is_live(&self, now: DateTime<Utc>) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|e| now < e)
    }
}

/// What a new key is stored as.
pub struct NewKey {
    pub name: String,
    pub role: Role,
    pub scope: Scope,
    pub expires_at: Option<DateTime<Utc>>,
    pub prefix: String,
    pub secret_sha256: String,
}

fn info(m: api_key::Model) -> Result<KeyInfo, AppError> {
    let list = |json: &str| -> Result<Vec<String>, AppError> {
        serde_json::from_str(json).map_err(|e| AppError::Internal(format!("key scope: {e}")))
    };
    Ok(KeyInfo {
        id: m.id,
        role: Role::parse(&m.role)
            .ok_or_else(|| AppError::Internal(format!("unknown stored role {}", m.role)))?,
        scope: Scope {
            waba_numbers: list(&m.waba_numbers)?,
            agents: list(&m.agents)?,
        },
        name: m.name,
        prefix: m.prefix,
        created_at: m.created_at,
        expires_at: m.expires_at,
        revoked_at: m.revoked_at,
        last_used_at: m.last_used_at,
    })
}

/// Whether any key has ever been created: once one has, every read needs a key. Keys are
/// revoked, never deleted, so once true it stays true; "none yet" is asked again at most once
/// a second (a read on open loopback does not pay a query each), so a new key takes effect
/// within a second on every instance.
#[derive(Debug, Default)]
pub struct KeysExist {
    exist: AtomicBool,
    none_seen_at: std::sync::Mutex<Option<std::time::Instant>>,
}

/// How long "no key exists" is believed before the database is asked again.
const NONE_FOR: std::time::Duration = std::time::Duration::from_secs(1);

impl Store {
    pub async fn create_key(&self, key: NewKey) -> Result<KeyInfo, AppError> {
        let json = |v: &[String]| serde_json::to_string(v).unwrap_or_else(|_| "[]".into());
        let model = api_key::ActiveModel {
            name: Set(key.name),
            role: Set(key.role.as_str().to_owned()),
            prefix: Set(key.prefix),
            secret_sha256: Set(key.secret_sha256),
            waba_numbers: Set(json(&key.scope.waba_numbers)),
            agents: Set(json(&key.scope.agents)),
            created_at: Set(Utc::now()),
            expires_at: Set(key.expires_at),
            revoked_at: Set(None),
            last_used_at: Set(None),
            ..Default::default()
        }
        .insert(&self.writer)
        .await
        .map_err(db_error)?;
        info(model)
    }

    pub async fn list_keys(&self) -> Result<Vec<KeyInfo>, AppError> {
        api_key::Entity::find()
            .order_by_asc(api_key::Column::Id)
            .all(&self.db)
            .await
            .map_err(db_error)?
            .into_iter()
            .map(info)
            .collect()
    }

    /// Revokes key `id` (effective at once: every request looks its key up). `false` when
    /// there is no such key or it was already revoked.
    pub async fn revoke_key(&self, id: i64) -> Result<bool, AppError> {
        let revoked = api_key::Entity::update_many()
            .col_expr(api_key::Column::RevokedAt, Utc::now().into())
            .filter(api_key::Column::Id.eq(id))
            .filter(api_key::Column::RevokedAt.is_null())
            .exec(&self.writer)
            .await
            .map_err(db_error)?;
        Ok(revoked.rows_affected == 1)
    }

    /// The key whose public prefix is `prefix`, with its stored hash, to compare.
    pub async fn key_by_prefix(&self, prefix: &str) -> Result<Option<(KeyInfo, String)>, AppError> {
        let found = api_key::Entity::find()
            .filter(api_key::Column::Prefix.eq(prefix))
            .one(&self.db)
            .await
            .map_err(db_error)?;
        found
            .map(|m| {
                let hash = m.secret_sha256.clone();
                info(m).map(|i| (i, hash))
            })
            .transpose()
    }

    /// Key `id`, if there is one.
    pub async fn key_by_id(&self, id: i64) -> Result<Option<KeyInfo>, AppError> {
        api_key::Entity::find_by_id(id)
            .one(&self.db)
            .await
            .map_err(db_error)?
            .map(info)
            .transpose()
    }

    /// Records that key `id` was used (the caller limits how often).
    pub async fn touch_key(&self, id: i64, at: DateTime<Utc>) -> Result<(), AppError> {
        api_key::Entity::update_many()
            .col_expr(api_key::Column::LastUsedAt, at.into())
            .filter(api_key::Column::Id.eq(id))
            .exec(&self.writer)
            .await
            .map_err(db_error)?;
        Ok(())
    }

    /// Whether any key exists (remembered once true).
    pub async fn keys_exist(&self, known: &KeysExist) -> Result<bool, AppError> {
        if known.exist.load(Ordering::Relaxed) {
            return Ok(true);
        }
        let seen = *known.none_seen_at.lock().unwrap_or_else(|e| e.into_inner());
        if seen.is_some_and(|at| at.elapsed() < NONE_FOR) {
            return Ok(false);
        }
        let exist = api_key::Entity::find()
            .count(&self.db)
            .await
            .map_err(db_error)?
            > 0;
        if exist {
            known.exist.store(true, Ordering::Relaxed);
        } else {
            *known.none_seen_at.lock().unwrap_or_else(|e| e.into_inner()) =
                Some(std::time::Instant::now());
        }
        Ok(exist)
    }
}
