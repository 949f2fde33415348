//! PostgreSQL: the trunk account's shared limits (see [`crate::store`]'s `account_limits`). The
//! claim's transaction locks the account's row `FOR UPDATE` last (after the lease, the campaign
//! and the contacts; only claims lock it, so claims of different campaigns queue on it and cannot
//! deadlock), reads the server's clock under that lock, so grant instants never go back across
//! nodes, and writes the window back before it commits.

use super::PgEngine;
use crate::core::account::{self, AccountLimit};
use crate::store::StoreError;
use crate::store::account_limits::{IN_PROGRESS_SQL_PG, Window};

/// Locks the account's window, reads the server's clock and the calls in progress, and asks the
/// core how many of `want` claims may go ahead.
pub(in crate::store) async fn take(
    conn: &mut sqlx::PgConnection,
    limit: &AccountLimit,
    want: usize,
) -> Result<Window, StoreError> {
    sqlx::query("INSERT INTO account_limits (account) VALUES ($1) ON CONFLICT (account) DO NOTHING")
        .bind(&limit.account)
        .execute(&mut *conn)
        .await?;
    let mut recent: Vec<i64> = sqlx::query_scalar("SELECT grants FROM account_limits WHERE account = $1 FOR UPDATE")
        .bind(&limit.account)
        .fetch_one(&mut *conn)
        .await?;
    // Read after the lock is held (a clock in the locking statement is read before it is
    // granted), so grant instants never go back across nodes; the last grant is the floor.
    let now_ms: i64 = sqlx::query_scalar("SELECT (EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT")
        .fetch_one(&mut *conn)
        .await?;
    let in_progress: i64 = sqlx::query_scalar(IN_PROGRESS_SQL_PG)
        .bind(&limit.account)
        .fetch_one(&mut *conn)
        .await?;
    let at_ms = now_ms.max(recent.last().copied().unwrap_or(i64::MIN));
    let want = u32::try_from(want).unwrap_or(u32::MAX);
    let grant = account::grant(limit, &mut recent, at_ms, want, u64::try_from(in_progress).unwrap_or(0));
    Ok(Window { at_ms, recent, grant })
}

/// Appends the `used` grants to the window and writes it back.
pub(in crate::store) async fn store(
    conn: &mut sqlx::PgConnection,
    limit: &AccountLimit,
    window: &mut Window,
    used: usize,
) -> Result<(), StoreError> {
    account::record(&mut window.recent, window.at_ms, used);
    sqlx::query("UPDATE account_limits SET grants = $1 WHERE account = $2")
        .bind(&window.recent)
        .bind(&limit.account)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

impl PgEngine {
    pub(in crate::store) async fn set_campaign_account(
        &self,
        campaign: &str,
        account: Option<&str>,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE campaigns SET trunk_account = $1 WHERE id = $2")
            .bind(account)
            .bind(campaign)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    pub(in crate::store) async fn account_usage(&self, account: &str) -> Result<(Vec<i64>, u64), StoreError> {
        let grants: Option<Vec<i64>> = sqlx::query_scalar("SELECT grants FROM account_limits WHERE account = $1")
            .bind(account)
            .fetch_optional(self.pool())
            .await?;
        let open: i64 = sqlx::query_scalar(IN_PROGRESS_SQL_PG)
            .bind(account)
            .fetch_one(self.pool())
            .await?;
        Ok((grants.unwrap_or_default(), u64::try_from(open).unwrap_or(0)))
    }
}
