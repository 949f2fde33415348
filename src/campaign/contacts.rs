//! Reading a contact CSV: header mapping, E.164 normalisation as libphonenumber reads numbers
//! ([`super::phone`]), per-row validation with a reject reason each, the contact's zones (see
//! [`super::contact_zone`]), and merging of rows that share a number.
//!
//! Pure: no database. The file is streamed: one thread reads CSV records in chunks of
//! [`ReadOptions::chunk_rows`], a pool of [`ReadOptions::threads`] validates the rows of each
//! chunk (rows are independent: that is where the time goes), and the calling thread merges
//! duplicates in file order ([`super::ordered`] keeps the order, so the result does not depend
//! on the thread count). Rows, merges and rejects come out in batches of about [`BATCH_ROWS`],
//! so a million-row file is never held in memory whole: only the numbers seen so far are kept
//! (a 64-bit key and where its zone came from, each). The reading thread reports its progress
//! to a [`ReadObserver`] once per chunk, never per row.

use super::contact_columns::{ColumnMap, record_cells};
use super::contact_zone::{ZoneCounts, ZoneSource, is_given, merge_takes};
use super::file::ContactsFile;
use super::ordered::{default_threads, ordered_map};
use super::phone::Region;
use super::progress::{NoProgress, ReadObserver, ReadProgress};
use chrono_tz::Tz;
use csv::ByteRecord;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};
use std::io::Read;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

pub use super::contact_columns::ContactReject;
pub use super::phone::{NormalizedPhone, PhoneError, normalize_phone, parse_region};

/// Rows (new rows + merges + rejects) per batch handed to the consumer.
pub const BATCH_ROWS: usize = 10_000;
/// CSV records per chunk handed to a validating thread.
pub const CHUNK_ROWS: usize = 1_000;

/// How [`read_contacts_with`] splits the work. The output is the same for every value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadOptions {
    /// Entries (new rows + merges + rejects) per [`Batch`]; at least 1.
    pub batch_rows: usize,
    /// CSV records per chunk validated by one thread; at least 1.
    pub chunk_rows: usize,
    /// Threads validating rows; at least 1. Default: the machine's available parallelism.
    pub threads: usize,
}

impl Default for ReadOptions {
    fn default() -> Self {
        ReadOptions {
            batch_rows: BATCH_ROWS,
            chunk_rows: CHUNK_ROWS,
            threads: default_threads(),
        }
    }
}

/// Where a campaign's contacts come from and how to read them.
#[derive(Debug, Clone)]
pub struct ContactSource {
    /// The CSV file (already resolved against the campaign file's folder).
    pub path: PathBuf,
    /// The `[contacts]` column mapping.
    pub columns: ContactsFile,
    /// Region used to read numbers written without `+country` (national formats, IDD).
    pub default_region: Region,
    /// Zone given to rows whose timezone column is absent or empty and whose number has no zone.
    pub default_timezone: Tz,
}

/// One accepted contact row, normalised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactRow {
    /// 1-based line in the CSV where the row starts (the header is line 1).
    pub line: u64,
    /// The number to dial, E.164 (`+14155550100`).
    pub phone_e164: String,
    /// Extension parsed from the phone column (`x123` gives `123`).
    pub extension: Option<String>,
    /// Valid alternate numbers, E.164, in column order, never containing `phone_e164`.
    pub alternate_phones: Vec<String>,
    /// First name, trimmed; `None` when empty or unmapped.
    pub first_name: Option<String>,
    /// Last name, trimmed; `None` when empty or unmapped.
    pub last_name: Option<String>,
    /// Email, trimmed; `None` when empty or unmapped.
    pub email: Option<String>,
    /// IANA zones: the row's own zone, else the zones of its number joined by `&`
    /// ([`crate::core::zones::format_zone_list`]), else the campaign's default.
    pub timezone: String,
    /// Dialing priority among contacts due at the same instant (higher first); `None` (stored as
    /// 0) when the column is unmapped or empty.
    pub priority: Option<i64>,
    /// Unmapped columns, keyed by header name as written (trimmed), values trimmed.
    pub custom_fields: BTreeMap<String, String>,
}

impl ContactRow {
    /// Merges a later row with the same number into this one: this row's non-empty fields win,
    /// empty ones are filled from `other`, alternate phones are unioned (order kept, the primary
    /// number excluded). A timezone that is only a fallback (equal to `default_timezone`, or the
    /// zones derived from the number) counts as empty, so a later row's own zone replaces it.
    pub fn merge_from(&mut self, other: ContactRow, default_timezone: &str) {
        fn fill(a: &mut Option<String>, b: Option<String>) {
            if a.is_none() {
                *a = b;
            }
        }
        fill(&mut self.extension, other.extension);
        fill(&mut self.first_name, other.first_name);
        fill(&mut self.last_name, other.last_name);
        fill(&mut self.email, other.email);
        if self.priority.is_none() {
            self.priority = other.priority;
        }
        if merge_takes(&self.timezone, &other.timezone, &self.phone_e164, default_timezone) {
            self.timezone = other.timezone;
        }
        for alt in other.alternate_phones {
            if alt != self.phone_e164 && !self.alternate_phones.contains(&alt) {
                self.alternate_phones.push(alt);
            }
        }
        for (k, v) in other.custom_fields {
            let slot = self.custom_fields.entry(k).or_default();
            if slot.is_empty() {
                *slot = v;
            }
        }
    }
}

/// A row that did not become an entry (the DNC reader's; contact rows are [`ContactReject`]s).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reject {
    /// 1-based line in the CSV where the row starts (the header is line 1).
    pub line: u64,
    /// Why, naming the column (`Phone 1: invalid number "043-797-5229" for region US`).
    pub reason: String,
}

/// Counts for one read of a contact file. `accepted + rejected + duplicates == rows`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ImportStats {
    /// Data rows read (header excluded; blank lines are not rows).
    pub rows: u64,
    /// Rows that became a distinct contact.
    pub accepted: u64,
    /// Rows rejected, each with a reason.
    pub rejected: u64,
    /// Valid rows whose number appeared on an earlier row; merged into that row.
    pub duplicates: u64,
    /// Alternate numbers that were not valid and were dropped (their rows were kept).
    pub alternate_phones_dropped: u64,
}

/// One batch of output from [`read_contacts`], in file order.
#[derive(Debug, Default)]
pub struct Batch {
    /// Rows whose number was not seen before, with later duplicates in this batch merged in.
    pub rows: Vec<ContactRow>,
    /// Duplicates of rows handed out in an earlier batch (several merged together when they
    /// share a number); merge each into the stored row with [`ContactRow::merge_from`].
    pub merges: Vec<ContactRow>,
    /// Rows rejected in this batch, with their cells.
    pub rejects: Vec<ContactReject>,
    /// The file's header cells as read (see [`ReadSummary::header`]); on the first batch only.
    pub header: Option<Vec<String>>,
}

impl Batch {
    fn len(&self) -> usize {
        self.rows.len() + self.merges.len() + self.rejects.len()
    }
}

/// What a full read produced besides the batches.
#[derive(Debug, Clone)]
pub struct ReadSummary {
    /// Row counts.
    pub stats: ImportStats,
    /// SHA-256 (lower-case hex) of the bytes read, i.e. of the file as imported.
    pub sha256: String,
    /// Accepted contacts by where their zone came from.
    pub zones: ZoneCounts,
    /// The header's cells as read, untrimmed (a UTF-8 BOM and a CRLF file's `\r` dropped): the
    /// names of [`ContactReject::fields`].
    pub header: Vec<String>,
}

/// File-level errors: the list cannot be read at all. Row problems are [`Reject`]s instead.
#[derive(Debug, thiserror::Error)]
pub enum ContactsError {
    /// The file could not be opened or read.
    #[error("contact file {}: {source}", path.display())]
    Io {
        /// The contact file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A column the mapping needs is not in the header.
    #[error("contact file {}: column `{column}` (contacts.{field}) is not in the header", path.display())]
    MissingColumn {
        /// The contact file.
        path: PathBuf,
        /// The column name looked for.
        column: String,
        /// The `[contacts]` key that names it (`phone`, `alternate_phones`, ...).
        field: &'static str,
    },
    /// The header row could not be read as CSV.
    #[error("contact file {}, line {line}: {message}", path.display())]
    Csv {
        /// The contact file.
        path: PathBuf,
        /// 1-based line.
        line: u64,
        /// What is wrong.
        message: String,
    },
    /// The consumer of the batches stopped the read (its side failed).
    #[error("reading contact file {} was stopped by its consumer", path.display())]
    Stopped {
        /// The contact file.
        path: PathBuf,
    },
}

/// SHA-256 (lower-case hex) of the file at `path`, read in a stream.
///
/// Errors: [`ContactsError::Io`].
pub fn file_sha256(path: &Path) -> Result<String, ContactsError> {
    let io = |source| ContactsError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut reader = HashingReader {
        inner: std::fs::File::open(path).map_err(io)?,
        hasher: Sha256::new(),
    };
    std::io::copy(&mut reader, &mut std::io::sink()).map_err(io)?;
    Ok(hex(&reader.hasher.finalize()))
}

/// Reads the whole file, calling `on_batch` with batches of about `batch_rows` entries
/// (new rows, merges of duplicates into rows of earlier batches, rejects) in file order.
/// `on_batch` returns `ControlFlow::Break` to stop the read. [`read_contacts_with`] with the
/// default options otherwise.
///
/// Errors: [`ContactsError`] for an unreadable file, a bad header, a missing column, or a stop.
pub fn read_contacts<F>(src: &ContactSource, batch_rows: usize, on_batch: F) -> Result<ReadSummary, ContactsError>
where
    F: FnMut(Batch) -> ControlFlow<()>,
{
    let opts = ReadOptions {
        batch_rows,
        ..ReadOptions::default()
    };
    read_contacts_with(src, &opts, on_batch)
}

/// One CSV record as read: the line it starts on and its fields.
type RawRow = (u64, ByteRecord);
/// One validated row: the line and the row, how many alternates it dropped and where its zone
/// came from; or the reject.
type CheckedRow = Result<(ContactRow, u64, ZoneSource), ContactReject>;

/// [`read_contacts`] with the work split as `opts` says: records are read on one thread,
/// validated on `opts.threads`, and merged in file order on the calling thread, which also
/// calls `on_batch`. The batches, the summary and the rejects are the same for every `opts`
/// with the same `batch_rows`.
///
/// Errors: as [`read_contacts`]. A malformed CSV record (bad UTF-8 is a reject instead) ends
/// the read with [`ContactsError::Csv`] after the batches before it.
pub fn read_contacts_with<F>(src: &ContactSource, opts: &ReadOptions, on_batch: F) -> Result<ReadSummary, ContactsError>
where
    F: FnMut(Batch) -> ControlFlow<()>,
{
    read_contacts_observed(src, opts, &NoProgress, on_batch)
}

/// [`read_contacts_with`] reporting to `observer`: [`ReadObserver::progress`] from the reading
/// thread after each chunk of [`ReadOptions::chunk_rows`] records (bytes of the file read so
/// far, its size, records read), and [`ReadObserver::finish`] once the read ends, whatever
/// its result. What is read does not depend on the observer.
///
/// Errors: as [`read_contacts`].
pub fn read_contacts_observed<F>(
    src: &ContactSource,
    opts: &ReadOptions,
    observer: &dyn ReadObserver,
    on_batch: F,
) -> Result<ReadSummary, ContactsError>
where
    F: FnMut(Batch) -> ControlFlow<()>,
{
    let mut last = ReadProgress::default();
    let read = read_observed(src, opts, observer, &mut last, on_batch);
    // Before any line of ours, so that a progress bar is gone when it is written.
    observer.finish(&last);
    if let Ok(ReadSummary { zones, .. }) = &read
        && zones.default > 0
    {
        tracing::info!(file = %src.path.display(), contacts = zones.default,
            default_timezone = src.default_timezone.name(), from_column = zones.column,
            from_number = zones.number,
            "Contacts whose row and number give no time zone use the campaign's default_timezone.");
    }
    read
}

fn read_observed<F>(
    src: &ContactSource,
    opts: &ReadOptions,
    observer: &dyn ReadObserver,
    last_progress: &mut ReadProgress,
    mut on_batch: F,
) -> Result<ReadSummary, ContactsError>
where
    F: FnMut(Batch) -> ControlFlow<()>,
{
    let path = &src.path;
    let io = |source| ContactsError::Io {
        path: path.clone(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let total_bytes = file.metadata().ok().map(|m| m.len());
    // Records end at '\n' only, so a CRLF file's '\r' stays in the last field (cells are
    // trimmed) and csv's line counter matches the file's lines. Field counts are checked per
    // row so that a malformed row is reported as a reject.
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .terminator(csv::Terminator::Any(b'\n'))
        .buffer_capacity(256 * 1024)
        .from_reader(HashingReader {
            inner: file,
            hasher: Sha256::new(),
        });
    let header = match rdr.headers() {
        Ok(h) => h.clone(),
        Err(e) => return Err(fatal(path, e, 1)),
    };
    let map = ColumnMap::resolve(src, &header)?;
    let mut header_cells = record_cells(header.as_byte_record());
    if let Some(first) = header_cells.first_mut()
        && let Some(rest) = first.strip_prefix('\u{feff}')
    {
        *first = rest.to_string();
    }
    let default_tz = src.default_timezone.name();
    let chunk_rows = opts.chunk_rows.max(1);
    let batch_rows = opts.batch_rows.max(1);

    let produce = |send: &mut dyn FnMut(Vec<RawRow>) -> bool| -> Result<(String, ReadProgress), ContactsError> {
        let mut chunk = Vec::with_capacity(chunk_rows);
        let mut progress = ReadProgress {
            bytes: 0,
            total_bytes,
            rows: 0,
        };
        loop {
            let mut raw = ByteRecord::new();
            match rdr.read_byte_record(&mut raw) {
                Ok(false) => break,
                Ok(true) => {}
                Err(e) => {
                    let line = e.position().map_or(0, |p| p.line());
                    return Err(fatal(path, e, line));
                }
            }
            if raw.len() == 1 && raw[0].trim_ascii().is_empty() {
                continue; // a blank line ("\r" alone in a CRLF file)
            }
            chunk.push((start_line(&raw, rdr.position().line()), raw));
            if chunk.len() >= chunk_rows {
                progress.rows += chunk.len() as u64;
                progress.bytes = rdr.position().byte();
                observer.progress(&progress);
                if !send(std::mem::replace(&mut chunk, Vec::with_capacity(chunk_rows))) {
                    return Err(ContactsError::Stopped { path: path.clone() });
                }
            }
        }
        progress.rows += chunk.len() as u64;
        progress.bytes = rdr.position().byte();
        if !chunk.is_empty() && !send(chunk) {
            return Err(ContactsError::Stopped { path: path.clone() });
        }
        Ok((hex(&rdr.into_inner().hasher.finalize()), progress))
    };
    let work = |chunk: Vec<RawRow>| -> Vec<CheckedRow> {
        chunk
            .into_iter()
            .map(|(line, raw)| map.check(raw, header.len(), line, src.default_region, default_tz))
            .collect()
    };
    let consume = |checked: &mut dyn Iterator<Item = Vec<CheckedRow>>| {
        let mut stats = ImportStats::default();
        let mut dedupe = Dedupe::default();
        let mut batch = Batch {
            header: Some(header_cells.clone()),
            ..Batch::default()
        };
        for result in checked.flatten() {
            stats.rows += 1;
            match result {
                Ok((row, dropped, source)) => {
                    stats.alternate_phones_dropped += dropped;
                    if dedupe.add(row, source, &mut batch, default_tz) {
                        stats.accepted += 1;
                    } else {
                        stats.duplicates += 1;
                    }
                }
                Err(reject) => {
                    stats.rejected += 1;
                    batch.rejects.push(reject);
                }
            }
            if batch.len() >= batch_rows {
                dedupe.flushed();
                if on_batch(std::mem::take(&mut batch)).is_break() {
                    return Err(ContactsError::Stopped { path: path.clone() });
                }
            }
        }
        Ok((stats, dedupe.zones, batch))
    };
    let (read, consumed) = ordered_map(opts.threads, produce, work, consume);
    // The consumer's error first: when it stopped, the reader only saw its channel close.
    let (stats, zones, last) = consumed?;
    let (sha256, progress) = read?;
    *last_progress = progress;
    if last.len() > 0 && on_batch(last).is_break() {
        return Err(ContactsError::Stopped { path: path.clone() });
    }
    Ok(ReadSummary {
        stats,
        sha256,
        zones,
        header: header_cells,
    })
}

/// Convenience for `dialerd check`: reads and counts without a database, keeping the rejects.
///
/// Errors: as [`read_contacts`].
pub fn check_contacts(src: &ContactSource) -> Result<(ImportStats, Vec<ContactReject>), ContactsError> {
    check_contacts_summary(src).map(|(summary, rejects)| (summary.stats, rejects))
}

/// [`check_contacts`] with the whole [`ReadSummary`] (zone sources, SHA-256, header).
///
/// Errors: as [`read_contacts`].
pub fn check_contacts_summary(src: &ContactSource) -> Result<(ReadSummary, Vec<ContactReject>), ContactsError> {
    check_contacts_observed(src, &NoProgress)
}

/// [`check_contacts_summary`] reporting to `observer` (see [`read_contacts_observed`]).
///
/// Errors: as [`read_contacts`].
pub fn check_contacts_observed(
    src: &ContactSource,
    observer: &dyn ReadObserver,
) -> Result<(ReadSummary, Vec<ContactReject>), ContactsError> {
    let mut rejects = Vec::new();
    let summary = read_contacts_observed(src, &ReadOptions::default(), observer, |b| {
        rejects.extend(b.rejects);
        ControlFlow::Continue(())
    })?;
    Ok((summary, rejects))
}

/// The 1-based line where `record` starts. `after` is the reader's line once the record was
/// read: one past the record's last line when it ended with '\n'. The record's own position
/// (taken before any blank lines were skipped) covers a last record without a newline.
pub(crate) fn start_line(record: &ByteRecord, after: u64) -> u64 {
    let embedded: u64 = record
        .iter()
        .map(|f| f.iter().filter(|&&b| b == b'\n').count() as u64)
        .sum();
    let from_end = after.saturating_sub(1 + embedded);
    record.position().map_or(from_end, |p| p.line().max(from_end))
}

fn fatal(path: &Path, e: csv::Error, line: u64) -> ContactsError {
    let message = e.to_string();
    match e.into_kind() {
        csv::ErrorKind::Io(source) => ContactsError::Io {
            path: path.to_path_buf(),
            source,
        },
        _ => ContactsError::Csv {
            path: path.to_path_buf(),
            line,
            message,
        },
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// A reader that hashes what passes through it.
struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// Tracks numbers seen so far, where the first row of each currently is, and where the zone of
/// each contact comes from.
#[derive(Default)]
struct Dedupe {
    /// Every number seen (compact key) → where its contact's zone comes from.
    seen: HashMap<u64, ZoneSource>,
    /// Number → index in the current batch's `rows`.
    pending: HashMap<u64, usize>,
    /// Number → index in the current batch's `merges`.
    merging: HashMap<u64, usize>,
    /// Accepted contacts by zone source, kept up to date as duplicates merge.
    zones: ZoneCounts,
}

impl Dedupe {
    /// Adds a valid row whose zone came from `source`; returns true when its number is new.
    fn add(&mut self, row: ContactRow, source: ZoneSource, batch: &mut Batch, default_tz: &str) -> bool {
        let k = key(&row.phone_e164);
        let Some(current) = self.seen.get_mut(&k) else {
            self.seen.insert(k, source);
            self.zones.add(source);
            self.pending.insert(k, batch.rows.len());
            batch.rows.push(row);
            return true;
        };
        // A duplicate's own zone replaces a fallback one (see `ContactRow::merge_from`); the
        // merge happens here or in the store, to the same effect.
        if source == ZoneSource::Column
            && *current != ZoneSource::Column
            && is_given(&row.timezone, &row.phone_e164, default_tz)
        {
            self.zones.moved(*current, ZoneSource::Column);
            *current = ZoneSource::Column;
        }
        if let Some(&i) = self.pending.get(&k) {
            batch.rows[i].merge_from(row, default_tz);
        } else if let Some(&i) = self.merging.get(&k) {
            batch.merges[i].merge_from(row, default_tz);
        } else {
            self.merging.insert(k, batch.merges.len());
            batch.merges.push(row);
        }
        false
    }

    /// The current batch was handed out.
    fn flushed(&mut self) {
        self.pending.clear();
        self.merging.clear();
    }
}

/// A compact key for an E.164 string: its digits as a number (E.164 has at most 15; up to 18
/// fit below 2^63). Anything else (never produced by the formatter) is hashed into the upper
/// half, a disjoint range.
fn key(e164: &str) -> u64 {
    match e164.strip_prefix('+') {
        Some(d) if !d.is_empty() && d.len() <= 18 && d.bytes().all(|b| b.is_ascii_digit()) => {
            d.parse::<u64>().unwrap_or_default()
        }
        _ => {
            let mut h = DefaultHasher::new();
            e164.hash(&mut h);
            (1u64 << 63) | h.finish()
        }
    }
}
