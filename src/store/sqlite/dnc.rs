//! SQLite: the do-not-call lists and their file imports (see [`crate::store`]'s `dnc`).

use super::SqliteEngine;
use crate::store::dnc::{
    DncEntry, DncFileRecord, DncImportStats, DncRow, DncScope, GLOBAL, LOOKUP_CHUNK, ROWS_PER_STATEMENT, db_int,
};
use crate::store::{StoreError, from_ms, to_ms};
use chrono::{DateTime, Utc};
use sqlx::{QueryBuilder, Row, Sqlite};
use std::collections::{BTreeMap, HashSet};

impl SqliteEngine {
    pub(in crate::store) async fn dnc_import_add(
        &self,
        scope: &DncScope,
        source: &str,
        at: DateTime<Utc>,
        rows: &[DncRow],
    ) -> Result<u64, StoreError> {
        let mut added = 0;
        let mut tx = self.pool().begin().await?;
        for chunk in rows.chunks(ROWS_PER_STATEMENT) {
            let mut qb = QueryBuilder::<Sqlite>::new("INSERT INTO dnc (scope, phone_e164, source, reason, added_at) ");
            qb.push_values(chunk, |mut b, r| {
                b.push_bind(scope.as_str().to_string())
                    .push_bind(r.phone_e164.clone())
                    .push_bind(source.to_string())
                    .push_bind(r.reason.clone())
                    .push_bind(to_ms(at));
            });
            qb.push(" ON CONFLICT (scope, phone_e164) DO NOTHING");
            added += qb.build().execute(&mut *tx).await?.rows_affected();
        }
        tx.commit().await?;
        Ok(added)
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
             VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (scope, file) DO UPDATE SET \
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
        let r = sqlx::query(
            "INSERT INTO dnc (scope, phone_e164, source, reason, added_at) VALUES (?, ?, ?, ?, ?) \
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
        let r = sqlx::query("DELETE FROM dnc WHERE scope = ? AND phone_e164 = ?")
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
        let mut qb = QueryBuilder::<Sqlite>::new("SELECT scope, phone_e164, source, reason, added_at FROM dnc");
        if let Some(s) = scope {
            qb.push(" WHERE scope = ").push_bind(s.as_str().to_string());
        }
        qb.push(" ORDER BY added_at DESC, scope, phone_e164 LIMIT ")
            .push_bind(i64::from(limit));
        let rows = qb.build().fetch_all(self.pool()).await?;
        rows.iter()
            .map(|r| {
                let scope: String = r.try_get("scope")?;
                Ok(DncEntry {
                    scope: DncScope::from_stored(&scope),
                    phone_e164: r.try_get("phone_e164")?,
                    source: r.try_get("source")?,
                    reason: r.try_get("reason")?,
                    added_at: from_ms(r.try_get("added_at")?),
                })
            })
            .collect()
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
            let mut qb = dnc_blocked_query(campaign_id, chunk);
            for r in qb.build().fetch_all(self.reader()).await? {
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
             WHERE scope = ? AND file = ?",
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

/// The last DNC check before a dial: which of `phones` (E.164) are on the global list or the
/// campaign's. One primary-key lookup per number and scope.
pub(in crate::store) fn dnc_blocked_query(campaign_id: &str, phones: &[String]) -> QueryBuilder<Sqlite> {
    let mut qb = QueryBuilder::<Sqlite>::new("SELECT phone_e164 FROM dnc WHERE scope IN (");
    qb.push_bind(GLOBAL)
        .push(", ")
        .push_bind(campaign_id.to_string())
        .push(") AND phone_e164 IN (");
    let mut sep = qb.separated(", ");
    for p in phones {
        sep.push_bind(p.clone());
    }
    sep.push_unseparated(")");
    qb
}
