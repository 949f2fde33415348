//! `[compliance] consent` in the running daemon (real binary, real SQLite file, sim trunk): a
//! list where a third of the contacts lack the written consent the campaign requires. None of
//! them is dialled, each is refused once as `no_consent` and exported with that disposition, and
//! the others run to the end as usual. A bad consent cell is a reject naming its column.

mod common;

use common::{Daemon, campaign_toml, export, status};
use std::collections::BTreeSet;
use std::time::Duration;

const N: usize = 30;

fn number(i: usize) -> String {
    format!("+1212{:03}{:04}", 220 + i / 20, 1000 + i)
}

/// Row `i`: written consent for i % 3 == 1, express (not enough) for i % 3 == 2 every other
/// time, no consent at all otherwise; `lacking` is the set the campaign must never dial.
fn list() -> (String, BTreeSet<String>) {
    let mut s = String::from("phone,first_name,consent_time,consent_from,consent_type\n");
    let mut lacking = BTreeSet::new();
    for i in 0..N {
        let (at, from, kind) = match i % 3 {
            0 => ("", "", ""),
            1 => ("2026-03-01T12:00:00Z", "https://acme.example/form/1", "written"),
            _ => ("2026-03-02 09:30:00", "web form", "written"),
        };
        // Every third row lacks consent: the i % 3 == 0 rows.
        if i % 3 == 0 {
            lacking.insert(number(i));
        }
        s.push_str(&format!("{},Name{i},{at},{from},{kind}\n", number(i)));
    }
    (s, lacking)
}

#[test]
fn contacts_without_written_consent_are_never_dialled() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("campaigns");
    std::fs::create_dir_all(&dir).unwrap();
    let (csv, lacking) = list();
    std::fs::write(dir.join("w.csv"), csv).unwrap();
    let toml = campaign_toml("w", "consent = \"written\"\n\n[trunk.sim]\nseed = 4\ntime_scale = 0.01\n")
        .replace(
            "[contacts]\nfile = \"w.csv\"\n",
            "[contacts]\nfile = \"w.csv\"\nconsent_at = \"consent_time\"\nconsent_source = \"consent_from\"\nconsent_kind = \"consent_type\"\n",
        );
    assert!(toml.contains("consent_kind"), "the mapping was written:\n{toml}");
    std::fs::write(dir.join("w.toml"), toml).unwrap();
    let db = tmp.path().join("w.db");
    let mut d = Daemon::start(&dir, &db, true);
    assert!(d.wait_exit(Duration::from_secs(180)).success());

    let rows = export(&db, "w");
    let dialled: BTreeSet<&str> = rows
        .iter()
        .filter(|r| r.attempt > 0)
        .map(|r| r.phone_e164.as_str())
        .collect();
    for n in &lacking {
        assert!(!dialled.contains(n.as_str()), "{n} lacks consent but was dialled");
        assert!(
            rows.iter()
                .any(|r| &r.phone_e164 == n && r.attempt == 0 && r.disposition.as_deref() == Some("no_consent")),
            "{n} is not exported as no_consent: {:?}",
            rows.iter().filter(|r| &r.phone_e164 == n).collect::<Vec<_>>()
        );
    }
    let consented: BTreeSet<String> = (0..N).map(number).filter(|n| !lacking.contains(n)).collect();
    for n in &consented {
        assert!(
            dialled.contains(n.as_str()),
            "{n} has written consent but was never dialled"
        );
    }
    let s = status(&db);
    let w = s.as_array().unwrap().iter().find(|c| c["id"] == "w").unwrap();
    let refusals = &w["compliance"]["refusals"];
    assert_eq!(
        refusals["no_consent"].as_u64(),
        Some(lacking.len() as u64),
        "each contact without consent is refused once: {refusals}"
    );
}

#[test]
fn written_consent_needs_a_kind_column_and_bad_cells_are_rejects() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("campaigns");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("k.csv"),
        format!(
            "phone,consent_time,consent_type\n{},yesterday,written\n{},2026-01-01,oral\n{},2026-01-01,express\n",
            number(0),
            number(1),
            number(2)
        ),
    )
    .unwrap();
    // Without consent_kind mapped, `written` is refused at load.
    let no_kind = campaign_toml("k", "consent = \"written\"\n").replace(
        "[contacts]\nfile = \"k.csv\"\n",
        "[contacts]\nfile = \"k.csv\"\nconsent_at = \"consent_time\"\n",
    );
    std::fs::write(dir.join("k.toml"), &no_kind).unwrap();
    let out = common::run(&["check", dir.join("k.toml").to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "accepted written consent without a kind column:\n{text}"
    );
    assert!(
        text.contains("compliance.consent") && text.contains("consent_kind"),
        "{text}"
    );

    let with_kind = no_kind.replace(
        "consent_at = \"consent_time\"\n",
        "consent_at = \"consent_time\"\nconsent_kind = \"consent_type\"\n",
    );
    std::fs::write(dir.join("k.toml"), with_kind).unwrap();
    let out = common::run(&["check", dir.join("k.toml").to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        text.contains("consent_time: \"yesterday\" is not a consent time"),
        "a bad time names its column:\n{text}"
    );
    assert!(
        text.contains("consent_type: \"oral\" must be express or written"),
        "a bad kind names its column:\n{text}"
    );
}
