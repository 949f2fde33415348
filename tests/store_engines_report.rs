//! The store's report areas on both engines, through the public `Store` API: `dialerd status`
//! (campaigns in byte order of their id, counts by status, disposition and outcome, calls in
//! flight, rejected rows, measured abandonment over 24 hours and 30 days, the TSR rate, answer →
//! first agent speech quantiles, the ETA), `dialerd export` (attempts in contact then attempt
//! order, attempt-0 rows of DNC contacts), pacing snapshots (upserts, racing publishers) and
//! campaign existence, on the campaigns and calls of `store_report_common` (which
//! `store_engines_conversations.rs` reads through the conversations API). Each engine's results
//! are checked against the expected values, and SQLite's against PostgreSQL's, with its default
//! and with an ICU collation (`DIALERD_TEST_DATABASE_URL`; skipped with a line when unset).

mod common;
mod store_report_common;

use chrono::TimeDelta;
use dialerd::store::{MeasuredAbandonment, PacingSnapshot, SpeechLatency, Store, status_text};
use std::collections::BTreeMap;
use store_report_common::{CALLER, Fixture, d, m, now, on_every_engine};

fn map(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
    pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}

/// What one engine answered, for the comparison between engines.
#[derive(Debug, PartialEq)]
struct Answers {
    status: serde_json::Value,
    status_text: String,
    export: serde_json::Value,
}

/// Checks every report of the filled `store` against the expected values; returns what it read.
async fn exercise(label: &str, store: &Store, fx: &Fixture) -> Answers {
    let t = now();
    let (a, calls) = (&fx.a, fx.calls());

    // Campaign existence is exact, case included.
    assert!(store.campaign_exists("alpha").await.unwrap());
    assert!(store.campaign_exists("Beta").await.unwrap());
    assert!(!store.campaign_exists("ALPHA").await.unwrap(), "{label}");
    assert!(!store.campaign_exists("nope").await.unwrap());

    pacing(label, store).await;

    // Measured abandonment: over 24 hours the four person-answered calls of today and the
    // abandoned one; 30 days adds the call of 10 days ago.
    let day = store
        .measured_abandonment("alpha", t - TimeDelta::hours(24))
        .await
        .unwrap();
    assert_eq!(day, MeasuredAbandonment { human: 5, abandoned: 2 }, "{label}");
    let month = store.measured_abandonment("alpha", d(30)).await.unwrap();
    assert_eq!(month, MeasuredAbandonment { human: 6, abandoned: 2 }, "{label}");
    let none = store.measured_abandonment("gamma", d(30)).await.unwrap();
    assert_eq!(none, MeasuredAbandonment::default());
    let recent = store.measured_abandonment("alpha", m(15)).await.unwrap();
    assert_eq!(
        recent,
        MeasuredAbandonment { human: 2, abandoned: 0 },
        "{label}: answered at or after"
    );

    // Answer → first agent speech, nearest rank over [300, 500, 800, 1500, 2500].
    let speech = store.speech_latency("alpha", d(30)).await.unwrap();
    let expected = SpeechLatency {
        calls: 6,
        p50_ms: Some(800),
        p90_ms: Some(2500),
        p99_ms: Some(2500),
        over_2s: 1,
        silent: 1,
        abandoned: 2,
    };
    assert_eq!(speech, expected, "{label}");
    let today = store.speech_latency("alpha", t - TimeDelta::hours(24)).await.unwrap();
    assert_eq!((today.calls, today.p50_ms), (5, Some(800)), "{label}: {today:?}");
    assert_eq!(
        store.speech_latency("gamma", d(30)).await.unwrap(),
        SpeechLatency::default()
    );

    // ETA: 4 contacts finished in the last 15 minutes (two completed at the tie, one at -5 min,
    // the invalid number at -8 min), 5 left (2 pending, 2 scheduled, 1 on a call).
    let eta = store.campaign_eta("alpha", 5, t).await.unwrap();
    assert_eq!(eta.finished_in_window, 4, "{label}");
    assert_eq!(eta.window_secs, 900.0);
    assert!((eta.per_minute - 4.0 * 60.0 / 900.0).abs() < 1e-12);
    assert_eq!(eta.seconds, Some(1125.0));
    assert_eq!(eta.at, Some(t + TimeDelta::seconds(1125)));
    let beta = store.campaign_eta("Beta", 1, t).await.unwrap();
    assert_eq!(
        (beta.finished_in_window, beta.window_secs, beta.seconds),
        (1, 720.0, Some(720.0)),
        "{label}"
    );
    let gamma = store.campaign_eta("gamma", 0, t).await.unwrap();
    assert_eq!((gamma.finished_in_window, gamma.seconds), (0, Some(0.0)));
    let idle = store.campaign_eta("alpha", 5, t + TimeDelta::hours(2)).await.unwrap();
    assert_eq!(
        (idle.finished_in_window, idle.seconds, idle.at),
        (0, None, None),
        "{label}"
    );

    // Status: every campaign in byte order of id, or one.
    let status = store.campaign_status(None, 1, t).await.unwrap();
    let ids: Vec<&str> = status.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, ["Beta", "alpha", "gamma"], "{label}");
    let s = &status[1];
    assert_eq!((s.name.as_str(), s.state.as_str()), ("Alpha", "active"));
    let contacts = map(&[
        ("dnc", 1),
        ("done", 6),
        ("in_progress", 1),
        ("pending", 2),
        ("scheduled", 2),
    ]);
    assert_eq!(s.contacts, contacts, "{label}");
    let dispositions = map(&[
        ("completed", 4),
        ("dnc", 1),
        ("invalid_number", 1),
        ("voicemail_left", 1),
    ]);
    assert_eq!(s.dispositions, dispositions, "{label}");
    let outcomes = map(&[
        ("abandoned", 1),
        ("callback_requested", 1),
        ("failed", 1),
        ("human", 4),
        ("no_answer", 1),
        ("voicemail_left", 1),
    ]);
    assert_eq!(s.attempts, outcomes, "{label}");
    assert_eq!((s.in_flight, s.rejected_rows), (1, 2), "{label}");
    assert_eq!(s.rejects.len(), 1, "{label}: reject_limit");
    assert_eq!(s.rejects[0].line, 4, "{label}: {:?}", s.rejects);
    assert_eq!((s.abandonment_24h, s.abandonment_30d), (day, month));
    assert_eq!(s.agent_speech, expected);
    assert_eq!(
        s.eta, eta,
        "{label}: the status's ETA counts the remaining contacts itself"
    );
    assert_eq!(s.pacing.as_ref().map(|p| p.calls_observed), Some(41));
    let tsr = s.compliance.tsr_30d_rate.unwrap();
    assert!((tsr - 2.0 / 6.0).abs() < 1e-12, "{label}: {tsr}");
    assert_eq!(s.compliance.abandon_policy, "us_tsr");
    assert_eq!(s.compliance.ofcom_24h_rate, None, "{label}: not applied under us_tsr");
    let bs = &status[0];
    assert_eq!(bs.contacts, map(&[("done", 1), ("pending", 1)]), "{label}");
    assert_eq!((bs.in_flight, bs.rejected_rows, bs.pacing.is_none()), (0, 0, true));
    assert_eq!(bs.eta.seconds, Some(720.0));
    assert_eq!(
        bs.compliance.abandon_policy, "both",
        "{label}: no snapshot, both measures"
    );
    let gs = &status[2];
    assert!(
        gs.contacts.is_empty() && gs.attempts.is_empty() && gs.rejects.is_empty(),
        "{label}"
    );
    let only = store.campaign_status(Some("alpha"), 10, t).await.unwrap();
    assert_eq!(only.len(), 1);
    let lines: Vec<u64> = only[0].rejects.iter().map(|r| r.line).collect();
    assert_eq!(lines, [4, 8], "{label}: the header is line 1");
    assert!(only[0].rejects.iter().all(|r| !r.reason.is_empty()));
    assert!(store.campaign_status(Some("nope"), 10, t).await.unwrap().is_empty());
    let text = status_text(&status);
    assert!(text.contains("campaign alpha (Alpha): active"), "{text}");
    assert!(text.contains("calls in flight: 1"), "{text}");

    // Export: contact then attempt order; the DNC contact once, as attempt 0.
    let export = store.export_attempts("alpha").await.unwrap();
    let keys: Vec<(i64, u32)> = export.iter().map(|r| (r.contact_id, r.attempt)).collect();
    let mut expected_keys: Vec<(i64, u32)> = calls
        .iter()
        .filter(|c| c.campaign == "alpha")
        .map(|c| (c.contact.0, c.attempt))
        .collect();
    expected_keys.push((a[5].0, 0));
    expected_keys.sort();
    assert_eq!(keys, expected_keys, "{label}");
    let dnc = export.iter().find(|r| r.attempt == 0).unwrap();
    assert_eq!(
        (
            dnc.disposition.as_deref(),
            dnc.outcome.as_deref(),
            dnc.caller_id.as_deref()
        ),
        (Some("dnc"), None, None),
        "{label}"
    );
    assert_eq!((dnc.started_at, dnc.ended_at), (m(50), Some(m(50))));
    assert_eq!(dnc.phone_e164, a[5].1);
    let open = export.iter().find(|r| r.contact_id == a[4].0).unwrap();
    assert_eq!(
        (open.ended_at, open.outcome.as_deref(), open.disposition.as_deref()),
        (None, None, None)
    );
    assert_eq!((open.started_at, open.caller_id.as_deref()), (m(3), Some(CALLER)));
    let bad = export.iter().find(|r| r.contact_id == a[6].0).unwrap();
    assert_eq!(
        bad.outcome_reason.as_deref(),
        Some("twilio 21211: Invalid 'To' Phone Number")
    );
    assert_eq!(
        (bad.outcome.as_deref(), bad.disposition.as_deref(), bad.ended_at),
        (Some("failed"), Some("invalid_number"), Some(m(8)))
    );
    assert!(export.iter().all(|r| r.campaign == "alpha"));
    assert!(store.export_attempts("gamma").await.unwrap().is_empty());

    Answers {
        status: serde_json::to_value(&status).unwrap(),
        status_text: text,
        export: serde_json::to_value(&export).unwrap(),
    }
}

/// Snapshots: none, then upserted, then racing publishers leave exactly one of theirs.
async fn pacing(label: &str, store: &Store) {
    assert_eq!(store.pacing_snapshot("alpha").await.unwrap(), None);
    let mut snap = PacingSnapshot {
        mode: "predictive".into(),
        dial_ratio: 1.75,
        p_human: 0.31,
        p_machine: 0.2,
        p_no_answer: 0.4,
        p_early: 0.09,
        calls_observed: 40,
        abandon_policy: "both".into(),
        abandon_cap: 0.03,
        amd_false_positive_rate: 0.015,
    };
    store.record_pacing("alpha", &snap, now()).await.unwrap();
    assert_eq!(
        store.pacing_snapshot("alpha").await.unwrap().as_ref(),
        Some(&snap),
        "{label}"
    );
    snap.calls_observed = 41;
    snap.dial_ratio = 2.5;
    snap.abandon_policy = "us_tsr".into();
    snap.mode = "progressive".into();
    store.record_pacing("alpha", &snap, now()).await.unwrap();
    assert_eq!(
        store.pacing_snapshot("alpha").await.unwrap().as_ref(),
        Some(&snap),
        "{label}: upserted"
    );
    assert_eq!(store.pacing_snapshot("Beta").await.unwrap(), None);

    // Eight runners publish for `gamma` at once (the first insert of its row among them).
    let tasks: Vec<_> = (0..8u64)
        .map(|i| {
            let store = store.clone();
            let mut s = snap.clone();
            s.calls_observed = 1000 + i;
            tokio::spawn(async move { store.record_pacing("gamma", &s, now()).await })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let got = store.pacing_snapshot("gamma").await.unwrap().unwrap();
    assert!((1000..1008).contains(&got.calls_observed), "{label}: {got:?}");
    assert_eq!(
        PacingSnapshot {
            calls_observed: 0,
            ..got
        },
        PacingSnapshot {
            calls_observed: 0,
            ..snap.clone()
        }
    );
    // A known last snapshot, so both engines' statuses can be compared.
    store.record_pacing("gamma", &snap, now()).await.unwrap();
    assert_eq!(store.pacing_snapshot("gamma").await.unwrap(), Some(snap));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_agree_on_both_engines() {
    let answers = on_every_engine("store_engines_report", exercise).await;
    let sqlite = &answers[0].1;
    for (label, other) in &answers[1..] {
        assert_eq!(sqlite.status, other.status, "status differs on {label}");
        assert_eq!(sqlite.status_text, other.status_text, "{label}");
        assert_eq!(sqlite.export, other.export, "export differs on {label}");
    }
}
