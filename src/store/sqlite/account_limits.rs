//! SQLite: the trunk account's shared limits (see [`crate::store`]'s `account_limits`). The
//! claim's transaction takes the write lock with the upsert of the account's row before it reads
//! the window, so processes sharing the file take grants one at a time; the clock read under that
//! lock is this machine's.

use super::SqliteEngine;
use crate::core::account::{self, AccountLimit};
use crate::store::StoreError;
use crate::store::account_limits::{IN_PROGRESS_SQL_SQLITE, Window};
use chrono::Utc;

fn parse(grants: &str) -> Result<Vec<i64>, StoreError> {
    grants
        .split(',')
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse()
                .map_err(|_| StoreError::Corrupt(format!("account grant `{s}`")))
        })
        .collect()
}

/// Locks the account's window, reads the clock and the calls in progress, and asks the core how
/// many of `want` claims may go ahead.
pub(in crate::store) async fn take(
    conn: &mut sqlx::SqliteConnection,
    limit: &AccountLimit,
    want: usize,
) -> Result<Window, StoreError> {
    sqlx::query("INSERT INTO account_limits (account) VALUES (?1) ON CONFLICT(account) DO UPDATE SET grants = grants")
        .bind(&limit.account)
        .execute(&mut *conn)
        .await?;
    let grants: String = sqlx::query_scalar("SELECT grants FROM account_limits WHERE account = ?1")
        .bind(&limit.account)
        .fetch_one(&mut *conn)
        .await?;
    let mut recent = parse(&grants)?;
    let in_progress: i64 = sqlx::query_scalar(IN_PROGRESS_SQL_SQLITE)
        .bind(&limit.account)
        .fetch_one(&mut *conn)
        .await?;
    // Never before the last grant, so the window stays ordered if the clock steps back.
    let at_ms = Utc::now()
        .timestamp_millis()
        .max(recent.last().copied().unwrap_or(i64::MIN));
    let want = u32::try_from(want).unwrap_or(u32::MAX);
    let grant = account::grant(limit, &mut recent, at_ms, want, u64::try_from(in_progress).unwrap_or(0));
    Ok(Window { at_ms, recent, grant })
}

/// Appends the `used` grants to the window and writes it back.
pub(in crate::store) async fn store(
    conn: &mut sqlx::SqliteConnection,
    limit: &AccountLimit,
    window: &mut Window,
    used: usize,
) -> Result<(), StoreError> {
    account::record(&mut window.recent, window.at_ms, used);
    let grants: Vec<String> = window.recent.iter().map(i64::to_string).collect();
    sqlx::query("UPDATE account_limits SET grants = ?1 WHERE account = ?2")
        .bind(grants.join(","))
        .bind(&limit.account)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

impl SqliteEngine {
    pub(in crate::store) async fn set_campaign_account(
        &self,
        campaign: &str,
        account: Option<&str>,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE campaigns SET trunk_account = ?1 WHERE id = ?2")
            .bind(account)
            .bind(campaign)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    pub(in crate::store) async fn account_usage(&self, account: &str) -> Result<(Vec<i64>, u64), StoreError> {
        let grants: Option<String> = sqlx::query_scalar("SELECT grants FROM account_limits WHERE account = ?1")
            .bind(account)
            .fetch_optional(self.reader())
            .await?;
        let open: i64 = sqlx::query_scalar(IN_PROGRESS_SQL_SQLITE)
            .bind(account)
            .fetch_one(self.reader())
            .await?;
        Ok((
            parse(grants.as_deref().unwrap_or(""))?,
            u64::try_from(open).unwrap_or(0),
        ))
    }
}
