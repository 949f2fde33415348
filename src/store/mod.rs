//! Persistence behind domain-named methods (claim due contacts, record an attempt, close an
//! attempt, import contacts), over two engines: SQLite (`sqlite://path` or a plain path, the
//! embedded default for one machine) and PostgreSQL (`postgres://…`, for several nodes sharing
//! the work). Each `store/<area>.rs` is the one place that defines what an engine must do for its
//! area: the types and the documented [`Store`] methods, each of which hands the call to the
//! engine's own implementation in `store/sqlite/<area>.rs` or `store/postgres/<area>.rs`, with its
//! own SQL and its own migrations (`migrations/sqlite/`, `migrations/postgres/`). Nothing outside
//! `src/store` sees an engine. Instants are stored as integer milliseconds since the Unix epoch
//! (UTC) on both.

/// Runs `method(args…)` on the store's engine: `on_engine!(self, claim(a, b))` awaits
/// `SqliteEngine::claim(a, b)` or `PgEngine::claim(a, b)`, so every area defines a method once and
/// each engine implements it under the same name and signature.
macro_rules! on_engine {
    ($store:ident, $method:ident ( $($arg:expr),* $(,)? )) => {
        match &$store.engine {
            $crate::store::Engine::Sqlite(e) => e.$method($($arg),*).await,
            $crate::store::Engine::Postgres(e) => e.$method($($arg),*).await,
        }
    };
}

mod postgres;
mod sqlite;

mod account_limits;
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
pub mod leases;
mod outbox;
mod pacing;
mod report;

use chrono::{DateTime, TimeZone, Utc};

pub use account_limits::Claimed;
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
pub use leases::{Fence, Lease, LeaseRow, NodeInfo};
pub use outbox::{DeliveryLog, Job, JobResult, NewJob, jobs_text};
pub use pacing::{MeasuredAbandonment, PacingSnapshot, SpeechLatency};
pub use report::{CampaignStatus, ExportRow, RejectedRow, status_text};

/// Errors from the store. `Unavailable` is worth retrying; the others are not.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database URL could not be parsed or opened.
    #[error("cannot open database `{url}`: {source}")]
    Open {
        /// The URL as given, with any password replaced by `***`.
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
    /// This node no longer holds the lease of the campaign it tried to write for (another node
    /// took it over, or it expired): nothing was written.
    #[error("campaign `{campaign}`: this node's lease (token {token}) is no longer current; nothing was written")]
    LeaseLost {
        /// The campaign id.
        campaign: String,
        /// The fencing token the write was made under.
        token: i64,
    },
}

/// Handle on the database, whichever its engine; cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    engine: Engine,
    /// Per campaign, the lease its claims and closes are conditional on ([`Store::set_fence`]).
    fences: std::sync::Arc<std::sync::RwLock<std::collections::HashMap<String, Fence>>>,
}

/// The engine behind a [`Store`].
#[derive(Clone, Debug)]
pub(crate) enum Engine {
    /// One SQLite file (or memory), one writer connection.
    Sqlite(sqlite::SqliteEngine),
    /// A PostgreSQL database shared by every node.
    Postgres(postgres::PgEngine),
}

impl Store {
    /// Opens the database at `url` and runs the engine's embedded migrations: PostgreSQL for
    /// `postgres://…` or `postgresql://…`; otherwise SQLite (`sqlite://path`, `sqlite::memory:`
    /// or a plain path), created if missing, in WAL mode with `synchronous=NORMAL`.
    ///
    /// Errors: [`StoreError::Open`] for a bad URL, an unreadable file or an unreachable server
    /// (within 10 s), [`StoreError::Migrate`].
    pub async fn open(url: &str) -> Result<Store, StoreError> {
        let engine = if is_postgres_url(url) {
            Engine::Postgres(postgres::PgEngine::open(url).await?)
        } else {
            Engine::Sqlite(sqlite::SqliteEngine::open(url).await?)
        };
        Ok(Store {
            engine,
            fences: Default::default(),
        })
    }

    /// The engine's name, `sqlite` or `postgres`, for logs and `dialerd status`.
    pub fn engine_name(&self) -> &'static str {
        match self.engine {
            Engine::Sqlite(_) => "sqlite",
            Engine::Postgres(_) => "postgres",
        }
    }
}

/// Whether `url` names a PostgreSQL database (`postgres://` or `postgresql://`).
pub fn is_postgres_url(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// `url` with any password (in its user-info part or a `password=` query parameter) replaced by
/// `***`, for errors and logs.
pub(crate) fn redact_url(url: &str) -> String {
    let mut out = url.to_string();
    if let Some(scheme_end) = out.find("://") {
        let rest = &out[scheme_end + 3..];
        let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
        if let Some(at) = rest[..authority_end].rfind('@')
            && let Some(colon) = rest[..at].find(':')
        {
            out = format!("{}{}:***{}", &out[..scheme_end + 3], &rest[..colon], &rest[at..]);
        }
    }
    if let Some(q) = out.find('?') {
        let (head, query) = out.split_at(q + 1);
        let params: Vec<String> = query
            .split('&')
            .map(|p| match p.split_once('=') {
                Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
                _ => p.to_string(),
            })
            .collect();
        out = format!("{head}{}", params.join("&"));
    }
    out
}

/// Milliseconds since the Unix epoch, the storage form of an instant.
pub(crate) fn to_ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

/// Inverse of [`to_ms`]; out-of-range values map to the epoch.
pub(crate) fn from_ms(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn passwords_are_redacted_and_nothing_else() {
        assert_eq!(
            redact_url("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(
            redact_url("postgres://h/db?user=u&password=x@y"),
            "postgres://h/db?user=u&password=***"
        );
        assert_eq!(redact_url("sqlite://a.db"), "sqlite://a.db");
    }
}
