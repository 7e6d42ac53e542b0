//! Who is asking: the API key a reader presents (`Authorization: Bearer <key>`), checked once
//! per request into a [`Viewer`] (role and scope), and the keys themselves (made, listed,
//! revoked by `calltrail keys`).
//!
//! A key reads `ct_<prefix>_<secret>`: the prefix is public (listings and logs show it) and
//! finds the key's row; only a SHA-256 of the whole key is stored, compared in constant time.
//! While no key exists, reads are open on a loopback address only (`calltrail serve` refuses
//! any other address then); once one exists, every read needs one.
pub mod cli;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use chrono::Utc;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::domain::Viewer;
use crate::error::AppError;
use crate::store::Store;
use crate::store::keys::KeysExist;

/// How often a key's `last used` time is written, at most, per instance.
const TOUCH_EVERY: Duration = Duration::from_secs(60);

/// A new key's text and what is stored of it.
pub struct MintedKey {
    /// `ct_<prefix>_<secret>`: shown once, never stored.
    pub key: String,
    pub prefix: String,
    pub secret_sha256: String,
}

/// A fresh random key.
pub fn mint() -> MintedKey {
    let mut bytes = [0u8; 24];
    rand::Rng::fill(&mut rand::rng(), &mut bytes[..]);
    let prefix = hex::encode(&bytes[..4]);
    let secret = hex::encode(&bytes[4..]);
    let key = format!("ct_{prefix}_{secret}");
    let secret_sha256 = hex::encode(Sha256::digest(key.as_bytes()));
    MintedKey {
        key,
        prefix,
        secret_sha256,
    }
}

/// The public prefix of a presented key, if it is shaped like one.
fn prefix_of(key: &str) -> Option<&str> {
    let rest = key.strip_prefix("ct_")?;
    let (prefix, secret) = rest.split_once('_')?;
    (prefix.len() == 8 && !secret.is_empty()).then_some(prefix)
}

/// Decides who each read request is.
#[derive(Clone, Debug)]
pub struct Gate {
    store: Store,
    /// The server listens on a loopback address (reads may be open while no key exists).
    loopback: bool,
    keys_exist: Arc<KeysExist>,
    touched: Arc<Mutex<HashMap<i64, Instant>>>,
}

impl Gate {
    pub fn new(store: Store, loopback: bool) -> Gate {
        Gate {
            store,
            loopback,
            keys_exist: Arc::default(),
            touched: Arc::default(),
        }
    }

    /// Whether any API key exists.
    pub async fn keys_exist(&self) -> Result<bool, AppError> {
        self.store.keys_exist(&self.keys_exist).await
    }

    /// The reader of a request: its key's role and scope; the open-loopback reader while no key
    /// exists on a loopback address; 401 otherwise (missing, unknown, revoked, expired).
    pub async fn viewer(&self, headers: &HeaderMap) -> Result<Viewer, AppError> {
        let presented = headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                let (scheme, key) = v.trim().split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| key.trim())
            });
        let Some(presented) = presented else {
            if self.loopback && !self.keys_exist().await? {
                return Ok(Viewer::open_loopback());
            }
            return Err(AppError::Unauthenticated);
        };
        self.viewer_of_key(presented).await
    }

    /// The reader holding the key `presented` (as typed into the desk's sign-in form, or sent
    /// as a Bearer key); 401 when it is not a live key.
    pub async fn viewer_of_key(&self, presented: &str) -> Result<Viewer, AppError> {
        let digest = Sha256::digest(presented.as_bytes());
        let Some(prefix) = prefix_of(presented) else {
            return Err(AppError::Unauthenticated);
        };
        let Some((key, stored)) = self.store.key_by_prefix(prefix).await? else {
            return Err(AppError::Unauthenticated);
        };
        let stored = hex::decode(stored).unwrap_or_default();
        let matches: bool = digest[..].ct_eq(&stored[..]).into();
        let now = Utc::now();
        if !matches || !key.is_live(now) {
            return Err(AppError::Unauthenticated);
        }
        self.touch(key.id);
        Ok(Viewer {
            key_id: Some(key.id),
            key_name: key.name,
            role: key.role,
            scope: key.scope,
        })
    }

    /// The reader of a desk session opened with key `id`: 401 once the key is revoked,
    /// expired or gone.
    pub async fn viewer_of_key_id(&self, id: i64) -> Result<Viewer, AppError> {
        let Some(key) = self.store.key_by_id(id).await? else {
            return Err(AppError::Unauthenticated);
        };
        if !key.is_live(Utc::now()) {
            return Err(AppError::Unauthenticated);
        }
        self.touch(key.id);
        Ok(Viewer {
            key_id: Some(key.id),
            key_name: key.name,
            role: key.role,
            scope: key.scope,
        })
    }

    /// Records the key's use, at most every [`TOUCH_EVERY`], without making the read wait.
    fn touch(&self, id: i64) {
        let due = {
            let mut touched = self.touched.lock().unwrap_or_else(|e| e.into_inner());
            let due = touched
                .get(&id)
                .is_none_or(|last| last.elapsed() >= TOUCH_EVERY);
            if due {
                touched.insert(id, Instant::now());
            }
            due
        };
        if due {
            let store = self.store.clone();
            tokio::spawn(async move {
                if let Err(e) = store.touch_key(id, Utc::now()).await {
                    tracing::debug!(error = %e, key = id, "could not record a key's last use");
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_minted_key_has_its_prefix_and_only_its_hash_is_kept() {
        let minted = mint();
        assert_eq!(prefix_of(&minted.key), Some(minted.prefix.as_str()));
        assert_eq!(minted.key.len(), "ct_".len() + 8 + 1 + 40);
        assert_eq!(
            minted.secret_sha256,
            hex::encode(Sha256::digest(minted.key.as_bytes()))
        );
        assert_ne!(mint().key, minted.key);
        assert_eq!(prefix_of("ct_short_x"), None);
        assert_eq!(prefix_of("Bearer"), None);
    }
}
