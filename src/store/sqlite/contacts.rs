//! SQLite: the contact import and its reject report (see [`crate::store`]'s `contacts`).

use super::SqliteEngine;
use crate::campaign::contacts::{Batch, ContactReject, ContactRow, ImportStats, ReadSummary};
use crate::store::contacts::{
    ImportRecord, db_int, from_json, header_from_stored, reject_from_stored, stored_count, to_json,
};
use crate::store::{StoreError, from_ms, to_ms};
use chrono::{DateTime, Utc};
use sqlx::{QueryBuilder, Row, Sqlite, SqliteConnection};
use std::collections::HashMap;

/// Rows per multi-row INSERT statement (13 bound values each).
const ROWS_PER_STATEMENT: usize = 1000;
/// Numbers per `IN (...)` lookup when merging duplicates into stored rows.
const LOOKUP_CHUNK: usize = 500;
/// The import connection's page cache: 32 MiB (negative = KiB), enough for the unique index
/// of about a million contacts; and a checkpoint every 16,384 WAL pages (64 MiB) instead of
/// SQLite's 1,000, so that a 10k-row commit does not checkpoint (and sync) each time.
const IMPORT_PRAGMAS: [&str; 2] = ["PRAGMA cache_size = -32768", "PRAGMA wal_autocheckpoint = 16384"];
/// SQLite's defaults (2 MiB cache, checkpoint at 1,000 pages), put back after an import.
const DEFAULT_PRAGMAS: [&str; 2] = ["PRAGMA cache_size = -2000", "PRAGMA wal_autocheckpoint = 1000"];

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

impl SqliteEngine {
    /// Writes every batch received on `rx`, each in one transaction; the first also replaces
    /// the campaign's rejects. Returns whether any batch was written. Stops at the first error.
    pub(in crate::store) async fn write_import_batches(
        &self,
        campaign_id: &str,
        rx: &mut tokio::sync::mpsc::Receiver<Batch>,
        default_tz: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let mut cleared = false;
        let mut failed = None;
        // One connection for the whole import, with a page cache that holds the contacts'
        // unique index of a large list (inserts then rarely spill or re-read pages) and fewer
        // WAL checkpoints; the defaults are put back before it returns to the pool.
        let mut conn = self.pool().acquire().await?;
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
        match failed {
            Some(e) => Err(e),
            None => Ok(cleared),
        }
    }

    /// Records the finished import (replacing the campaign's rejects first when no batch was
    /// written, i.e. `cleared` is false), in one transaction.
    pub(in crate::store) async fn record_import(
        &self,
        campaign_id: &str,
        cleared: bool,
        file: &str,
        column_map: &str,
        summary: &ReadSummary,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool().begin().await?;
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
        .bind(file)
        .bind(&summary.sha256)
        .bind(column_map)
        .bind(db_int(s.rows))
        .bind(db_int(s.accepted))
        .bind(db_int(s.rejected))
        .bind(db_int(s.duplicates))
        .bind(db_int(s.alternate_phones_dropped))
        .bind(to_ms(now))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    pub(in crate::store) async fn last_import(&self, campaign_id: &str) -> Result<Option<ImportRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT file, file_sha256, column_map, rows, accepted, rejected, duplicates, alternate_phones_dropped, \
             imported_at FROM imports WHERE campaign_id = ?",
        )
        .bind(campaign_id)
        .fetch_optional(self.pool())
        .await?;
        let Some(r) = row else { return Ok(None) };
        let count = |col: &str| -> Result<u64, StoreError> { stored_count(col, r.try_get(col)?) };
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

    pub(in crate::store) async fn import_rejects_after(
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
                reject_from_stored(
                    r.try_get("line")?,
                    r.try_get("reason")?,
                    r.try_get("column_index")?,
                    r.try_get("fields")?,
                )
            })
            .collect()
    }

    pub(in crate::store) async fn import_reject_header(
        &self,
        campaign_id: &str,
    ) -> Result<Option<Vec<String>>, StoreError> {
        let header: Option<String> =
            sqlx::query_scalar("SELECT header FROM import_reject_headers WHERE campaign_id = ?")
                .bind(campaign_id)
                .fetch_optional(self.reader())
                .await?;
        header_from_stored(header)
    }

    pub(in crate::store) async fn import_rejects_widest(&self, campaign_id: &str) -> Result<usize, StoreError> {
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
        alternate_phones: from_json(&alts, "alternate_phones")?,
        first_name: r.try_get("first_name")?,
        last_name: r.try_get("last_name")?,
        email: r.try_get("email")?,
        timezone: r.try_get("timezone")?,
        priority: Some(r.try_get::<i64, _>("priority")?).filter(|p| *p != 0),
        custom_fields: from_json(&custom, "custom_fields")?,
    })
}
