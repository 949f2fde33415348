//! Do-not-call lists: a global list and one per campaign, keyed by (scope, E.164 number).
//! Adding is idempotent (an entry keeps the time and source it was first listed with), file
//! imports run in one transaction and are skipped when the file's SHA-256 is unchanged, and
//! [`Store::dnc_blocked`] answers "which of these numbers may not be dialled" in a few queries.

use super::{Store, StoreError, from_ms, to_ms};
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{QueryBuilder, Row, Sqlite, SqlitePool};
use std::collections::{BTreeMap, HashSet};
use std::fmt;

/// The stored scope of the global list.
const GLOBAL: &str = "global";
/// Numbers per `IN (...)` lookup in [`Store::dnc_blocked`].
const LOOKUP_CHUNK: usize = 500;
/// Rows per multi-row INSERT in [`DncImport::add`] (5 bound values each).
const ROWS_PER_STATEMENT: usize = 1000;

/// Which list an entry is on.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DncScope {
    /// The global list: blocks every campaign.
    Global,
    /// One campaign's list (the campaign id: its file name without `.toml`). A campaign whose id
    /// is `global` shares the stored key of the global list.
    Campaign(String),
}

impl DncScope {
    /// The stored form: `global` or the campaign id.
    pub fn as_str(&self) -> &str {
        match self {
            DncScope::Global => GLOBAL,
            DncScope::Campaign(id) => id,
        }
    }

    /// Reads the stored form back (`global` is the global list, anything else a campaign).
    pub fn from_stored(s: &str) -> DncScope {
        if s == GLOBAL {
            DncScope::Global
        } else {
            DncScope::Campaign(s.to_string())
        }
    }
}

impl fmt::Display for DncScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl Serialize for DncScope {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// One stored DNC entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DncEntry {
    /// The list it is on.
    pub scope: DncScope,
    /// The number, E.164.
    pub phone_e164: String,
    /// Who listed it first: `cli`, `file:<name>`, `opt_out:<call id>`.
    pub source: String,
    /// Free text given when it was listed.
    pub reason: Option<String>,
    /// When it was first listed (UTC).
    pub added_at: DateTime<Utc>,
}

/// One number to import, already normalised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DncRow {
    /// The number, E.164.
    pub phone_e164: String,
    /// The file's reason for it, if it has a reason column.
    pub reason: Option<String>,
}

/// Row counts of one DNC file import, recorded with its SHA-256.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct DncImportStats {
    /// Data rows read (header and blank lines excluded).
    pub rows: u64,
    /// Rows with a valid number (duplicates within the file included).
    pub accepted: u64,
    /// Rows rejected with a reason.
    pub rejected: u64,
    /// Entries that were not on the list before this import.
    pub added: u64,
}

/// The last import of one DNC file into one scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DncFileRecord {
    /// SHA-256 of the file's bytes, lower-case hex.
    pub file_sha256: String,
    /// Its row counts.
    pub stats: DncImportStats,
    /// When the import committed.
    pub imported_at: DateTime<Utc>,
}

/// A DNC file import in progress. Each [`DncImport::add`] batch commits on its own, so a file of
/// millions of numbers never holds the database's write lock for longer than one batch (the
/// daemon keeps claiming and closing calls meanwhile); [`DncImport::commit`] records the file
/// last. Adding is idempotent, so an import cut short leaves only numbers that are listed anyway
/// (the safe direction) and the unrecorded file is imported again in full next time.
pub struct DncImport {
    pool: SqlitePool,
    scope: DncScope,
    file: String,
    source: String,
    at: i64,
    added: u64,
}

impl fmt::Debug for DncImport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DncImport")
            .field("scope", &self.scope)
            .field("file", &self.file)
            .field("added", &self.added)
            .finish_non_exhaustive()
    }
}

impl DncImport {
    /// Adds `rows` to the scope's list (multi-row inserts); numbers already listed keep their
    /// entry. Returns how many were new.
    ///
    /// Errors: [`StoreError::Query`]; the batch is rolled back, earlier batches stay listed.
    pub async fn add(&mut self, rows: &[DncRow]) -> Result<u64, StoreError> {
        let mut added = 0;
        let mut tx = self.pool.begin().await?;
        for chunk in rows.chunks(ROWS_PER_STATEMENT) {
            let mut qb = QueryBuilder::<Sqlite>::new("INSERT INTO dnc (scope, phone_e164, source, reason, added_at) ");
            qb.push_values(chunk, |mut b, r| {
                b.push_bind(self.scope.as_str().to_string())
                    .push_bind(r.phone_e164.clone())
                    .push_bind(self.source.clone())
                    .push_bind(r.reason.clone())
                    .push_bind(self.at);
            });
            qb.push(" ON CONFLICT (scope, phone_e164) DO NOTHING");
            added += qb.build().execute(&mut *tx).await?.rows_affected();
        }
        tx.commit().await?;
        self.added += added;
        Ok(added)
    }

    /// Records the file with its SHA-256 and counts (`stats.added` is what [`DncImport::add`]
    /// counted). Returns the counts as recorded.
    ///
    /// Errors: [`StoreError::Query`]; the file is then not recorded and is imported again next time.
    pub async fn commit(self, file_sha256: &str, stats: DncImportStats) -> Result<DncImportStats, StoreError> {
        let stats = DncImportStats {
            added: self.added,
            ..stats
        };
        sqlx::query(
            "INSERT INTO dnc_imports (scope, file, file_sha256, rows, accepted, rejected, added, imported_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (scope, file) DO UPDATE SET \
             file_sha256 = excluded.file_sha256, rows = excluded.rows, accepted = excluded.accepted, \
             rejected = excluded.rejected, added = excluded.added, imported_at = excluded.imported_at",
        )
        .bind(self.scope.as_str())
        .bind(&self.file)
        .bind(file_sha256)
        .bind(db_int(stats.rows))
        .bind(db_int(stats.accepted))
        .bind(db_int(stats.rejected))
        .bind(db_int(stats.added))
        .bind(self.at)
        .execute(&self.pool)
        .await?;
        Ok(stats)
    }
}

impl Store {
    /// Puts `phone_e164` on the `scope` list. Idempotent: a number already on that list keeps
    /// its first `added_at`, source and reason. Returns true when the entry is new.
    ///
    /// Errors: [`StoreError::Query`].
    pub async fn dnc_add(
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

    /// Takes `phone_e164` off the `scope` list (only that list). Returns true when it was on it.
    /// A file that listed it lists it again only when the file changes.
    ///
    /// Errors: [`StoreError::Query`].
    pub async fn dnc_remove(&self, scope: &DncScope, phone_e164: &str) -> Result<bool, StoreError> {
        let r = sqlx::query("DELETE FROM dnc WHERE scope = ? AND phone_e164 = ?")
            .bind(scope.as_str())
            .bind(phone_e164)
            .execute(self.pool())
            .await?;
        Ok(r.rows_affected() > 0)
    }

    /// Up to `limit` entries, newest first: those of `scope`, or of every list when `None`.
    ///
    /// Errors: [`StoreError::Query`].
    pub async fn dnc_list(&self, scope: Option<&DncScope>, limit: u32) -> Result<Vec<DncEntry>, StoreError> {
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

    /// Number of entries on each list that has any.
    ///
    /// Errors: [`StoreError::Query`], [`StoreError::Corrupt`] for a negative count.
    pub async fn dnc_counts(&self) -> Result<BTreeMap<DncScope, u64>, StoreError> {
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

    /// Which of `phones` (E.164) are on the global list or on `campaign_id`'s list. Other
    /// campaigns' lists do not count. Looks numbers up by primary key, [`LOOKUP_CHUNK`] per
    /// query, so a few hundred numbers cost one or two queries.
    ///
    /// Errors: [`StoreError::Query`].
    pub async fn dnc_blocked(&self, campaign_id: &str, phones: &[String]) -> Result<HashSet<String>, StoreError> {
        let mut blocked = HashSet::new();
        for chunk in phones.chunks(LOOKUP_CHUNK) {
            let mut qb = dnc_blocked_query(campaign_id, chunk);
            for r in qb.build().fetch_all(self.reader()).await? {
                blocked.insert(r.try_get("phone_e164")?);
            }
        }
        Ok(blocked)
    }

    /// The last import of `file` into `scope`, if any.
    ///
    /// Errors: [`StoreError::Query`], [`StoreError::Corrupt`] for a negative count.
    pub async fn dnc_file(&self, scope: &DncScope, file: &str) -> Result<Option<DncFileRecord>, StoreError> {
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

    /// Starts importing `file` into `scope`, batch by batch; every entry it adds gets `source`
    /// and `at`. Returns `None`, touching nothing, when the last import of that file into that
    /// scope had the same `file_sha256`. Feed the rows with [`DncImport::add`] and finish with
    /// [`DncImport::commit`].
    ///
    /// Errors: [`StoreError::Query`].
    pub async fn dnc_import(
        &self,
        scope: &DncScope,
        file: &str,
        file_sha256: &str,
        source: &str,
        at: DateTime<Utc>,
    ) -> Result<Option<DncImport>, StoreError> {
        if self
            .dnc_file(scope, file)
            .await?
            .is_some_and(|last| last.file_sha256 == file_sha256)
        {
            return Ok(None);
        }
        Ok(Some(DncImport {
            pool: self.pool().clone(),
            scope: scope.clone(),
            file: file.to_string(),
            source: source.to_string(),
            at: to_ms(at),
            added: 0,
        }))
    }
}

/// A count as stored (counts past `i64::MAX` saturate).
fn db_int(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// The last DNC check before a dial: which of `phones` (E.164) are on the global list or the
/// campaign's. One primary-key lookup per number and scope.
pub(super) fn dnc_blocked_query(campaign_id: &str, phones: &[String]) -> QueryBuilder<Sqlite> {
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
