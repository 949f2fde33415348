//! `dialerd pause|resume|cancel CAMPAIGN` (binary only): stores the operator's control with
//! `cli:<user>` and the time. The claim refuses every contact of a campaign not `running` from
//! the moment this commits, so no dial starts after the command returns; a running daemon's
//! runner hears of it at its next folder scan (`poll_interval`).

use anyhow::Result;
use dialerd::store::{CampaignControl, Store};
use std::process::ExitCode;

/// The arguments every control command takes.
#[derive(clap::Args)]
pub struct ControlArgs {
    /// Campaign id (its file name without .toml).
    pub campaign: String,
    /// Database URL.
    #[arg(long)]
    pub database: Option<String>,
}

/// Sets `args.campaign`'s control to `to` and prints what is stored now.
///
/// Errors: the database cannot be opened, the campaign is unknown, or it is cancelled.
pub async fn run(args: ControlArgs, to: CampaignControl, default_db: &str) -> Result<ExitCode> {
    let store = Store::open(args.database.as_deref().unwrap_or(default_db)).await?;
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown".into());
    let by = format!("cli:{user}");
    let rec = store
        .set_campaign_control(&args.campaign, to, &by, chrono::Utc::now())
        .await?;
    let who = rec.by.as_deref().unwrap_or("-");
    let at = rec.at.map(|t| t.to_rfc3339()).unwrap_or_default();
    println!(
        "campaign {}: {} (by {who} at {at})",
        args.campaign,
        rec.control.as_str()
    );
    Ok(ExitCode::SUCCESS)
}
