//! Contact import into the store: the CSV is read on a blocking thread and handed over in
//! batches through a bounded channel; each batch is written in one transaction with multi-row
//! upserts that never reset dialing progress. Stats and rejects (with their cells and the
//! file's header, for `dialerd rejects`) are recorded per import.

use super::{Store, StoreError};
use crate::campaign::contacts::{
    Batch, ContactReject, ContactSource, ContactsError, ImportStats, ReadOptions, file_sha256, read_contacts_observed,
};
use crate::campaign::phone::{LIBPHONENUMBER_METADATA, region_code};
use crate::campaign::progress::{NoProgress, ReadObserver, StderrProgress};
use chrono::{DateTime, Utc};
use std::ops::ControlFlow;
use std::sync::Arc;

/// Batches buffered between the reading thread and the writer.
const CHANNEL_BATCHES: usize = 2;

/// Summary of the last import of a campaign's contact file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportRecord {
    /// The contact file as it was read (path).
    pub file: String,
    /// SHA-256 of the file's bytes, lower-case hex.
    pub file_sha256: String,
    /// The column mapping, region and default zone used (JSON); a change forces a re-import.
    pub column_map: String,
    /// Row counts of that import.
    pub stats: ImportStats,
    /// When the import finished.
    pub imported_at: DateTime<Utc>,
}

/// What [`Store::import_contacts`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImportOutcome {
    /// The file (and mapping) matched the last import; nothing was touched.
    Unchanged,
    /// The file was imported with these counts.
    Imported(ImportStats),
}

/// Errors from [`Store::import_contacts`].
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The contact file cannot be read (missing, bad header, missing column).
    #[error(transparent)]
    Contacts(#[from] ContactsError),
    /// The database failed; the import stopped part way (rows already written stay).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The reading thread panicked or was cancelled.
    #[error("contact import task failed: {0}")]
    Task(String),
}

impl Store {
    /// Imports the campaign's contact file. Skips it when its SHA-256 and the column mapping
    /// match the last import ([`ImportOutcome::Unchanged`]); else streams rows into upserts
    /// (about 10k rows per transaction), replaces the campaign's rejects and records the stats.
    /// New contacts start `pending`; existing ones keep their progress; contacts missing from
    /// the file are left as they are. The campaign row must exist. A long read shows its
    /// progress on stderr ([`StderrProgress`]: a bar on a terminal, else a log line every few
    /// seconds).
    ///
    /// Errors: [`ImportError::Contacts`] for a file-level problem (nothing written),
    /// [`ImportError::Store`] when the database fails part way.
    pub async fn import_contacts(
        &self,
        campaign_id: &str,
        src: &ContactSource,
        now: DateTime<Utc>,
    ) -> Result<ImportOutcome, ImportError> {
        let progress = Arc::new(StderrProgress::new(format!("contacts of {campaign_id}")));
        self.import_contacts_observed(campaign_id, src, now, &ReadOptions::default(), progress)
            .await
    }

    /// [`Store::import_contacts`] with the reader's work split as `opts` says (threads, chunk
    /// and batch sizes), showing no progress. What is stored does not depend on `opts`.
    ///
    /// Errors: as [`Store::import_contacts`].
    pub async fn import_contacts_with(
        &self,
        campaign_id: &str,
        src: &ContactSource,
        now: DateTime<Utc>,
        opts: &ReadOptions,
    ) -> Result<ImportOutcome, ImportError> {
        self.import_contacts_observed(campaign_id, src, now, opts, Arc::new(NoProgress))
            .await
    }

    /// [`Store::import_contacts_with`] reporting the read's progress to `observer` (once per
    /// chunk of rows, from the reading thread; the read runs at the writer's pace, so the
    /// bytes read tell how far the import is). An unchanged file reports nothing.
    ///
    /// Errors: as [`Store::import_contacts`].
    pub async fn import_contacts_observed(
        &self,
        campaign_id: &str,
        src: &ContactSource,
        now: DateTime<Utc>,
        opts: &ReadOptions,
        observer: Arc<dyn ReadObserver>,
    ) -> Result<ImportOutcome, ImportError> {
        let column_map = column_map(src);
        let path = src.path.clone();
        let sha = tokio::task::spawn_blocking(move || file_sha256(&path))
            .await
            .map_err(task)??;
        if let Some(last) = self.last_import(campaign_id).await?
            && last.file_sha256 == sha
            && last.column_map == column_map
        {
            return Ok(ImportOutcome::Unchanged);
        }

        let (tx, mut rx) = tokio::sync::mpsc::channel::<Batch>(CHANNEL_BATCHES);
        let reader_src = src.clone();
        let opts = *opts;
        let reader = tokio::task::spawn_blocking(move || {
            read_contacts_observed(&reader_src, &opts, &*observer, |b| match tx.blocking_send(b) {
                Ok(()) => ControlFlow::Continue(()),
                Err(_) => ControlFlow::Break(()),
            })
        });
        let default_tz = src.default_timezone.name();
        // The engine writes each batch in one transaction as it arrives; the reader waits on
        // the bounded channel, so the read runs at the writer's pace.
        let written = on_engine!(self, write_import_batches(campaign_id, &mut rx, default_tz, now));
        drop(rx);
        let read = reader.await.map_err(task)?;
        let cleared = written?;
        let summary = read?;
        let file = src.path.display().to_string();
        on_engine!(
            self,
            record_import(campaign_id, cleared, &file, &column_map, &summary, now)
        )?;
        Ok(ImportOutcome::Imported(summary.stats))
    }

    /// The last successful import of the campaign's contact file, if any.
    ///
    /// Errors: [`StoreError::Query`], [`StoreError::Corrupt`] for a negative count.
    pub async fn last_import(&self, campaign_id: &str) -> Result<Option<ImportRecord>, StoreError> {
        on_engine!(self, last_import(campaign_id))
    }

    /// The first `limit` rejected rows of the campaign's last import, by line, with their cells.
    ///
    /// Errors: [`StoreError::Query`], [`StoreError::Corrupt`] for cells that do not decode.
    pub async fn import_rejects(&self, campaign_id: &str, limit: u32) -> Result<Vec<ContactReject>, StoreError> {
        self.import_rejects_after(campaign_id, 0, limit).await
    }

    /// Up to `limit` rejected rows of the campaign's last import whose line is after
    /// `after_line`, by line: page through all of them by passing the last line seen. A row
    /// stored before cells were kept (migration 0011) has no `column` and no `fields`.
    ///
    /// Errors: [`StoreError::Query`], [`StoreError::Corrupt`] for cells that do not decode.
    pub async fn import_rejects_after(
        &self,
        campaign_id: &str,
        after_line: u64,
        limit: u32,
    ) -> Result<Vec<ContactReject>, StoreError> {
        on_engine!(self, import_rejects_after(campaign_id, after_line, limit))
    }

    /// The header cells of the file whose rejects are stored for the campaign (the names of
    /// [`ContactReject::fields`]); `None` when none was stored (no import since migration 0011).
    ///
    /// Errors: [`StoreError::Query`], [`StoreError::Corrupt`] for a header that does not decode.
    pub async fn import_reject_header(&self, campaign_id: &str) -> Result<Option<Vec<String>>, StoreError> {
        on_engine!(self, import_reject_header(campaign_id))
    }

    /// The most cells any stored reject of the campaign has (0 when none has any): a malformed
    /// row may have more than the header.
    ///
    /// Errors: [`StoreError::Query`].
    pub async fn import_rejects_widest(&self, campaign_id: &str) -> Result<usize, StoreError> {
        on_engine!(self, import_rejects_widest(campaign_id))
    }
}

/// A stored reject as read back: `fields` is its cells as a JSON array of strings, `None` for a
/// row stored before cells were kept (migration 0011). Errors: [`StoreError::Corrupt`].
pub(super) fn reject_from_stored(
    line: i64,
    reason: String,
    column: Option<i64>,
    fields: Option<String>,
) -> Result<ContactReject, StoreError> {
    Ok(ContactReject {
        line: u64::try_from(line).unwrap_or(0),
        reason,
        column: column.and_then(|c| usize::try_from(c).ok()),
        fields: match fields {
            Some(f) => serde_json::from_str(&f)
                .map_err(|e| StoreError::Corrupt(format!("import_rejects.fields at line {line}: {e}")))?,
            None => Vec::new(),
        },
    })
}

/// A stored header (a JSON array of strings) as read back.
pub(super) fn header_from_stored(header: Option<String>) -> Result<Option<Vec<String>>, StoreError> {
    header
        .map(|h| serde_json::from_str(&h).map_err(|e| StoreError::Corrupt(format!("import_reject_headers: {e}"))))
        .transpose()
}

/// A stored count of `imports`, which must not be negative.
pub(super) fn stored_count(col: &str, v: i64) -> Result<u64, StoreError> {
    u64::try_from(v).map_err(|_| StoreError::Corrupt(format!("imports.{col} is negative: {v}")))
}

/// JSON that a contact row stores (`alternate_phones`, `custom_fields`) decoded, naming the column.
pub(super) fn from_json<T: serde::de::DeserializeOwned>(s: &str, column: &str) -> Result<T, StoreError> {
    serde_json::from_str(s).map_err(|e| StoreError::Corrupt(format!("contacts.{column}: {e}")))
}

/// `v` as JSON text, the storage form of the list and map columns.
pub(super) fn to_json<T: serde::Serialize>(v: &T) -> Result<String, StoreError> {
    serde_json::to_string(v).map_err(|e| StoreError::Corrupt(format!("cannot encode JSON: {e}")))
}

/// The mapping settings that change how the same bytes import; part of the "unchanged" test.
fn column_map(src: &ContactSource) -> String {
    let c = &src.columns;
    serde_json::json!({
        "phone": c.phone,
        "alternate_phones": c.alternate_phones,
        "first_name": c.first_name,
        "last_name": c.last_name,
        "email": c.email,
        "timezone": c.timezone,
        "priority": c.priority,
        "default_region": region_code(src.default_region),
        // A new validator may read the same bytes differently: import them again.
        "libphonenumber": LIBPHONENUMBER_METADATA,
        "default_timezone": src.default_timezone.name(),
    })
    .to_string()
}

/// A count as a database integer, clamped at `i64::MAX`.
pub(super) fn db_int(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn task(e: tokio::task::JoinError) -> ImportError {
    ImportError::Task(e.to_string())
}
