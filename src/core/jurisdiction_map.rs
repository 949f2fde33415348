//! Which jurisdictions a contact is in, from every signal that names one: a state or province
//! cell (`FL`, `Florida`, `US-FL`), a postal code (US ZIP by its first three digits, Canadian by
//! its first letter) and the number's NANP area code. The maps are embedded data files beside
//! this one (`area_codes.txt` from libphonenumber's geocoding data, `postal_codes.txt`), each
//! with its source, version and generator in its header. Pure lookups.

use super::jurisdiction::JurisdictionCode;
use std::collections::HashMap;
use std::sync::OnceLock;

const AREA_CODES: &str = include_str!("area_codes.txt");
const POSTAL_CODES: &str = include_str!("postal_codes.txt");

/// US states, DC and territories, and Canadian provinces and territories, by ISO 3166-2 code
/// and English name (ISO 3166-2:US, ISO 3166-2:CA).
const SUBDIVISIONS: &[(&str, &str)] = &[
    ("US-AL", "Alabama"),
    ("US-AK", "Alaska"),
    ("US-AZ", "Arizona"),
    ("US-AR", "Arkansas"),
    ("US-CA", "California"),
    ("US-CO", "Colorado"),
    ("US-CT", "Connecticut"),
    ("US-DE", "Delaware"),
    ("US-DC", "District of Columbia"),
    ("US-FL", "Florida"),
    ("US-GA", "Georgia"),
    ("US-HI", "Hawaii"),
    ("US-ID", "Idaho"),
    ("US-IL", "Illinois"),
    ("US-IN", "Indiana"),
    ("US-IA", "Iowa"),
    ("US-KS", "Kansas"),
    ("US-KY", "Kentucky"),
    ("US-LA", "Louisiana"),
    ("US-ME", "Maine"),
    ("US-MD", "Maryland"),
    ("US-MA", "Massachusetts"),
    ("US-MI", "Michigan"),
    ("US-MN", "Minnesota"),
    ("US-MS", "Mississippi"),
    ("US-MO", "Missouri"),
    ("US-MT", "Montana"),
    ("US-NE", "Nebraska"),
    ("US-NV", "Nevada"),
    ("US-NH", "New Hampshire"),
    ("US-NJ", "New Jersey"),
    ("US-NM", "New Mexico"),
    ("US-NY", "New York"),
    ("US-NC", "North Carolina"),
    ("US-ND", "North Dakota"),
    ("US-OH", "Ohio"),
    ("US-OK", "Oklahoma"),
    ("US-OR", "Oregon"),
    ("US-PA", "Pennsylvania"),
    ("US-RI", "Rhode Island"),
    ("US-SC", "South Carolina"),
    ("US-SD", "South Dakota"),
    ("US-TN", "Tennessee"),
    ("US-TX", "Texas"),
    ("US-UT", "Utah"),
    ("US-VT", "Vermont"),
    ("US-VA", "Virginia"),
    ("US-WA", "Washington"),
    ("US-WV", "West Virginia"),
    ("US-WI", "Wisconsin"),
    ("US-WY", "Wyoming"),
    ("US-PR", "Puerto Rico"),
    ("US-GU", "Guam"),
    ("US-VI", "United States Virgin Islands"),
    ("US-MP", "Northern Mariana Islands"),
    ("US-AS", "American Samoa"),
    ("CA-AB", "Alberta"),
    ("CA-BC", "British Columbia"),
    ("CA-MB", "Manitoba"),
    ("CA-NB", "New Brunswick"),
    ("CA-NL", "Newfoundland and Labrador"),
    ("CA-NS", "Nova Scotia"),
    ("CA-NT", "Northwest Territories"),
    ("CA-NU", "Nunavut"),
    ("CA-ON", "Ontario"),
    ("CA-PE", "Prince Edward Island"),
    ("CA-QC", "Quebec"),
    ("CA-SK", "Saskatchewan"),
    ("CA-YT", "Yukon"),
];

/// The English name of a subdivision code (`US-FL` → `Florida`), when it is one.
pub fn subdivision_name(code: JurisdictionCode) -> Option<&'static str> {
    SUBDIVISIONS.iter().find(|(c, _)| *c == code.as_str()).map(|(_, n)| *n)
}

struct Maps {
    area: HashMap<u16, JurisdictionCode>,
    zip3: HashMap<u16, Vec<JurisdictionCode>>,
    fsa: HashMap<u8, Vec<JurisdictionCode>>,
    names: HashMap<String, JurisdictionCode>,
}

fn codes(list: &str) -> Vec<JurisdictionCode> {
    list.split('&').filter_map(JurisdictionCode::parse).collect()
}

fn maps() -> &'static Maps {
    static MAPS: OnceLock<Maps> = OnceLock::new();
    MAPS.get_or_init(|| {
        let data_lines = |text: &'static str| {
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
        };
        let mut area = HashMap::new();
        for l in data_lines(AREA_CODES) {
            if let Some((npa, code)) = l.split_once('|')
                && let (Ok(n), Some(c)) = (npa.parse::<u16>(), JurisdictionCode::parse(code))
            {
                area.insert(n, c);
            }
        }
        let (mut zip3, mut fsa) = (HashMap::new(), HashMap::new());
        for l in data_lines(POSTAL_CODES) {
            let mut parts = l.split('|');
            match (parts.next(), parts.next(), parts.next()) {
                (Some("US"), Some(z), Some(list)) => {
                    if let Ok(n) = z.parse::<u16>() {
                        zip3.insert(n, codes(list));
                    }
                }
                (Some("CA"), Some(letter), Some(list)) if letter.len() == 1 => {
                    fsa.insert(letter.as_bytes()[0].to_ascii_uppercase(), codes(list));
                }
                _ => {}
            }
        }
        let mut names = HashMap::new();
        for (code, name) in SUBDIVISIONS {
            if let Some(c) = JurisdictionCode::parse(code) {
                names.insert(name.to_lowercase(), c);
                names.insert(code.to_lowercase(), c);
                names.insert(code[3..].to_lowercase(), c);
            }
        }
        // Common spellings that ISO's names leave out.
        for (alias, code) in [
            ("québec", "CA-QC"),
            ("washington dc", "US-DC"),
            ("d.c.", "US-DC"),
            ("newfoundland", "CA-NL"),
        ] {
            if let Some(c) = JurisdictionCode::parse(code) {
                names.insert(alias.to_string(), c);
            }
        }
        Maps { area, zip3, fsa, names }
    })
}

/// The jurisdiction a state or province cell names: a postal abbreviation (`FL`, `ON`), an ISO
/// 3166-2 code (`US-FL`) or an English name (`Florida`), case-insensitive. A bare two-letter
/// abbreviation used by both countries does not occur (US and Canadian postal abbreviations are
/// disjoint). `None` for anything else.
pub fn parse_state(cell: &str) -> Option<JurisdictionCode> {
    let key = cell.trim().to_lowercase();
    if key.is_empty() {
        return None;
    }
    maps().names.get(&key).copied()
}

/// The jurisdictions a postal code may be in: a US ZIP (`33101`, `33101-1234`) by its first
/// three digits, a Canadian postal code (`M5V 2T6`) by its first letter. Empty when unknown.
pub fn postal_jurisdictions(cell: &str) -> Vec<JurisdictionCode> {
    let s = cell.trim();
    let b = s.as_bytes();
    if b.len() >= 5 && b[..5].iter().all(u8::is_ascii_digit) {
        return s[..3]
            .parse::<u16>()
            .ok()
            .and_then(|n| maps().zip3.get(&n).cloned())
            .unwrap_or_default();
    }
    if b.len() >= 3 && b[0].is_ascii_alphabetic() && b[1].is_ascii_digit() && b[2].is_ascii_alphabetic() {
        return maps().fsa.get(&b[0].to_ascii_uppercase()).cloned().unwrap_or_default();
    }
    Vec::new()
}

/// The jurisdiction of a NANP number's area code (`+13055550100` → `US-FL`), from
/// libphonenumber's geocoding data; `None` for other countries and non-geographic codes.
pub fn area_code_jurisdiction(e164: &str) -> Option<JurisdictionCode> {
    let digits = e164.strip_prefix("+1")?;
    if digits.len() != 10 {
        return None;
    }
    let npa: u16 = digits.get(..3)?.parse().ok()?;
    maps().area.get(&npa).copied()
}

/// Every jurisdiction a contact is in, from each signal it has (state cell, postal cell, the
/// number's area code), sorted and without repeats. Signals that disagree are all kept: the
/// rules of each apply at once.
pub fn contact_jurisdictions(e164: &str, state: Option<&str>, postal: Option<&str>) -> Vec<JurisdictionCode> {
    let mut out: Vec<JurisdictionCode> = state.and_then(parse_state).into_iter().collect();
    out.extend(postal.map(postal_jurisdictions).unwrap_or_default());
    out.extend(area_code_jurisdiction(e164));
    out.sort_unstable();
    out.dedup();
    out
}

/// Counts of the embedded maps (area codes, ZIP3 prefixes, Canadian letters), for tests.
pub fn map_sizes() -> (usize, usize, usize) {
    let m = maps();
    (m.area.len(), m.zip3.len(), m.fsa.len())
}
