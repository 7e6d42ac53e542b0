//! `calltrail verify`: the checks that what is stored still holds together, run one after the
//! other on one snapshot. Each check reports what it read and the first difference it found.
use migration::chain::{ACCESS_LOG, CHAINS, Chain, DELIVERIES};

use crate::error::AppError;
use crate::recordings::Objects;
use crate::recordings::cli::verify_archive;
use crate::store::Store;
use crate::store::chain::Head;
use crate::store::verify::{Checked, Difference, Snapshot};

/// One check of `calltrail verify`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Check {
    /// A log's hash chain, walked from its genesis.
    Chain(Chain),
    /// Every delivery body against its SHA-256.
    Bodies,
    /// Every call refolded from its events; its revisions replayed.
    Calls,
    /// Both rollup tiers aggregated again from the calls.
    Rollup,
    /// Every archived recording's object re-read and hashed.
    Recordings,
}

impl Check {
    pub fn name(self) -> String {
        match self {
            Check::Chain(chain) => format!("chain {}", chain.table),
            Check::Bodies => "delivery bodies".into(),
            Check::Calls => "calls against their events and revisions".into(),
            Check::Rollup => "rollup tiers against the calls".into(),
            Check::Recordings => "archived recordings against their SHA-256 and size".into(),
        }
    }
}

/// What `calltrail verify` is asked.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// A head recorded earlier (`--expect-head`): it must still be a link of a chain.
    pub expect_head: Option<String>,
    /// Do not re-hash archived recordings (`--skip-recordings`).
    pub skip_recordings: bool,
    /// Where the archived recordings are kept (`--recordings`); without it they are not
    /// re-hashed.
    pub recordings: Option<Objects>,
}

/// The checks `calltrail verify` runs, in order.
pub fn checks(options: &Options) -> Vec<Check> {
    let mut checks = vec![
        Check::Chain(DELIVERIES),
        Check::Chain(ACCESS_LOG),
        Check::Bodies,
        Check::Calls,
        Check::Rollup,
    ];
    if !options.skip_recordings && options.recordings.is_some() {
        checks.push(Check::Recordings);
    }
    checks
}

/// One check's result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    pub check: Check,
    pub checked: Checked,
}

/// Everything `calltrail verify` found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    pub findings: Vec<Finding>,
    /// The chains' heads as recomputed (each chain walked to its end without a difference).
    pub heads: Vec<(Chain, Option<Head>)>,
    /// `--expect-head` was given and is not a link of any chain.
    pub expected_head_missing: Option<Difference>,
}

impl Report {
    /// Whether anything differs.
    pub fn differs(&self) -> bool {
        self.expected_head_missing.is_some()
            || self.findings.iter().any(|f| f.checked.difference.is_some())
    }
}

/// Runs every check of [`checks`] on one snapshot of `store`; `progress` hears each as it ends.
pub async fn verify(
    store: &Store,
    options: &Options,
    mut progress: impl FnMut(&Finding),
) -> Result<Report, AppError> {
    let snapshot = store.snapshot().await?;
    let expected = options.expect_head.as_deref().map(str::to_ascii_lowercase);
    let mut report = Report::default();
    let mut holds_expected = false;
    for check in checks(options) {
        let checked = run(
            store,
            options,
            &snapshot,
            check,
            expected.as_deref(),
            &mut report,
            &mut holds_expected,
        )
        .await?;
        let finding = Finding { check, checked };
        progress(&finding);
        report.findings.push(finding);
    }
    snapshot.close().await?;
    if let Some(hash) = expected
        && !holds_expected
    {
        report.expected_head_missing = Some(Difference {
            table: "chain_links".into(),
            id: hash,
            what: "the expected head is not a link of any chain".into(),
        });
    }
    Ok(report)
}

async fn run(
    store: &Store,
    options: &Options,
    snapshot: &Snapshot,
    check: Check,
    expected: Option<&str>,
    report: &mut Report,
    holds_expected: &mut bool,
) -> Result<Checked, AppError> {
    match check {
        Check::Chain(chain) => {
            let walked = snapshot.walk_chain(chain, expected).await?;
            *holds_expected |= walked.holds_expected;
            report.heads.push((chain, walked.head));
            Ok(walked.checked)
        }
        Check::Bodies => snapshot.bodies().await,
        Check::Calls => snapshot.calls().await,
        Check::Rollup => snapshot.rollup().await,
        Check::Recordings => match &options.recordings {
            None => Ok(Checked {
                rows: 0,
                difference: None,
            }),
            Some(objects) => {
                let found = verify_archive(store, objects).await?;
                let difference = found
                    .missing
                    .first()
                    .map(|(call_id, sha256)| Difference {
                        table: "recordings".into(),
                        id: call_id.clone(),
                        what: format!("the archived object {sha256} is missing"),
                    })
                    .or_else(|| {
                        found
                            .mismatched
                            .first()
                            .map(|(call_id, recorded, now)| Difference {
                                table: "recordings".into(),
                                id: call_id.clone(),
                                what: format!("archived as {recorded}, the object is now {now}"),
                            })
                    });
                Ok(Checked {
                    rows: found.checked,
                    difference,
                })
            }
        },
    }
}

/// The chains' heads as stored (`calltrail verify --head`), without walking them.
pub async fn heads(store: &Store) -> Result<Vec<(Chain, Option<Head>)>, AppError> {
    let snapshot = store.snapshot().await?;
    let heads = snapshot.heads(&CHAINS).await?;
    snapshot.close().await?;
    Ok(heads)
}
