//! Numbers as libphonenumber reads them, over libphonenumber's own example numbers: one per
//! supported region (and non-geographic entity) and number type, written in E.164, in the
//! international and national formats, with extensions, with the trunk prefix after the
//! country code, and as dialled from the US and from another country (its international
//! prefix); then each with one digit dropped. `tests/data/phone_examples.tsv` holds every text
//! with how Python `phonenumbers` (libphonenumber, the same metadata release as the validator)
//! judges it; `tests/data/phone_examples.py` writes it.

use dialerd::campaign::contacts::{PhoneError, normalize_phone, parse_region};
use dialerd::campaign::phone::LIBPHONENUMBER_METADATA;

const DATA: &str = include_str!("data/phone_examples.tsv");

/// libphonenumber's judgement of one text.
#[derive(Debug, PartialEq, Eq)]
enum Judged {
    Valid { e164: String, extension: Option<String> },
    Invalid,
    Unparsable,
}

struct Case<'a> {
    region: &'a str,
    name: &'a str,
    text: &'a str,
    want: Judged,
}

fn cases() -> Vec<Case<'static>> {
    DATA.lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            assert_eq!(f.len(), 5, "bad data line {l:?}");
            let want = match f[3] {
                "invalid" => Judged::Invalid,
                "unparsable" => Judged::Unparsable,
                e164 => Judged::Valid {
                    e164: e164.to_string(),
                    extension: (f[4] != "-").then(|| f[4].to_string()),
                },
            };
            Case {
                region: f[0],
                name: f[1],
                text: f[2],
                want,
            }
        })
        .collect()
}

fn judge(c: &Case) -> Judged {
    let region = parse_region(c.region).unwrap_or_else(|| panic!("{}: region {} unknown", c.name, c.region));
    match normalize_phone(c.text, region) {
        Ok(p) => Judged::Valid {
            e164: p.e164,
            extension: p.extension,
        },
        Err(PhoneError::Invalid { .. }) => Judged::Invalid,
        Err(PhoneError::Unparsable { .. } | PhoneError::Empty) => Judged::Unparsable,
    }
}

#[test]
fn the_data_is_from_the_validators_release() {
    let head = DATA.lines().next().unwrap_or_default();
    assert!(
        head.contains(&format!("`phonenumbers` {LIBPHONENUMBER_METADATA}")),
        "tests/data/phone_examples.tsv is not from libphonenumber {LIBPHONENUMBER_METADATA}: {head}"
    );
}

#[test]
fn every_example_number_is_accepted_with_libphonenumbers_e164() {
    let examples: Vec<Case> = cases().into_iter().filter(|c| !is_dropped(c)).collect();
    // 1143 examples in 9.0.42, each written 2 (non-geographic) or 8 ways.
    assert!(examples.len() > 9000, "{} example texts", examples.len());
    let regions: std::collections::BTreeSet<&str> = examples
        .iter()
        .map(|c| c.name.split(' ').next().unwrap_or(""))
        .collect();
    assert!(regions.len() >= 245, "{} regions", regions.len());
    let mut wrong = Vec::new();
    for c in &examples {
        assert!(
            matches!(c.want, Judged::Valid { .. }),
            "{}: the data says libphonenumber rejects it",
            c.name
        );
        let got = judge(c);
        if got != c.want {
            wrong.push(format!(
                "{} {:?} (read for {}): got {got:?}, libphonenumber {:?}",
                c.name, c.text, c.region, c.want
            ));
        }
    }
    println!("{} example texts, {} disagree", examples.len(), wrong.len());
    assert!(
        wrong.is_empty(),
        "{} of {} disagree:\n{}",
        wrong.len(),
        examples.len(),
        wrong.join("\n")
    );
}

#[test]
fn every_example_with_a_digit_dropped_is_judged_as_libphonenumber_judges_it() {
    let dropped: Vec<Case> = cases().into_iter().filter(is_dropped).collect();
    assert!(dropped.len() > 15_000, "{} texts", dropped.len());
    let valid = dropped
        .iter()
        .filter(|c| matches!(c.want, Judged::Valid { .. }))
        .count();
    // Both kinds occur: most are invalid, some still valid (a shorter number, a dropped trunk
    // prefix), and a few not numbers at all.
    assert!(valid > 100 && valid < dropped.len() / 2, "{valid} valid");
    // Not only valid or not: "not a number" and "not valid" are told apart as libphonenumber does.
    let wrong: Vec<String> = dropped
        .iter()
        .filter_map(|c| {
            let got = judge(c);
            (got != c.want).then(|| {
                format!(
                    "{} {:?} (read for {}): got {got:?}, libphonenumber {:?}",
                    c.name, c.text, c.region, c.want
                )
            })
        })
        .collect();
    println!(
        "{} digit-dropped texts ({valid} valid): {} disagree",
        dropped.len(),
        wrong.len()
    );
    assert!(
        wrong.is_empty(),
        "{} of {} disagree:\n{}",
        wrong.len(),
        dropped.len(),
        wrong.join("\n")
    );
}

fn is_dropped(c: &Case) -> bool {
    c.name.rsplit(' ').next().is_some_and(|last| last.starts_with('-'))
}

#[test]
fn version_names_the_metadata_release() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_dialerd"))
        .arg("--version")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!(
            "dialerd {} (libphonenumber metadata {LIBPHONENUMBER_METADATA})",
            env!("CARGO_PKG_VERSION")
        )
    );
}
