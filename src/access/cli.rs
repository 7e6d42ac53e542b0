//! `calltrail keys create|list|revoke`: the same `DATABASE_URL` rules as `serve`.
use chrono::{Duration, Utc};

use super::mint;
use crate::config::{KeysCommand, Settings};
use crate::domain::{Role, Scope};
use crate::error::AppError;
use crate::store::Store;
use crate::store::keys::NewKey;

pub async fn run(settings: &Settings, action: KeysCommand) -> Result<(), AppError> {
    let store = Store::connect_with(&settings.database_url, settings.store_options()).await?;
    if settings.no_migrate {
        store.expect_migrated().await?;
    } else {
        store.migrate().await?;
    }
    let result = match action {
        KeysCommand::Create {
            name,
            role,
            waba,
            agent,
            expires_in_days,
        } => create(&store, name, &role, waba, agent, expires_in_days).await,
        KeysCommand::List => list(&store).await,
        KeysCommand::Revoke { id } => revoke(&store, id).await,
    };
    store.close().await;
    result
}

async fn create(
    store: &Store,
    name: String,
    role: &str,
    waba_numbers: Vec<String>,
    agents: Vec<String>,
    expires_in_days: Option<u32>,
) -> Result<(), AppError> {
    let role = Role::parse(role)
        .ok_or_else(|| AppError::bad_input("role", "expected admin, reviewer or analyst"))?;
    if name.trim().is_empty() {
        return Err(AppError::bad_input("name", "must not be empty"));
    }
    let minted = mint();
    let key = store
        .create_key(NewKey {
            name,
            role,
            scope: Scope {
                waba_numbers,
                agents,
            },
            expires_at: expires_in_days.map(|d| Utc::now() + Duration::days(i64::from(d))),
            prefix: minted.prefix,
            secret_sha256: minted.secret_sha256,
        })
        .await?;
    println!(
        "created key {} ({}, {}, {}); it is shown once, here:",
        key.id,
        key.name,
        key.role.as_str(),
        scope_text(&key.scope)
    );
    println!("{}", minted.key);
    Ok(())
}

fn scope_text(scope: &Scope) -> String {
    if scope.is_all() {
        return "every call".into();
    }
    let mut parts = Vec::new();
    if !scope.waba_numbers.is_empty() {
        parts.push(format!("waba {}", scope.waba_numbers.join(",")));
    }
    if !scope.agents.is_empty() {
        parts.push(format!("agents {}", scope.agents.join(",")));
    }
    parts.join("; ")
}

async fn list(store: &Store) -> Result<(), AppError> {
    let when = |t: Option<chrono::DateTime<Utc>>| {
        t.map_or("-".to_owned(), |t| {
            t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
        })
    };
    println!("id\tname\trole\tscope\tprefix\tcreated\tlast used\texpires\trevoked");
    for key in store.list_keys().await? {
        println!(
            "{}\t{}\t{}\t{}\tct_{}\t{}\t{}\t{}\t{}",
            key.id,
            key.name,
            key.role.as_str(),
            scope_text(&key.scope),
            key.prefix,
            when(Some(key.created_at)),
            when(key.last_used_at),
            when(key.expires_at),
            when(key.revoked_at),
        );
    }
    Ok(())
}

async fn revoke(store: &Store, id: i64) -> Result<(), AppError> {
    if store.revoke_key(id).await? {
        println!("revoked key {id}");
        Ok(())
    } else {
        Err(AppError::bad_input(
            "id",
            format!("no live key {id} (unknown or already revoked)"),
        ))
    }
}
