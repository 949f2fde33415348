//! Contact import into the store: the CSV is read on a blocking thread and handed over in
//! batches through a bounded channel; each batch is written in one transaction with multi-row
//! upserts that never reset dialing progress. Stats and rejects (with their cells and the
//! file's header, for `dialerd rejects`) are recorded per import.

use super::{Store, StoreError, from_ms, to_ms};
use crate::campaign::contacts::{
    Batch, ContactReject, ContactRow, ContactSource, ContactsError, ImportStats, ReadOptions, file_sha256,
    read_contacts_observed,
};
use crate::campaign::phone::{LIBPHONENUMBER_METADATA, region_code};
use crate::campaign::progress::{NoProgress, ReadObserver, StderrProgress};
use chrono::{DateTime, Utc};
use sqlx::{QueryBuilder, Row, Sqlite, SqliteConnection};
use std::collections::{BTreeMap, HashMap};
use std::ops::ControlFlow;
use std::sync::Arc;

/// Rows per multi-row INSERT statement (12 bound values each).
const ROWS_PER_STATEMENT: usize = 1000;
/// Numbers per `IN (...)` lookup when merging duplicates into stored rows.
const LOOKUP_CHUNK: usize = 500;
/// Batches buffered between the reading thread and the writer.
const CHANNEL_BATCHES: usize = 2;
/// The import connection's page cache: 32 MiB (negative = KiB), enough for the unique index
/// of about a million contacts; and a checkpoint every 16,384 WAL pages (64 MiB) instead of
/// SQLite's 1,000, so that a 10k-row commit does not checkpoint (and sync) each time.
const IMPORT_PRAGMAS: [&str; 2] = ["PRAGMA cache_size = -32768", "PRAGMA wal_autocheckpoint = 16384"];
/// SQLite's defaults (2 MiB cache, checkpoint at 1,000 pages), put back after an import.
const DEFAULT_PRAGMAS: [&str; 2] = ["PRAGMA cache_size = -2000", "PRAGMA wal_autocheckpoint = 1000"];

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

const UPSERT_HEAD: &str = "INSERT INTO contacts (campaign_id, phone_e164, extension, alternate_phones, first_name, \
     last_name, email, timezone, priority, custom_fields, source_line, created_at, updated_at) ";

/// New numbers start pending (column defaults); an existing contact gets only its data fields,
/// and only when one of them differs, so `updated_at` moves only on a real change.
const UPSERT_TAIL: &str = " ON CONFLICT (campaign_id, phone_e164) DO UPDATE SET \
     extension = excluded.extension, alternate_phones = excluded.alternate_phones, \
     first_name = excluded.first_name, last_name = excluded.last_name, email = excluded.email, \
     timezone = excluded.timezone, priority = excluded.priority, custom_fields = excluded.custom_fields, \
     source_line = excluded.source_line, updated_at = excluded.updated_at, \
     status = CASE WHEN contacts.disposition = 'no_consent' THEN 'pending' ELSE contacts.status END, \
     disposition = CASE WHEN contacts.disposition = 'no_consent' THEN NULL ELSE contacts.disposition END \
     WHERE contacts.extension IS NOT excluded.extension \
        OR contacts.alternate_phones IS NOT excluded.alternate_phones \
        OR contacts.first_name IS NOT excluded.first_name \
        OR contacts.last_name IS NOT excluded.last_name \
        OR contacts.email IS NOT excluded.email \
        OR contacts.timezone IS NOT excluded.timezone \
        OR contacts.priority IS NOT excluded.priority \
        OR contacts.custom_fields IS NOT excluded.custom_fields \
        OR contacts.source_line IS NOT excluded.source_line";

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
        let mut cleared = false;
        let mut failed = None;
        // One connection for the whole import, with a page cache that holds the contacts'
        // unique index of a large list (inserts then rarely spill or re-read pages) and fewer
        // WAL checkpoints; the defaults are put back before it returns to the pool.
        match self.pool().acquire().await {
            Ok(mut conn) => {
                for pragma in IMPORT_PRAGMAS {
                    if let Err(e) = sqlx::query(pragma).execute(&mut *conn).await {
                        failed.get_or_insert(StoreError::from(e));
                    }
                }
                while failed.is_none()
                    && let Some(batch) = rx.recv().await
                {
                    if let Err(e) = write_batch(&mut conn, campaign_id, batch, !cleared, default_tz, now).await {
                        failed = Some(e);
                        break;
                    }
                    cleared = true;
                }
                for pragma in DEFAULT_PRAGMAS {
                    if let Err(e) = sqlx::query(pragma).execute(&mut *conn).await {
                        failed.get_or_insert(StoreError::from(e));
                    }
                }
            }
            Err(e) => failed = Some(StoreError::from(e)),
        }
        drop(rx);
        let read = reader.await.map_err(task)?;
        if let Some(e) = failed {
            return Err(e.into());
        }
        let summary = read?;

        let mut tx = self.pool().begin().await.map_err(StoreError::from)?;
        if !cleared {
            clear_rejects(&mut tx, campaign_id, &summary.header).await?;
        }
        let s = &summary.stats;
        sqlx::query(
            "INSERT INTO imports (campaign_id, file, file_sha256, column_map, rows, accepted, rejected, duplicates, \
             alternate_phones_dropped, imported_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
             ON CONFLICT (campaign_id) DO UPDATE SET file = excluded.file, file_sha256 = excluded.file_sha256, \
             column_map = excluded.column_map, rows = excluded.rows, accepted = excluded.accepted, \
             rejected = excluded.rejected, duplicates = excluded.duplicates, \
             alternate_phones_dropped = excluded.alternate_phones_dropped, imported_at = excluded.imported_at",
        )
        .bind(campaign_id)
        .bind(src.path.display().to_string())
        .bind(&summary.sha256)
        .bind(&column_map)
        .bind(db_int(s.rows))
        .bind(db_int(s.accepted))
        .bind(db_int(s.rejected))
        .bind(db_int(s.duplicates))
        .bind(db_int(s.alternate_phones_dropped))
        .bind(to_ms(now))
        .execute(&mut *tx)
        .await
        .map_err(StoreError::from)?;
        tx.commit().await.map_err(StoreError::from)?;
        Ok(ImportOutcome::Imported(summary.stats))
    }

    /// The last successful import of the campaign's contact file, if any.
    ///
    /// Errors: [`StoreError::Query`], [`StoreError::Corrupt`] for a negative count.
    pub async fn last_import(&self, campaign_id: &str) -> Result<Option<ImportRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT file, file_sha256, column_map, rows, accepted, rejected, duplicates, alternate_phones_dropped, \
             imported_at FROM imports WHERE campaign_id = ?",
        )
        .bind(campaign_id)
        .fetch_optional(self.pool())
        .await?;
        let Some(r) = row else { return Ok(None) };
        let count = |col: &str| -> Result<u64, StoreError> {
            let v: i64 = r.try_get(col)?;
            u64::try_from(v).map_err(|_| StoreError::Corrupt(format!("imports.{col} is negative: {v}")))
        };
        Ok(Some(ImportRecord {
            file: r.try_get("file")?,
            file_sha256: r.try_get("file_sha256")?,
            column_map: r.try_get("column_map")?,
            stats: ImportStats {
                rows: count("rows")?,
                accepted: count("accepted")?,
                rejected: count("rejected")?,
                duplicates: count("duplicates")?,
                alternate_phones_dropped: count("alternate_phones_dropped")?,
            },
            imported_at: from_ms(r.try_get("imported_at")?),
        }))
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
        let rows = sqlx::query(
            "SELECT line, reason, column_index, fields FROM import_rejects WHERE campaign_id = ? AND line > ? \
             ORDER BY line LIMIT ?",
        )
        .bind(campaign_id)
        .bind(db_int(after_line))
        .bind(i64::from(limit))
        .fetch_all(self.reader())
        .await?;
        rows.iter()
            .map(|r| {
                let line: i64 = r.try_get("line")?;
                let column: Option<i64> = r.try_get("column_index")?;
                let fields: Option<String> = r.try_get("fields")?;
                Ok(ContactReject {
                    line: u64::try_from(line).unwrap_or(0),
                    reason: r.try_get("reason")?,
                    column: column.and_then(|c| usize::try_from(c).ok()),
                    fields: match fields {
                        Some(f) => serde_json::from_str(&f)
                            .map_err(|e| StoreError::Corrupt(format!("import_rejects.fields at line {line}: {e}")))?,
                        None => Vec::new(),
                    },
                })
            })
            .collect()
    }

    /// The header cells of the file whose rejects are stored for the campaign (the names of
    /// [`ContactReject::fields`]); `None` when none was stored (no import since migration 0011).
    ///
    /// Errors: [`StoreError::Query`], [`StoreError::Corrupt`] for a header that does not decode.
    pub async fn import_reject_header(&self, campaign_id: &str) -> Result<Option<Vec<String>>, StoreError> {
        let header: Option<String> =
            sqlx::query_scalar("SELECT header FROM import_reject_headers WHERE campaign_id = ?")
                .bind(campaign_id)
                .fetch_optional(self.reader())
                .await?;
        header
            .map(|h| serde_json::from_str(&h).map_err(|e| StoreError::Corrupt(format!("import_reject_headers: {e}"))))
            .transpose()
    }

    /// The most cells any stored reject of the campaign has (0 when none has any): a malformed
    /// row may have more than the header.
    ///
    /// Errors: [`StoreError::Query`].
    pub async fn import_rejects_widest(&self, campaign_id: &str) -> Result<usize, StoreError> {
        let widest: Option<i64> = sqlx::query_scalar(
            "SELECT MAX(json_array_length(fields)) FROM import_rejects WHERE campaign_id = ? AND fields IS NOT NULL",
        )
        .bind(campaign_id)
        .fetch_one(self.reader())
        .await?;
        Ok(widest.and_then(|w| usize::try_from(w).ok()).unwrap_or(0))
    }
}

/// Writes one batch in one transaction: rejects, duplicates merged into stored rows, new rows.
async fn write_batch(
    conn: &mut SqliteConnection,
    campaign_id: &str,
    batch: Batch,
    clear: bool,
    default_tz: &str,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let mut tx = sqlx::Connection::begin(&mut *conn).await?;
    if clear {
        clear_rejects(&mut tx, campaign_id, batch.header.as_deref().unwrap_or_default()).await?;
    }
    for chunk in batch.rejects.chunks(ROWS_PER_STATEMENT) {
        let cells = chunk
            .iter()
            .map(|r| to_json(&r.fields))
            .collect::<Result<Vec<_>, _>>()?;
        let mut qb = QueryBuilder::<Sqlite>::new(
            "INSERT OR REPLACE INTO import_rejects (campaign_id, line, reason, column_index, fields) ",
        );
        qb.push_values(chunk.iter().zip(cells), |mut b, (r, cells)| {
            b.push_bind(campaign_id)
                .push_bind(db_int(r.line))
                .push_bind(r.reason.as_str())
                .push_bind(r.column.map(|c| db_int(c as u64)))
                .push_bind(cells);
        });
        qb.build().execute(&mut *tx).await?;
    }
    if !batch.merges.is_empty() {
        let merged = merge_with_stored(&mut tx, campaign_id, &batch.merges, default_tz).await?;
        upsert(&mut tx, campaign_id, merged, now).await?;
    }
    upsert(&mut tx, campaign_id, batch.rows, now).await?;
    tx.commit().await?;
    Ok(())
}

/// Drops the campaign's rejects and records `header` as the names of the cells of those that follow.
async fn clear_rejects(conn: &mut SqliteConnection, campaign_id: &str, header: &[String]) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM import_rejects WHERE campaign_id = ?")
        .bind(campaign_id)
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "INSERT INTO import_reject_headers (campaign_id, header) VALUES (?, ?) \
         ON CONFLICT (campaign_id) DO UPDATE SET header = excluded.header",
    )
    .bind(campaign_id)
    .bind(to_json(&header)?)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Multi-row upserts of `rows`, [`ROWS_PER_STATEMENT`] per statement. The rows are moved into
/// the statements' arguments (sqlx owns every bound value), so no text is copied twice.
async fn upsert(
    conn: &mut SqliteConnection,
    campaign_id: &str,
    rows: Vec<ContactRow>,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let now = to_ms(now);
    let mut rows = rows.into_iter().peekable();
    let mut next = upsert_statement(campaign_id, &mut rows, now)?;
    // The next statement is built on this thread while SQLite's worker thread runs the
    // current one: building (JSON, binds) is about a third of an import's write time.
    while let Some(mut qb) = next.take() {
        let (done, following) = tokio::join!(qb.build().execute(&mut *conn), async {
            upsert_statement(campaign_id, &mut rows, now)
        });
        done?;
        next = following?;
    }
    Ok(())
}

/// One multi-row upsert of the next [`ROWS_PER_STATEMENT`] rows, or `None` when none are left.
fn upsert_statement(
    campaign_id: &str,
    rows: &mut std::iter::Peekable<std::vec::IntoIter<ContactRow>>,
    now: i64,
) -> Result<Option<QueryBuilder<Sqlite>>, StoreError> {
    if rows.peek().is_none() {
        return Ok(None);
    }
    let chunk = rows
        .by_ref()
        .take(ROWS_PER_STATEMENT)
        .map(|r| Ok((to_json(&r.alternate_phones)?, to_json(&r.custom_fields)?, r)))
        .collect::<Result<Vec<_>, StoreError>>()?;
    let mut qb = QueryBuilder::<Sqlite>::new(UPSERT_HEAD);
    qb.push_values(chunk, |mut b, (alts, custom, r)| {
        b.push_bind(campaign_id)
            .push_bind(r.phone_e164)
            .push_bind(r.extension)
            .push_bind(alts)
            .push_bind(r.first_name)
            .push_bind(r.last_name)
            .push_bind(r.email)
            .push_bind(r.timezone)
            .push_bind(r.priority.unwrap_or(0))
            .push_bind(custom)
            .push_bind(db_int(r.line))
            .push_bind(now)
            .push_bind(now);
    });
    qb.push(UPSERT_TAIL);
    Ok(Some(qb))
}

/// Reads the stored rows that `merges` duplicate and merges each duplicate into its row.
/// A duplicate whose row is not stored (not expected) is returned as is.
async fn merge_with_stored(
    conn: &mut SqliteConnection,
    campaign_id: &str,
    merges: &[ContactRow],
    default_tz: &str,
) -> Result<Vec<ContactRow>, StoreError> {
    let mut out = Vec::with_capacity(merges.len());
    for chunk in merges.chunks(LOOKUP_CHUNK) {
        let mut qb = QueryBuilder::<Sqlite>::new(
            "SELECT phone_e164, extension, alternate_phones, first_name, last_name, email, timezone, priority, custom_fields, \
             source_line FROM contacts WHERE campaign_id = ",
        );
        qb.push_bind(campaign_id).push(" AND phone_e164 IN (");
        let mut sep = qb.separated(", ");
        for m in chunk {
            sep.push_bind(m.phone_e164.clone());
        }
        sep.push_unseparated(")");
        let mut stored: HashMap<String, ContactRow> = HashMap::with_capacity(chunk.len());
        for r in qb.build().fetch_all(&mut *conn).await? {
            let row = stored_row(&r)?;
            stored.insert(row.phone_e164.clone(), row);
        }
        for m in chunk {
            match stored.remove(&m.phone_e164) {
                Some(mut row) => {
                    row.merge_from(m.clone(), default_tz);
                    out.push(row);
                }
                None => out.push(m.clone()),
            }
        }
    }
    Ok(out)
}

fn stored_row(r: &sqlx::sqlite::SqliteRow) -> Result<ContactRow, StoreError> {
    let alts: String = r.try_get("alternate_phones")?;
    let custom: String = r.try_get("custom_fields")?;
    let line: i64 = r.try_get("source_line")?;
    Ok(ContactRow {
        line: u64::try_from(line).unwrap_or(0),
        phone_e164: r.try_get("phone_e164")?,
        extension: r.try_get("extension")?,
        alternate_phones: serde_json::from_str::<Vec<String>>(&alts)
            .map_err(|e| StoreError::Corrupt(format!("contacts.alternate_phones: {e}")))?,
        first_name: r.try_get("first_name")?,
        last_name: r.try_get("last_name")?,
        email: r.try_get("email")?,
        timezone: r.try_get("timezone")?,
        priority: Some(r.try_get::<i64, _>("priority")?).filter(|p| *p != 0),
        custom_fields: serde_json::from_str::<BTreeMap<String, String>>(&custom)
            .map_err(|e| StoreError::Corrupt(format!("contacts.custom_fields: {e}")))?,
    })
}

fn to_json<T: serde::Serialize>(v: &T) -> Result<String, StoreError> {
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

fn db_int(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn task(e: tokio::task::JoinError) -> ImportError {
    ImportError::Task(e.to_string())
}
