//! The SQLite engine: one file (or memory) in WAL mode, migrations under `migrations/sqlite/`.
//! Writes go through one connection, so writers in this process queue without ever meeting
//! SQLite's lock (whose busy handler sleeps for milliseconds at a time); reads have their own
//! connections, which WAL never blocks. Each submodule implements its area's methods (the
//! documented ones on [`super::Store`]) in SQLite's SQL.

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
mod leases;
mod outbox;
mod pacing;
mod report;

use super::StoreError;
use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use std::str::FromStr;
use std::time::Duration;

/// Migrations under `migrations/sqlite/`, embedded in the binary.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// A SQLite database: the write connection and the read connections.
#[derive(Clone, Debug)]
pub(crate) struct SqliteEngine {
    pool: SqlitePool,
    reader: SqlitePool,
}

impl SqliteEngine {
    /// Opens (creating if missing) the database at `url` (`sqlite://path` or a plain path) and
    /// runs the migrations. Errors: [`StoreError::Open`], [`StoreError::Migrate`].
    pub(super) async fn open(url: &str) -> Result<SqliteEngine, StoreError> {
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
        Ok(SqliteEngine { pool, reader })
    }

    /// The write connection (one). Reads that need to see a transaction's own writes use it too.
    pub(crate) fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// The read connections, for queries that write nothing.
    pub(crate) fn reader(&self) -> &SqlitePool {
        &self.reader
    }
}
