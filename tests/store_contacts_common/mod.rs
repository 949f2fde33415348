//! What the contact-import and hopper tests share: instants, the contact list's column mapping,
//! the header of its files and one of its numbers.

use chrono::{DateTime, TimeZone, Utc};
use dialerd::campaign::contacts::ContactSource;
use std::path::Path;

pub fn at(s: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_780_000_000 + s, 0).unwrap()
}

fn columns() -> dialerd::campaign::file::ContactsFile {
    let mut c = crate::common::contacts_columns("phone", &["alt"]);
    c.first_name = Some("first_name".into());
    c.last_name = Some("last_name".into());
    c.email = Some("email".into());
    c.priority = Some("priority".into());
    c
}

pub fn source(path: &Path) -> ContactSource {
    crate::common::contact_source(path, columns())
}

pub const HEADER: &str = "phone,first_name,last_name,email,priority,alt,plan\n";
pub const CY: &str = "+13122201003";
