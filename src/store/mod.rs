//! Persistence behind domain-named methods (claim due contacts, record an attempt, close an
//! attempt, import contacts). SQLite through sqlx today; the engine sees only [`Store`], so a
//! PostgreSQL implementation can follow without touching it.
//! Instants are stored as INTEGER milliseconds since the Unix epoch (UTC).

mod attempts;
mod batch;
mod caller_ids;
mod calls;
mod compliance;
mod contacts;
mod control;
mod conversations;
mod dial_errors;
mod dnc;
mod eta;
mod gauges;
mod hopper;
mod outbox;
mod pacing;
mod report;

use chrono::{DateTime, TimeZone, Utc};
use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use std::str::FromStr;
use std::time::Duration;

pub use attempts::{CampaignState, Claim, DueContact, OpenAttempt};
pub use batch::CallWrite;
pub use caller_ids::CallerIdSample;
pub use calls::PostCall;
pub use compliance::AbandonMinute;
pub use contacts::{ImportError, ImportOutcome, ImportRecord};
pub use control::{CampaignControl, ControlError, ControlRecord};
pub use conversations::{Conversation, ConversationFilter, Cursor, MAX_PAGE};
pub use dnc::{DncEntry, DncFileRecord, DncImport, DncImportStats, DncRow, DncScope};
pub use eta::{ETA_WINDOW_SECS, Eta};
pub use gauges::{CampaignGauges, OutboxGauges};
pub use outbox::{DeliveryLog, Job, JobResult, NewJob, jobs_text};
pub use pacing::{MeasuredAbandonment, PacingSnapshot, SpeechLatency};
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
///
/// Writes go through one connection, so writers in this process queue without ever meeting
/// SQLite's lock (whose busy handler sleeps for milliseconds at a time); reads have their own
/// connections, which WAL never blocks.
#[derive(Clone, Debug)]
pub struct Store {
    pool: SqlitePool,
    reader: SqlitePool,
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
        let open_err = |source| StoreError::Open {
            url: url.to_string(),
            source,
        };
        let opts = SqliteConnectOptions::from_str(&url_full)
            .map_err(open_err)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        // An in-memory database exists once per connection: one pool serves it all.
        let memory = url_full.contains(":memory:") || url_full.contains("mode=memory");
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(60))
            .connect_with(opts.clone())
            .await
            .map_err(open_err)?;
        MIGRATOR.run(&pool).await?;
        let reader = if memory {
            pool.clone()
        } else {
            SqlitePoolOptions::new()
                .max_connections(3)
                .acquire_timeout(Duration::from_secs(10))
                .connect_with(opts.create_if_missing(false))
                .await
                .map_err(open_err)?
        };
        Ok(Store { pool, reader })
    }

    /// The write connection (one), for sibling modules of the store. Reads that need to see a
    /// transaction's own writes use it too.
    pub(crate) fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// The read connections, for queries that write nothing.
    pub(crate) fn reader(&self) -> &SqlitePool {
        &self.reader
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
