//! Daemon settings: built-in defaults, then `/etc/dialerd/dialerd.toml` (or `--config FILE`),
//! then `DIALERD__*` environment variables (`DIALERD__DATABASE_URL=...`), then CLI flags.
//! Campaign behaviour lives in campaign files, never here; secrets will, and are redacted in Debug.

use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The settings file read when `--config` is not given; it may be absent.
pub const DEFAULT_CONFIG_FILE: &str = "/etc/dialerd/dialerd.toml";

/// Log line format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// One human-readable line per event.
    #[default]
    Human,
    /// One JSON object per event.
    Json,
}

/// Daemon settings.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Database URL (`sqlite://dialerd.db`, or a plain path).
    pub database_url: String,
    /// Folder of campaign files for `dialerd run`.
    pub campaigns_dir: PathBuf,
    /// Log format.
    pub log_format: LogFormat,
    /// How long calls in flight may take to end after SIGTERM.
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
    /// Campaign folder rescan interval, the fallback for missed file notifications.
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
}

/// Error loading settings: names the source and the key.
#[derive(Debug, thiserror::Error)]
#[error("settings: {0}")]
pub struct SettingsError(#[from] config::ConfigError);

impl Settings {
    /// Loads defaults, then `file` (or [`DEFAULT_CONFIG_FILE`] when it exists), then the environment.
    ///
    /// Errors: a named file that is missing or malformed, or a value of the wrong type.
    pub fn load(file: Option<&Path>) -> Result<Settings, SettingsError> {
        let builder = config::Config::builder()
            .set_default("database_url", "sqlite://dialerd.db")?
            .set_default("campaigns_dir", "campaigns")?
            .set_default("log_format", "human")?
            .set_default("shutdown_grace", "30s")?
            .set_default("poll_interval", "2s")?;
        let builder = match file {
            Some(f) => builder.add_source(config::File::from(f).required(true)),
            None => builder.add_source(config::File::with_name(DEFAULT_CONFIG_FILE).required(false)),
        };
        let cfg = builder
            .add_source(
                config::Environment::with_prefix("DIALERD")
                    .prefix_separator("__")
                    .separator("__"),
            )
            .build()?;
        Ok(cfg.try_deserialize()?)
    }
}
