//! Time zones derived from a phone number, and the zone lists kept in `contacts.timezone`.
//!
//! The data is libphonenumber's prefix → time-zone map (`resources/timezones/map_data.txt`), as
//! shipped in the `phonenumbers` package; `zones_data.txt` beside this file says which version,
//! when, and how to regenerate it (`zones_data.py`). It is the release whose metadata
//! `rlibphonenumber` carries, which gives the number's type here. The lookups follow libphonenumber's
//! `PhoneNumberToTimeZonesMapper`: the longest prefix of the E.164 digits for a geographical
//! number, the country calling code's zones for any other (a mobile number in most countries, a
//! toll-free number). One departure: a NANP number (+1) always goes by its area code, mobiles
//! included (libphonenumber gives a Bahamas or Jamaica mobile every NANP zone), and an area code
//! with no zone of its own (800, 5xx, 600, 900) gets none, so the campaign's `default_timezone`
//! applies: every NANP zone from Guam to Adak is never open at once. A number can map to several
//! zones (US area code 907: Adak and Anchorage;
//! an Australian mobile: every Australian zone); a contact's zones are stored as one or more IANA
//! names joined by `&`, libphonenumber's separator.
//!
//! Pure: the table and the metadata are embedded and parsed once.

use chrono_tz::Tz;
use rlibphonenumber::{PHONE_NUMBER_UTIL, PhoneNumber, PhoneNumberType};
use std::collections::HashMap;
use std::sync::OnceLock;

/// Separator between the zones of a list, as libphonenumber writes it.
pub const ZONE_SEPARATOR: char = '&';

/// Countries whose mobile numbers are geographical (libphonenumber's `GEO_MOBILE_COUNTRIES`:
/// Mexico, Argentina, Brazil, Indonesia, China).
const GEO_MOBILE_COUNTRIES: [i32; 5] = [52, 54, 55, 62, 86];

/// The North American Numbering Plan's country calling code.
const NANP: i32 = 1;

const DATA: &str = include_str!("zones_data.txt");

/// Why a stored zone list cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ZoneError {
    /// The text is empty, or one of its `&`-separated items is.
    #[error("empty zone in zone list \"{0}\"")]
    Empty(String),
    /// An item is not an IANA zone known to chrono-tz.
    #[error("unknown zone \"{0}\"")]
    Unknown(String),
}

/// The zones of one prefix, and the same as a stored zone list.
#[derive(Debug)]
struct Entry {
    zones: Box<[Tz]>,
    list: Box<str>,
}

/// A prefix → zones table.
#[derive(Debug, Default)]
pub struct ZoneTable {
    by_prefix: HashMap<&'static str, Entry>,
    longest: usize,
    skipped: usize,
}

impl ZoneTable {
    /// Reads `prefix|Zone1&Zone2` lines; `#` comments and blank lines are ignored. Zones
    /// chrono-tz does not know are dropped; a line with no digits-only prefix, a repeated prefix,
    /// or no known zone is skipped and counted in [`ZoneTable::skipped`].
    pub fn parse(text: &'static str) -> ZoneTable {
        let mut table = ZoneTable::default();
        for line in text.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let entry = line.split_once('|').and_then(|(prefix, zones)| {
                let prefix = prefix.trim();
                let digits = !prefix.is_empty() && prefix.bytes().all(|b| b.is_ascii_digit());
                let mut zones: Vec<Tz> = zones
                    .split(ZONE_SEPARATOR)
                    .filter_map(|z| z.trim().parse().ok())
                    .collect();
                sort_zones(&mut zones);
                (digits && !zones.is_empty()).then_some((prefix, zones))
            });
            match entry {
                Some((prefix, zones)) if !table.by_prefix.contains_key(prefix) => {
                    table.longest = table.longest.max(prefix.len());
                    let list = format_zone_list(&zones).into_boxed_str();
                    let zones = zones.into_boxed_slice();
                    table.by_prefix.insert(prefix, Entry { zones, list });
                }
                _ => table.skipped += 1,
            }
        }
        table
    }

    /// The zones of the longest prefix of `digits` in the table.
    pub fn lookup(&self, digits: &str) -> Option<&[Tz]> {
        self.entry(digits).map(|e| &*e.zones)
    }

    fn entry(&self, digits: &str) -> Option<&Entry> {
        (1..=self.longest.min(digits.len()))
            .rev()
            .find_map(|n| digits.get(..n).and_then(|p| self.by_prefix.get(p)))
    }

    /// Number of prefixes.
    pub fn len(&self) -> usize {
        self.by_prefix.len()
    }

    /// True when the table has no prefix.
    pub fn is_empty(&self) -> bool {
        self.by_prefix.is_empty()
    }

    /// Lines that were not comments or blank and were not used.
    pub fn skipped(&self) -> usize {
        self.skipped
    }
}

/// The embedded libphonenumber table, parsed on first use.
pub fn table() -> &'static ZoneTable {
    static TABLE: OnceLock<ZoneTable> = OnceLock::new();
    TABLE.get_or_init(|| ZoneTable::parse(DATA))
}

/// Zones of an E.164 number (`+12125550100`, the `+` optional) by the longest matching prefix
/// of its digits: libphonenumber's `getTimeZonesForGeographicalNumber`. `None` when the text is
/// not digits or no prefix matches.
pub fn zones_for_number(e164: &str) -> Option<&'static [Tz]> {
    let digits = e164.strip_prefix('+').unwrap_or(e164);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    table().lookup(digits)
}

/// Zones of a country calling code (`1` gives every NANP zone, `44` the UK and its islands).
pub fn zones_for_country(code: u16) -> Option<&'static [Tz]> {
    table().lookup(&code.to_string())
}

/// Zones of a valid number as libphonenumber's `getTimeZonesForNumber` gives them: by prefix
/// for a geographical number (fixed line, fixed line or mobile, or a mobile in a country whose
/// mobiles are geographical), the country's zones for any other type; `None` when the data has
/// none. A NANP number goes by its area code whatever its type (see the module header).
/// `e164` is the number's E.164 form (`+12125550100`), which the caller has at hand.
pub fn zones_for_phone(number: &PhoneNumber, e164: &str) -> Option<&'static [Tz]> {
    entry_for_phone(number, e164).map(|e| &*e.zones)
}

/// [`zones_for_phone`] as a stored zone list ([`format_zone_list`]), without formatting it anew.
pub fn zone_list_for_phone(number: &PhoneNumber, e164: &str) -> Option<&'static str> {
    entry_for_phone(number, e164).map(|e| &*e.list)
}

fn entry_for_phone(number: &PhoneNumber, e164: &str) -> Option<&'static Entry> {
    let t = table();
    let code = number.country_code;
    let digits = e164.strip_prefix('+').unwrap_or(e164);
    let by_prefix = t.entry(digits);
    // The country calling code is the first 1 to 3 digits of the E.164 form.
    let code_len = match code {
        ..=9 => 1,
        10..=99 => 2,
        _ => 3,
    };
    let country = digits.get(..code_len).and_then(|c| t.entry(c));
    if code == NANP {
        // An area code with no zone of its own (toll-free 8xx, 5xx, 600, 900) matches only the
        // country entry, every zone from Guam to Adak, where no 08:00–21:00 moment is open in all
        // of them: it tells nothing about where the person is, so the campaign's default applies.
        if by_prefix.map(std::ptr::from_ref) == country.map(std::ptr::from_ref) {
            return None;
        }
        return by_prefix;
    }
    // The type (a dozen pattern matches) matters only when the two lookups differ.
    if by_prefix.map(std::ptr::from_ref) == country.map(std::ptr::from_ref) {
        return by_prefix;
    }
    match PHONE_NUMBER_UTIL.get_number_type(number) {
        PhoneNumberType::FixedLine | PhoneNumberType::FixedLineOrMobile => by_prefix,
        PhoneNumberType::Mobile if GEO_MOBILE_COUNTRIES.contains(&code) => by_prefix,
        _ => country,
    }
}

/// Reads a stored zone list: IANA names joined by `&` (`America/Chicago&America/New_York`), a
/// single name being a list of one. Items are trimmed; the result is sorted and deduplicated.
///
/// Errors: [`ZoneError::Empty`] for an empty list or item, [`ZoneError::Unknown`] for a name
/// chrono-tz does not know.
pub fn parse_zone_list(s: &str) -> Result<Vec<Tz>, ZoneError> {
    let mut zones = s
        .split(ZONE_SEPARATOR)
        .map(|item| match item.trim() {
            "" => Err(ZoneError::Empty(s.to_string())),
            name => name.parse::<Tz>().map_err(|_| ZoneError::Unknown(name.to_string())),
        })
        .collect::<Result<Vec<_>, _>>()?;
    sort_zones(&mut zones);
    Ok(zones)
}

/// The zones stored for a contact (`&`-joined IANA names); `[default]` when the stored value
/// does not parse.
pub fn zones_or(stored: &str, default: Tz) -> Vec<Tz> {
    parse_zone_list(stored).unwrap_or_else(|_| vec![default])
}

/// Writes a zone list for storage: names sorted, duplicates removed, joined by `&`.
pub fn format_zone_list(zones: &[Tz]) -> String {
    let mut zones = zones.to_vec();
    sort_zones(&mut zones);
    let names: Vec<&str> = zones.iter().map(|z| z.name()).collect();
    names.join("&")
}

fn sort_zones(zones: &mut Vec<Tz>) {
    zones.sort_by_key(|z| z.name());
    zones.dedup();
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono_tz::{America, Australia, Europe, Pacific};

    fn names(zones: Option<&[Tz]>) -> Vec<&'static str> {
        zones.unwrap_or_default().iter().map(|z| z.name()).collect()
    }

    fn phone(e164: &str) -> (PhoneNumber, &str) {
        (PHONE_NUMBER_UTIL.parse(e164, None).unwrap(), e164)
    }

    fn zones_of(e164: &str) -> Option<&'static [Tz]> {
        let (n, e) = phone(e164);
        zones_for_phone(&n, e)
    }

    fn list_of(e164: &str) -> Option<&'static str> {
        let (n, e) = phone(e164);
        zone_list_for_phone(&n, e)
    }

    #[test]
    fn the_embedded_table_is_whole() {
        let t = table();
        assert_eq!(
            t.skipped(),
            0,
            "every data line names a prefix and zones chrono-tz knows"
        );
        let lines = DATA.lines().filter(|l| !l.is_empty() && !l.starts_with('#')).count();
        assert_eq!(t.len(), lines);
        assert!(t.len() > 3000);
        // No zone is dropped either: every name on every line parses.
        for line in DATA.lines().filter(|l| !l.starts_with('#')) {
            let (_, zones) = line.split_once('|').unwrap();
            assert!(parse_zone_list(zones).is_ok(), "{line}");
        }
    }

    #[test]
    fn nanp_area_codes() {
        assert_eq!(zones_for_number("+12125550100"), Some(&[America::New_York][..]));
        assert_eq!(zones_for_number("16025550100"), Some(&[America::Phoenix][..]));
        assert_eq!(zones_for_number("+18085550100"), Some(&[Pacific::Honolulu][..]));
        // Alaska's area code spans two zones.
        assert_eq!(
            names(zones_for_number("+19075550100")),
            ["America/Adak", "America/Anchorage"]
        );
        // Idaho's 208 splits by exchange: a longer prefix wins over the area code.
        assert_eq!(
            names(zones_for_number("+12082000000")),
            ["America/Boise", "America/Los_Angeles"]
        );
        assert_eq!(names(zones_for_country(1)).len(), 42);
        assert!(zones_for_country(1).unwrap().contains(&Pacific::Guam));
    }

    #[test]
    fn australia_and_lord_howe() {
        // Sydney's 02 area, but a few exchanges are Lord Howe Island (UTC+10:30, half-hour DST).
        assert_eq!(zones_for_number("+61298765432"), Some(&[Australia::Sydney][..]));
        assert_eq!(zones_for_number("+61265080123"), Some(&[Australia::Lord_Howe][..]));
        // Western Australia's 08 area: Adelaide or Perth (Eucla is Western Australia too).
        assert_eq!(
            names(zones_for_number("+61893456789")),
            ["Australia/Adelaide", "Australia/Perth"]
        );
        let country = names(zones_for_country(61));
        assert_eq!(country.len(), 8);
        assert!(country.contains(&"Australia/Lord_Howe") && country.contains(&"Australia/Eucla"));
    }

    #[test]
    fn mobiles_follow_libphonenumber() {
        // A fixed line is looked up by prefix.
        assert_eq!(zones_of("+61298765432"), Some(&[Australia::Sydney][..]));
        // An Australian mobile is not geographical: every Australian zone, not the prefix's Sydney.
        assert_eq!(zones_for_number("+61412345678"), Some(&[Australia::Sydney][..]));
        assert_eq!(zones_of("+61412345678"), zones_for_country(61));
        // A NANP number is "fixed line or mobile": by area code.
        assert_eq!(zones_of("+16025550100"), Some(&[America::Phoenix][..]));
        // A toll-free number has no zone of its own: libphonenumber gives every NANP zone, which no
        // window could satisfy at once, so it gets none here and the campaign's default applies.
        assert_eq!(zones_for_number("+18005550199"), zones_for_country(1));
        assert_eq!(zones_of("+18005550199"), None);
        // A NANP mobile goes by its area code: a Bahamas mobile is in Nassau, not everywhere.
        let (bahamas, _) = phone("+12424673590");
        assert_eq!(PHONE_NUMBER_UTIL.get_number_type(&bahamas), PhoneNumberType::Mobile);
        assert_eq!(names(zones_of("+12424673590")), ["America/Nassau"]);
        assert_eq!(list_of("+12424673590"), Some("America/Nassau"));
        assert_eq!(list_of("+19075550100"), Some("America/Adak&America/Anchorage"));
        // One zone for the whole country: no need to know the type.
        assert_eq!(names(zones_of("+4915123456789")), ["Europe/Berlin"]);
        // A Mexican mobile is geographical.
        assert_eq!(names(zones_of("+525512345678")), ["America/Mexico_City"]);
        // A UK mobile: the UK's zones (London and the Crown Dependencies).
        assert_eq!(
            names(zones_of("+447400123456")),
            [
                "Europe/Guernsey",
                "Europe/Isle_of_Man",
                "Europe/Jersey",
                "Europe/London"
            ]
        );
    }

    #[test]
    fn other_countries_and_unknown_prefixes() {
        assert_eq!(zones_for_number("+442079460958"), Some(&[Europe::London][..]));
        assert_eq!(zones_of("+442079460958"), Some(&[Europe::London][..]));
        assert_eq!(zones_for_number("+4930123456"), Some(&[Europe::Berlin][..]));
        // 999 is not a country calling code; 0 starts nothing.
        assert_eq!(zones_for_number("+9991234567"), None);
        assert_eq!(zones_for_number("0123"), None);
        assert_eq!(zones_for_number(""), None);
        assert_eq!(zones_for_number("+"), None);
        assert_eq!(zones_for_number("+1 212 555 0100"), None);
        assert_eq!(zones_for_country(999), None);
    }

    #[test]
    fn zone_lists_round_trip() {
        let zones = parse_zone_list("America/New_York&America/Chicago&America/New_York").unwrap();
        assert_eq!(zones, [America::Chicago, America::New_York]);
        assert_eq!(format_zone_list(&zones), "America/Chicago&America/New_York");
        assert_eq!(parse_zone_list(&format_zone_list(&zones)).unwrap(), zones);
        assert_eq!(parse_zone_list(" Europe/Paris ").unwrap(), [Europe::Paris]);
        assert_eq!(format_zone_list(&[Europe::Paris]), "Europe/Paris");
        assert_eq!(format_zone_list(&[]), "");
        for e in table().by_prefix.values() {
            assert_eq!(format_zone_list(&e.zones), &*e.list);
            assert_eq!(parse_zone_list(&e.list).unwrap(), e.zones.to_vec());
        }
        assert_eq!(parse_zone_list(""), Err(ZoneError::Empty(String::new())));
        assert_eq!(
            parse_zone_list("Europe/Paris&&Europe/Rome"),
            Err(ZoneError::Empty("Europe/Paris&&Europe/Rome".into()))
        );
        let err = parse_zone_list("Europe/Paris&Mars/Base").unwrap_err();
        assert_eq!(err, ZoneError::Unknown("Mars/Base".into()));
        assert_eq!(err.to_string(), r#"unknown zone "Mars/Base""#);
    }

    #[test]
    fn bad_data_lines_are_skipped() {
        let t = ZoneTable::parse(
            "# comment\n\n1|America/New_York\n12|Mars/Base\n13|Mars/Base&America/Chicago\nx1|Europe/Paris\n\
             |Europe/Paris\n44\n1|Europe/Paris\n 33 | Europe/Paris \n",
        );
        assert_eq!(t.len(), 3);
        assert_eq!(t.skipped(), 5);
        assert_eq!(t.lookup("12345"), Some(&[America::New_York][..]));
        assert_eq!(t.lookup("13"), Some(&[America::Chicago][..]));
        assert_eq!(t.lookup("331"), Some(&[Europe::Paris][..]));
        assert_eq!(t.lookup("44"), None);
        assert!(ZoneTable::parse("").is_empty());
    }
}
