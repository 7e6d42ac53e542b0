//! `calltrail evidence` (a bundle from the database and the archive `serve` uses, written to a
//! new file) and `calltrail verify-bundle` (a bundle checked from the zip alone).
use std::path::Path;

use chrono::Utc;

use super::bundle::{self, Plan};
use super::manifest::MadeBy;
use super::verify;
use crate::config::{EvidenceArgs, Settings};
use crate::domain::Scope;
use crate::error::AppError;
use crate::export::params::{EvidenceExport, Query};
use crate::recordings::Archive;
use crate::store::Store;

/// The flags as the parameters of `GET /export/evidence.zip` (one mapping, one parser).
fn parameters(args: &EvidenceArgs) -> Vec<(String, String)> {
    let mut pairs = Vec::new();
    let mut add = |name: &str, value: &str| pairs.push((name.to_owned(), value.to_owned()));
    if let Some(number) = &args.customer_number {
        add("customerNumber", number);
    }
    for agent in &args.agent {
        add("pickedBy", agent);
    }
    for call in &args.call {
        add("callId", call);
    }
    if let Some(from) = &args.from {
        add("endedAtFrom", from);
    }
    if let Some(to) = &args.to {
        add("endedAtTo", to);
    }
    pairs
}

/// A parameter's error, naming the flag it came from.
fn as_flag(e: AppError) -> AppError {
    match e {
        AppError::BadUserInput { argument, message } => {
            let flag = match argument.as_str() {
                "customerNumber" => "--customer-number",
                "pickedBy" => "--agent",
                "callId" => "--call",
                "endedAtFrom" => "--from",
                "endedAtTo" => "--to",
                other => other,
            };
            AppError::bad_input(flag, message)
        }
        other => other,
    }
}

/// `calltrail evidence`: every call the flags choose (all scopes: the database's operator
/// runs it), written to `--out` through a temporary file beside it, so a bundle that failed
/// part-way never takes the name.
pub async fn evidence(settings: &Settings, args: &EvidenceArgs) -> Result<(), AppError> {
    let out = args.out.as_path();
    if out.exists() {
        return Err(AppError::bad_input(
            "--out",
            format!("{} exists already: give a new file", out.display()),
        ));
    }
    let archive = Archive::open(settings)?;
    let export = EvidenceExport::parse(&Query::from_pairs(parameters(args)), archive.configured())
        .map_err(as_flag)?;
    let started = std::time::Instant::now();
    let store = Store::connect_with(&settings.database_url, settings.store_options()).await?;
    let written = write(&store, &archive, &export, out).await;
    store.close().await;
    let (calls, packed) = written?;
    println!(
        "wrote {}: {calls} calls, {} files, {} bytes in {:.1} s",
        out.display(),
        packed.files,
        packed.bytes,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

async fn write(
    store: &Store,
    archive: &Archive,
    export: &EvidenceExport,
    out: &Path,
) -> Result<(usize, super::pack::Packed), AppError> {
    store.expect_migrated().await?;
    let reader = store.reader(Scope::all());
    let call_ids = bundle::call_ids(&reader, &export.filter).await?;
    let heads = store.chain_heads().await?;
    let made_at = Utc::now();
    let made_by = MadeBy {
        via: "cli".into(),
        key_id: None,
        key_name: None,
        role: None,
        waba_numbers: Vec::new(),
        agents: Vec::new(),
        access_log_id: None,
    };
    let calls = call_ids.len();
    let manifest = super::manifest(made_at, made_by, export, calls, &heads);
    let dir = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let staged = tempfile::Builder::new()
        .prefix(".evidence-")
        .suffix(".zip.partial")
        .tempfile_in(dir)
        .map_err(|e| {
            AppError::bad_input("--out", format!("cannot write in {}: {e}", dir.display()))
        })?;
    let (file, staged_path) = staged.into_parts();
    let plan = Plan {
        reader,
        objects: archive.objects.clone(),
        archiving: archive.configured(),
        call_ids,
        manifest,
        made_at,
    };
    let packed = bundle::write_file(plan, file).await?;
    staged_path.persist_noclobber(out).map_err(|e| {
        AppError::bad_input(
            "--out",
            format!("cannot create {}: {}", out.display(), e.error),
        )
    })?;
    Ok((calls, packed))
}

/// `text` (a name or value from the zip, which anyone may have made) with its control
/// characters escaped, so that it cannot drive the terminal it is printed on.
fn printable(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_unicode().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// `calltrail verify-bundle FILE`: a line per check that held, a line per difference (the file
/// and why), the heads the bundle was made at; `Err` (a non-zero exit) on any difference.
pub async fn verify_bundle(file: &Path) -> Result<(), AppError> {
    let path = file.to_path_buf();
    let report = tokio::task::spawn_blocking(move || verify::verify(&path))
        .await
        .map_err(|e| AppError::Internal(format!("verify-bundle stopped: {e}")))?;
    for line in &report.checked {
        println!("ok       {line}");
    }
    for d in &report.differences {
        println!("DIFFERS  {}: {}", printable(&d.file), printable(&d.what));
    }
    for head in &report.heads {
        let chain = printable(&head.chain);
        match &head.link {
            Some(link) => println!("head     {chain} {} {}", head.seq, printable(link)),
            None => println!("head     {chain} 0 (empty)"),
        }
    }
    if let Some(m) = &report.manifest {
        println!(
            "bundle   made {} by calltrail {} ({}), {} calls",
            printable(&m.made_at),
            printable(&m.calltrail_version),
            printable(m.made_by.key_name.as_deref().unwrap_or(&m.made_by.via)),
            m.calls
        );
    }
    if report.holds() {
        println!("verified {}", file.display());
        Ok(())
    } else {
        Err(AppError::Internal(format!(
            "{} differs from what it says it holds ({} difference(s), above)",
            file.display(),
            report.differences.len()
        )))
    }
}
