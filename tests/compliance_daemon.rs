//! Compliance in the running daemon, with real SQLite files and the real binary: do-not-call
//! lists from the `dnc/` folder, the campaign's own list, `dialerd dnc add` during a campaign and
//! opt-outs signalled in calls; and abandonment counters that survive a restart.

mod common;

use common::{Daemon, campaign_dir, export, run, status};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

/// Runs one SQL statement on the database file.
fn sql(db: &Path, statement: &'static str) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", db.display()))
            .await
            .unwrap();
        sqlx::query(statement).execute(&pool).await.unwrap();
        pool.close().await;
    });
}

/// The E.164 number `common::write_contacts` gives contact row `i` (i < 1000).
fn number(i: usize) -> String {
    format!("+1212{:03}{:04}", 220 + i / 20, 1000 + i)
}

/// Most calls are answered by a person; 40% of conversations end in an opt-out.
const OPT_OUT_SIM: &str = "[trunk.sim]
seed = 11
time_scale = 0.01
p_human = 0.85
p_machine = 0.05
p_no_answer = 0.05
p_busy = 0.03
p_failed = 0.02
opt_out_rate = 0.4
";

#[test]
fn dnc_lists_mid_campaign_additions_and_opt_outs_are_never_dialled() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = campaign_dir(tmp.path(), "a", 40, OPT_OUT_SIM);
    // Two slots, so the last contacts are reached long after the first dial.
    let toml = dir.join("a.toml");
    let src = std::fs::read_to_string(&toml)
        .unwrap()
        .replace("max_concurrent = 10", "max_concurrent = 2")
        .replace("[compliance]\n", "[compliance]\ndnc_list = \"a-dnc.csv\"\n");
    std::fs::write(&toml, src).unwrap();
    // The campaign's own list blocks contact 1; a file in the global dnc/ folder blocks contact 0.
    std::fs::write(dir.join("a-dnc.csv"), format!("phone\n{}\n", number(1))).unwrap();
    let global = tmp.path().join("dnc");
    std::fs::create_dir_all(&global).unwrap();
    std::fs::write(global.join("national.csv"), "phone\n(212) 220-1000\n").unwrap();
    let db = tmp.path().join("d.db");
    let dbs = db.to_str().unwrap();

    let mut d = Daemon::start(&dir, &db, true);
    d.wait_for("Dialing.", 1, Duration::from_secs(60));
    // Added while the campaign runs: the last contact, not yet reached.
    let added = run(&[
        "dnc",
        "add",
        &number(39),
        "--reason",
        "asked by letter",
        "--database",
        dbs,
    ]);
    assert!(added.status.success(), "{}", String::from_utf8_lossy(&added.stderr));
    assert!(d.wait_exit(Duration::from_secs(180)).success());

    let rows = export(&db, "a");
    let attempts_of = |i: usize| {
        rows.iter()
            .filter(|r| r.phone_e164 == number(i) && r.attempt > 0)
            .count()
    };
    for i in [0, 1, 39] {
        assert_eq!(attempts_of(i), 0, "contact {i} is on a list but was dialled");
        assert!(
            rows.iter()
                .any(|r| r.phone_e164 == number(i) && r.attempt == 0 && r.disposition.as_deref() == Some("dnc")),
            "contact {i} is not exported as dnc"
        );
    }

    // Opt-outs: the contact ends dnc on that call, is never called again, and its number is on
    // the global list with the call as its source.
    let mut last: BTreeMap<i64, &common::Row> = BTreeMap::new();
    for r in rows.iter().filter(|r| r.attempt > 0) {
        last.insert(r.contact_id, r);
    }
    let opted: Vec<&common::Row> = last
        .values()
        .copied()
        .filter(|r| r.disposition.as_deref() == Some("dnc"))
        .collect();
    assert!(opted.len() >= 3, "expected several opt-outs, got {}", opted.len());
    let list = run(&["dnc", "list", "--limit", "1000", "--database", dbs]);
    let list = String::from_utf8_lossy(&list.stdout).to_string();
    for r in &opted {
        let source = format!("opt_out:c{}a{}", r.contact_id, r.attempt);
        assert!(
            list.lines()
                .any(|l| l.starts_with("global") && l.contains(&r.phone_e164) && l.contains(&source)),
            "{} not on the global list with source {source}:\n{list}",
            r.phone_e164
        );
        let later = rows
            .iter()
            .filter(|x| x.contact_id == r.contact_id && x.attempt > r.attempt)
            .count();
        assert_eq!(later, 0, "contact {} called again after opting out", r.contact_id);
    }
    assert!(d.seen.iter().any(|l| l.contains("Contact opted out")));

    // Status: DNC contacts and refusals by reason.
    let s = status(&db);
    let a = s.as_array().unwrap().iter().find(|c| c["id"] == "a").unwrap();
    assert_eq!(a["contacts"]["dnc"].as_u64().unwrap(), 3 + opted.len() as u64, "{a}");
    assert!(a["compliance"]["refusals"]["dnc"].as_u64().unwrap() >= 3, "{a}");
    assert_eq!(a["compliance"]["abandon_policy"], "both");
    let text = run(&["status", "--database", dbs]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("refused for compliance: dnc"), "{text}");
    assert!(text.contains("abandonment cap 3.00% (both)"), "{text}");
}

#[test]
fn a_restart_keeps_the_abandonment_counters() {
    let tmp = tempfile::tempdir().unwrap();
    let sim = "[trunk.sim]\nseed = 7\ntime_scale = 0.01\np_human = 0.6\np_machine = 0.1\np_no_answer = 0.2\np_busy = 0.05\np_failed = 0.05\n";
    let dir = campaign_dir(tmp.path(), "p", 150, sim);
    let toml = dir.join("p.toml");
    let src = common::predictive(&std::fs::read_to_string(&toml).unwrap());
    std::fs::write(&toml, src).unwrap();
    let db = tmp.path().join("d.db");
    let mut first = Daemon::start(&dir, &db, true);
    assert!(first.wait_exit(Duration::from_secs(180)).success());
    let before = status(&db);
    let p = before
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "p")
        .unwrap()
        .clone();
    let human = p["abandonment_24h"]["human"].as_u64().unwrap();
    let abandoned = p["abandonment_24h"]["abandoned"].as_u64().unwrap();
    assert!(human > 50, "{p}");
    assert!(
        p["compliance"]["tsr_30d_rate"].as_f64().unwrap() <= 0.03,
        "measured abandonment over the cap: {p}"
    );

    // Three of those conversations become abandoned calls (a short run at this size rarely
    // abandons: the cap's worst-case headroom is small), so the counters carried over are not zero.
    sql(
        &db,
        "UPDATE attempts SET outcome = 'abandoned' WHERE id IN
         (SELECT id FROM attempts WHERE campaign_id = 'p' AND outcome = 'human' ORDER BY id LIMIT 3)",
    );
    let p = status(&db)
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "p")
        .unwrap()
        .clone();
    let abandoned = abandoned + 3;
    assert_eq!(p["abandonment_24h"]["abandoned"].as_u64().unwrap(), abandoned);

    // Restart on the same database: the core is seeded with the same counts.
    let mut second = Daemon::start(&dir, &db, true);
    assert!(second.wait_exit(Duration::from_secs(60)).success());
    let loaded = second
        .seen
        .iter()
        .find(|l| l.contains("Abandonment history loaded."))
        .unwrap_or_else(|| panic!("no history line:\n{}", second.seen.join("\n")));
    assert!(loaded.contains(&format!("human_24h={human}")), "{loaded}");
    assert!(loaded.contains(&format!("abandoned_24h={abandoned}")), "{loaded}");
    assert!(loaded.contains(&format!("human_30d={human}")), "{loaded}");
    let after = status(&db);
    let q = after.as_array().unwrap().iter().find(|c| c["id"] == "p").unwrap();
    assert_eq!(q["abandonment_30d"], p["abandonment_30d"]);
    assert_eq!(q["compliance"]["tsr_30d_rate"], p["compliance"]["tsr_30d_rate"]);
    // Nothing left to dial, and no contact in two states.
    let contacts: BTreeSet<i64> = export(&db, "p").iter().map(|r| r.contact_id).collect();
    assert!(contacts.len() <= 150);
}

/// The store hands the core what the 72-hour rule and the DNC check need: the end of the last
/// abandoned call and whether the number is listed; and the claim itself refuses a listed number.
#[test]
fn the_store_feeds_the_rules_and_the_claim_checks_dnc() {
    use chrono::{TimeDelta, Utc};
    use dialerd::campaign::contacts::ContactSource;
    use dialerd::campaign::file::ContactsFile;
    use dialerd::core::{AttemptKey, Disposition, NextStep, Outcome, RefusalReason};
    use dialerd::store::{DncScope, Store};

    let tmp = tempfile::tempdir().unwrap();
    let csv = tmp.path().join("c.csv");
    common::write_contacts(&csv, 2);
    let src = ContactSource {
        path: csv,
        columns: ContactsFile {
            file: "c.csv".into(),
            phone: "phone".into(),
            alternate_phones: Vec::new(),
            first_name: None,
            last_name: None,
            email: None,
            timezone: None,
            priority: None,
            ..Default::default()
        },
        default_region: dialerd::campaign::phone::Region::US,
        default_timezone: chrono_tz::America::New_York,
    };
    let url = format!("sqlite://{}", tmp.path().join("s.db").display());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = Store::open(&url).await.unwrap();
        let now = Utc::now();
        store.activate_campaign("c", "C", "c.toml", now).await.unwrap();
        store.import_contacts("c", &src, now).await.unwrap();
        let zones: Vec<String> = store
            .hopper_zones("c")
            .await
            .unwrap()
            .into_iter()
            .map(|z| z.0)
            .collect();
        assert_eq!(
            zones,
            vec!["America/New_York".to_string()],
            "212 numbers get New York from the area code"
        );
        let none = std::collections::HashSet::new();
        let due = store.hopper_batch("c", now, &zones, 10, &none).await.unwrap();
        assert_eq!(due.len(), 2);
        let (a, b) = (&due[0], &due[1]);

        // Contact a: dialled, abandoned, and (as an old campaign file would) rescheduled in a minute.
        let key = AttemptKey {
            contact: a.id,
            attempt: 1,
        };
        let claimed = store
            .claim_attempts("c", &[dialerd::store::Claim::new(key, &a.phone_e164)], 3, now)
            .await
            .unwrap();
        assert_eq!(claimed, vec![key]);
        store.record_answered(key, now).await.unwrap();
        let step = NextStep {
            disposition: Disposition::RetryScheduled,
            next_attempt_at: Some(now + TimeDelta::minutes(1)),
        };
        store.close_attempt(key, Outcome::Abandoned, step, now).await.unwrap();

        // Contact b goes on the campaign's list.
        store
            .dnc_add(&DncScope::Campaign("c".into()), &b.phone_e164, "cli", None, now)
            .await
            .unwrap();
        let later = now + TimeDelta::minutes(2);
        let due = store.hopper_batch("c", later, &zones, 10, &none).await.unwrap();
        let a2 = due.iter().find(|d| d.id == a.id).unwrap();
        let b2 = due.iter().find(|d| d.id == b.id).unwrap();
        let ms = |t: chrono::DateTime<Utc>| t.timestamp_millis();
        assert_eq!(a2.last_abandoned_at.map(ms), Some(ms(now)));
        assert_eq!(
            a2.recent_attempts.iter().map(|t| ms(*t)).collect::<Vec<_>>(),
            vec![ms(now)]
        );
        assert!(!a2.dnc && b2.dnc);

        // The core refuses a for 72 hours when the mode can abandon.
        let rules = {
            let mut r = dialerd::campaign::parse_campaign(
                std::path::Path::new("campaigns/c.toml"),
                &common::campaign_toml("c", "safe_harbor_message = \"Acme; call +1 415 555 0100.\"")
                    .replace("[dialer]\n", "[dialer]\nmode = \"predictive\"\n"),
            )
            .unwrap()
            .rules;
            r.window = dialerd::core::CallingWindow::legal_only(
                dialerd::core::LegalHours {
                    start_secs: 0,
                    end_secs: 86_400,
                },
                None,
                None,
            );
            r
        };
        let cand = dialerd::core::Candidate {
            dnc: a2.dnc,
            recent_attempts: a2.recent_attempts.clone(),
            last_attempt_at: a2.last_attempt_at,
            last_abandoned_at: a2.last_abandoned_at,
            ..dialerd::core::Candidate::new(
                a2.id,
                a2.attempts,
                a2.status,
                a2.next_attempt_at,
                vec![chrono_tz::America::New_York],
            )
        };
        match dialerd::core::check_due(&rules, &cand, later) {
            Err(dialerd::core::Refusal::Compliance { reason, until }) => {
                assert_eq!(reason, RefusalReason::RecentAbandon);
                assert_eq!(until.map(ms), Some(ms(now + TimeDelta::hours(72))));
            }
            other => panic!("{other:?}"),
        }

        // The claim itself refuses b, whatever the caller believed.
        let kb = AttemptKey {
            contact: b.id,
            attempt: 1,
        };
        let claimed = store
            .claim_attempts("c", &[dialerd::store::Claim::new(kb, &b.phone_e164)], 3, later)
            .await
            .unwrap();
        assert!(claimed.is_empty(), "a listed number was claimed");
    });
}
