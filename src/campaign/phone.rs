//! Reading one phone cell with `phonenumber` (libphonenumber's rules and metadata): E.164 form,
//! extension, and the time zones libphonenumber gives the number.

use crate::core::zones::zone_list_for_phone;
use phonenumber::PhoneNumber;
use phonenumber::country::Id;

/// Reads an ISO 3166 region code (`US`, `gb`, surrounding spaces ignored).
pub fn parse_region(s: &str) -> Option<Id> {
    s.trim().to_ascii_uppercase().parse().ok()
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

/// Reads `text` exactly as libphonenumber does for `region` (`parse` then `is_valid`) and
/// returns its E.164 form and extension.
///
/// Errors: [`PhoneError`] when empty, unparsable or not a valid number.
pub fn normalize_phone(text: &str, region: Id) -> Result<NormalizedPhone, PhoneError> {
    parse_valid(text, region).map(|n| normalized(&n))
}

/// [`normalize_phone`] without the conversion: the parsed, valid number.
pub(crate) fn parse_valid(text: &str, region: Id) -> Result<PhoneNumber, PhoneError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(PhoneError::Empty);
    }
    let number = phonenumber::parse(Some(region), text).map_err(|e| PhoneError::Unparsable {
        text: text.to_string(),
        reason: e.to_string(),
    })?;
    if !phonenumber::is_valid(&number) {
        return Err(PhoneError::Invalid {
            text: text.to_string(),
            region: region.as_ref().to_string(),
        });
    }
    Ok(number)
}

/// E.164 form and extension of a parsed number.
pub(crate) fn normalized(number: &PhoneNumber) -> NormalizedPhone {
    NormalizedPhone {
        e164: format!("+{}{}", number.code().value(), number.national()),
        extension: number.extension().map(|e| e.to_string()),
    }
}

/// The zone list libphonenumber gives a valid number
/// ([`crate::core::zones::zones_for_phone`]), as stored in `contacts.timezone`; `None` when it
/// gives none.
pub(crate) fn number_zone_list(number: &PhoneNumber) -> Option<&'static str> {
    zone_list_for_phone(number)
}

/// [`number_zone_list`] for a number already in E.164 form (`+12125550100`).
pub(crate) fn e164_zone_list(e164: &str) -> Option<&'static str> {
    phonenumber::parse(None, e164).ok().and_then(|n| number_zone_list(&n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zone_lists_of_numbers() {
        let us = parse_valid("(907) 555-0100", Id::US).unwrap();
        assert_eq!(normalized(&us).e164, "+19075550100");
        assert_eq!(number_zone_list(&us), Some("America/Adak&America/Anchorage"));
        assert_eq!(e164_zone_list("+12125550100"), Some("America/New_York"));
        assert_eq!(e164_zone_list("+442079460958"), Some("Europe/London"));
        assert_eq!(e164_zone_list("not a number"), None);
        // A toll-free number has no zone of its own (libphonenumber would give every NANP zone):
        // none, so the campaign's default applies.
        assert_eq!(e164_zone_list("+18005550199"), None);
    }
}
