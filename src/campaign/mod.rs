//! Campaign files: the TOML model, validation into a runtime [`Campaign`], contact import
//! (CSV, E.164 normalisation as libphonenumber reads numbers), and the folder watcher.

pub mod analysis_file;
pub mod caller_id_file;
pub mod check;
pub mod compliance_file;
pub mod contact_columns;
pub mod contact_signals;
pub mod contact_zone;
pub mod contacts;
pub mod dnc;
pub mod file;
pub mod livekit_file;
pub mod ordered;
pub mod phone;
pub mod preflight;
pub mod progress;
pub mod rejects;
pub mod state_rules_file;
pub mod template;
pub mod twilio_file;
pub mod validate;
pub mod watch;

pub use validate::{Campaign, CampaignError, CampaignErrors, campaign_id, load_campaign, parse_campaign};
