//! Persistence behind domain-named methods (claim due contacts, record an attempt, close an
//! attempt, import contacts). SQLite through sqlx today; the engine sees only [`Store`], so a
//! PostgreSQL implementation can follow without touching it.
//! Instants are stored as INTEGER milliseconds since the Unix epoch (UTC).

mod attempts;
mod calls;
mod compliance;
mod contacts;
mod dnc;
mod outbox;
mod pacing;
mod report;

use chrono::{DateTime, TimeZone, Utc};
use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use std::str::FromStr;
use std::time::Duration;

pub use attempts::{CampaignState, DueContact, OpenAttempt};
pub use calls::PostCall;
pub use compliance::AbandonMinute;
pub use contacts::{ImportError, ImportOutcome, ImportRecord};
pub use dnc::{DncEntry, DncFileRecord, DncImport, DncImportStats, DncRow, DncScope};
pub use outbox::{DeliveryLog, Job, JobResult, NewJob, jobs_text};
pub use pacing::{MeasuredAbandonment, PacingSnapshot};
pub use report::{CampaignStatus, ExportRow, RejectedRow, status_text};

/// Errors from the store. `Unavailable` is worth retrying; the others are not.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database URL could not be parsed or opened.
    #[error("cannot open database `{url}`: {source}")]
    Open {
        /// The URL as given (no secrets: SQLite URLs are paths).
        url: String,
        /// The driver's error.
        source: sqlx::Error,
    },
    /// A migration failed.
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A query failed (locked, I/O, constraint).
    #[error("database query failed: {0}")]
    Query(#[from] sqlx::Error),
    /// A stored value did not decode (corrupt or from a newer version).
    #[error("stored value is invalid: {0}")]
    Corrupt(String),
}

/// Handle on the database; cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    pool: SqlitePool,
}

/// Migrations under `migrations/sqlite/`, embedded in the binary.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

impl Store {
    /// Opens (creating if missing) the SQLite database at `url` (`sqlite://path` or a plain path),
    /// in WAL mode with `synchronous=NORMAL`, and runs the embedded migrations.
    ///
    /// Errors: [`StoreError::Open`] for a bad URL or unreadable file, [`StoreError::Migrate`].
    pub async fn open(url: &str) -> Result<Store, StoreError> {
        let url_full = if url.starts_with("sqlite:") {
            url.to_string()
        } else {
            format!("sqlite://{url}")
        };
        let opts = SqliteConnectOptions::from_str(&url_full)
            .map_err(|source| StoreError::Open {
                url: url.to_string(),
                source,
            })?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(opts)
            .await
            .map_err(|source| StoreError::Open {
                url: url.to_string(),
                source,
            })?;
        MIGRATOR.run(&pool).await?;
        Ok(Store { pool })
    }

    /// The underlying pool, for sibling modules of the store.
    pub(crate) fn pool(&self) -> &SqlitePool {
        &self.pool
    }
}

/// Milliseconds since the Unix epoch, the storage form of an instant.
pub(crate) fn to_ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

/// Inverse of [`to_ms`]; out-of-range values map to the epoch.
pub(crate) fn from_ms(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}
