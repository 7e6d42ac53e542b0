//! `calltrail recordings backfill` and `calltrail recordings verify`, and the re-check of the
//! archive as a library function (for `calltrail verify`).
use super::Objects;
use super::objects::Check;
use crate::config::{RecordingsCommand, Settings};
use crate::error::AppError;
use crate::store::Store;

/// What re-reading the archive found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VerifyReport {
    pub checked: u64,
    pub intact: u64,
    /// `(call_id, sha256)` of each archived recording whose object is gone.
    pub missing: Vec<(String, String)>,
    /// `(call_id, sha256 recorded, what the object now hashes to)`.
    pub mismatched: Vec<(String, String, String)>,
}

impl VerifyReport {
    pub fn is_clean(&self) -> bool {
        self.missing.is_empty() && self.mismatched.is_empty()
    }
}

/// Re-reads every archived recording's object and compares its SHA-256 and size with the
/// evidence row.
pub async fn verify_archive(store: &Store, objects: &Objects) -> Result<VerifyReport, AppError> {
    let mut report = VerifyReport::default();
    let mut after = 0;
    loop {
        let page = store.archived_recordings(after, 500).await?;
        let Some((last, _)) = page.last() else { break };
        after = *last;
        for (_, archived) in page {
            report.checked += 1;
            match objects.check(&archived.sha256, archived.bytes).await? {
                Check::Intact => report.intact += 1,
                Check::Missing => report.missing.push((archived.call_id, archived.sha256)),
                Check::Mismatch { sha256, bytes } => report.mismatched.push((
                    archived.call_id,
                    archived.sha256,
                    format!("{sha256} ({bytes} bytes)"),
                )),
            }
        }
    }
    Ok(report)
}

/// Runs `calltrail recordings ...`; `Err` (a non-zero exit) when verify finds damage.
pub async fn run(settings: &Settings, action: RecordingsCommand) -> Result<(), AppError> {
    let store = Store::connect_with(&settings.database_url, settings.store_options()).await?;
    store.migrate().await?;
    let result = match action {
        RecordingsCommand::Backfill => {
            let queued = store.backfill_recordings().await?;
            println!("queued {queued} recording(s) for archiving");
            if settings.doubletick_api_key.is_none() {
                println!(
                    "no DoubleTick key is configured: a server archives them once started with --doubletick-api-key"
                );
            }
            Ok(())
        }
        RecordingsCommand::Verify => {
            let objects = Objects::open(&settings.recordings)?;
            let report = verify_archive(&store, &objects).await?;
            for (call_id, sha256) in &report.missing {
                println!("MISSING  call {call_id}: object {sha256}");
            }
            for (call_id, recorded, found) in &report.mismatched {
                println!("MISMATCH call {call_id}: recorded {recorded}, object is {found}");
            }
            println!(
                "{} archived recording(s) checked in {}: {} intact, {} missing, {} mismatched",
                report.checked,
                objects.location,
                report.intact,
                report.missing.len(),
                report.mismatched.len()
            );
            if report.is_clean() {
                Ok(())
            } else {
                Err(AppError::Internal(
                    "the archive does not match its evidence".into(),
                ))
            }
        }
    };
    store.close().await;
    result
}
