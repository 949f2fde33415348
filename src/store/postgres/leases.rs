//! PostgreSQL: nodes and campaign leases (see [`crate::store`]'s `leases`), on the server's clock,
//! so nodes whose clocks disagree agree on expiry. Each acquisition is one `INSERT … ON CONFLICT
//! DO UPDATE … WHERE`, which PostgreSQL runs atomically against a racing node's: one of them
//! updates the row, the other gets no row back.

use super::PgEngine;
use crate::store::leases::{Lease, LeaseRow, NodeInfo, ttl_ms};
use crate::store::{StoreError, from_ms, to_ms};
use chrono::{DateTime, Utc};
use sqlx::Row;
use std::time::Duration;

/// The clock the leases are read on, in SQL: milliseconds since the epoch (UTC).
macro_rules! now_ms {
    () => {
        "(EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT"
    };
}

const ACQUIRE_SQL: &str = concat!(
    "INSERT INTO campaign_leases (campaign_id, owner, token, acquired_at, expires_at) VALUES ($1, $2, 1, ",
    now_ms!(),
    ", ",
    now_ms!(),
    " + $3)
    ON CONFLICT (campaign_id) DO UPDATE SET owner = EXCLUDED.owner, token = campaign_leases.token + 1,
        acquired_at = EXCLUDED.acquired_at, expires_at = EXCLUDED.expires_at
    WHERE campaign_leases.owner IS NULL OR campaign_leases.expires_at <= EXCLUDED.acquired_at
        OR campaign_leases.owner = EXCLUDED.owner
    RETURNING token, acquired_at, expires_at"
);

const RENEW_SQL: &str = concat!(
    "UPDATE campaign_leases SET expires_at = ",
    now_ms!(),
    " + $4 WHERE campaign_id = $1 AND owner = $2 AND token = $3 RETURNING expires_at"
);

const RELEASE_SQL: &str = concat!(
    "UPDATE campaign_leases SET owner = NULL, expires_at = ",
    now_ms!(),
    " WHERE campaign_id = $1 AND owner = $2 AND token = $3"
);

const HEARTBEAT_SQL: &str = concat!(
    "INSERT INTO nodes (id, host, pid, started_at, heartbeat_at, stopped_at) VALUES ($1, $2, $3, $4, ",
    now_ms!(),
    ", NULL)
    ON CONFLICT (id) DO UPDATE SET host = EXCLUDED.host, pid = EXCLUDED.pid, started_at = EXCLUDED.started_at,
        heartbeat_at = EXCLUDED.heartbeat_at, stopped_at = NULL"
);

const STOPPED_SQL: &str = concat!("UPDATE nodes SET stopped_at = ", now_ms!(), " WHERE id = $1");

const RELEASE_ALL_SQL: &str = concat!(
    "UPDATE campaign_leases SET owner = NULL, expires_at = ",
    now_ms!(),
    " WHERE owner = $1"
);

const LIVE_SQL: &str = concat!(
    "SELECT COUNT(*) FROM nodes WHERE stopped_at IS NULL AND heartbeat_at > ",
    now_ms!(),
    " - $1"
);

const LEASES_SQL: &str = concat!(
    "SELECT campaign_id, owner, token, acquired_at, expires_at,
        owner IS NOT NULL AND expires_at > ",
    now_ms!(),
    " AS live FROM campaign_leases ORDER BY campaign_id"
);

/// How long a lease statement waits for a row lock. A claim holds its lease row `FOR SHARE`
/// for milliseconds; one that holds it longer belongs to a node that is paused or cut off, and
/// waiting for it would stall this node's whole lease tick (its own renewals included). The
/// statement fails instead; an acquisition reports "not taken" and the next tick tries again,
/// after the server has ended the stalled transaction (`idle_in_transaction_session_timeout`).
const LOCK_TIMEOUT_SQL: &str = "SET LOCAL lock_timeout = '500ms'";

/// Whether `e` is PostgreSQL's `lock_not_available` (55P03), what `lock_timeout` raises.
fn is_lock_timeout(e: &sqlx::Error) -> bool {
    e.as_database_error().and_then(|d| d.code()).as_deref() == Some("55P03")
}

impl PgEngine {
    pub(in crate::store) async fn node_heartbeat(
        &self,
        id: &str,
        host: &str,
        pid: u32,
        started_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query(HEARTBEAT_SQL)
            .bind(id)
            .bind(host)
            .bind(i64::from(pid))
            .bind(to_ms(started_at))
            .execute(self.pool())
            .await?;
        Ok(())
    }

    pub(in crate::store) async fn node_stopped(&self, id: &str) -> Result<u64, StoreError> {
        let mut tx = self.pool().begin().await?;
        sqlx::query(STOPPED_SQL).bind(id).execute(&mut *tx).await?;
        let released = sqlx::query(RELEASE_ALL_SQL).bind(id).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(released.rows_affected())
    }

    pub(in crate::store) async fn nodes(&self) -> Result<Vec<NodeInfo>, StoreError> {
        let rows = sqlx::query("SELECT id, host, pid, started_at, heartbeat_at, stopped_at FROM nodes ORDER BY id")
            .fetch_all(self.pool())
            .await?;
        rows.iter()
            .map(|r| {
                Ok(NodeInfo {
                    id: r.try_get("id")?,
                    host: r.try_get("host")?,
                    pid: u32::try_from(r.try_get::<i64, _>("pid")?)
                        .map_err(|_| StoreError::Corrupt("nodes.pid out of range".into()))?,
                    started_at: from_ms(r.try_get("started_at")?),
                    heartbeat_at: from_ms(r.try_get("heartbeat_at")?),
                    stopped_at: r.try_get::<Option<i64>, _>("stopped_at")?.map(from_ms),
                })
            })
            .collect()
    }

    pub(in crate::store) async fn live_nodes(&self, within: Duration) -> Result<usize, StoreError> {
        let n: i64 = sqlx::query_scalar(LIVE_SQL)
            .bind(ttl_ms(within))
            .fetch_one(self.pool())
            .await?;
        Ok(usize::try_from(n).unwrap_or(0))
    }

    pub(in crate::store) async fn leases(&self) -> Result<Vec<LeaseRow>, StoreError> {
        let rows = sqlx::query(LEASES_SQL).fetch_all(self.pool()).await?;
        rows.iter()
            .map(|r| {
                Ok(LeaseRow {
                    campaign: r.try_get("campaign_id")?,
                    owner: r.try_get("owner")?,
                    token: r.try_get("token")?,
                    acquired_at: from_ms(r.try_get("acquired_at")?),
                    expires_at: from_ms(r.try_get("expires_at")?),
                    live: r.try_get::<bool, _>("live")?,
                })
            })
            .collect()
    }

    pub(in crate::store) async fn acquire_lease(
        &self,
        campaign: &str,
        node: &str,
        ttl: Duration,
    ) -> Result<Option<Lease>, StoreError> {
        let mut tx = self.pool().begin().await?;
        sqlx::query(LOCK_TIMEOUT_SQL).execute(&mut *tx).await?;
        let row = match sqlx::query(ACQUIRE_SQL)
            .bind(campaign)
            .bind(node)
            .bind(ttl_ms(ttl))
            .fetch_optional(&mut *tx)
            .await
        {
            Err(e) if is_lock_timeout(&e) => return Ok(None),
            other => other?,
        };
        let Some(row) = row else {
            return Ok(None);
        };
        let token: i64 = row.try_get("token")?;
        let acquired_at: i64 = row.try_get("acquired_at")?;
        sqlx::query("INSERT INTO lease_history (campaign_id, token, owner, acquired_at) VALUES ($1, $2, $3, $4)")
            .bind(campaign)
            .bind(token)
            .bind(node)
            .bind(acquired_at)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Some(Lease {
            campaign: campaign.to_string(),
            token,
            expires_at: from_ms(row.try_get("expires_at")?),
        }))
    }

    pub(in crate::store) async fn renew_lease(
        &self,
        lease: &Lease,
        node: &str,
        ttl: Duration,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        let mut tx = self.pool().begin().await?;
        sqlx::query(LOCK_TIMEOUT_SQL).execute(&mut *tx).await?;
        let expiry: Option<i64> = sqlx::query_scalar(RENEW_SQL)
            .bind(&lease.campaign)
            .bind(node)
            .bind(lease.token)
            .bind(ttl_ms(ttl))
            .fetch_optional(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(expiry.map(from_ms))
    }

    pub(in crate::store) async fn release_lease(&self, lease: &Lease, node: &str) -> Result<bool, StoreError> {
        let done = sqlx::query(RELEASE_SQL)
            .bind(&lease.campaign)
            .bind(node)
            .bind(lease.token)
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected() == 1)
    }
}

/// Fails with [`StoreError::LeaseLost`] unless `fence` is `campaign`'s current, unexpired lease
/// (on the database's clock), locking the lease row `FOR SHARE` until the transaction ends, so a takeover waits for this write and then sees it.
pub(in crate::store) async fn check_fence(
    conn: &mut sqlx::PgConnection,
    campaign: &str,
    fence: &crate::store::Fence,
) -> Result<(), StoreError> {
    const SQL: &str = concat!(
        "SELECT 1 FROM campaign_leases WHERE campaign_id = $1 AND owner = $2 AND token = $3 AND expires_at > ",
        now_ms!(),
        " FOR SHARE"
    );
    let held: Option<i32> = sqlx::query_scalar(SQL)
        .bind(campaign)
        .bind(&fence.node)
        .bind(fence.token)
        .fetch_optional(&mut *conn)
        .await?;
    match held {
        Some(_) => Ok(()),
        None => Err(StoreError::LeaseLost {
            campaign: campaign.to_string(),
            token: fence.token,
        }),
    }
}

/// [`check_fence`] for the campaign of attempt `key`, when `fences` has one for it (no query
/// at all when no fence is set).
pub(in crate::store) async fn check_fence_of(
    conn: &mut sqlx::PgConnection,
    key: crate::core::AttemptKey,
    fences: &std::collections::HashMap<String, crate::store::Fence>,
) -> Result<(), StoreError> {
    if fences.is_empty() {
        return Ok(());
    }
    let campaign: Option<String> =
        sqlx::query_scalar("SELECT campaign_id FROM attempts WHERE contact_id = $1 AND attempt = $2")
            .bind(key.contact)
            .bind(i64::from(key.attempt))
            .fetch_optional(&mut *conn)
            .await?;
    match campaign.as_deref().and_then(|c| fences.get(c).map(|f| (c, f))) {
        Some((c, f)) => check_fence(conn, c, f).await,
        None => Ok(()),
    }
}
