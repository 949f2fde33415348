//! The header of a contact CSV resolved against the campaign's `[contacts]` mapping, and one
//! record validated into a [`ContactRow`] or a reject reason naming its column: field count,
//! UTF-8, the phone as libphonenumber reads it ([`super::phone`]), the zone
//! ([`super::contact_zone`]), alternates, custom fields. Pure and independent per row, so rows
//! are validated in parallel ([`super::contacts::read_contacts_with`]).

use super::contact_zone::{ZoneSource, row_zone};
use super::contacts::{ContactRow, ContactSource, ContactsError};
use super::phone::{Region, normalize_phone, normalized, parse_valid};
use csv::{ByteRecord, StringRecord};
use serde::Serialize;
use std::collections::{BTreeMap, HashSet};

/// A contact row that did not become a contact, with its cells as read, so that the full reject
/// report ([`super::rejects`]) can give the row back to be fixed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ContactReject {
    /// 1-based line in the CSV where the row starts (the header is line 1).
    pub line: u64,
    /// Why, naming the column (`Phone 1: invalid number "043-797-5229" for region US`).
    pub reason: String,
    /// 0-based index in the header of the column the reason names; `None` when the row as a
    /// whole is bad (its field count), or for a reject stored before cells were kept.
    pub column: Option<usize>,
    /// The row's cells as read, untrimmed: invalid UTF-8 replaced by U+FFFD, a CRLF file's
    /// `\r` dropped from the last. As many as the row had (a malformed row's count differs from
    /// the header's); empty for a reject stored before cells were kept.
    pub fields: Vec<String>,
}

/// The cells of `raw` as the reject report gives them back (see [`ContactReject::fields`]).
pub(crate) fn record_cells(raw: &ByteRecord) -> Vec<String> {
    let last = raw.len().saturating_sub(1);
    raw.iter()
        .enumerate()
        .map(|(i, f)| {
            let f = if i == last {
                f.strip_suffix(b"\r").unwrap_or(f)
            } else {
                f
            };
            String::from_utf8_lossy(f).into_owned()
        })
        .collect()
}

/// A mapped column: its index and its header name as written (trimmed), for reasons.
#[derive(Debug, Clone)]
pub(crate) struct Col {
    idx: usize,
    label: String,
}

/// The header resolved against the `[contacts]` mapping.
#[derive(Debug)]
pub(crate) struct ColumnMap {
    phone: Col,
    alternates: Vec<Col>,
    first_name: Option<Col>,
    last_name: Option<Col>,
    email: Option<Col>,
    timezone: Option<Col>,
    priority: Option<Col>,
    /// `consent_at` and `consent_kind`, checked per row; they stay among the custom fields.
    consent_at: Option<Col>,
    consent_kind: Option<Col>,
    custom: Vec<Col>,
}

fn norm(s: &str) -> String {
    s.trim_start_matches('\u{feff}').trim().to_lowercase()
}

impl ColumnMap {
    pub(crate) fn resolve(src: &ContactSource, header: &StringRecord) -> Result<ColumnMap, ContactsError> {
        let labels: Vec<String> = header
            .iter()
            .map(|h| h.trim_start_matches('\u{feff}').trim().to_string())
            .collect();
        let normed: Vec<String> = labels.iter().map(|l| norm(l)).collect();
        let find = |name: &str| {
            let n = norm(name);
            normed.iter().position(|h| *h == n).map(|idx| Col {
                idx,
                label: labels[idx].clone(),
            })
        };
        let required = |name: &str, field: &'static str| {
            find(name).ok_or_else(|| ContactsError::MissingColumn {
                path: src.path.clone(),
                column: name.to_string(),
                field,
            })
        };
        let optional = |configured: &Option<String>, default: &str, field: &'static str| match configured {
            Some(name) => required(name, field).map(Some),
            None => Ok(find(default)),
        };
        let c = &src.columns;
        let phone = required(&c.phone, "phone")?;
        let alternates = c
            .alternate_phones
            .iter()
            .map(|a| required(a, "alternate_phones"))
            .collect::<Result<Vec<_>, _>>()?;
        let first_name = optional(&c.first_name, "first_name", "first_name")?;
        let last_name = optional(&c.last_name, "last_name", "last_name")?;
        let email = optional(&c.email, "email", "email")?;
        let timezone = optional(&c.timezone, "timezone", "timezone")?;
        let priority = optional(&c.priority, "priority", "priority")?;
        // Signal columns must exist when mapped; their cells stay among the custom fields, where
        // the runner and preflight read them (`contact_signals`).
        let mapped = |name: &Option<String>, field: &'static str| name.as_ref().map(|n| required(n, field)).transpose();
        mapped(&c.state, "state")?;
        mapped(&c.postal_code, "postal_code")?;
        mapped(&c.consent_source, "consent_source")?;
        let consent_at = mapped(&c.consent_at, "consent_at")?;
        let consent_kind = mapped(&c.consent_kind, "consent_kind")?;
        let mut used: HashSet<usize> = alternates.iter().map(|a| a.idx).collect();
        used.insert(phone.idx);
        used.extend(
            [&first_name, &last_name, &email, &timezone, &priority]
                .into_iter()
                .flatten()
                .map(|c| c.idx),
        );
        let custom = (0..labels.len())
            .filter(|i| !used.contains(i))
            .map(|idx| Col {
                idx,
                label: labels[idx].clone(),
            })
            .collect();
        Ok(ColumnMap {
            phone,
            alternates,
            first_name,
            last_name,
            email,
            timezone,
            priority,
            consent_at,
            consent_kind,
            custom,
        })
    }

    /// Validates one raw record of a file whose header has `fields` fields: field count, UTF-8,
    /// then [`ColumnMap::row`]. A reject keeps the record's cells (built only then).
    pub(crate) fn check(
        &self,
        raw: ByteRecord,
        fields: usize,
        line: u64,
        region: Region,
        default_tz: &str,
    ) -> Result<(ContactRow, u64, ZoneSource), ContactReject> {
        if raw.len() != fields {
            return Err(ContactReject {
                line,
                reason: format!("malformed row: {} fields, the header has {fields}", raw.len()),
                column: None,
                fields: record_cells(&raw),
            });
        }
        match StringRecord::from_byte_record(raw) {
            Ok(record) => self
                .row(&record, line, region, default_tz)
                .map_err(|(column, reason)| ContactReject {
                    line,
                    reason,
                    column: Some(column),
                    fields: record_cells(record.as_byte_record()),
                }),
            Err(e) => {
                let field = e.utf8_error().field();
                Err(ContactReject {
                    line,
                    reason: format!("malformed row: field {} is not valid UTF-8", field + 1),
                    column: Some(field),
                    fields: record_cells(&e.into_byte_record()),
                })
            }
        }
    }

    /// Validates one record; on success returns the row, how many alternates were dropped, and
    /// where its zone came from; else the index of the column at fault and the reason.
    fn row(
        &self,
        rec: &StringRecord,
        line: u64,
        region: Region,
        default_tz: &str,
    ) -> Result<(ContactRow, u64, ZoneSource), (usize, String)> {
        let cell = |c: &Col| rec.get(c.idx).unwrap_or("").trim();
        let opt = |c: &Option<Col>| c.as_ref().map(cell).filter(|s| !s.is_empty()).map(str::to_string);
        let number = parse_valid(cell(&self.phone), region)
            .map_err(|e| (self.phone.idx, format!("{}: {e}", self.phone.label)))?;
        let phone = normalized(&number);
        let tz_label = self.timezone.as_ref().map_or("timezone", |c| &c.label);
        // Only a timezone cell can fail here, so the column is always known.
        let tz_idx = self.timezone.as_ref().map_or(0, |c| c.idx);
        let (timezone, source) = row_zone(
            self.timezone.as_ref().map(cell),
            tz_label,
            &number,
            &phone.e164,
            default_tz,
        )
        .map_err(|reason| (tz_idx, reason))?;
        let mut dropped = 0;
        let mut alternate_phones = Vec::new();
        for alt in &self.alternates {
            let text = cell(alt);
            if text.is_empty() {
                continue;
            }
            match normalize_phone(text, region) {
                Ok(p) if p.e164 != phone.e164 && !alternate_phones.contains(&p.e164) => alternate_phones.push(p.e164),
                Ok(_) => {}
                Err(_) => dropped += 1,
            }
        }
        let priority = match (&self.priority, opt(&self.priority)) {
            (Some(col), Some(text)) => Some(
                text.parse::<i64>()
                    .map_err(|_| (col.idx, format!("{}: \"{text}\" is not an integer priority", col.label)))?,
            ),
            _ => None,
        };
        let at = self.consent_at.as_ref().map(|c| (c.idx, c.label.as_str(), cell(c)));
        let kind = self.consent_kind.as_ref().map(|c| (c.idx, c.label.as_str(), cell(c)));
        super::contact_signals::check_consent_cells(at.map(|(_, l, v)| (l, v)), kind.map(|(_, l, v)| (l, v))).map_err(
            |reason| {
                let bad_at = at
                    .is_some_and(|(_, _, v)| !v.is_empty() && super::contact_signals::parse_consent_time(v).is_none());
                let idx = if bad_at { at.map(|a| a.0) } else { kind.map(|k| k.0) };
                (idx.unwrap_or(self.phone.idx), reason)
            },
        )?;
        let mut custom_fields = BTreeMap::new();
        for c in &self.custom {
            custom_fields
                .entry(c.label.clone())
                .or_insert_with(|| cell(c).to_string());
        }
        let row = ContactRow {
            line,
            phone_e164: phone.e164,
            extension: phone.extension,
            alternate_phones,
            first_name: opt(&self.first_name),
            last_name: opt(&self.last_name),
            email: opt(&self.email),
            timezone,
            priority,
            custom_fields,
        };
        Ok((row, dropped, source))
    }
}
