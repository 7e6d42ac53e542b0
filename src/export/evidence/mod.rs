//! The evidence bundle: one zip holding a customer's, an agent's or a set of calls' records as
//! calltrail keeps them, that a recipient can check without trusting calltrail
//! (docs/exports.md, "The evidence bundle"). Made by `GET /export/evidence.zip` (reviewer and
//! admin keys) and `calltrail evidence`; checked by `calltrail verify-bundle`.
//!
//! - `manifest`: the layout's names, `manifest.json` and `SHA256SUMS`.
//! - `bundle`: what is read, and in which files, sent to the zip writer a piece at a time.
//! - `pack`: the zip writer, on a blocking thread, hashing each file as it goes.
//! - `verify`: `verify-bundle`, from the zip alone.
//! - `cli`: the two commands.
pub mod bundle;
pub mod cli;
pub mod manifest;
pub mod pack;
pub mod verify;

use axum::body::Body;
use axum::extract::{ConnectInfo, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, SecondsFormat, Utc};
use migration::chain::Chain;
use serde_json::{Map, Value};

use super::params::{EvidenceExport, Query};
use super::{ExportState, Peer, attachment, log};
use crate::domain::Viewer;
use crate::error::AppError;
use crate::store::chain::Head;
use manifest::{ChainHead, FORMAT, MadeBy, Manifest};

/// Parameters that may be given more than once (a list in the manifest's `filter`).
const REPEATABLE: [&str; 2] = ["pickedBy", "callId"];

/// The manifest's `filter`: the parameters as given, a repeatable one as a list.
pub fn filter_of(asked: &[(String, String)]) -> Map<String, Value> {
    let mut filter = Map::new();
    for (name, value) in asked {
        if REPEATABLE.contains(&name.as_str()) {
            let list = filter
                .entry(name.clone())
                .or_insert_with(|| Value::Array(Vec::new()));
            if let Value::Array(items) = list {
                items.push(Value::String(value.clone()));
            }
        } else {
            filter.insert(name.clone(), Value::String(value.clone()));
        }
    }
    filter
}

/// The manifest's heads.
pub fn heads_of(heads: &[(Chain, Option<Head>)]) -> Vec<ChainHead> {
    heads
        .iter()
        .map(|(chain, head)| ChainHead {
            chain: chain.table.to_owned(),
            seq: head.as_ref().map_or(0, |h| h.seq),
            link: head.as_ref().map(|h| h.link.clone()),
        })
        .collect()
}

/// A manifest without its files (the zip writer adds them).
pub fn manifest(
    made_at: DateTime<Utc>,
    made_by: MadeBy,
    export: &EvidenceExport,
    calls: usize,
    heads: &[(Chain, Option<Head>)],
) -> Manifest {
    Manifest {
        format: FORMAT.to_owned(),
        calltrail_version: env!("CARGO_PKG_VERSION").to_owned(),
        made_at: made_at.to_rfc3339_opts(SecondsFormat::Millis, true),
        made_by,
        filter: filter_of(&export.asked),
        calls: calls as u64,
        chain_heads: heads_of(heads),
        files: Vec::new(),
    }
}

fn made_by(viewer: &Viewer, access_log_id: Option<i64>) -> MadeBy {
    MadeBy {
        via: "http".into(),
        key_id: viewer.key_id,
        key_name: Some(viewer.key_name.clone()),
        role: Some(viewer.role.as_str().to_owned()),
        waba_numbers: viewer.scope.waba_numbers.clone(),
        agents: viewer.scope.agents.clone(),
        access_log_id,
    }
}

/// `GET /export/evidence.zip`: reviewer and admin keys (a scoped key's bundle holds its calls
/// only). The calls are chosen and the access-log row listing them is written before the first
/// byte; the chains' heads are read after it, so the bundle carries its own log row.
pub async fn evidence_zip(
    State(state): State<ExportState>,
    ConnectInfo(peer): Peer,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let answer = async {
        let viewer = state.gate.viewer(&headers).await?;
        viewer.require_identity("evidence.zip")?;
        let export = EvidenceExport::parse(&Query::parse(raw.as_deref()), state.archiving)?;
        let reader = state.store.reader(viewer.scope.clone());
        let call_ids = bundle::call_ids(&reader, &export.filter).await?;
        let mut logged: Vec<String> = call_ids.clone();
        logged.sort_unstable();
        logged.dedup();
        let access_log_id = log(
            &state,
            &viewer,
            peer,
            "evidence.zip",
            raw.as_deref(),
            logged,
        )
        .await?;
        let heads = state.store.chain_heads().await?;
        let made_at = Utc::now();
        let manifest = manifest(
            made_at,
            made_by(&viewer, access_log_id),
            &export,
            call_ids.len(),
            &heads,
        );
        let plan = bundle::Plan {
            reader,
            objects: state.objects.clone(),
            archiving: state.archiving,
            call_ids,
            manifest,
            made_at,
        };
        let name = format!("evidence-{}.zip", made_at.format("%Y%m%dT%H%M%SZ"));
        Ok::<_, AppError>(attachment(
            Body::from_stream(bundle::stream(plan)),
            "application/zip",
            &name,
        ))
    };
    answer.await.unwrap_or_else(IntoResponse::into_response)
}
