//! The zone an imported contact gets, and where it came from: the row's timezone column (one
//! IANA zone), else the zones libphonenumber gives its number (a `&`-joined list, see
//! [`crate::core::zones`]), else the campaign's `default_timezone`.
//!
//! When duplicates of a number merge, a zone that is only a fallback (the default, or the list
//! derived from the number) is replaced by a later row's zone that is neither.

use super::phone::{PhoneNumber, e164_zone_list, number_zone_list};
use chrono_tz::Tz;
use serde::Serialize;

/// Where an accepted contact's zone came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ZoneSource {
    /// The row's timezone column.
    Column,
    /// The number (libphonenumber's prefix → time-zone map).
    Number,
    /// The campaign's `default_timezone`.
    Default,
}

/// Accepted contacts by where their zone came from, after duplicates merged;
/// `column + number + default` is the number of accepted contacts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ZoneCounts {
    /// Zone from the row's timezone column.
    pub column: u64,
    /// Zones derived from the number.
    pub number: u64,
    /// The campaign's `default_timezone`: neither the row nor the number gave a zone.
    pub default: u64,
}

impl ZoneCounts {
    /// All three counts added.
    pub fn total(&self) -> u64 {
        self.column + self.number + self.default
    }

    fn slot(&mut self, source: ZoneSource) -> &mut u64 {
        match source {
            ZoneSource::Column => &mut self.column,
            ZoneSource::Number => &mut self.number,
            ZoneSource::Default => &mut self.default,
        }
    }

    /// Counts one more contact whose zone came from `source`.
    pub(crate) fn add(&mut self, source: ZoneSource) {
        *self.slot(source) += 1;
    }

    /// A contact's zone now comes from `to` instead of `from`.
    pub(crate) fn moved(&mut self, from: ZoneSource, to: ZoneSource) {
        let f = self.slot(from);
        *f = f.saturating_sub(1);
        self.add(to);
    }
}

/// The zone of a row whose number is `number` (E.164 form `e164`): the `column` cell when it is not empty (one IANA
/// zone, canonical name), else the number's zones, else `default_tz`.
///
/// Errors: the reason for a row reject (`TZ: unknown zone "Mars/Base"`), `label` naming the column.
pub(crate) fn row_zone(
    column: Option<&str>,
    label: &str,
    number: &PhoneNumber,
    e164: &str,
    default_tz: &str,
) -> Result<(String, ZoneSource), String> {
    match column.map(str::trim).filter(|s| !s.is_empty()) {
        Some(text) => match text.parse::<Tz>() {
            Ok(tz) => Ok((tz.name().to_string(), ZoneSource::Column)),
            Err(_) => Err(format!("{label}: unknown zone \"{text}\"")),
        },
        None => Ok(match number_zone_list(number, e164) {
            Some(zones) => (zones.to_string(), ZoneSource::Number),
            None => (default_tz.to_string(), ZoneSource::Default),
        }),
    }
}

/// True when the zone text `tz` of a contact numbered `phone_e164` is more than a fallback:
/// neither `default_tz` nor the zone list derived from the number. Only such a zone of a later
/// duplicate replaces an earlier row's zone.
pub(crate) fn is_given(tz: &str, phone_e164: &str, default_tz: &str) -> bool {
    tz != default_tz && e164_zone_list(phone_e164) != Some(tz)
}

/// Whether merging a later row with zone `other` into a row with zone `current` (same number)
/// takes `other`: `current` is a fallback and `other` is not.
pub(crate) fn merge_takes(current: &str, other: &str, phone_e164: &str, default_tz: &str) -> bool {
    if current == other || other == default_tz {
        return false;
    }
    let derived = e164_zone_list(phone_e164);
    let given = |tz: &str| tz != default_tz && derived != Some(tz);
    given(other) && !given(current)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::campaign::phone::{Region, e164, parse_valid};

    const NY: &str = "America/New_York";

    #[test]
    fn column_then_number_then_default() {
        let n = parse_valid("602-555-0100", Region::US).unwrap();
        let e = e164(&n);
        let zone = |cell| row_zone(cell, "TZ", &n, &e, NY);
        assert_eq!(zone(None), Ok(("America/Phoenix".into(), ZoneSource::Number)));
        assert_eq!(zone(Some("  ")), Ok(("America/Phoenix".into(), ZoneSource::Number)));
        assert_eq!(
            zone(Some(" Europe/Paris ")),
            Ok(("Europe/Paris".into(), ZoneSource::Column))
        );
        // chrono-tz's canonical spelling of a link is its own name.
        assert_eq!(zone(Some("US/Arizona")), Ok(("US/Arizona".into(), ZoneSource::Column)));
        assert_eq!(zone(Some("Mars/Base")), Err(r#"TZ: unknown zone "Mars/Base""#.into()));
        // A column holds one zone, not a list.
        assert!(zone(Some("America/Chicago&America/New_York")).is_err());
        // A number libphonenumber has no zone for: the default (+882 is an international network).
        let intl = parse_valid("+88213100000", Region::US).unwrap();
        assert_eq!(
            row_zone(None, "TZ", &intl, "+88213100000", NY),
            Ok((NY.into(), ZoneSource::Default))
        );
    }

    #[test]
    fn merge_replaces_fallbacks_only() {
        let phx = "+16025550100";
        // A derived or default zone gives way to a given one.
        assert!(merge_takes("America/Phoenix", "America/Denver", phx, NY));
        assert!(merge_takes(NY, "America/Denver", phx, NY));
        // A given zone stays, and a fallback never replaces anything.
        assert!(!merge_takes("America/Denver", "Europe/Paris", phx, NY));
        assert!(!merge_takes("America/Denver", "America/Phoenix", phx, NY));
        assert!(!merge_takes(NY, "America/Phoenix", phx, NY));
        assert!(!merge_takes("America/Phoenix", NY, phx, NY));
        assert!(!merge_takes("America/Phoenix", "America/Phoenix", phx, NY));
    }

    #[test]
    fn counts_move() {
        let mut c = ZoneCounts::default();
        c.add(ZoneSource::Number);
        c.add(ZoneSource::Default);
        c.moved(ZoneSource::Default, ZoneSource::Column);
        assert_eq!(
            c,
            ZoneCounts {
                column: 1,
                number: 1,
                default: 0
            }
        );
        assert_eq!(c.total(), 2);
    }
}
