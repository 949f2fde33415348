//! The PostgreSQL engine: one database shared by every node, migrations under
//! `migrations/postgres/` (run under sqlx's advisory lock, so nodes starting together migrate
//! once). Each submodule implements its area's methods (the documented ones on
//! [`super::Store`]) in PostgreSQL's SQL; the claims that several nodes may race on are
//! conditional updates or `FOR UPDATE SKIP LOCKED`.

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

use super::{StoreError, redact_url};
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use std::str::FromStr;
use std::time::Duration;

/// Migrations under `migrations/postgres/`, embedded in the binary.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// Connections a node keeps to the server: the runners, the outbox workers and the API share them.
const MAX_CONNECTIONS: u32 = 10;

/// How long the server lets one of this node's sessions sit idle inside a transaction before it
/// ends the session (rolling the transaction back). No transaction of dialerd waits on anything
/// but the database between its statements, so only a node that is paused (SIGSTOP), partitioned
/// or wedged gets there; ending its session frees the row locks it holds (a claim's `FOR SHARE`
/// on its lease row would otherwise block every takeover of that campaign), and what it had not
/// committed is never written. Shorter than the default `lease_ttl` (15 s).
const IDLE_IN_TRANSACTION_TIMEOUT: &str = "5s";

/// A PostgreSQL database.
#[derive(Clone, Debug)]
pub(crate) struct PgEngine {
    pool: PgPool,
}

impl PgEngine {
    /// Connects to `url` (`postgres://user[:password]@host[:port]/database[?…]`) and runs the
    /// migrations. A server that does not answer fails within 10 s.
    /// Errors: [`StoreError::Open`] (its URL redacted), [`StoreError::Migrate`].
    pub(super) async fn open(url: &str) -> Result<PgEngine, StoreError> {
        let open_err = |source| StoreError::Open {
            url: redact_url(url),
            source,
        };
        let opts = PgConnectOptions::from_str(url)
            .map_err(open_err)?
            .options([("idle_in_transaction_session_timeout", IDLE_IN_TRANSACTION_TIMEOUT)]);
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(opts)
            .await
            .map_err(open_err)?;
        MIGRATOR.run(&pool).await?;
        Ok(PgEngine { pool })
    }

    /// The connection pool; PostgreSQL serves concurrent writers itself.
    pub(crate) fn pool(&self) -> &PgPool {
        &self.pool
    }
}
