//! The `calltrail` binary: parse the command line, start tracing, run.
use clap::Parser;

use calltrail::config::{Cli, Command, DbCommand};
use calltrail::{app, graphql, replay, store::Store};

/// mimalloc for small blocks, the system allocator for large ones (see the module).
#[global_allocator]
static ALLOCATOR: calltrail::allocator::SizeSplit = calltrail::allocator::SizeSplit;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    calltrail::ops::logs::init(cli.settings.log_format);
    let result = match cli.command.unwrap_or(Command::Serve) {
        Command::Schema => {
            print!("{}", graphql::sdl());
            Ok(())
        }
        Command::Migrate => match Store::connect(&cli.settings.database_url).await {
            Ok(store) => store.migrate().await,
            Err(e) => Err(e),
        },
        Command::Replay { rejected } => run_replay(&cli.settings.database_url, rejected).await,
        Command::Seed {
            calls,
            seed,
            without_events,
        } => run_seed(&cli.settings.database_url, calls, seed, without_events).await,
        Command::Serve => serve(&cli.settings).await,
        Command::Keys { action } => calltrail::access::cli::run(&cli.settings, action).await,
        Command::Backup { to } => run_backup(&cli.settings.database_url, &to).await,
        Command::Verify {
            head,
            expect_head,
            skip_recordings,
        } => {
            let recordings = if skip_recordings {
                Ok(None)
            } else {
                calltrail::recordings::Objects::open(&cli.settings.recordings).map(Some)
            };
            match recordings {
                Err(e) => Err(e),
                Ok(recordings) => {
                    let options = calltrail::verify::Options {
                        expect_head,
                        skip_recordings,
                        recordings,
                    };
                    run_verify(&cli.settings.database_url, head, &options).await
                }
            }
        }
        Command::Db {
            action: DbCommand::GrantRuntime { role },
        } => match Store::connect(&cli.settings.database_url).await {
            Ok(store) => store.grant_runtime(&role).await.map(|()| {
                println!("granted {role} what `calltrail serve --no-migrate` needs");
            }),
            Err(e) => Err(e),
        },
        Command::Recordings { action } => {
            calltrail::recordings::cli::run(&cli.settings, action).await
        }
        Command::Evidence(args) => {
            calltrail::export::evidence::cli::evidence(&cli.settings, &args).await
        }
        Command::VerifyBundle { file } => {
            calltrail::export::evidence::cli::verify_bundle(&file).await
        }
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            let detail = match &e {
                calltrail::error::AppError::Internal(d)
                | calltrail::error::AppError::Unavailable(d) => d.clone(),
                other => other.to_string(),
            };
            eprintln!("calltrail: {detail}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn serve(settings: &calltrail::config::Settings) -> Result<(), calltrail::error::AppError> {
    let mut running = app::spawn(settings).await?;
    tracing::info!(addr = %running.addr, "calltrail listening; GraphiQL at http://{}/graphql", running.addr);
    let shutdown = running.take_shutdown();
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutting down");
        if let Some(tx) = shutdown {
            let _ = tx.send(());
        }
    });
    let report = running
        .wait()
        .await
        .map_err(|e| calltrail::error::AppError::Internal(e.to_string()))?;
    tracing::info!(
        connections_cut = report.connections_cut,
        tasks_unfinished = report.tasks_unfinished,
        "calltrail stopped"
    );
    Ok(())
}

async fn run_backup(
    database_url: &str,
    to: &std::path::Path,
) -> Result<(), calltrail::error::AppError> {
    if to.exists() {
        return Err(calltrail::error::AppError::bad_input(
            "to",
            format!("{} exists already: give a new file", to.display()),
        ));
    }
    let path = to.to_str().ok_or_else(|| {
        calltrail::error::AppError::bad_input("to", "the path must be valid UTF-8")
    })?;
    let store = Store::connect(database_url).await?;
    let started = std::time::Instant::now();
    let copied = store.backup_to(path).await;
    store.close().await;
    copied?;
    let bytes = std::fs::metadata(to).map(|m| m.len()).unwrap_or(0);
    println!(
        "backed up to {} ({bytes} bytes in {:.1} s)",
        to.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

async fn run_replay(database_url: &str, rejected: bool) -> Result<(), calltrail::error::AppError> {
    if !rejected {
        return Err(calltrail::error::AppError::bad_input(
            "replay",
            "say what to replay: `calltrail replay --rejected`",
        ));
    }
    let store = Store::connect(database_url).await?;
    store.migrate().await?;
    let report = replay::replay_rejected(&store).await?;
    for r in &report {
        println!(
            "delivery {}: {} {}",
            r.delivery_id,
            r.outcome,
            r.call_id.as_deref().unwrap_or("-")
        );
    }
    let still = report.iter().filter(|r| r.outcome == "rejected").count();
    println!("{} replayed, {} still rejected", report.len(), still);
    Ok(())
}

async fn run_seed(
    database_url: &str,
    calls: u64,
    seed: u64,
    without_events: bool,
) -> Result<(), calltrail::error::AppError> {
    let store = Store::connect(database_url).await?;
    store.migrate().await?;
    let started = std::time::Instant::now();
    let spec = calltrail::seed::SeedSpec {
        calls,
        seed,
        end: chrono::Utc::now(),
    };
    let report = store
        .seed(
            calls,
            calltrail::store::seed::BULK_LOAD_FROM,
            !without_events,
            calltrail::seed::generate(spec),
        )
        .await?;
    let phases: Vec<String> = report
        .phases
        .iter()
        .map(|(name, took)| format!("{name} {:.1} s", took.as_secs_f64()))
        .collect();
    println!(
        "seeded {} calls in {:.1} s ({})",
        report.calls,
        started.elapsed().as_secs_f64(),
        phases.join(", ")
    );
    Ok(())
}

/// `calltrail verify`: a line per check, then the heads; a difference is an error (exit 1).
async fn run_verify(
    database_url: &str,
    head_only: bool,
    options: &calltrail::verify::Options,
) -> Result<(), calltrail::error::AppError> {
    let store = Store::connect(database_url).await?;
    if head_only {
        for (chain, head) in calltrail::verify::heads(&store).await? {
            print_head(chain.table, head.as_ref());
        }
        return Ok(());
    }
    let started = std::time::Instant::now();
    let report = calltrail::verify::verify(&store, options, |finding| {
        let name = finding.check.name();
        let rows = finding.checked.rows;
        match &finding.checked.difference {
            None => println!("ok       {name}: {rows} rows"),
            Some(d) => println!(
                "DIFFERS  {name}: {} {}: {} (after {rows} rows)",
                d.table, d.id, d.what
            ),
        }
    })
    .await?;
    if let Some(d) = &report.expected_head_missing {
        println!("DIFFERS  expected head: {} {}: {}", d.table, d.id, d.what);
    } else if let Some(hash) = &options.expect_head {
        println!("ok       expected head {hash} is on the chain");
    }
    for (chain, head) in &report.heads {
        print_head(chain.table, head.as_ref());
    }
    println!("verified in {:.1} s", started.elapsed().as_secs_f64());
    if report.differs() {
        return Err(calltrail::error::AppError::Internal(
            "verify found a difference (above)".into(),
        ));
    }
    Ok(())
}

fn print_head(table: &str, head: Option<&calltrail::store::chain::Head>) {
    match head {
        Some(h) => println!("head     {table} {} {}", h.seq, h.link),
        None => println!("head     {table} 0 (empty)"),
    }
}
