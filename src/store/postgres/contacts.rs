//! PostgreSQL: the contact import and its reject report (see [`crate::store`]'s `contacts`).
//!
//! Each batch is one transaction whose statements take their rows as arrays
//! (`UNNEST($2::text[], …)`): one statement and a dozen parameters per [`ROWS_PER_STATEMENT`]
//! rows, however many rows, so a million-row list is about a hundred round trips. The merge
//! semantics are those of the SQLite upsert: a re-import updates only the data fields, and
//! only when one differs (`IS DISTINCT FROM`), so `updated_at` moves only on a real change and
//! the dialing progress (`status`, `attempts`, `next_attempt_at`, …) is kept.
//!
//! Several nodes may import the same file at once: every write is an `INSERT … ON CONFLICT`
//! (atomic per row under READ COMMITTED: a racer's conflicting insert waits for the first and
//! then takes the update path), the values written do not depend on who wins, and both take
//! their row locks in the same (file) order, so they queue rather than deadlock.

use super::PgEngine;
use crate::campaign::contacts::{Batch, ContactReject, ContactRow, ImportStats, ReadSummary};
use crate::store::contacts::{
    ImportRecord, db_int, from_json, header_from_stored, reject_from_stored, stored_count, to_json,
};
use crate::store::{StoreError, from_ms, to_ms};
use chrono::{DateTime, Utc};
use sqlx::{PgConnection, Row};
use std::collections::HashMap;

/// Rows per upsert statement: each is one array per column, so the parameter limit does not
/// bound it; this keeps a statement's arrays to a few MiB.
const ROWS_PER_STATEMENT: usize = 10_000;

/// The upsert of one chunk of rows: `$1` the campaign, `$2`…`$11` one array per column (in file
/// order: ids are assigned in that order), `$12` the instant. New numbers start pending (column
/// defaults); an existing contact gets only its data fields, and only when one of them differs,
/// so `updated_at` moves only on a real change. A contact refused for lack of consent becomes
/// dialable again, as on SQLite.
const UPSERT_SQL: &str = "INSERT INTO contacts (campaign_id, phone_e164, extension, alternate_phones, first_name, \
     last_name, email, timezone, priority, custom_fields, source_line, created_at, updated_at) \
     SELECT $1, u.phone_e164, u.extension, u.alternate_phones, u.first_name, u.last_name, u.email, u.timezone, \
     u.priority, u.custom_fields, u.source_line, $12, $12 \
     FROM UNNEST($2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], \
     $9::bigint[], $10::text[], $11::bigint[]) WITH ORDINALITY \
     AS u(phone_e164, extension, alternate_phones, first_name, last_name, email, timezone, priority, \
     custom_fields, source_line, ord) \
     ORDER BY u.ord \
     ON CONFLICT (campaign_id, phone_e164) DO UPDATE SET \
     extension = excluded.extension, alternate_phones = excluded.alternate_phones, \
     first_name = excluded.first_name, last_name = excluded.last_name, email = excluded.email, \
     timezone = excluded.timezone, priority = excluded.priority, custom_fields = excluded.custom_fields, \
     source_line = excluded.source_line, updated_at = excluded.updated_at, \
     status = CASE WHEN contacts.disposition = 'no_consent' THEN 'pending' ELSE contacts.status END, \
     disposition = CASE WHEN contacts.disposition = 'no_consent' THEN NULL ELSE contacts.disposition END \
     WHERE contacts.extension IS DISTINCT FROM excluded.extension \
        OR contacts.alternate_phones IS DISTINCT FROM excluded.alternate_phones \
        OR contacts.first_name IS DISTINCT FROM excluded.first_name \
        OR contacts.last_name IS DISTINCT FROM excluded.last_name \
        OR contacts.email IS DISTINCT FROM excluded.email \
        OR contacts.timezone IS DISTINCT FROM excluded.timezone \
        OR contacts.priority IS DISTINCT FROM excluded.priority \
        OR contacts.custom_fields IS DISTINCT FROM excluded.custom_fields \
        OR contacts.source_line IS DISTINCT FROM excluded.source_line";

/// The rejects of one chunk, replacing any stored at the same line (SQLite's `INSERT OR REPLACE`).
const REJECTS_SQL: &str = "INSERT INTO import_rejects (campaign_id, line, reason, column_index, fields) \
     SELECT $1, u.line, u.reason, u.column_index, u.fields \
     FROM UNNEST($2::bigint[], $3::text[], $4::bigint[], $5::text[]) AS u(line, reason, column_index, fields) \
     ON CONFLICT (campaign_id, line) DO UPDATE SET reason = excluded.reason, \
     column_index = excluded.column_index, fields = excluded.fields";

/// The stored rows of some numbers of a campaign, for merging later duplicates into them.
const STORED_SQL: &str = "SELECT phone_e164, extension, alternate_phones, first_name, last_name, email, timezone, \
     priority, custom_fields, source_line FROM contacts WHERE campaign_id = $1 AND phone_e164 = ANY($2::text[])";

impl PgEngine {
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
        while let Some(batch) = rx.recv().await {
            let mut tx = self.pool().begin().await?;
            write_batch(&mut tx, campaign_id, batch, !cleared, default_tz, now).await?;
            tx.commit().await?;
            cleared = true;
        }
        Ok(cleared)
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
             alternate_phones_dropped, imported_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
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
             imported_at FROM imports WHERE campaign_id = $1",
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
            "SELECT line, reason, column_index, fields FROM import_rejects WHERE campaign_id = $1 AND line > $2 \
             ORDER BY line LIMIT $3",
        )
        .bind(campaign_id)
        .bind(db_int(after_line))
        .bind(i64::from(limit))
        .fetch_all(self.pool())
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
            sqlx::query_scalar("SELECT header FROM import_reject_headers WHERE campaign_id = $1")
                .bind(campaign_id)
                .fetch_optional(self.pool())
                .await?;
        header_from_stored(header)
    }

    /// `json_array_length` is an `integer` in PostgreSQL: cast to BIGINT to decode as i64.
    pub(in crate::store) async fn import_rejects_widest(&self, campaign_id: &str) -> Result<usize, StoreError> {
        let widest: Option<i64> = sqlx::query_scalar(
            "SELECT MAX(json_array_length(fields::json))::BIGINT FROM import_rejects \
             WHERE campaign_id = $1 AND fields IS NOT NULL",
        )
        .bind(campaign_id)
        .fetch_one(self.pool())
        .await?;
        Ok(widest.and_then(|w| usize::try_from(w).ok()).unwrap_or(0))
    }
}

/// Writes one batch in the caller's transaction: rejects, duplicates merged into stored rows,
/// new rows.
async fn write_batch(
    conn: &mut PgConnection,
    campaign_id: &str,
    batch: Batch,
    clear: bool,
    default_tz: &str,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    if clear {
        clear_rejects(&mut *conn, campaign_id, batch.header.as_deref().unwrap_or_default()).await?;
    }
    for chunk in batch.rejects.chunks(ROWS_PER_STATEMENT) {
        let mut lines = Vec::with_capacity(chunk.len());
        let mut reasons = Vec::with_capacity(chunk.len());
        let mut columns = Vec::with_capacity(chunk.len());
        let mut cells = Vec::with_capacity(chunk.len());
        for r in chunk {
            lines.push(db_int(r.line));
            reasons.push(r.reason.as_str());
            columns.push(r.column.map(|c| db_int(c as u64)));
            cells.push(to_json(&r.fields)?);
        }
        sqlx::query(REJECTS_SQL)
            .bind(campaign_id)
            .bind(lines)
            .bind(reasons)
            .bind(columns)
            .bind(cells)
            .execute(&mut *conn)
            .await?;
    }
    if !batch.merges.is_empty() {
        let merged = merge_with_stored(&mut *conn, campaign_id, &batch.merges, default_tz).await?;
        upsert(&mut *conn, campaign_id, merged, now).await?;
    }
    upsert(&mut *conn, campaign_id, batch.rows, now).await?;
    Ok(())
}

/// Drops the campaign's rejects and records `header` as the names of the cells of those that follow.
async fn clear_rejects(conn: &mut PgConnection, campaign_id: &str, header: &[String]) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM import_rejects WHERE campaign_id = $1")
        .bind(campaign_id)
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "INSERT INTO import_reject_headers (campaign_id, header) VALUES ($1, $2) \
         ON CONFLICT (campaign_id) DO UPDATE SET header = excluded.header",
    )
    .bind(campaign_id)
    .bind(to_json(&header)?)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The columns of some contact rows, one array each, as [`UPSERT_SQL`] binds them.
#[derive(Default)]
struct Columns {
    phone: Vec<String>,
    extension: Vec<Option<String>>,
    alternates: Vec<String>,
    first_name: Vec<Option<String>>,
    last_name: Vec<Option<String>>,
    email: Vec<Option<String>>,
    timezone: Vec<String>,
    priority: Vec<i64>,
    custom: Vec<String>,
    line: Vec<i64>,
}

/// Upserts `rows` in file order, [`ROWS_PER_STATEMENT`] per statement. A number appears at most
/// once in `rows` (the reader merges duplicates), as one `ON CONFLICT DO UPDATE` statement
/// requires. The rows are moved into the arrays, so no text is copied.
async fn upsert(
    conn: &mut PgConnection,
    campaign_id: &str,
    rows: Vec<ContactRow>,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let now = to_ms(now);
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let mut c = Columns::default();
        for r in rows.by_ref().take(ROWS_PER_STATEMENT) {
            c.alternates.push(to_json(&r.alternate_phones)?);
            c.custom.push(to_json(&r.custom_fields)?);
            c.phone.push(r.phone_e164);
            c.extension.push(r.extension);
            c.first_name.push(r.first_name);
            c.last_name.push(r.last_name);
            c.email.push(r.email);
            c.timezone.push(r.timezone);
            c.priority.push(r.priority.unwrap_or(0));
            c.line.push(db_int(r.line));
        }
        sqlx::query(UPSERT_SQL)
            .bind(campaign_id)
            .bind(c.phone)
            .bind(c.extension)
            .bind(c.alternates)
            .bind(c.first_name)
            .bind(c.last_name)
            .bind(c.email)
            .bind(c.timezone)
            .bind(c.priority)
            .bind(c.custom)
            .bind(c.line)
            .bind(now)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// Reads the stored rows that `merges` duplicate and merges each duplicate into its row.
/// A duplicate whose row is not stored (not expected) is returned as is.
async fn merge_with_stored(
    conn: &mut PgConnection,
    campaign_id: &str,
    merges: &[ContactRow],
    default_tz: &str,
) -> Result<Vec<ContactRow>, StoreError> {
    let mut out = Vec::with_capacity(merges.len());
    for chunk in merges.chunks(ROWS_PER_STATEMENT) {
        let phones: Vec<&str> = chunk.iter().map(|m| m.phone_e164.as_str()).collect();
        let rows = sqlx::query(STORED_SQL)
            .bind(campaign_id)
            .bind(phones)
            .fetch_all(&mut *conn)
            .await?;
        let mut stored: HashMap<String, ContactRow> = HashMap::with_capacity(chunk.len());
        for r in &rows {
            let row = stored_row(r)?;
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

fn stored_row(r: &sqlx::postgres::PgRow) -> Result<ContactRow, StoreError> {
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
