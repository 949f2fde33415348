//! dialerd: batch outbound call campaigns for AI voice agents.
//!
//! Module map:
//! - [`core`]: pure decisions (pacing, windows, policy, call state machine). No I/O.
//! - [`call`]: the call vocabulary shared by trunks, store, simulator and analysis.
//! - [`campaign`]: campaign files, validation, contact import, folder watching.
//! - [`store`]: persistence (sqlx, SQLite) behind domain-named methods.
//! - [`trunk`]: the `Trunk` trait and its adapters (sim, twilio).
//! - [`sim`]: the statistical call model.
//! - [`engine`]: the daemon driver (campaign runners, watcher, shutdown).
//! - [`settings`]: daemon settings (defaults → file → environment).
//! - [`api`]: the HTTP listener (health, trunk callbacks), one module per surface.
//! - [`analysis`]: post-call pipeline fed by the outbox (stages, signed webhooks, CRM, follow-ups).

pub mod analysis;
pub mod api;
pub mod call;
pub mod campaign;
pub mod core;
pub mod engine;
pub mod settings;
pub mod sim;
pub mod store;
pub mod telemetry;
pub mod trunk;
