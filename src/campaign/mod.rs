//! Campaign files: the TOML model, validation into a runtime [`Campaign`], contact import
//! (CSV, E.164 normalisation with `phonenumber`), and the folder watcher.

pub mod analysis_file;
pub mod check;
pub mod contact_zone;
pub mod contacts;
pub mod dnc;
pub mod file;
pub mod phone;
pub mod validate;
pub mod watch;

pub use validate::{Campaign, CampaignError, CampaignErrors, campaign_id, load_campaign, parse_campaign};
