//! The PostgreSQL engine: one database shared by every node, migrations under
//! `migrations/postgres/` (run under sqlx's advisory lock, so nodes starting together migrate
//! once). Each submodule implements its area's methods (the documented ones on
//! [`super::Store`]) in PostgreSQL's SQL; the claims that several nodes may race on are
//! conditional updates or `FOR UPDATE SKIP LOCKED`.

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
        let opts = PgConnectOptions::from_str(url).map_err(open_err)?;
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
