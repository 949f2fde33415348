//! `dialerd` command line: parses flags, loads settings, sets up logging, and wires the library.

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use dialerd::campaign::check::check_file;
use dialerd::settings::{LogFormat, Settings};
use dialerd::store::{CampaignControl, DncScope, Store};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::LazyLock;

mod control_cmd;
mod wiring;

/// `dialerd --version`: the release and the libphonenumber metadata that reads every number.
static VERSION: LazyLock<String> = LazyLock::new(|| {
    format!(
        "{} (libphonenumber metadata {})",
        env!("CARGO_PKG_VERSION"),
        dialerd::campaign::phone::LIBPHONENUMBER_METADATA
    )
});

#[derive(Parser)]
#[command(
    name = "dialerd",
    version = VERSION.as_str(),
    about = "Batch outbound call campaigns for AI voice agents"
)]
struct Cli {
    /// Settings file (default /etc/dialerd/dialerd.toml when present).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Log format: human, json or journald (default: journald under systemd, else human).
    /// RUST_LOG sets the level (default info).
    #[arg(long, global = true, value_enum)]
    log_format: Option<LogFormat>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Simulate a campaign file in virtual time and print what it would do.
    Simulate {
        /// Campaign file.
        file: PathBuf,
        /// Agent slots (default: the file's max_concurrent).
        #[arg(long)]
        slots: Option<u32>,
        /// Hours of dialing to simulate (default 8).
        #[arg(long)]
        hours: Option<f64>,
        /// Days to simulate instead (24 h each; the window skips nights and weekends).
        #[arg(long)]
        days: Option<u32>,
        /// RNG seed (default: the file's [trunk.sim] seed).
        #[arg(long)]
        seed: Option<u64>,
        /// Pacing mode: progressive, ratio, predictive, vicidial-adaptive.
        #[arg(long)]
        mode: Option<dialerd::core::PacingMode>,
        /// Dial the file's contacts instead of an unbounded pool.
        #[arg(long)]
        contacts: bool,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Benchmarks. `bench pacing`: every pacing mode over the slots × answer-rate × talk-time grid.
    /// `bench compliance`: predictive pacing over the same cells for 30 days under the abandonment cap.
    Bench {
        /// What to benchmark: `pacing` or `compliance`.
        #[arg(value_parser = ["pacing", "compliance"])]
        what: String,
        /// Seeds per cell (default 5 for pacing, 1 for compliance).
        #[arg(long)]
        seeds: Option<u64>,
        /// Hours per simulated day (pacing).
        #[arg(long, default_value_t = 8.0)]
        hours: f64,
        /// Days per run (compliance).
        #[arg(long, default_value_t = 30)]
        days: u32,
        /// Also run every cell under `us_tsr` alone (compliance).
        #[arg(long)]
        tsr_too: bool,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
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
    /// For every contact of a campaign's list, without a database: may it be dialled at TIME, every
    /// rule that stops it, and when it next may be; then counts by reason and a week's histogram.
    Preflight {
        /// The campaign file.
        file: PathBuf,
        /// The instant to check (RFC 3339, e.g. 2026-12-07T15:00:00Z); default now.
        #[arg(long, value_name = "TIME")]
        at: Option<String>,
        /// One CSV row per contact on stdout instead of the summary.
        #[arg(long)]
        csv: bool,
    },
    /// Validate campaign files and their contact lists without touching a database. Exits 1 if any is invalid.
    Check {
        /// Campaign files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// One JSON object per file.
        #[arg(long)]
        json: bool,
        /// Also write every rejected contact row to this CSV (line,column,value,reason, then the
        /// row's own columns). One campaign file only.
        #[arg(long, value_name = "OUT.csv")]
        rejects: Option<PathBuf>,
    },
    /// Write to stdout, as CSV, every row CAMPAIGN's last contact import rejected: line,column,value,reason,
    /// then the row's own columns under the file's header, to fix and drop in again.
    Rejects {
        /// Campaign id (its file name without .toml).
        campaign: String,
        /// Database URL.
        #[arg(long)]
        database: Option<String>,
    },
    /// Pause CAMPAIGN: no new dial after this returns; calls in flight end. Survives restarts.
    Pause(control_cmd::ControlArgs),
    /// Resume a paused CAMPAIGN where it stopped.
    Resume(control_cmd::ControlArgs),
    /// Cancel CAMPAIGN for good: never dialled again; its contacts keep their history.
    Cancel(control_cmd::ControlArgs),
    /// Show each campaign's contacts by status, attempts by outcome, calls in flight and rejected rows.
    Status {
        /// Database URL.
        #[arg(long)]
        database: Option<String>,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Inspect and replay the outbox: post-call analysis and delivery jobs.
    Outbox {
        /// Database URL.
        #[arg(long, global = true)]
        database: Option<String>,
        #[command(subcommand)]
        action: OutboxAction,
    },
    /// Run a local webhook receiver: verifies X-Webhook-Signature with the daemon's webhook secret,
    /// logs one line per event and appends each verified body to --out (JSON Lines).
    Receive {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8787")]
        listen: std::net::SocketAddr,
        /// Append every verified body to this file, one JSON object per line.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Write one CSV row per attempt of CAMPAIGN to stdout.
    Export {
        /// Campaign id (its file name without .toml).
        campaign: String,
        /// Database URL.
        #[arg(long)]
        database: Option<String>,
    },
    /// Do-not-call lists: the global list, or a campaign's with --campaign.
    Dnc {
        /// Database URL.
        #[arg(long, global = true)]
        database: Option<String>,
        #[command(subcommand)]
        action: DncAction,
    },
}

#[derive(Subcommand)]
enum OutboxAction {
    /// List jobs, newest first, with state, attempts and last error.
    List {
        /// Only jobs in this state: pending, running, done or dead.
        #[arg(long)]
        state: Option<String>,
        /// At most this many jobs.
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// One JSON object per job.
        #[arg(long)]
        json: bool,
    },
    /// Replay dead jobs (the given ids, or every dead job): attempts restart, due now.
    Retry {
        /// Job ids; none means every dead job.
        ids: Vec<i64>,
    },
    /// Delete done (or dead) jobs last changed before --older-than ago.
    Purge {
        /// done or dead.
        #[arg(long, default_value = "done")]
        state: String,
        /// Age, humantime (7d, 12h, 0s).
        #[arg(long, default_value = "7d")]
        older_than: humantime::Duration,
    },
}

#[derive(Subcommand)]
enum DncAction {
    /// Put a number on the global list (or a campaign's). One already listed keeps its entry.
    Add {
        /// The number, in any common shape: `(415) 555-0101`, `+1 415 555 0101`.
        phone: String,
        /// The campaign's list (its id) instead of the global list.
        #[arg(long)]
        campaign: Option<String>,
        /// Why; stored with the entry.
        #[arg(long)]
        reason: Option<String>,
        /// Region for numbers written without +country (ISO code, default US).
        #[arg(long)]
        region: Option<String>,
    },
    /// Take a number off the global list (or a campaign's).
    Remove {
        /// The number, in any common shape.
        phone: String,
        /// The campaign's list (its id) instead of the global list.
        #[arg(long)]
        campaign: Option<String>,
        /// Region for numbers written without +country (ISO code, default US).
        #[arg(long)]
        region: Option<String>,
    },
    /// Import a CSV of numbers (column `phone`, else the first); bad rows are listed and skipped.
    Import {
        /// The CSV file. An unchanged file (same SHA-256) is skipped.
        file: PathBuf,
        /// The campaign's list (its id) instead of the global list.
        #[arg(long)]
        campaign: Option<String>,
        /// Region for numbers written without +country (ISO code, default US).
        #[arg(long)]
        region: Option<String>,
    },
    /// List entries, newest first, and the number of entries on each list.
    List {
        /// Only this campaign's list.
        #[arg(long)]
        campaign: Option<String>,
        /// Only the global list.
        #[arg(long, conflicts_with = "campaign")]
        global: bool,
        /// At most this many entries.
        #[arg(long, default_value_t = 100)]
        limit: u32,
        /// One JSON object per entry.
        #[arg(long)]
        json: bool,
    },
}

/// Logging: `--log-format`, else the settings' `log_format`, else the journal when systemd
/// started the process (`JOURNAL_STREAM`), else human lines on stderr.
fn init_logging(format: Option<LogFormat>) {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let filter = || {
        tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"))
    };
    let format = format.unwrap_or(if std::env::var_os("JOURNAL_STREAM").is_some() {
        LogFormat::Journald
    } else {
        LogFormat::Human
    });
    if format == LogFormat::Journald {
        // Fields without a prefix, so `campaign` is the journal field CAMPAIGN.
        match tracing_journald::layer() {
            Ok(layer) => {
                let layer = layer.with_field_prefix(None).with_syslog_identifier("dialerd".into());
                tracing_subscriber::registry().with(filter()).with(layer).init();
                return;
            }
            Err(e) => eprintln!("dialerd: the journal is not reachable ({e}); logging to stderr."),
        }
    }
    let filter = filter();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    match format {
        LogFormat::Json => builder.json().flatten_event(true).init(),
        LogFormat::Human | LogFormat::Journald => builder.init(),
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
    init_logging(cli.log_format.or(settings.log_format));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    match cli.command {
        Command::Check { files, json, rejects } => Ok(check(&files, json, rejects.as_deref())),
        Command::Preflight { file, at, csv } => {
            let at = match at {
                None => chrono::Utc::now(),
                Some(t) => chrono::DateTime::parse_from_rfc3339(&t)
                    .with_context(|| format!("--at `{t}` is not an RFC 3339 time like 2026-12-07T15:00:00Z"))?
                    .with_timezone(&chrono::Utc),
            };
            let report = dialerd::campaign::preflight::preflight(&file, at)?;
            if csv {
                report.write_csv(std::io::stdout().lock())?;
            } else {
                print!("{}", report.text());
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Pause(a) => rt.block_on(control_cmd::run(a, CampaignControl::Paused, &settings.database_url)),
        Command::Resume(a) => rt.block_on(control_cmd::run(a, CampaignControl::Running, &settings.database_url)),
        Command::Cancel(a) => rt.block_on(control_cmd::run(a, CampaignControl::Cancelled, &settings.database_url)),
        Command::Rejects { campaign, database } => rt.block_on(async {
            let store = Store::open(&database.unwrap_or(settings.database_url)).await?;
            let out = std::io::BufWriter::new(std::io::stdout().lock());
            dialerd::campaign::rejects::write_campaign_rejects(&store, &campaign, out, "stdout").await?;
            Ok(ExitCode::SUCCESS)
        }),
        Command::Simulate {
            file,
            slots,
            hours,
            days,
            seed,
            mode,
            contacts,
            json,
        } => {
            let args = dialerd::sim::run::SimulateArgs {
                slots,
                hours,
                days,
                seed,
                mode,
                contacts,
            };
            let (sim, wall) = dialerd::sim::run::simulate_file(&file, &args)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&sim)?);
            } else {
                print!("{sim}");
            }
            let secs = wall.as_secs_f64().max(1e-9);
            eprintln!(
                "wall time {:.3} s, {:.0} simulated events/s",
                secs,
                sim.report.events as f64 / secs
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench {
            what,
            seeds,
            days,
            tsr_too,
            json,
            ..
        } if what == "compliance" => {
            use dialerd::core::AbandonPolicy;
            use dialerd::sim::bench_compliance::{ComplianceOptions, bench_compliance, compliance_text};
            let mut policies = vec![AbandonPolicy::Both];
            if tsr_too {
                policies.push(AbandonPolicy::UsTsr);
            }
            let opts = ComplianceOptions {
                days,
                seeds: seeds.unwrap_or(1),
                policies,
                ..ComplianceOptions::default()
            };
            let runs = bench_compliance(&opts)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&runs)?);
            } else {
                print!("{}", compliance_text(&runs));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench {
            what: _,
            seeds,
            hours,
            json,
            ..
        } => {
            let results = dialerd::sim::bench::bench_pacing(seeds.unwrap_or(5), hours);
            if json {
                println!("{}", serde_json::to_string_pretty(&results)?);
            } else {
                print!("{}", dialerd::sim::bench::bench_text(&results));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Run {
            campaigns,
            database,
            until_idle,
        } => {
            let flags = wiring::RunFlags {
                config: cli.config.clone(),
                campaigns,
                database,
                until_idle,
            };
            rt.block_on(wiring::run(settings, flags))
        }
        Command::Status { database, json } => rt.block_on(async {
            let store = Store::open(&database.unwrap_or(settings.database_url)).await?;
            let now = chrono::Utc::now();
            let status = store.campaign_status(None, 5, now).await?;
            let leases = store.leases().await?;
            if json {
                // Each campaign's lease (owner, fencing token, expiry) beside its status.
                let mut value = serde_json::to_value(&status)?;
                if let Some(items) = value.as_array_mut() {
                    for item in items {
                        let id = item["id"].as_str().unwrap_or_default().to_string();
                        item["lease"] = serde_json::to_value(leases.iter().find(|l| l.campaign == id))?;
                    }
                }
                println!("{}", serde_json::to_string_pretty(&value)?);
            } else {
                print!("{}", dialerd::store::status_text(&status));
                print!(
                    "{}",
                    dialerd::store::leases::nodes_text(&store.nodes().await?, &leases, now)
                );
            }
            Ok(ExitCode::SUCCESS)
        }),
        Command::Outbox { database, action } => rt.block_on(async {
            let store = Store::open(&database.unwrap_or(settings.database_url)).await?;
            match action {
                OutboxAction::List { state, limit, json } => {
                    let jobs = store.list_jobs(state.as_deref(), limit).await?;
                    if json {
                        for j in &jobs {
                            println!("{}", serde_json::to_string(j)?);
                        }
                    } else {
                        print!("{}", dialerd::store::jobs_text(&jobs, &store.job_counts().await?));
                    }
                }
                OutboxAction::Retry { ids } => {
                    let n = store.retry_dead_jobs(&ids, chrono::Utc::now()).await?;
                    println!("{n} dead job(s) queued again; a running daemon delivers them.");
                }
                OutboxAction::Purge { state, older_than } => {
                    let before = chrono::Utc::now() - chrono::TimeDelta::from_std(*older_than)?;
                    let n = store.purge_jobs(&state, before).await?;
                    println!("{n} {state} job(s) purged.");
                }
            }
            Ok(ExitCode::SUCCESS)
        }),
        Command::Receive { listen, out } => rt.block_on(async {
            let secret = settings.webhook_secret.clone();
            let receiver = dialerd::analysis::receiver::Receiver::bind(listen, secret, out.as_deref()).await?;
            receiver.serve(wiring::shutdown_signal()).await?;
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
        Command::Dnc { database, action } => rt.block_on(dnc(&database.unwrap_or(settings.database_url), action)),
    }
}

/// `dialerd dnc`: edits, imports into and lists the do-not-call lists.
async fn dnc(url: &str, action: DncAction) -> Result<ExitCode> {
    use dialerd::campaign::dnc::{
        dnc_phone, import_dnc_file, import_text, list_text, region_for, scope_for, scope_label,
    };
    let store = Store::open(url).await?;
    let now = chrono::Utc::now();
    let (DncAction::Add { campaign, .. }
    | DncAction::Remove { campaign, .. }
    | DncAction::Import { campaign, .. }
    | DncAction::List { campaign, .. }) = &action;
    let scope = scope_for(campaign.as_deref())?;
    if let DncScope::Campaign(id) = &scope
        && !store.campaign_exists(id).await?
    {
        eprintln!("dialerd: note: no campaign `{id}` in this database (yet); its list applies once it runs.");
    }
    match action {
        DncAction::Add {
            phone, reason, region, ..
        } => {
            let e164 = dnc_phone(&phone, region_for(region.as_deref())?)?;
            if store.dnc_add(&scope, &e164, "cli", reason.as_deref(), now).await? {
                println!("{e164} added to the {} list.", scope_label(&scope));
            } else {
                println!(
                    "{e164} is already on the {} list; its entry is kept.",
                    scope_label(&scope)
                );
            }
        }
        DncAction::Remove { phone, region, .. } => {
            let e164 = dnc_phone(&phone, region_for(region.as_deref())?)?;
            if store.dnc_remove(&scope, &e164).await? {
                println!("{e164} removed from the {} list.", scope_label(&scope));
            } else {
                println!("{e164} was not on the {} list.", scope_label(&scope));
            }
        }
        DncAction::Import { file, region, .. } => {
            let outcome = import_dnc_file(&store, &file, &scope, region_for(region.as_deref())?, now).await?;
            print!("{}", import_text(&file, &scope, &outcome));
        }
        DncAction::List {
            campaign,
            global,
            limit,
            json,
        } => {
            let filter = (campaign.is_some() || global).then_some(&scope);
            let entries = store.dnc_list(filter, limit).await?;
            if json {
                for e in &entries {
                    println!("{}", serde_json::to_string(e)?);
                }
            } else {
                print!("{}", list_text(&entries, &store.dnc_counts().await?));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Validates each file; prints a report (human or JSON lines); exit 1 when any file is invalid
/// or its rejects (`--rejects`, one file only) could not be written.
fn check(files: &[PathBuf], json: bool, rejects: Option<&std::path::Path>) -> ExitCode {
    if rejects.is_some() && files.len() != 1 {
        eprintln!("dialerd: --rejects takes one campaign file, not {}", files.len());
        return ExitCode::FAILURE;
    }
    let mut ok = true;
    for file in files {
        let report = match rejects {
            None => check_file(file),
            Some(out) => match dialerd::campaign::rejects::check_file_with_rejects(file, out) {
                Ok((report, _)) => report,
                Err(e) => {
                    eprintln!("dialerd: {e}");
                    ok = false;
                    continue;
                }
            },
        };
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
