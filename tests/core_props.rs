//! Property tests of the pure core: whatever the contacts, zones, windows, events and instants,
//! no dial is planned outside the contact's calling window, past `max_attempts`, over
//! `max_concurrent`, or to a contact already on a call.

use chrono::{DateTime, Duration, TimeZone, Utc};
use chrono_tz::Tz;
use dialerd::core::{
    AbandonCap, AnswerKind, AttemptKey, AttemptLimits, CallEvent, CallbackPolicy, CallingWindow, Candidate,
    ContactStatus, Decision, Dialer, EndReason, LegalHours, PacingConfig, Phase, Policy, Priors, RetryPolicy, Rules,
    SlotCounts, VoicemailAction,
};
use proptest::prelude::*;
use std::collections::{BTreeMap, HashSet};

const ZONES: &[Tz] = &[
    chrono_tz::America::New_York,
    chrono_tz::America::Phoenix,
    chrono_tz::America::Los_Angeles,
    chrono_tz::Pacific::Honolulu,
    chrono_tz::Europe::London,
    chrono_tz::Australia::Lord_Howe,
    chrono_tz::Asia::Kolkata,
];

const WINDOWS: &[&str] = &[
    "0 * 9-11,13-19 * * Mon-Fri",
    "0 * 10-15 * * Sat",
    "0 0-29 * * * *",
    "* * * * * *",
    "0 * 20 * * *",
];

fn rules(slots: u32, max_attempts: u32, windows: Vec<String>, voicemail: VoicemailAction) -> Rules {
    Rules {
        slots,
        pacing: PacingConfig::default(),
        ring_timeout_s: 25.0,
        priors: Priors::default(),
        policy: Policy {
            retry: RetryPolicy {
                max_attempts,
                delay: Duration::minutes(30),
                no_answer: Some(Duration::hours(2)),
                busy: None,
                machine: None,
                failed: None,
                abandoned: None,
                unknown: None,
            },
            voicemail,
            callback: CallbackPolicy {
                enabled: true,
                delay: Duration::hours(1),
            },
        },
        window: CallingWindow::new(&windows, LegalHours::DEFAULT, None, None).unwrap(),
        cap: AbandonCap::DEFAULT,
        limits: AttemptLimits::default(),
        state_rules: Default::default(),
        consent: None,
    }
}

/// A random event stream step: either a planning tick or an event for the n-th call in flight.
#[derive(Clone, Debug)]
enum Step {
    Tick { advance_s: u32, budget: u32 },
    Event { pick: usize, event: u8 },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (0u32..7200, 0u32..10).prop_map(|(advance_s, budget)| Step::Tick { advance_s, budget }),
        (0usize..64, 0u8..7).prop_map(|(pick, event)| Step::Event { pick, event }),
    ]
}

fn event(code: u8) -> CallEvent {
    match code {
        0 => CallEvent::Answered(AnswerKind::Human),
        1 => CallEvent::Answered(AnswerKind::Machine),
        2 => CallEvent::Answered(AnswerKind::Unknown),
        3 => CallEvent::Ended(EndReason::NoAnswer),
        4 => CallEvent::Ended(EndReason::Busy),
        5 => CallEvent::CallbackRequested,
        _ => CallEvent::Ended(EndReason::Hangup),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    /// Drives the core like a driver would, keeping a model of the store, and checks every plan.
    #[test]
    fn plans_respect_window_attempts_slots_and_exclusivity(
        slots in 1u32..8,
        max_attempts in 1u32..4,
        window_picks in proptest::collection::vec(0usize..WINDOWS.len(), 0..3),
        contacts in proptest::collection::vec(0usize..ZONES.len(), 1..40),
        start in 1_767_225_600i64..1_830_297_600, // 2026-01-01 .. 2028-01-01
        steps in proptest::collection::vec(step(), 1..120),
        leave_message in any::<bool>(),
    ) {
        let windows: Vec<String> = window_picks.iter().map(|&i| WINDOWS[i].to_string()).collect();
        let vm = if leave_message { VoicemailAction::LeaveMessage } else { VoicemailAction::Hangup };
        let r = rules(slots, max_attempts, windows, vm);
        let window = r.window.clone();
        let mut dialer = Dialer::new(r);
        let mut now: DateTime<Utc> = Utc.timestamp_opt(start, 0).unwrap();
        // The store model: contact id -> candidate.
        let mut store: BTreeMap<i64, Candidate> = contacts.iter().enumerate().map(|(i, &z)| (i as i64,
            Candidate::new(i as i64, 0, ContactStatus::Pending, now, vec![ZONES[z]]))).collect();
        let mut live: Vec<AttemptKey> = Vec::new();
        for s in steps {
            match s {
                Step::Tick { advance_s, budget } => {
                    now += Duration::seconds(advance_s.into());
                    let offered: Vec<Candidate> = store.values().cloned().collect();
                    let wanted = dialer.wanted(now);
                    let keys = dialer.plan(now, &offered, budget.min(wanted));
                    prop_assert!(keys.len() as u32 <= budget);
                    let mut seen = HashSet::new();
                    for k in &keys {
                        let c = store.get_mut(&k.contact).unwrap();
                        prop_assert!(window.is_open_all(now, &c.zones), "dial outside window at {} in {:?}", now, c.zones);
                        prop_assert!(c.attempts < max_attempts, "dial past max_attempts");
                        prop_assert!(c.status.is_dialable() && c.next_attempt_at <= now);
                        prop_assert!(seen.insert(k.contact), "contact planned twice in one plan");
                        prop_assert!(!live.iter().any(|l| l.contact == k.contact), "contact dialled while on a call");
                        prop_assert_eq!(k.attempt, c.attempts + 1);
                        c.attempts += 1;
                        c.status = ContactStatus::InProgress;
                        live.push(*k);
                    }
                }
                Step::Event { pick, event: code } => {
                    if live.is_empty() { continue; }
                    let key = live[pick % live.len()];
                    for d in dialer.on_event(now, key, event(code)) {
                        if let Decision::Finish { key, step, .. } = d {
                            live.retain(|l| *l != key);
                            let c = store.get_mut(&key.contact).unwrap();
                            c.status = step.disposition.contact_status();
                            if let Some(t) = step.next_attempt_at { c.next_attempt_at = t; }
                            prop_assert!(!(c.status.is_dialable() && c.attempts >= max_attempts), "retry scheduled past max_attempts");
                        }
                    }
                }
            }
            let counts = dialer.counts();
            // The core keeps its counts as calls change phase: they match a recount of the calls.
            let mut recount = SlotCounts { slots, ..SlotCounts::default() };
            for k in &live {
                match dialer.call(k.contact).map(|c| c.phase) {
                    Some(Phase::Dialing) => recount.dialing += 1,
                    Some(Phase::Talking) => recount.talking += 1,
                    Some(Phase::SafeHarbor) => recount.safe_harbor += 1,
                    Some(Phase::Voicemail | Phase::MachineHangup) => recount.machine += 1,
                    None => prop_assert!(false, "a live call the core does not hold"),
                }
            }
            prop_assert_eq!(counts, recount);
            prop_assert!(counts.talking <= slots, "more conversations than slots");
            prop_assert!(counts.talking + counts.dialing <= slots, "progressive placed more calls than free slots");
            prop_assert_eq!(dialer.in_flight(), live.len());
        }
    }

    /// Legal hours hold in every zone at every instant: never at or after 21:00:00 local, never before 08:00.
    #[test]
    fn never_outside_legal_hours(secs in 0i64..(4 * 365 * 86400), zone in 0usize..ZONES.len()) {
        let w = CallingWindow::new(&[], LegalHours::DEFAULT, None, None).unwrap();
        let t = Utc.timestamp_opt(1_767_225_600 + secs, 0).unwrap();
        let tz = ZONES[zone];
        let local = t.with_timezone(&tz).format("%H:%M:%S").to_string();
        prop_assert_eq!(w.is_open(t, tz), local.as_str() >= "08:00:00" && local.as_str() < "21:00:00", "{} local {}", t, local);
        if let Some(next) = w.next_open(t, tz) {
            prop_assert!(next >= t);
            prop_assert!(w.is_open(next, tz));
            // Nothing earlier opens: one second before is closed unless it is `t` itself.
            if next > t { prop_assert!(!w.is_open(next - Duration::seconds(1), tz)); }
        }
    }
}
