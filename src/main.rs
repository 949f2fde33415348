//! `dialerd` command line: parses flags, loads settings, sets up logging, and wires the library.

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use dialerd::campaign::check::check_file;
use dialerd::engine::{Daemon, RunOptions};
use dialerd::settings::{LogFormat, Settings};
use dialerd::store::Store;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "dialerd",
    version,
    about = "Batch outbound call campaigns for AI voice agents"
)]
struct Cli {
    /// Settings file (default /etc/dialerd/dialerd.toml when present).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Log format: human or json. RUST_LOG sets the level (default info).
    #[arg(long, global = true, value_enum)]
    log_format: Option<LogFormat>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the campaigns in a folder until SIGTERM/SIGINT (or until idle).
    Run {
        /// Folder of campaign files (*.toml).
        #[arg(long)]
        campaigns: Option<PathBuf>,
        /// Database URL (sqlite://dialerd.db).
        #[arg(long)]
        database: Option<String>,
        /// Exit 0 once no campaign has a contact left to dial, now or later.
        #[arg(long)]
        until_idle: bool,
    },
    /// Validate campaign files and their contact lists without touching a database. Exits 1 if any is invalid.
    Check {
        /// Campaign files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// One JSON object per file.
        #[arg(long)]
        json: bool,
    },
    /// Show each campaign's contacts by status, attempts by outcome, calls in flight and rejected rows.
    Status {
        /// Database URL.
        #[arg(long)]
        database: Option<String>,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Write one CSV row per attempt of CAMPAIGN to stdout.
    Export {
        /// Campaign id (its file name without .toml).
        campaign: String,
        /// Database URL.
        #[arg(long)]
        database: Option<String>,
    },
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    match format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

fn main() -> ExitCode {
    match run_cli() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("dialerd: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run_cli() -> Result<ExitCode> {
    let cli = Cli::parse();
    let settings = Settings::load(cli.config.as_deref())?;
    init_logging(cli.log_format.unwrap_or(settings.log_format));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    match cli.command {
        Command::Check { files, json } => Ok(check(&files, json)),
        Command::Run {
            campaigns,
            database,
            until_idle,
        } => rt.block_on(async {
            let url = database.unwrap_or(settings.database_url);
            let store = Store::open(&url).await?;
            let opts = RunOptions {
                campaigns_dir: campaigns.unwrap_or(settings.campaigns_dir),
                until_idle,
                shutdown_grace: settings.shutdown_grace,
                poll_interval: settings.poll_interval,
            };
            tracing::info!(database = %url, campaigns = %opts.campaigns_dir.display(), "dialerd starting.");
            Daemon::new(store, opts).run(shutdown_signal()).await?;
            tracing::info!("dialerd stopped.");
            Ok(ExitCode::SUCCESS)
        }),
        Command::Status { database, json } => rt.block_on(async {
            let store = Store::open(&database.unwrap_or(settings.database_url)).await?;
            let status = store.campaign_status(None, 5).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&status)?);
            } else {
                print!("{}", dialerd::store::status_text(&status));
            }
            Ok(ExitCode::SUCCESS)
        }),
        Command::Export { campaign, database } => rt.block_on(async {
            let store = Store::open(&database.unwrap_or(settings.database_url)).await?;
            if !store.campaign_exists(&campaign).await? {
                anyhow::bail!("no campaign `{campaign}` in this database");
            }
            let rows = store.export_attempts(&campaign).await?;
            let mut w = csv::Writer::from_writer(std::io::stdout().lock());
            for r in rows {
                w.serialize(r)?;
            }
            w.flush()?;
            Ok(ExitCode::SUCCESS)
        }),
    }
}

/// Validates each file; prints a report (human or JSON lines); exit 1 when any file is invalid.
fn check(files: &[PathBuf], json: bool) -> ExitCode {
    let mut ok = true;
    for file in files {
        let report = check_file(file);
        ok &= report.valid;
        if json {
            match serde_json::to_string(&report) {
                Ok(s) => println!("{s}"),
                Err(e) => eprintln!("dialerd: {e}"),
            }
        } else {
            print!("{}", report.text());
        }
    }
    if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "Cannot listen for SIGTERM; only SIGINT stops the daemon.");
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
