//! Do-not-call lists: a global list and one per campaign, keyed by (scope, E.164 number).
//! Adding is idempotent (an entry keeps the time and source it was first listed with), file
//! imports run in one transaction and are skipped when the file's SHA-256 is unchanged, and
//! [`Store::dnc_blocked`] answers "which of these numbers may not be dialled" in a few queries.

use super::{Store, StoreError};
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::{BTreeMap, HashSet};
use std::fmt;

/// The stored scope of the global list.
pub(super) const GLOBAL: &str = "global";
/// Numbers per lookup query in [`Store::dnc_blocked`].
pub(super) const LOOKUP_CHUNK: usize = 500;
/// Rows per multi-row INSERT in [`DncImport::add`] (5 bound values each).
pub(super) const ROWS_PER_STATEMENT: usize = 1000;

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
    store: Store,
    scope: DncScope,
    file: String,
    source: String,
    at: DateTime<Utc>,
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
        let store = &self.store;
        let added: u64 = on_engine!(store, dnc_import_add(&self.scope, &self.source, self.at, rows))?;
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
        let store = &self.store;
        on_engine!(
            store,
            dnc_import_commit(&self.scope, &self.file, file_sha256, stats, self.at)
        )?;
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
        on_engine!(self, dnc_add(scope, phone_e164, source, reason, at))
    }

    /// Takes `phone_e164` off the `scope` list (only that list). Returns true when it was on it.
    /// A file that listed it lists it again only when the file changes.
    ///
    /// Errors: [`StoreError::Query`].
    pub async fn dnc_remove(&self, scope: &DncScope, phone_e164: &str) -> Result<bool, StoreError> {
        on_engine!(self, dnc_remove(scope, phone_e164))
    }

    /// Up to `limit` entries, newest first: those of `scope`, or of every list when `None`.
    /// Entries listed in the same millisecond come by scope, then number (byte order).
    ///
    /// Errors: [`StoreError::Query`].
    pub async fn dnc_list(&self, scope: Option<&DncScope>, limit: u32) -> Result<Vec<DncEntry>, StoreError> {
        on_engine!(self, dnc_list(scope, limit))
    }

    /// Number of entries on each list that has any.
    ///
    /// Errors: [`StoreError::Query`], [`StoreError::Corrupt`] for a negative count.
    pub async fn dnc_counts(&self) -> Result<BTreeMap<DncScope, u64>, StoreError> {
        on_engine!(self, dnc_counts())
    }

    /// Which of `phones` (E.164) are on the global list or on `campaign_id`'s list. Other
    /// campaigns' lists do not count. Looks numbers up by primary key, [`LOOKUP_CHUNK`] per
    /// query, so a few hundred numbers cost one or two queries.
    ///
    /// Errors: [`StoreError::Query`].
    pub async fn dnc_blocked(&self, campaign_id: &str, phones: &[String]) -> Result<HashSet<String>, StoreError> {
        on_engine!(self, dnc_blocked(campaign_id, phones))
    }

    /// The last import of `file` into `scope`, if any.
    ///
    /// Errors: [`StoreError::Query`], [`StoreError::Corrupt`] for a negative count.
    pub async fn dnc_file(&self, scope: &DncScope, file: &str) -> Result<Option<DncFileRecord>, StoreError> {
        on_engine!(self, dnc_file(scope, file))
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
            store: self.clone(),
            scope: scope.clone(),
            file: file.to_string(),
            source: source.to_string(),
            at,
            added: 0,
        }))
    }
}

/// A count as stored (counts past `i64::MAX` saturate).
pub(super) fn db_int(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}
