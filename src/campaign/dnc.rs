//! Do-not-call files: reading a DNC CSV (numbers normalised to E.164 as libphonenumber reads them, bad rows
//! rejected with their line), importing it into a list of the store, syncing the `dnc/` folder
//! into the global list, and the texts `dialerd dnc` prints.
//!
//! A DNC file is streamed: rows go to the store in batches through a bounded channel, so a large
//! file is never held in memory whole. The phone column is the one headed `phone` (any case);
//! without one it is the first column. A first row whose first cell has no digit is a header;
//! otherwise the file has none and that row is data. A `reason` column, when headed, is kept.

use super::contacts::{BATCH_ROWS, PhoneError, Reject, normalize_phone, parse_region};
use super::phone::Region;
use crate::store::{DncEntry, DncImportStats, DncRow, DncScope, Store, StoreError};
use chrono::{DateTime, Utc};
use csv::{ByteRecord, StringRecord};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

/// Region used for numbers written without `+country` when none is given.
pub const DEFAULT_REGION: Region = Region::US;
/// Rejected rows kept per import for the report (the count covers them all).
pub const MAX_REJECTS_KEPT: usize = 1000;
/// Batches buffered between the reading thread and the store.
const CHANNEL_BATCHES: usize = 2;

/// Errors from reading or importing DNC numbers and files. Row problems are [`Reject`]s instead.
#[derive(Debug, thiserror::Error)]
pub enum DncError {
    /// A file or folder could not be opened or read.
    #[error("DNC file {}: {error}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The I/O error (in the message, so not also a `source`).
        error: std::io::Error,
    },
    /// The file is not readable as CSV at this line.
    #[error("DNC file {}, line {line}: {message}", path.display())]
    Csv {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: u64,
        /// What is wrong.
        message: String,
    },
    /// A number given on the command line is not a valid number.
    #[error("phone number: {0}")]
    Phone(PhoneError),
    /// A region code libphonenumber has no metadata for.
    #[error("unknown region `{0}` (use an ISO 3166 code such as US or GB)")]
    Region(String),
    /// `global` names the global list; it cannot be a campaign's list.
    #[error("`global` is the global list's name; it cannot be used as a campaign id")]
    ReservedScope,
    /// The reading thread stopped because the store side failed (that error is reported instead).
    #[error("reading DNC file {} was stopped by its consumer", path.display())]
    Stopped {
        /// The file.
        path: PathBuf,
    },
    /// The database failed; an import in progress was rolled back.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The reading thread panicked or was cancelled.
    #[error("DNC import task failed: {0}")]
    Task(String),
}

/// What [`read_dnc`] produced besides the batches.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DncReadSummary {
    /// Row counts (`added` is left at 0: only the store knows it).
    pub stats: DncImportStats,
    /// The first [`MAX_REJECTS_KEPT`] rejected rows, in file order.
    pub rejects: Vec<Reject>,
}

/// What importing one DNC file did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DncFileOutcome {
    /// The file's SHA-256 matched its last import into that list; nothing was read or written.
    Unchanged,
    /// The file was imported: counts as recorded, and the first [`MAX_REJECTS_KEPT`] rejects
    /// (`stats.rejected` counts them all).
    Imported {
        /// Row counts, `added` included.
        stats: DncImportStats,
        /// Rejected rows with line and reason.
        rejects: Vec<Reject>,
    },
}

/// What [`sync_dnc_folder`] did, by file name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DncFolderReport {
    /// Files imported, with their counts and kept rejects.
    pub imported: Vec<(String, DncImportStats, Vec<Reject>)>,
    /// Files skipped because they had not changed since their last import.
    pub unchanged: Vec<String>,
    /// Files that could not be read, with the reason (they are retried on the next sync).
    pub failed: Vec<(String, String)>,
}

/// The list a `--campaign` option names: the campaign's, or the global list when `None`.
///
/// Errors: [`DncError::ReservedScope`] for a campaign called `global`.
pub fn scope_for(campaign: Option<&str>) -> Result<DncScope, DncError> {
    match campaign {
        None => Ok(DncScope::Global),
        Some(id) if id == DncScope::Global.as_str() => Err(DncError::ReservedScope),
        Some(id) => Ok(DncScope::Campaign(id.to_string())),
    }
}

/// The region a `--region` option names, [`DEFAULT_REGION`] when `None`.
///
/// Errors: [`DncError::Region`] for an unknown code.
pub fn region_for(code: Option<&str>) -> Result<Region, DncError> {
    match code {
        None => Ok(DEFAULT_REGION),
        Some(c) => parse_region(c).ok_or_else(|| DncError::Region(c.to_string())),
    }
}

/// The E.164 form of `text` read for `region` (an extension is dropped: the line is what is blocked).
///
/// Errors: [`DncError::Phone`] when empty, unparsable or not a valid number.
pub fn dnc_phone(text: &str, region: Region) -> Result<String, DncError> {
    normalize_phone(text, region).map(|p| p.e164).map_err(DncError::Phone)
}

/// The `dnc/` folder beside a campaigns folder (`/etc/dialerd/campaigns` → `/etc/dialerd/dnc`).
pub fn dnc_dir(campaigns_dir: &Path) -> PathBuf {
    campaigns_dir.parent().unwrap_or(Path::new("")).join("dnc")
}

/// Streams the DNC CSV at `path`, calling `on_batch` with about `batch_rows` valid rows at a time
/// (numbers read for `region`, in file order, duplicates kept). `on_batch` returns
/// `ControlFlow::Break` to stop the read. Blocking: run it off the async runtime.
///
/// Errors: [`DncError::Io`] for an unreadable file, [`DncError::Csv`] for broken CSV,
/// [`DncError::Stopped`] when `on_batch` stopped the read.
pub fn read_dnc<F>(path: &Path, region: Region, batch_rows: usize, mut on_batch: F) -> Result<DncReadSummary, DncError>
where
    F: FnMut(Vec<DncRow>) -> ControlFlow<()>,
{
    let file = std::fs::File::open(path).map_err(|error| DncError::Io {
        path: path.to_path_buf(),
        error,
    })?;
    // As for contacts: records end at '\n' only, so csv's line counter matches the file's lines
    // and a CRLF file's '\r' stays in the last cell (cells are trimmed).
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .terminator(csv::Terminator::Any(b'\n'))
        .buffer_capacity(256 * 1024)
        .from_reader(file);
    let batch_rows = batch_rows.max(1);
    let mut summary = DncReadSummary::default();
    let mut columns: Option<Columns> = None;
    let mut batch = Vec::new();
    let mut raw = ByteRecord::new();
    loop {
        match rdr.read_byte_record(&mut raw) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => {
                let line = e.position().map_or(0, |p| p.line());
                return Err(csv_error(path, e, line));
            }
        }
        if raw.iter().all(|f| f.trim_ascii().is_empty()) {
            continue; // a blank line ("\r" alone in a CRLF file)
        }
        let line = super::contacts::start_line(&raw, rdr.position().line());
        let record = match StringRecord::from_byte_record(std::mem::take(&mut raw)) {
            Ok(r) => r,
            Err(e) => {
                let field = e.utf8_error().field() + 1;
                raw = e.into_byte_record();
                columns.get_or_insert_default();
                summary.stats.rows += 1;
                reject(
                    &mut summary,
                    line,
                    format!("malformed row: field {field} is not valid UTF-8"),
                );
                continue;
            }
        };
        if columns.is_none() {
            let (c, is_header) = Columns::detect(&record);
            columns = Some(c);
            if is_header {
                raw = record.into_byte_record();
                continue;
            }
        }
        let cols = columns.get_or_insert_default();
        summary.stats.rows += 1;
        match cols.row(&record, region) {
            Ok(row) => {
                summary.stats.accepted += 1;
                batch.push(row);
            }
            Err(reason) => reject(&mut summary, line, reason),
        }
        raw = record.into_byte_record();
        if batch.len() >= batch_rows && on_batch(std::mem::take(&mut batch)).is_break() {
            return Err(stopped(path));
        }
    }
    if !batch.is_empty() && on_batch(batch).is_break() {
        return Err(stopped(path));
    }
    Ok(summary)
}

/// Imports the DNC file at `path` into `scope`, committing batch by batch: each new entry gets the
/// source `file:<file name>` and the time `at`; numbers already listed keep their entry. Skipped
/// ([`DncFileOutcome::Unchanged`]) when the file's SHA-256 matches its last import into `scope`.
/// The file is known by its canonical path.
///
/// Errors: [`DncError::Io`] / [`DncError::Csv`] for a file-level problem, [`DncError::Store`],
/// [`DncError::Task`]; numbers of batches already committed stay listed (the safe direction) and
/// the file, not recorded, is imported again in full next time.
pub async fn import_dnc_file(
    store: &Store,
    path: &Path,
    scope: &DncScope,
    region: Region,
    at: DateTime<Utc>,
) -> Result<DncFileOutcome, DncError> {
    let path = tokio::fs::canonicalize(path)
        .await
        .unwrap_or_else(|_| path.to_path_buf());
    let name = path
        .file_name()
        .map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned());
    let hashed = path.clone();
    let sha = tokio::task::spawn_blocking(move || file_sha256(&hashed))
        .await
        .map_err(task)??;
    let key = path.display().to_string();
    let Some(mut import) = store.dnc_import(scope, &key, &sha, &format!("file:{name}"), at).await? else {
        return Ok(DncFileOutcome::Unchanged);
    };
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<DncRow>>(CHANNEL_BATCHES);
    let reader = tokio::task::spawn_blocking(move || {
        read_dnc(&path, region, BATCH_ROWS, |b| match tx.blocking_send(b) {
            Ok(()) => ControlFlow::Continue(()),
            Err(_) => ControlFlow::Break(()),
        })
    });
    let mut failed = None;
    while let Some(batch) = rx.recv().await {
        if let Err(e) = import.add(&batch).await {
            failed = Some(e);
            break;
        }
    }
    drop(rx);
    let read = reader.await.map_err(task)?;
    if let Some(e) = failed {
        return Err(e.into());
    }
    let summary = read?;
    let stats = import.commit(&sha, summary.stats).await?;
    Ok(DncFileOutcome::Imported {
        stats,
        rejects: summary.rejects,
    })
}

/// Imports every `*.csv` file of the `dnc/` folder `dir` (see [`dnc_dir`]) into the global list,
/// numbers read for [`DEFAULT_REGION`], each with the source `file:<file name>`; unchanged files
/// are skipped by SHA-256. A missing folder is an empty report. Files are never un-imported:
/// deleting one leaves its numbers listed. Logs each import (info) and failure (warn).
///
/// Errors: [`DncError::Io`] when the folder exists but cannot be listed, [`DncError::Store`] when
/// the database fails (a file that cannot be read is reported in `failed` instead).
pub async fn sync_dnc_folder(store: &Store, dir: &Path, at: DateTime<Utc>) -> Result<DncFolderReport, DncError> {
    let mut report = DncFolderReport::default();
    let io = |error| DncError::Io {
        path: dir.to_path_buf(),
        error,
    };
    let mut entries = match tokio::fs::read_dir(dir).await {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(report),
        Err(e) => return Err(io(e)),
    };
    let mut files = BTreeMap::new();
    while let Some(entry) = entries.next_entry().await.map_err(io)? {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        let is_csv = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("csv"));
        if is_csv && !name.starts_with('.') && tokio::fs::metadata(&path).await.is_ok_and(|m| m.is_file()) {
            files.insert(name, path);
        }
    }
    for (name, path) in files {
        match import_dnc_file(store, &path, &DncScope::Global, DEFAULT_REGION, at).await {
            Ok(DncFileOutcome::Unchanged) => report.unchanged.push(name),
            Ok(DncFileOutcome::Imported { stats, rejects }) => {
                tracing::info!(
                    file = %name, rows = stats.rows, added = stats.added, rejected = stats.rejected,
                    "DNC file imported into the global list."
                );
                report.imported.push((name, stats, rejects));
            }
            Err(DncError::Store(e)) => return Err(e.into()),
            Err(e) => {
                tracing::warn!(file = %name, error = %e, "DNC file not imported; retried on the next scan.");
                report.failed.push((name, e.to_string()));
            }
        }
    }
    Ok(report)
}

/// `dialerd dnc import` output: the counts, then one line per kept reject.
pub fn import_text(path: &Path, scope: &DncScope, outcome: &DncFileOutcome) -> String {
    let mut s = String::new();
    match outcome {
        DncFileOutcome::Unchanged => {
            let _ = writeln!(
                s,
                "{}: unchanged since its last import into the {} list; skipped.",
                path.display(),
                scope_label(scope)
            );
        }
        DncFileOutcome::Imported { stats, rejects } => {
            let _ = writeln!(
                s,
                "{}: {} rows, {} accepted ({} new on the {} list), {} rejected",
                path.display(),
                stats.rows,
                stats.accepted,
                stats.added,
                scope_label(scope),
                stats.rejected
            );
            for r in rejects {
                let _ = writeln!(s, "  line {}: {}", r.line, r.reason);
            }
            let more = stats.rejected.saturating_sub(rejects.len() as u64);
            if more > 0 {
                let _ = writeln!(s, "  ... and {more} more rejected rows");
            }
        }
    }
    s
}

/// `dialerd dnc list` output: one line per entry, then the number of entries on each list.
pub fn list_text(entries: &[DncEntry], counts: &BTreeMap<DncScope, u64>) -> String {
    let mut s = String::new();
    for e in entries {
        let _ = writeln!(
            s,
            "{:<16} {:<16} {}  {}{}",
            e.scope,
            e.phone_e164,
            e.added_at.format("%Y-%m-%dT%H:%M:%SZ"),
            e.source,
            e.reason.as_deref().map(|r| format!("  ({r})")).unwrap_or_default()
        );
    }
    if counts.is_empty() {
        s.push_str("No DNC entries.\n");
    } else {
        let per: Vec<String> = counts.iter().map(|(k, n)| format!("{k} {n}")).collect();
        let _ = writeln!(s, "Entries per list: {}", per.join(", "));
    }
    s
}

/// How a list is named in messages: `global` or ``campaign `id` ``.
pub fn scope_label(scope: &DncScope) -> String {
    match scope {
        DncScope::Global => "global".to_string(),
        DncScope::Campaign(id) => format!("campaign `{id}`"),
    }
}

/// Where the phone and reason cells are.
#[derive(Debug, Default)]
struct Columns {
    phone: usize,
    reason: Option<usize>,
}

impl Columns {
    /// Reads the first row: returns the columns and whether the row is a header.
    fn detect(first: &StringRecord) -> (Columns, bool) {
        let names: Vec<String> = first
            .iter()
            .map(|h| h.trim_start_matches('\u{feff}').trim().to_lowercase())
            .collect();
        let is_header = names.first().is_none_or(|c| !c.bytes().any(|b| b.is_ascii_digit()));
        if !is_header {
            return (Columns::default(), false);
        }
        let cols = Columns {
            phone: names.iter().position(|n| n == "phone").unwrap_or(0),
            reason: names.iter().position(|n| n == "reason"),
        };
        (cols, true)
    }

    /// Validates one data record.
    fn row(&self, rec: &StringRecord, region: Region) -> Result<DncRow, String> {
        let cell = |i: usize| rec.get(i).unwrap_or("").trim();
        let phone = normalize_phone(cell(self.phone), region).map_err(|e| format!("phone: {e}"))?;
        Ok(DncRow {
            phone_e164: phone.e164,
            reason: self.reason.map(cell).filter(|r| !r.is_empty()).map(str::to_string),
        })
    }
}

fn reject(summary: &mut DncReadSummary, line: u64, reason: String) {
    summary.stats.rejected += 1;
    if summary.rejects.len() < MAX_REJECTS_KEPT {
        summary.rejects.push(Reject { line, reason });
    }
}

/// SHA-256 (lower-case hex) of the file at `path`: the contact reader's, with its error mapped.
fn file_sha256(path: &Path) -> Result<String, DncError> {
    super::contacts::file_sha256(path).map_err(|e| match e {
        super::contacts::ContactsError::Io { path, source } => DncError::Io { path, error: source },
        other => DncError::Io {
            path: path.to_path_buf(),
            error: std::io::Error::other(other.to_string()),
        },
    })
}

fn csv_error(path: &Path, e: csv::Error, line: u64) -> DncError {
    let message = e.to_string();
    match e.into_kind() {
        csv::ErrorKind::Io(error) => DncError::Io {
            path: path.to_path_buf(),
            error,
        },
        _ => DncError::Csv {
            path: path.to_path_buf(),
            line,
            message,
        },
    }
}

fn stopped(path: &Path) -> DncError {
    DncError::Stopped {
        path: path.to_path_buf(),
    }
}

fn task(e: tokio::task::JoinError) -> DncError {
    DncError::Task(e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> (Vec<DncRow>, DncReadSummary) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("dnc.csv");
        std::fs::write(&p, text).unwrap();
        let mut rows = Vec::new();
        let s = read_dnc(&p, DEFAULT_REGION, 2, |b| {
            rows.extend(b);
            ControlFlow::Continue(())
        })
        .unwrap();
        (rows, s)
    }

    fn phones(rows: &[DncRow]) -> Vec<&str> {
        rows.iter().map(|r| r.phone_e164.as_str()).collect()
    }

    #[test]
    fn headerless_file_reads_the_first_line_as_data() {
        let (rows, s) = read("(415) 555-0101\n\n+1 415 555 0102\nnope\r\n4155550103\n");
        assert_eq!(phones(&rows), ["+14155550101", "+14155550102", "+14155550103"]);
        assert_eq!((s.stats.rows, s.stats.accepted, s.stats.rejected), (4, 3, 1));
        assert_eq!(s.rejects[0].line, 4);
        assert!(s.rejects[0].reason.starts_with("phone: "), "{}", s.rejects[0].reason);
    }

    #[test]
    fn phone_and_reason_columns_are_found_by_name() {
        let (rows, s) = read("\u{feff}Name,Reason,PHONE\nAl,asked,415-555-0101\nBo,,\n");
        assert_eq!(phones(&rows), ["+14155550101"]);
        assert_eq!(rows[0].reason.as_deref(), Some("asked"));
        assert_eq!(
            s.rejects,
            vec![Reject {
                line: 3,
                reason: "phone: empty".into()
            }]
        );
    }

    #[test]
    fn unnamed_header_uses_the_first_column() {
        let (rows, s) = read("number,note\n4155550101,\"two\nlines\"\n212-555-0199,y\nbad,z\n");
        assert_eq!(phones(&rows), ["+14155550101", "+12125550199"]);
        assert_eq!((s.stats.rows, s.stats.rejected), (3, 1));
        assert_eq!(s.rejects[0].line, 5);
    }

    #[test]
    fn scope_and_region_options() {
        assert_eq!(scope_for(None).unwrap(), DncScope::Global);
        assert_eq!(scope_for(Some("spring")).unwrap(), DncScope::Campaign("spring".into()));
        assert!(matches!(scope_for(Some("global")), Err(DncError::ReservedScope)));
        assert_eq!(region_for(Some("gb")).unwrap(), Region::GB);
        assert!(matches!(region_for(Some("XX")), Err(DncError::Region(_))));
        assert_eq!(dnc_dir(Path::new("srv/campaigns")), Path::new("srv/dnc"));
        assert_eq!(dnc_dir(Path::new("campaigns")), Path::new("dnc"));
    }
}
