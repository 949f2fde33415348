//! PostgreSQL: the do-not-call lists and their file imports (see [`crate::store`]'s `dnc`).
//! The lists are shared by every node: an entry committed by one is refused by every other
//! node's next claim and last check before a dial.

use super::PgEngine;
use crate::store::dnc::{DncEntry, DncFileRecord, DncImportStats, DncRow, DncScope, GLOBAL, LOOKUP_CHUNK, db_int};
use crate::store::{StoreError, from_ms, to_ms};
use chrono::{DateTime, Utc};
use sqlx::Row;
use sqlx::postgres::PgRow;
use std::collections::{BTreeMap, HashSet};

/// One batch of a file import as one statement (two array binds, whatever the batch's size).
/// Rows go in in number order (byte order; ties in file order), so two nodes importing
/// overlapping files take the rows' locks in the same order and never deadlock; within the
/// batch the first occurrence of a number still wins, as in SQLite's multi-row INSERT.
const IMPORT_ADD_SQL: &str = "INSERT INTO dnc (scope, phone_e164, source, reason, added_at)
     SELECT $1, u.phone, $2, u.reason, $3
     FROM unnest($4::text[], $5::text[]) WITH ORDINALITY AS u(phone, reason, n)
     ORDER BY u.phone COLLATE \"C\", u.n
     ON CONFLICT (scope, phone_e164) DO NOTHING";

/// The listing's ties in SQLite's order: scope, then number, compared byte by byte (`"C"`),
/// whatever the database's collation.
const LIST_ALL_SQL: &str = "SELECT scope, phone_e164, source, reason, added_at FROM dnc
     ORDER BY added_at DESC, scope COLLATE \"C\", phone_e164 COLLATE \"C\" LIMIT $1";
const LIST_SCOPE_SQL: &str = "SELECT scope, phone_e164, source, reason, added_at FROM dnc WHERE scope = $1
     ORDER BY added_at DESC, scope COLLATE \"C\", phone_e164 COLLATE \"C\" LIMIT $2";

impl PgEngine {
    pub(in crate::store) async fn dnc_import_add(
        &self,
        scope: &DncScope,
        source: &str,
        at: DateTime<Utc>,
        rows: &[DncRow],
    ) -> Result<u64, StoreError> {
        if rows.is_empty() {
            return Ok(0);
        }
        let phones: Vec<&str> = rows.iter().map(|r| r.phone_e164.as_str()).collect();
        let reasons: Vec<Option<&str>> = rows.iter().map(|r| r.reason.as_deref()).collect();
        let r = sqlx::query(IMPORT_ADD_SQL)
            .bind(scope.as_str())
            .bind(source)
            .bind(to_ms(at))
            .bind(phones)
            .bind(reasons)
            .execute(self.pool())
            .await?;
        Ok(r.rows_affected())
    }

    pub(in crate::store) async fn dnc_import_commit(
        &self,
        scope: &DncScope,
        file: &str,
        file_sha256: &str,
        stats: DncImportStats,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO dnc_imports (scope, file, file_sha256, rows, accepted, rejected, added, imported_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (scope, file) DO UPDATE SET \
             file_sha256 = excluded.file_sha256, rows = excluded.rows, accepted = excluded.accepted, \
             rejected = excluded.rejected, added = excluded.added, imported_at = excluded.imported_at",
        )
        .bind(scope.as_str())
        .bind(file)
        .bind(file_sha256)
        .bind(db_int(stats.rows))
        .bind(db_int(stats.accepted))
        .bind(db_int(stats.rejected))
        .bind(db_int(stats.added))
        .bind(to_ms(at))
        .execute(self.pool())
        .await?;
        Ok(())
    }

    pub(in crate::store) async fn dnc_add(
        &self,
        scope: &DncScope,
        phone_e164: &str,
        source: &str,
        reason: Option<&str>,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        // Two nodes listing the same number race on the primary key: one inserts, the other's
        // ON CONFLICT waits for it and then does nothing (false), as in SQLite.
        let r = sqlx::query(
            "INSERT INTO dnc (scope, phone_e164, source, reason, added_at) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (scope, phone_e164) DO NOTHING",
        )
        .bind(scope.as_str())
        .bind(phone_e164)
        .bind(source)
        .bind(reason)
        .bind(to_ms(at))
        .execute(self.pool())
        .await?;
        Ok(r.rows_affected() > 0)
    }

    pub(in crate::store) async fn dnc_remove(&self, scope: &DncScope, phone_e164: &str) -> Result<bool, StoreError> {
        let r = sqlx::query("DELETE FROM dnc WHERE scope = $1 AND phone_e164 = $2")
            .bind(scope.as_str())
            .bind(phone_e164)
            .execute(self.pool())
            .await?;
        Ok(r.rows_affected() > 0)
    }

    pub(in crate::store) async fn dnc_list(
        &self,
        scope: Option<&DncScope>,
        limit: u32,
    ) -> Result<Vec<DncEntry>, StoreError> {
        let rows = match scope {
            Some(s) => {
                sqlx::query(LIST_SCOPE_SQL)
                    .bind(s.as_str())
                    .bind(i64::from(limit))
                    .fetch_all(self.pool())
                    .await?
            }
            None => {
                sqlx::query(LIST_ALL_SQL)
                    .bind(i64::from(limit))
                    .fetch_all(self.pool())
                    .await?
            }
        };
        rows.iter().map(entry).collect()
    }

    pub(in crate::store) async fn dnc_counts(&self) -> Result<BTreeMap<DncScope, u64>, StoreError> {
        let rows: Vec<(String, i64)> = sqlx::query_as("SELECT scope, COUNT(*) FROM dnc GROUP BY scope")
            .fetch_all(self.pool())
            .await?;
        rows.into_iter()
            .map(|(scope, n)| {
                let n = u64::try_from(n).map_err(|_| StoreError::Corrupt(format!("negative DNC count {n}")))?;
                Ok((DncScope::from_stored(&scope), n))
            })
            .collect()
    }

    pub(in crate::store) async fn dnc_blocked(
        &self,
        campaign_id: &str,
        phones: &[String],
    ) -> Result<HashSet<String>, StoreError> {
        let mut blocked = HashSet::new();
        for chunk in phones.chunks(LOOKUP_CHUNK) {
            let rows = sqlx::query("SELECT phone_e164 FROM dnc WHERE scope IN ($1, $2) AND phone_e164 = ANY($3)")
                .bind(GLOBAL)
                .bind(campaign_id)
                .bind(chunk)
                .fetch_all(self.pool())
                .await?;
            for r in rows {
                blocked.insert(r.try_get("phone_e164")?);
            }
        }
        Ok(blocked)
    }

    pub(in crate::store) async fn dnc_file(
        &self,
        scope: &DncScope,
        file: &str,
    ) -> Result<Option<DncFileRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT file_sha256, rows, accepted, rejected, added, imported_at FROM dnc_imports \
             WHERE scope = $1 AND file = $2",
        )
        .bind(scope.as_str())
        .bind(file)
        .fetch_optional(self.pool())
        .await?;
        let Some(r) = row else { return Ok(None) };
        let count = |col: &str| -> Result<u64, StoreError> {
            let v: i64 = r.try_get(col)?;
            u64::try_from(v).map_err(|_| StoreError::Corrupt(format!("dnc_imports.{col} is negative: {v}")))
        };
        Ok(Some(DncFileRecord {
            file_sha256: r.try_get("file_sha256")?,
            stats: DncImportStats {
                rows: count("rows")?,
                accepted: count("accepted")?,
                rejected: count("rejected")?,
                added: count("added")?,
            },
            imported_at: from_ms(r.try_get("imported_at")?),
        }))
    }
}

/// One `dnc` row as an entry.
fn entry(r: &PgRow) -> Result<DncEntry, StoreError> {
    let scope: String = r.try_get("scope")?;
    Ok(DncEntry {
        scope: DncScope::from_stored(&scope),
        phone_e164: r.try_get("phone_e164")?,
        source: r.try_get("source")?,
        reason: r.try_get("reason")?,
        added_at: from_ms(r.try_get("added_at")?),
    })
}
