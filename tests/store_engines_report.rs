//! The store's report areas on both engines, through the public `Store` API: `dialerd status`
//! (campaigns in byte order of their id, counts by status, disposition and outcome, calls in
//! flight, rejected rows, measured abandonment over 24 hours and 30 days, the TSR rate, answer →
//! first agent speech quantiles, the ETA), `dialerd export` (attempts in contact then attempt
//! order, attempt-0 rows of DNC contacts), pacing snapshots (upserts, racing publishers), and the
//! conversations API (newest first across campaigns, ties on one instant by call id in byte
//! order, every record once through the cursor, each filter, one record, its transcript, the
//! recording URL). Each engine's results are checked against the expected values, and SQLite's
//! against PostgreSQL's (`DIALERD_TEST_DATABASE_URL`; skipped with a line when unset).

mod common;

use chrono::{DateTime, TimeDelta, Utc};
use dialerd::call::{CallDetail, Message, Role, ToolEvent};
use dialerd::core::{AttemptKey, Disposition, NextStep, Outcome};
use dialerd::store::{
    CallWrite, Claim, Conversation, ConversationFilter, Cursor, MeasuredAbandonment, PacingSnapshot, PostCall,
    SpeechLatency, Store, status_text,
};
use std::collections::{BTreeMap, HashSet};
use std::path::Path;

const CALLER: &str = "+14155550100";

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-03-02T15:00:00Z").unwrap().to_utc()
}

/// The instant several calls end at, across campaigns (a tie the cursor must break).
fn tie() -> DateTime<Utc> {
    now() - TimeDelta::minutes(10)
}

fn map(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
    pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}

/// A contact list of `n` valid US numbers from `first`, with invalid rows after rows `bad`.
fn write_list(path: &Path, first: usize, n: usize, bad: &[usize]) {
    let mut s = String::from("phone\n");
    for i in 0..n {
        s.push_str(&format!("(212) 555-{:04}\n", 1000 + first + i));
        if bad.contains(&i) {
            s.push_str("12345\n");
        }
    }
    std::fs::write(path, s).unwrap();
}

/// The contacts of `campaign`, all still pending, by id.
async fn contacts_of(store: &Store, campaign: &str) -> Vec<(i64, String)> {
    let zones: Vec<String> = store
        .hopper_zones(campaign)
        .await
        .unwrap()
        .into_iter()
        .map(|z| z.0)
        .collect();
    let mut due: Vec<(i64, String)> = store
        .hopper_batch(campaign, now(), &zones, 1000, &HashSet::new())
        .await
        .unwrap()
        .into_iter()
        .map(|d| (d.id, d.phone_e164))
        .collect();
    due.sort();
    due
}

/// One attempt as the test plays it.
struct Call<'a> {
    campaign: &'a str,
    contact: &'a (i64, String),
    attempt: u32,
    started: DateTime<Utc>,
    answered: Option<DateTime<Utc>>,
    /// Answer → first agent speech (ms) and abandoned for silence; `None`: not measured.
    speech: Option<(Option<i64>, bool)>,
    /// `None`: left open.
    end: Option<(Outcome, NextStep, DateTime<Utc>)>,
    /// Transcript turns and tool events of its call record; `None`: no call record.
    record: Option<(usize, usize)>,
}

fn final_step(d: Disposition) -> NextStep {
    NextStep {
        disposition: d,
        next_attempt_at: None,
    }
}

fn retry(d: Disposition, at: DateTime<Utc>) -> NextStep {
    NextStep {
        disposition: d,
        next_attempt_at: Some(at),
    }
}

fn trunk_id(key: AttemptKey) -> String {
    format!("CA{}x{}", key.contact, key.attempt)
}

fn detail(turns: usize, tools: usize, answered: DateTime<Utc>) -> CallDetail {
    CallDetail {
        transcript: (0..turns)
            .map(|i| Message {
                role: if i % 2 == 0 { Role::Agent } else { Role::User },
                text: format!("turn {i}"),
                at: answered + TimeDelta::seconds(i as i64 + 1),
            })
            .collect(),
        tool_events: (0..tools)
            .map(|i| ToolEvent {
                name: "track_conversion".into(),
                arguments: serde_json::json!({ "n": i }),
                at: answered + TimeDelta::seconds(30),
            })
            .collect(),
        first_agent_speech_at: Some(answered + TimeDelta::seconds(1)),
    }
}

async fn play(store: &Store, c: &Call<'_>) {
    let key = AttemptKey {
        contact: c.contact.0,
        attempt: c.attempt,
    };
    let claim = Claim {
        key,
        phone: c.contact.1.clone(),
        caller_id: Some(CALLER.into()),
    };
    assert_eq!(
        store.claim_attempts(c.campaign, &[claim], 3, c.started).await.unwrap(),
        vec![key]
    );
    store.record_dialed_many(&[(key, trunk_id(key))]).await.unwrap();
    if let Some(at) = c.answered {
        store.record_answered(key, at).await.unwrap();
    }
    if let Some((latency_ms, silence_abandoned)) = c.speech {
        let w = [CallWrite::Speech {
            key,
            latency_ms,
            silence_abandoned,
        }];
        assert_eq!(store.apply_call_writes(&w).await.unwrap(), vec![false]);
    }
    if let Some((outcome, step, ended)) = c.end {
        let post = c.record.map(|(turns, tools)| PostCall {
            agent_id: "agent_test".into(),
            caller_number: CALLER.into(),
            detail: Some(detail(turns, tools, c.answered.unwrap_or(c.started))),
            ..Default::default()
        });
        let recorded = store
            .close_attempt_with(key, outcome, step, ended, post.as_ref())
            .await
            .unwrap();
        assert_eq!(recorded, c.record.is_some());
    }
}

/// What one engine answered, for the comparison between engines.
#[derive(Debug, PartialEq)]
struct Answers {
    status: serde_json::Value,
    status_text: String,
    export: serde_json::Value,
    pages: Vec<String>,
    one: String,
}

/// Fills `store` and checks every report against the expected values; returns what it read.
async fn exercise(label: &str, store: &Store, dir: &Path) -> Answers {
    let t = now();
    let m = |n: i64| t - TimeDelta::minutes(n);
    let d = |n: i64| t - TimeDelta::days(n);

    // Three campaigns: `alpha` (12 contacts, 2 rejected rows), `Beta` (2), `gamma` (none).
    // Byte order puts `Beta` first; a case-insensitive or natural collation would not.
    for (id, name) in [("alpha", "Alpha"), ("Beta", "Beta"), ("gamma", "Gamma")] {
        store
            .activate_campaign(id, name, &format!("{id}.toml"), d(40))
            .await
            .unwrap();
    }
    for (id, first, n, bad) in [("alpha", 0, 12, &[1usize, 4][..]), ("Beta", 100, 2, &[][..])] {
        let path = dir.join(format!("{label}-{id}.csv"));
        write_list(&path, first, n, bad);
        let src = common::contact_source(&path, common::contacts_columns("phone", &[]));
        store.import_contacts(id, &src, d(40)).await.unwrap();
    }
    let a = contacts_of(store, "alpha").await;
    let b = contacts_of(store, "Beta").await;
    assert_eq!((a.len(), b.len()), (12, 2), "{label}");

    let human_done = final_step(Disposition::Completed);
    let calls = [
        // Answered 10 days ago: in the 30-day measures only.
        Call {
            campaign: "alpha",
            contact: &a[0],
            attempt: 1,
            started: d(10),
            answered: Some(d(10)),
            speech: Some((Some(500), false)),
            end: Some((Outcome::Human, human_done, d(10) + TimeDelta::seconds(60))),
            record: Some((2, 0)),
        },
        Call {
            campaign: "alpha",
            contact: &a[1],
            attempt: 1,
            started: d(10),
            answered: None,
            speech: None,
            end: Some((
                Outcome::NoAnswer,
                retry(Disposition::RetryScheduled, d(9)),
                d(10) + TimeDelta::seconds(30),
            )),
            record: Some((0, 0)),
        },
        // Second attempt: the agent spoke after 2.5 s, so the call counts abandoned.
        Call {
            campaign: "alpha",
            contact: &a[1],
            attempt: 2,
            started: m(120),
            answered: Some(m(120)),
            speech: Some((Some(2500), true)),
            end: Some((Outcome::Human, human_done, m(5))),
            record: Some((3, 1)),
        },
        Call {
            campaign: "alpha",
            contact: &a[2],
            attempt: 1,
            started: m(60),
            answered: Some(m(60)),
            speech: Some((None, true)),
            end: Some((
                Outcome::Abandoned,
                retry(Disposition::RetryScheduled, t + TimeDelta::hours(1)),
                m(60) + TimeDelta::seconds(10),
            )),
            record: Some((0, 0)),
        },
        Call {
            campaign: "alpha",
            contact: &a[3],
            attempt: 1,
            started: m(30),
            answered: Some(m(29)),
            speech: Some((Some(800), false)),
            end: Some((Outcome::Human, human_done, tie())),
            record: Some((4, 0)),
        },
        // Still on the call.
        Call {
            campaign: "alpha",
            contact: &a[4],
            attempt: 1,
            started: m(3),
            answered: None,
            speech: None,
            end: None,
            record: None,
        },
        Call {
            campaign: "alpha",
            contact: &a[6],
            attempt: 1,
            started: m(8),
            answered: None,
            speech: None,
            end: Some((Outcome::Failed, final_step(Disposition::InvalidNumber), m(8))),
            record: None,
        },
        Call {
            campaign: "alpha",
            contact: &a[7],
            attempt: 1,
            started: m(20),
            answered: Some(m(20)),
            speech: None,
            end: Some((Outcome::VoicemailLeft, final_step(Disposition::VoicemailLeft), m(19))),
            record: Some((1, 0)),
        },
        Call {
            campaign: "alpha",
            contact: &a[8],
            attempt: 1,
            started: m(12),
            answered: Some(m(12)),
            speech: Some((Some(1500), false)),
            end: Some((Outcome::Human, human_done, tie())),
            record: Some((2, 0)),
        },
        Call {
            campaign: "alpha",
            contact: &a[9],
            attempt: 1,
            started: m(12),
            answered: Some(m(12)),
            speech: Some((Some(300), false)),
            end: Some((
                Outcome::CallbackRequested,
                retry(Disposition::CallbackScheduled, t + TimeDelta::days(1)),
                tie(),
            )),
            record: Some((2, 0)),
        },
        // Beta's first attempt is 12 minutes old: its pace window is 12 minutes, not 15.
        Call {
            campaign: "Beta",
            contact: &b[0],
            attempt: 1,
            started: m(12),
            answered: Some(m(11)),
            speech: Some((Some(700), false)),
            end: Some((Outcome::Human, human_done, tie())),
            record: Some((2, 0)),
        },
    ];
    for c in &calls {
        play(store, c).await;
    }
    assert_eq!(store.mark_dnc(&[a[5].0], m(50)).await.unwrap(), 1);
    let invalid = AttemptKey {
        contact: a[6].0,
        attempt: 1,
    };
    store
        .set_outcome_reason(invalid, "twilio 21211: Invalid 'To' Phone Number")
        .await
        .unwrap();

    // Recording URLs by the trunk's call id.
    let recorded = AttemptKey {
        contact: a[3].0,
        attempt: 1,
    };
    let url = "https://example.test/rec/1.wav";
    assert!(
        store.set_recording_url(&trunk_id(recorded), url).await.unwrap(),
        "{label}"
    );
    assert!(
        !store.set_recording_url("CA-no-such-call", url).await.unwrap(),
        "{label}"
    );

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

    let (pages, one) = conversations(label, store, &calls, &a, url).await;
    Answers {
        status: serde_json::to_value(&status).unwrap(),
        status_text: text,
        export: serde_json::to_value(&export).unwrap(),
        pages,
        one,
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

/// Every page of `f` through the cursor, `f.limit` at a time, each page's ids.
async fn walk(store: &Store, mut f: ConversationFilter) -> Vec<Vec<String>> {
    let mut pages = Vec::new();
    loop {
        let (page, next) = store.conversations(&f).await.unwrap();
        assert!(page.len() <= f.limit.clamp(1, 500) as usize);
        let full = page.len() == f.limit.clamp(1, 500) as usize;
        assert_eq!(next.is_some(), full, "a cursor exactly when the page is full");
        if let (Some(n), Some(last)) = (&next, page.last()) {
            assert_eq!(
                (n.ended_ms, n.call_id.as_str()),
                (last.ended_at.timestamp_millis(), last.id.as_str())
            );
            // Clients pass the opaque form back.
            assert_eq!(Cursor::decode(&n.encode()).as_ref(), Some(n));
        }
        pages.push(page.into_iter().map(|c| c.id).collect());
        match next {
            Some(c) => f.after = Some(c),
            None => return pages,
        }
    }
}

fn flat(pages: &[Vec<String>]) -> Vec<String> {
    pages.iter().flatten().cloned().collect()
}

async fn conversations(
    label: &str,
    store: &Store,
    calls: &[Call<'_>],
    a: &[(i64, String)],
    url: &str,
) -> (Vec<String>, String) {
    // The call records, newest end first, ties by call id descending in byte order.
    let mut all: Vec<(i64, String, &Call)> = calls
        .iter()
        .filter(|c| c.record.is_some())
        .map(|c| {
            let (_, _, ended) = c.end.unwrap();
            (ended.timestamp_millis(), format!("c{}a{}", c.contact.0, c.attempt), c)
        })
        .collect();
    all.sort_by(|x, y| (y.0, &y.1).cmp(&(x.0, &x.1)));
    let ids: Vec<String> = all.iter().map(|r| r.1.clone()).collect();
    assert_eq!(ids.len(), 9);
    let at_tie: Vec<&str> = all
        .iter()
        .filter(|r| r.0 == tie().timestamp_millis())
        .map(|r| r.1.as_str())
        .collect();
    assert_eq!(at_tie.len(), 4, "four calls end at one instant, across two campaigns");

    let f = |limit: u32| ConversationFilter {
        limit,
        ..Default::default()
    };
    let mut answers = Vec::new();
    for limit in [1, 2, 3, 4, 9, 500] {
        let pages = walk(store, f(limit)).await;
        assert_eq!(flat(&pages), ids, "{label}: limit {limit}: {pages:?}");
        answers.push(format!("{limit}: {pages:?}"));
    }
    // Limits outside 1..=500 are clamped.
    let (zero, next) = store.conversations(&f(0)).await.unwrap();
    assert_eq!((zero.len(), next.map(|c| c.call_id)), (1, Some(ids[0].clone())));
    assert_eq!(store.conversations(&f(100_000)).await.unwrap().0.len(), 9);

    // A cursor inside the tie: the rest of the tie, then the older calls.
    let mid = Cursor {
        ended_ms: tie().timestamp_millis(),
        call_id: at_tie[1].to_string(),
    };
    let rest = walk(
        store,
        ConversationFilter {
            after: Some(mid),
            ..f(500)
        },
    )
    .await;
    let from = ids.iter().position(|i| i == at_tie[1]).unwrap() + 1;
    assert_eq!(flat(&rest), ids[from..].to_vec(), "{label}");

    // A cursor a client made up, its id compared in byte order (`C5` sorts before every `c…`;
    // a linguistic collation would put it between `c4a1` and `c9a1`).
    let crafted = Cursor {
        ended_ms: tie().timestamp_millis(),
        call_id: "C5".into(),
    };
    let expected: Vec<String> = all
        .iter()
        .filter(|r| r.0 < crafted.ended_ms || (r.0 == crafted.ended_ms && r.1.as_str() < "C5"))
        .map(|r| r.1.clone())
        .collect();
    assert_eq!(expected.len(), 4, "none of the tie, the four older calls");
    let rest = walk(
        store,
        ConversationFilter {
            after: Some(crafted),
            ..f(3)
        },
    )
    .await;
    assert_eq!(flat(&rest), expected, "{label}");

    // Filters.
    let select = |pred: &dyn Fn(&Call) -> bool| -> Vec<String> {
        all.iter().filter(|r| pred(r.2)).map(|r| r.1.clone()).collect()
    };
    let outcome_of = |c: &Call| c.end.unwrap().0.as_str();
    let cases: Vec<(&str, ConversationFilter, Vec<String>)> = vec![
        (
            "campaign",
            ConversationFilter {
                campaign: Some("Beta".into()),
                ..f(2)
            },
            select(&|c| c.campaign == "Beta"),
        ),
        (
            "contact",
            ConversationFilter {
                contact: Some(a[1].0),
                ..f(1)
            },
            select(&|c| c.contact.0 == a[1].0),
        ),
        (
            "outcome",
            ConversationFilter {
                outcome: Some("human".into()),
                ..f(2)
            },
            select(&|c| outcome_of(c) == "human"),
        ),
        (
            "disposition",
            ConversationFilter {
                disposition: Some("retry_scheduled".into()),
                ..f(2)
            },
            select(&|c| c.end.unwrap().1.disposition == Disposition::RetryScheduled),
        ),
        (
            "ended_after",
            ConversationFilter {
                ended_after: Some(tie()),
                ..f(2)
            },
            select(&|c| c.end.unwrap().2 >= tie()),
        ),
        (
            "ended_before",
            ConversationFilter {
                ended_before: Some(tie()),
                ..f(2)
            },
            select(&|c| c.end.unwrap().2 < tie()),
        ),
        (
            "all of them",
            ConversationFilter {
                campaign: Some("alpha".into()),
                outcome: Some("human".into()),
                disposition: Some("completed".into()),
                ended_after: Some(now() - TimeDelta::hours(1)),
                ended_before: Some(now()),
                ..f(1)
            },
            select(&|c| {
                c.campaign == "alpha" && outcome_of(c) == "human" && c.end.unwrap().2 >= now() - TimeDelta::hours(1)
            }),
        ),
    ];
    for (name, filter, expected) in cases {
        assert!(!expected.is_empty(), "{name}");
        let pages = walk(store, filter).await;
        assert_eq!(flat(&pages), expected, "{label}: {name}");
        answers.push(format!("{name}: {pages:?}"));
    }
    let nothing = ConversationFilter {
        campaign: Some("gamma".into()),
        ..f(10)
    };
    assert_eq!(store.conversations(&nothing).await.unwrap(), (vec![], None));

    // One conversation, with its analysis; its transcript.
    let second = calls.iter().find(|c| c.contact.0 == a[1].0 && c.attempt == 2).unwrap();
    let id = format!("c{}a2", a[1].0);
    let analysis = serde_json::json!({ "resolution": "resolved", "score": 4 });
    store.save_analysis(&id, &analysis, 0, &[], now()).await.unwrap();
    let one: Conversation = store.conversation(&id).await.unwrap().unwrap();
    let answered = second.answered.unwrap();
    assert_eq!(one.id, id);
    assert_eq!(
        (one.campaign.as_str(), one.contact_id, one.attempt),
        ("alpha", a[1].0, 2),
        "{label}"
    );
    assert_eq!(
        one.trunk_call_id,
        trunk_id(AttemptKey {
            contact: a[1].0,
            attempt: 2
        })
    );
    assert_eq!(
        (one.agent_id.as_str(), one.from.as_str(), one.to.as_str()),
        ("agent_test", CALLER, a[1].1.as_str())
    );
    assert_eq!(
        (one.dialed_at, one.answered_at, one.ended_at),
        (second.started, Some(answered), now() - TimeDelta::minutes(5))
    );
    assert_eq!(one.first_agent_speech_at, Some(answered + TimeDelta::seconds(1)));
    assert_eq!((one.outcome.as_str(), one.disposition.as_str()), ("human", "completed"));
    assert_eq!((one.turn_count, one.recording_url.as_deref()), (3, None), "{label}");
    assert_eq!(one.analysis.as_ref(), Some(&analysis), "{label}");
    let listed = store.conversations(&f(1)).await.unwrap().0;
    assert_eq!(listed[0].analysis, None, "pages do not load analyses");
    assert_eq!(
        Conversation {
            analysis: None,
            ..one.clone()
        },
        listed[0],
        "{label}"
    );
    let rec = store.conversation(&format!("c{}a1", a[3].0)).await.unwrap().unwrap();
    assert_eq!(
        (rec.recording_url.as_deref(), rec.turn_count, rec.analysis.as_ref()),
        (Some(url), 4, None),
        "{label}"
    );
    let silent = store.conversation(&format!("c{}a1", a[2].0)).await.unwrap().unwrap();
    assert_eq!((silent.turn_count, silent.outcome.as_str()), (0, "abandoned"));
    let unanswered = store.conversation(&format!("c{}a1", a[1].0)).await.unwrap().unwrap();
    assert_eq!(unanswered.answered_at, None);
    assert_eq!(store.conversation("c999999a1").await.unwrap(), None);

    let (messages, tools) = store.conversation_transcript(&id).await.unwrap().unwrap();
    let expected = detail(3, 1, answered);
    assert_eq!(
        (messages, tools),
        (expected.transcript, expected.tool_events),
        "{label}"
    );
    let (m0, t0) = store
        .conversation_transcript(&format!("c{}a1", a[2].0))
        .await
        .unwrap()
        .unwrap();
    assert!(m0.is_empty() && t0.is_empty());
    assert_eq!(store.conversation_transcript("c999999a1").await.unwrap(), None);
    (answers, format!("{one:?} {rec:?}"))
}

/// A fresh PostgreSQL database whose default collation is ICU English (`alpha` < `Beta`,
/// punctuation ignored at first), unlike SQLite's byte order: the store must order text the
/// same on it. `None` when `DIALERD_TEST_DATABASE_URL` is unset.
fn icu_postgres() -> Option<(String, String)> {
    let server = common::postgres_server("store_engines_report (ICU collation)")?;
    let name = format!("dialerd_t_report_icu_{}", std::process::id());
    let admin = server.clone();
    let db = name.clone();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            use sqlx::Connection;
            let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap();
            for sql in [
                format!("DROP DATABASE IF EXISTS {db}"),
                format!("CREATE DATABASE {db} TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en' LOCALE 'C.UTF-8'"),
            ] {
                sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&mut conn).await.unwrap();
            }
        })
    })
    .join()
    .unwrap();
    let (head, query) = server.split_once('?').map_or((server.as_str(), ""), |(h, q)| (h, q));
    let after_scheme = head.find("://").map_or(0, |i| i + 3);
    let base = head[after_scheme..]
        .find('/')
        .map_or(head, |slash| &head[..after_scheme + slash]);
    let query = if query.is_empty() {
        String::new()
    } else {
        format!("?{query}")
    };
    Some((format!("{base}/{name}{query}"), name))
}

/// Drops the database `name` made by [`icu_postgres`], connections and all.
fn drop_database(name: &str) {
    let Some(server) = common::postgres_server("store_engines_report (cleanup)") else {
        return;
    };
    let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            use sqlx::Connection;
            let mut conn = sqlx::PgConnection::connect(&server).await.unwrap();
            sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&mut conn).await.unwrap();
        })
    })
    .join()
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_and_conversations_agree_on_both_engines() {
    let dir = tempfile::tempdir().unwrap();
    let mut urls = common::engine_urls(dir.path(), "store_engines_report");
    let icu = icu_postgres();
    if let Some((url, _)) = &icu {
        urls.push(("postgres", url.clone()));
    }
    let mut answers = Vec::new();
    for (i, (label, url)) in urls.iter().enumerate() {
        let store = Store::open(url).await.unwrap();
        assert_eq!(store.engine_name(), *label);
        let name = format!("{label}{i}");
        answers.push((name.clone(), exercise(&name, &store, dir.path()).await));
    }
    eprintln!("ran on {:?}", answers.iter().map(|a| a.0.as_str()).collect::<Vec<_>>());
    let (first, sqlite) = &answers[0];
    assert_eq!(first, "sqlite0");
    for (label, other) in &answers[1..] {
        assert_eq!(sqlite.status, other.status, "status differs on {label}");
        assert_eq!(sqlite.status_text, other.status_text, "{label}");
        assert_eq!(sqlite.export, other.export, "export differs on {label}");
        assert_eq!(sqlite.pages, other.pages, "conversation pages differ on {label}");
        assert_eq!(sqlite.one, other.one, "{label}");
    }
    if let Some((_, name)) = icu {
        drop_database(&name);
    }
}
