//! Reading one phone cell as libphonenumber reads it (`parse` for a default region, then
//! `is_valid_number`), with `rlibphonenumber`, a Rust port of libphonenumber that embeds its
//! metadata: E.164 form, extension, and the time zones libphonenumber gives the number.
//!
//! The metadata release is [`LIBPHONENUMBER_METADATA`]; `dialerd --version` prints it. The
//! time-zone map in `src/core/zones_data.txt` and the test data in `tests/data/` come from the
//! same release (the tests below and in `tests/phone_examples.rs` fail when they drift apart).

use crate::core::zones::zone_list_for_phone;
use rlibphonenumber::{PHONE_NUMBER_UTIL, PhoneNumberFormat, PhoneNumberUtil};

pub use rlibphonenumber::PhoneNumber;
pub use rlibphonenumber::enums::Region;

/// The libphonenumber metadata release the validator carries: `rlibphonenumber`
/// [`RLIBPHONENUMBER_VERSION`]'s "Used metadata version". To update, bump the crate in
/// `Cargo.toml`, set both constants from its README, and regenerate `src/core/zones_data.txt`
/// and `tests/data/phone_examples.tsv` with the PyPI `phonenumbers` of the same version.
pub const LIBPHONENUMBER_METADATA: &str = "9.0.42";

/// The `rlibphonenumber` version [`LIBPHONENUMBER_METADATA`] was read from (a test checks it
/// against `Cargo.lock`).
pub const RLIBPHONENUMBER_VERSION: &str = "2.2.15";

/// Reads an ISO 3166 region code that libphonenumber has metadata for (`US`, `gb`; surrounding
/// spaces ignored). `None` for anything else, including the non-geographic `001`.
pub fn parse_region(s: &str) -> Option<Region> {
    let region = Region::from_code(s.trim()).ok()?;
    (region != Region::World && PHONE_NUMBER_UTIL.get_country_code_for_region(region).is_some()).then_some(region)
}

/// A region's code as written in files and messages (`US`).
pub fn region_code(region: Region) -> String {
    region.as_region_str().to_string()
}

thread_local! {
    /// This thread's own validator, built from the same embedded metadata as the global one.
    /// The `regex` crate hands its match caches out fastest to the first thread that used a
    /// regex, and through a lock to every other: threads that validate rows in parallel each
    /// keep an instance of their own. `None` (then the global one is used) cannot happen with
    /// the embedded metadata, which the crate checks at build time.
    static UTIL: Option<PhoneNumberUtil> = PhoneNumberUtil::new().ok();
}

/// Runs `f` with this thread's validator.
fn with_util<T>(f: impl FnOnce(&PhoneNumberUtil) -> T) -> T {
    UTIL.with(|u| f(u.as_ref().unwrap_or(&PHONE_NUMBER_UTIL)))
}

/// A number read by [`normalize_phone`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NormalizedPhone {
    /// E.164 form, without the extension.
    pub e164: String,
    /// The extension, when the text had one.
    pub extension: Option<String>,
}

/// Why a phone cell is not a usable number; displayed after the column name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PhoneError {
    /// The cell is empty (or only spaces).
    #[error("empty")]
    Empty,
    /// libphonenumber found no number in the text.
    #[error("cannot parse \"{text}\" ({reason})")]
    Unparsable {
        /// The cell, trimmed.
        text: String,
        /// The parser's error.
        reason: String,
    },
    /// Parsed, but not a valid number under the metadata.
    #[error("invalid number \"{text}\" for region {region}")]
    Invalid {
        /// The cell, trimmed.
        text: String,
        /// The default region the text was read for.
        region: String,
    },
}

/// Reads `text` exactly as libphonenumber does for `region` (`parse` then `is_valid_number`) and
/// returns its E.164 form and extension.
///
/// Errors: [`PhoneError`] when empty, unparsable or not a valid number.
pub fn normalize_phone(text: &str, region: Region) -> Result<NormalizedPhone, PhoneError> {
    parse_valid(text, region).map(|n| normalized(&n))
}

/// [`normalize_phone`] without the conversion: the parsed, valid number.
pub(crate) fn parse_valid(text: &str, region: Region) -> Result<PhoneNumber, PhoneError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(PhoneError::Empty);
    }
    with_util(|util| {
        let number = util.parse(text, Some(region)).map_err(|e| PhoneError::Unparsable {
            text: text.to_string(),
            reason: e.to_string(),
        })?;
        if !util.is_valid_number(&number) {
            return Err(PhoneError::Invalid {
                text: text.to_string(),
                region: region_code(region),
            });
        }
        Ok(number)
    })
}

/// E.164 form of a parsed number (`+442079460958`).
pub(crate) fn e164(number: &PhoneNumber) -> String {
    with_util(|util| util.format(number, PhoneNumberFormat::E164).into_owned())
}

/// E.164 form and extension of a parsed number.
pub(crate) fn normalized(number: &PhoneNumber) -> NormalizedPhone {
    NormalizedPhone {
        e164: e164(number),
        extension: number.extension.clone().filter(|e| !e.is_empty()),
    }
}

/// True when `s` is a valid number already written in E.164 form (`+14155550100`).
pub fn is_e164(s: &str) -> bool {
    s.starts_with('+')
        && PHONE_NUMBER_UTIL
            .parse(s, None)
            .is_ok_and(|n| PHONE_NUMBER_UTIL.is_valid_number(&n) && e164(&n) == s)
}

/// The zone list libphonenumber gives a valid number whose E.164 form is `e164`
/// ([`crate::core::zones::zones_for_phone`]), as stored in `contacts.timezone`; `None` when it
/// gives none.
pub(crate) fn number_zone_list(number: &PhoneNumber, e164: &str) -> Option<&'static str> {
    zone_list_for_phone(number, e164)
}

/// [`number_zone_list`] for a number already in E.164 form (`+12125550100`).
pub(crate) fn e164_zone_list(e164: &str) -> Option<&'static str> {
    PHONE_NUMBER_UTIL
        .parse(e164, None)
        .ok()
        .and_then(|n| number_zone_list(&n, e164))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zone_lists_of_numbers() {
        let us = parse_valid("(907) 555-0100", Region::US).unwrap();
        let e = normalized(&us).e164;
        assert_eq!(e, "+19075550100");
        assert_eq!(number_zone_list(&us, &e), Some("America/Adak&America/Anchorage"));
        assert_eq!(e164_zone_list("+12125550100"), Some("America/New_York"));
        assert_eq!(e164_zone_list("+442079460958"), Some("Europe/London"));
        assert_eq!(e164_zone_list("not a number"), None);
        // A toll-free number has no zone of its own (libphonenumber would give every NANP zone):
        // none, so the campaign's default applies.
        assert_eq!(e164_zone_list("+18005550199"), None);
    }

    #[test]
    fn regions_are_those_with_metadata() {
        assert_eq!(parse_region(" gb "), Some(Region::GB));
        assert_eq!(parse_region("US"), Some(Region::US));
        assert_eq!(region_code(Region::GB), "GB");
        // Two letters, but no metadata: not a region here.
        assert_eq!(parse_region("XX"), None);
        assert_eq!(parse_region("ZZ"), None);
        assert_eq!(parse_region("001"), None);
        assert_eq!(parse_region("USA"), None);
        assert_eq!(parse_region(""), None);
    }

    #[test]
    fn e164_texts() {
        assert!(is_e164("+14155550100"));
        assert!(is_e164("+442079460958"));
        assert!(!is_e164("+1 415 555 0100"));
        assert!(!is_e164("14155550100"));
        assert!(!is_e164("+19995550100"));
    }

    /// The constants say which release the crate carries; the zone map must be the same release.
    #[test]
    fn metadata_versions_agree() {
        let lock = include_str!("../../Cargo.lock");
        let locked = lock
            .split("[[package]]")
            .find(|p| p.contains("\nname = \"rlibphonenumber\"\n"))
            .and_then(|p| p.lines().find_map(|l| l.strip_prefix("version = \"")))
            .map(|v| v.trim_end_matches('"'));
        assert_eq!(
            locked,
            Some(RLIBPHONENUMBER_VERSION),
            "rlibphonenumber changed: read its metadata version and update both constants"
        );
        let zones = include_str!("../core/zones_data.txt");
        let stamp = format!("`phonenumbers` {LIBPHONENUMBER_METADATA} ");
        assert!(
            zones.lines().take(10).any(|l| l.contains(&stamp)),
            "src/core/zones_data.txt is not from libphonenumber {LIBPHONENUMBER_METADATA}: regenerate it"
        );
    }
}
