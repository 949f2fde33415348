//! A contact of a simulated list, as the daemon's runner hands one to the core: its zones, its
//! jurisdictions and its consent evidence.

use crate::core::{Consent, JurisdictionCode};
use chrono_tz::Tz;

/// One contact of a simulated list: the zones its window is read in, the jurisdictions whose
/// rules apply to it and its consent evidence, as the daemon's runner gives them to the core.
#[derive(Clone, Debug, PartialEq)]
pub struct SimContact {
    /// One zone, or every zone its number may be in.
    pub zones: Vec<Tz>,
    /// Its jurisdictions (state column, postal code, area code).
    pub jurisdictions: Vec<JurisdictionCode>,
    /// Its consent evidence.
    pub consent: Option<Consent>,
}

impl From<Tz> for SimContact {
    /// A contact in one zone, with no jurisdiction and no consent evidence.
    fn from(tz: Tz) -> SimContact {
        SimContact {
            zones: vec![tz],
            jurisdictions: Vec::new(),
            consent: None,
        }
    }
}
