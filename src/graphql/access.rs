//! Per request: who is reading ([`Viewer`], from `access::Gate`), what identity the answer
//! carried ([`AccessTrail`]), and the access-log entry written before the answer leaves.
use std::collections::BTreeSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use async_graphql::Context;

use super::{GqlResult, gql};
use crate::domain::{Call, Viewer};

/// What one request read: whether it touched call data at all, and the calls whose customer
/// identity (name, number, id, raw payload, recording, revisions) its answer carried.
#[derive(Debug, Default)]
pub struct AccessTrail {
    read: AtomicBool,
    identities: Mutex<BTreeSet<String>>,
}

impl AccessTrail {
    /// The request read calls or their statistics.
    pub fn read(&self) {
        self.read.store(true, Ordering::Relaxed);
    }

    pub fn was_read(&self) -> bool {
        self.read.load(Ordering::Relaxed)
    }

    fn identity_of(&self, call_id: &str) {
        self.identities
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(call_id.to_owned());
    }

    /// The calls whose identity was returned, sorted.
    pub fn call_ids(&self) -> Vec<String> {
        self.identities
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .cloned()
            .collect()
    }
}

/// The request's reader.
pub fn viewer<'a>(ctx: &Context<'a>) -> GqlResult<&'a Viewer> {
    ctx.data::<Viewer>()
}

/// Notes that the request reads calls (the access log records it).
pub fn reads(ctx: &Context<'_>) -> GqlResult<()> {
    ctx.data::<std::sync::Arc<AccessTrail>>()?.read();
    Ok(())
}

/// Checks that the reader may see `call`'s customer identity through `field` (FORBIDDEN on
/// this field otherwise), and records that the answer carries it.
pub fn identity(ctx: &Context<'_>, call: &Call, field: &str) -> GqlResult<()> {
    viewer(ctx)?
        .require_identity(&format!("Call.{field}"))
        .map_err(gql)?;
    ctx.data::<std::sync::Arc<AccessTrail>>()?
        .identity_of(&call.call_id);
    Ok(())
}
