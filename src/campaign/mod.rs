//! Campaign files: the TOML model, validation into a runtime [`Campaign`], contact import
//! (CSV, E.164 normalisation with `phonenumber`), and the folder watcher.

pub mod analysis_file;
pub mod check;
pub mod contacts;
pub mod file;
pub mod validate;
pub mod watch;

pub use validate::{Campaign, CampaignError, CampaignErrors, campaign_id, load_campaign, parse_campaign};
