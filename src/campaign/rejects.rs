//! The full reject report: every row a contact read rejected, as CSV with the columns
//! `line,column,value,reason` and then the row's own cells under the file's header names, so that
//! an operator can fix the rows and drop them in again. Two sources: the store (`dialerd rejects
//! CAMPAIGN`), from the cells the last import kept with each reject, so the report needs neither
//! the file nor that it be unchanged since; and a check (`dialerd check FILE --rejects OUT.csv`,
//! no database). This module owns the CSV shape and the files it writes.

use super::check::{CheckReport, check_file_full};
use super::contacts::{ContactReject, file_sha256};
use crate::store::{Store, StoreError};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// The report's first columns, before the file's own.
pub const LEAD_COLUMNS: [&str; 4] = ["line", "column", "value", "reason"];
/// Rejects read from the store per query.
const PAGE: u32 = 5_000;

/// Errors of the reject report.
#[derive(Debug, thiserror::Error)]
pub enum RejectsError {
    /// The campaign is not in the database.
    #[error("no campaign `{0}` in this database")]
    UnknownCampaign(String),
    /// The campaign's contact file was never imported.
    #[error("campaign `{0}` has no contact import yet, so no rejected rows")]
    NoImport(String),
    /// `check --rejects`: the campaign file or its contact list could not be checked.
    #[error("{}: no rejects written: {errors}", file.display())]
    NotChecked {
        /// The campaign file.
        file: PathBuf,
        /// What the check found, `; `-joined.
        errors: String,
    },
    /// `check --rejects`: the output would overwrite the contact list it reports on.
    #[error("{}: the reject report would overwrite the contact file it reports on", path.display())]
    Overwrite {
        /// The output file.
        path: PathBuf,
    },
    /// The output file could not be created.
    #[error("cannot create {}: {source}", path.display())]
    Create {
        /// The output file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Writing the CSV failed (disk full, a closed pipe).
    #[error("cannot write the reject report to {target}: {source}")]
    Write {
        /// Where it went: a path, or `stdout`.
        target: String,
        /// The writer's error.
        source: csv::Error,
    },
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a report wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RejectsWritten {
    /// Data rows written (one per rejected row).
    pub rows: u64,
    /// Rows without their cells (stored before migration 0011; the next import stores them).
    pub without_cells: u64,
    /// Caveats, also logged at warn level: cells missing, a count that differs from the last
    /// import's, a contact file changed since the import.
    pub notes: Vec<String>,
}

/// A CSV writer of reject rows: the header row on creation, then one row per reject.
pub struct RejectsCsv<W: Write> {
    w: csv::Writer<W>,
    names: Vec<String>,
    width: usize,
}

impl<W: Write> RejectsCsv<W> {
    /// Writes the header row: [`LEAD_COLUMNS`], `header` (the file's header cells), and
    /// `extra_1`, `extra_2`, ... up to `widest` cells when a malformed row has more cells than the
    /// header.
    ///
    /// Errors: the writer's.
    pub fn new(out: W, header: &[String], widest: usize) -> Result<Self, csv::Error> {
        let width = widest.max(header.len());
        let names: Vec<String> = header
            .iter()
            .cloned()
            .chain((header.len()..width).map(|i| format!("extra_{}", i - header.len() + 1)))
            .collect();
        // Flexible: a row wider than announced (not expected) is written whole, never cut.
        let mut w = csv::WriterBuilder::new().flexible(true).from_writer(out);
        w.write_record(LEAD_COLUMNS.iter().copied().chain(names.iter().map(String::as_str)))?;
        Ok(RejectsCsv { w, names, width })
    }

    /// Writes one reject: its line, the name of the column at fault (trimmed) and that cell, its
    /// reason, then its cells padded with empty ones to the header's width.
    ///
    /// Errors: the writer's.
    pub fn write(&mut self, r: &ContactReject) -> Result<(), csv::Error> {
        let line = r.line.to_string();
        let column = r.column.map_or(String::new(), |i| {
            self.names
                .get(i)
                .map_or_else(|| format!("#{}", i + 1), |n| n.trim().to_string())
        });
        let value = r.column.and_then(|i| r.fields.get(i)).map_or("", String::as_str);
        let pad = self.width.saturating_sub(r.fields.len());
        let cells = r.fields.iter().map(String::as_str).chain(std::iter::repeat_n("", pad));
        self.w.write_record(
            [line.as_str(), column.as_str(), value, r.reason.as_str()]
                .into_iter()
                .chain(cells),
        )
    }

    /// Flushes the output.
    ///
    /// Errors: the writer's.
    pub fn finish(mut self) -> Result<(), csv::Error> {
        self.w.flush()?;
        Ok(())
    }
}

/// Writes `rejects` under `header` to `out` as one report; returns the rows written.
///
/// Errors: the writer's.
pub fn write_rejects<W: Write>(out: W, header: &[String], rejects: &[ContactReject]) -> Result<u64, csv::Error> {
    let widest = rejects.iter().map(|r| r.fields.len()).max().unwrap_or(0);
    let mut csv = RejectsCsv::new(out, header, widest)?;
    for r in rejects {
        csv.write(r)?;
    }
    csv.finish()?;
    Ok(rejects.len() as u64)
}

/// `dialerd rejects CAMPAIGN`: writes every row the campaign's last import rejected to `out`,
/// by line, read from the store a page at a time. `target` names `out` in errors (`stdout`).
///
/// Errors: [`RejectsError::UnknownCampaign`], [`RejectsError::NoImport`],
/// [`RejectsError::Store`], [`RejectsError::Write`].
pub async fn write_campaign_rejects<W: Write>(
    store: &Store,
    campaign_id: &str,
    out: W,
    target: &str,
) -> Result<RejectsWritten, RejectsError> {
    if !store.campaign_exists(campaign_id).await? {
        return Err(RejectsError::UnknownCampaign(campaign_id.to_string()));
    }
    let Some(last) = store.last_import(campaign_id).await? else {
        return Err(RejectsError::NoImport(campaign_id.to_string()));
    };
    let header = store.import_reject_header(campaign_id).await?.unwrap_or_default();
    let widest = store.import_rejects_widest(campaign_id).await?;
    let werr = |source| RejectsError::Write {
        target: target.to_string(),
        source,
    };
    let mut csv = RejectsCsv::new(out, &header, widest).map_err(werr)?;
    let mut written = RejectsWritten::default();
    let mut after = 0;
    loop {
        let page = store.import_rejects_after(campaign_id, after, PAGE).await?;
        let Some(end) = page.last() else { break };
        after = end.line;
        for r in &page {
            csv.write(r).map_err(werr)?;
            written.rows += 1;
            written.without_cells += u64::from(r.fields.is_empty());
        }
    }
    csv.finish().map_err(werr)?;

    if written.without_cells > 0 {
        written.notes.push(format!(
            "{} rejected rows of campaign `{campaign_id}` were stored before dialerd kept their cells; \
             the next import (the next start of the daemon) stores them",
            written.without_cells
        ));
    }
    if written.rows != last.stats.rejected {
        written.notes.push(format!(
            "campaign `{campaign_id}`: {} rejected rows stored, but its last import counted {}: an import \
             after it stopped part way",
            written.rows, last.stats.rejected
        ));
    }
    let file = PathBuf::from(&last.file);
    let now = tokio::task::spawn_blocking(move || file_sha256(&file)).await;
    match now {
        Ok(Ok(sha)) if sha == last.file_sha256 => {}
        Ok(Ok(_)) => written.notes.push(format!(
            "{} changed since its last import ({}); these are that import's rejected rows",
            last.file,
            last.imported_at.to_rfc3339()
        )),
        Ok(Err(e)) => written
            .notes
            .push(format!("{e}; these are the last import's rejected rows")),
        Err(_) => {}
    }
    for n in &written.notes {
        tracing::warn!("{n}");
    }
    Ok(written)
}

/// `dialerd check FILE --rejects OUT`: checks `file` as [`super::check::check_file`] does and
/// writes every rejected row of its contact list to `out` (created or replaced); the report
/// names `out` and still lists only the first rows.
///
/// Errors: [`RejectsError::NotChecked`] when the campaign file is invalid or its list
/// unreadable (nothing written), [`RejectsError::Overwrite`], [`RejectsError::Create`],
/// [`RejectsError::Write`].
pub fn check_file_with_rejects(file: &Path, out: &Path) -> Result<(CheckReport, u64), RejectsError> {
    let (mut report, list) = check_file_full(file);
    let Some(list) = list else {
        return Err(RejectsError::NotChecked {
            file: file.to_path_buf(),
            errors: report.errors.join("; "),
        });
    };
    if let (Ok(a), Ok(b)) = (std::fs::canonicalize(out), std::fs::canonicalize(&list.contacts_file))
        && a == b
    {
        return Err(RejectsError::Overwrite {
            path: out.to_path_buf(),
        });
    }
    let f = File::create(out).map_err(|source| RejectsError::Create {
        path: out.to_path_buf(),
        source,
    })?;
    let rows = write_rejects(BufWriter::new(f), &list.header, &list.rejects).map_err(|source| RejectsError::Write {
        target: out.display().to_string(),
        source,
    })?;
    if let Some(c) = &mut report.contacts {
        c.rejects_file = Some(out.display().to_string());
    }
    Ok((report, rows))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reject(line: u64, column: Option<usize>, fields: &[&str]) -> ContactReject {
        ContactReject {
            line,
            reason: format!("reason {line}"),
            column,
            fields: fields.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn rows_keep_their_cells_under_the_header_and_pad_or_extend_it() {
        let header: Vec<String> = ["phone", " Name ", "plan"].iter().map(|s| s.to_string()).collect();
        let rejects = [
            reject(2, Some(0), &["043-797-5229", "Ann", "gold"]),
            reject(3, None, &["415", "Bo"]),
            reject(4, None, &["1", "2", "3", "4, with comma"]),
            reject(5, Some(1), &["212-555-0100", "", "x"]),
            reject(6, None, &[]),
        ];
        let mut out = Vec::new();
        assert_eq!(write_rejects(&mut out, &header, &rejects).unwrap(), 5);
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            "line,column,value,reason,phone, Name ,plan,extra_1\n\
             2,phone,043-797-5229,reason 2,043-797-5229,Ann,gold,\n\
             3,,,reason 3,415,Bo,,\n\
             4,,,reason 4,1,2,3,\"4, with comma\"\n\
             5,Name,,reason 5,212-555-0100,,x,\n\
             6,,,reason 6,,,,\n"
        );
    }

    #[test]
    fn an_empty_report_is_its_header() {
        let mut out = Vec::new();
        assert_eq!(write_rejects(&mut out, &["phone".to_string()], &[]).unwrap(), 0);
        assert_eq!(String::from_utf8(out).unwrap(), "line,column,value,reason,phone\n");
    }
}
