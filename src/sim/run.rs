//! `dialerd simulate FILE`: a campaign file run in the simulator, with flags overriding its
//! slots, mode and seed. The report goes to stdout; wall-clock figures are kept apart so the
//! same seed prints the same bytes.

use super::des::{SimContact, SimOptions, default_start, simulate};
use super::model::CallModel;
use super::report::SimReport;
use crate::campaign::contact_signals;
use crate::campaign::contacts::read_contacts;
use crate::campaign::load_campaign;
use crate::core::PacingMode;
use serde::Serialize;
use std::ops::ControlFlow;
use std::path::Path;
use std::time::{Duration, Instant};

/// Overrides from the command line.
#[derive(Clone, Debug, Default)]
pub struct SimulateArgs {
    /// Agent slots instead of `max_concurrent`.
    pub slots: Option<u32>,
    /// Hours of virtual time from the first window opening (default 8).
    pub hours: Option<f64>,
    /// Days of virtual time (24 hours each, nights and weekends included) instead of `hours`.
    pub days: Option<u32>,
    /// Seed instead of `[trunk.sim] seed`.
    pub seed: Option<u64>,
    /// Pacing mode instead of `[dialer] mode`.
    pub mode: Option<PacingMode>,
    /// Dial the file's contacts (in their zones) instead of an unbounded pool.
    pub contacts: bool,
}

/// Errors of `dialerd simulate`.
#[derive(Debug, thiserror::Error)]
pub enum SimulateError {
    /// The campaign file is invalid.
    #[error("{0}")]
    Campaign(#[from] crate::campaign::CampaignErrors),
    /// The contact list could not be read.
    #[error("{0}")]
    Contacts(#[from] crate::campaign::contacts::ContactsError),
    /// The call model is invalid.
    #[error("{0}")]
    Model(#[from] super::model::ModelError),
}

/// A simulation's header and figures, as printed.
#[derive(Clone, Debug, Serialize)]
pub struct Simulation {
    /// Campaign id.
    pub campaign: String,
    /// Pacing mode.
    pub mode: &'static str,
    /// Agent slots.
    pub slots: u32,
    /// Hours of virtual time simulated.
    pub hours: f64,
    /// Seed.
    pub seed: u64,
    /// The figures.
    #[serde(flatten)]
    pub report: SimReport,
}

impl std::fmt::Display for Simulation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "campaign {}: mode {}, {} slots, {} h, seed {}",
            self.campaign, self.mode, self.slots, self.hours, self.seed
        )?;
        write!(f, "{}", self.report)
    }
}

/// Simulates the campaign at `path`. Returns the simulation and the wall time it took.
///
/// Errors: an invalid campaign file, an unreadable contact list (with `contacts`), an invalid model.
pub fn simulate_file(path: &Path, args: &SimulateArgs) -> Result<(Simulation, Duration), SimulateError> {
    let campaign = load_campaign(path)?;
    let mut rules = campaign.rules.clone();
    if let Some(slots) = args.slots {
        rules.slots = slots.max(1);
    }
    if let Some(mode) = args.mode {
        rules.pacing.mode = mode;
        // As validation does for the file's mode: the 72-hour hold binds every mode that can abandon.
        rules.limits.abandon_hold = mode.can_abandon().then_some(crate::core::compliance::ABANDON_HOLD);
    }
    let seed = args.seed.unwrap_or(campaign.sim.seed);
    let hours = args.hours.unwrap_or(8.0);
    let model = CallModel::new(&campaign.sim)?;
    let contacts = if args.contacts {
        let mut list = Vec::new();
        let cols = &campaign.contacts.columns;
        read_contacts(&campaign.contacts, crate::campaign::contacts::BATCH_ROWS, |batch| {
            list.extend(batch.rows.iter().map(|r| SimContact {
                zones: crate::core::zones::zones_or(&r.timezone, campaign.contacts.default_timezone),
                jurisdictions: contact_signals::jurisdictions(cols, &r.phone_e164, &r.custom_fields),
                consent: contact_signals::consent(cols, &r.custom_fields).map(|e| e.core()),
            }));
            ControlFlow::Continue(())
        })?;
        Some(list)
    } else {
        None
    };
    let opts = SimOptions {
        hours,
        days: args.days,
        seed,
        calls_per_second: campaign.dialer.calls_per_second,
        timezone: campaign.contacts.default_timezone,
        start: default_start(),
        contacts,
    };
    let t = Instant::now();
    let report = simulate(&rules, &model, &opts);
    let wall = t.elapsed();
    Ok((
        Simulation {
            campaign: campaign.id,
            mode: rules.pacing.mode.as_str(),
            slots: rules.slots,
            hours: opts.horizon_hours(),
            seed,
            report,
        },
        wall,
    ))
}
