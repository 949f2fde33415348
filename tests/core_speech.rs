//! The pure core's 2 s rule for AI agents (FTC TSR 16 CFR 310.4(b)(4)(i)): a person connected to
//! an agent whose first words come more than 2 s after the answer, or never within the call, is
//! counted abandoned once, in the ledger pacing answers to; the call still ends `human`. Also the
//! late AMD verdict and the callback at a named time.

use chrono::{DateTime, Duration, TimeZone, Utc};
use dialerd::core::{
    AbandonCap, AnswerAction, AnswerKind, AttemptKey, AttemptLimits, CallEvent, CallbackPolicy, CallingWindow,
    Candidate, ContactStatus, Decision, Dialer, Disposition, EndReason, LegalHours, Outcome, PacingConfig, Policy,
    Priors, RetryPolicy, Rules, VoicemailAction,
};
use proptest::prelude::*;

fn rules(windows: &[&str]) -> Rules {
    let windows: Vec<String> = windows.iter().map(|w| w.to_string()).collect();
    Rules {
        slots: 4,
        pacing: PacingConfig::default(),
        ring_timeout_s: 25.0,
        priors: Priors::default(),
        policy: Policy {
            retry: RetryPolicy::uniform(3, Duration::minutes(30)),
            voicemail: VoicemailAction::LeaveMessage,
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

fn t0() -> DateTime<Utc> {
    // 10:00 in New York.
    Utc.with_ymd_and_hms(2026, 12, 1, 15, 0, 0).unwrap()
}

/// A dialer with one call to contact 1, answered by a person at `t0`.
fn answered(windows: &[&str]) -> (Dialer, AttemptKey) {
    answered_as(windows, AnswerKind::Human)
}

/// A call answered as `kind` by the trunk's AMD and connected to the agent.
fn answered_as(windows: &[&str], kind: AnswerKind) -> (Dialer, AttemptKey) {
    let mut d = Dialer::new(rules(windows));
    let c = Candidate::new(1, 0, ContactStatus::Pending, t0(), vec![chrono_tz::America::New_York]);
    let key = d.plan(t0(), &[c], 1)[0];
    let got = d.on_event(t0(), key, CallEvent::Answered(kind));
    assert_eq!(
        got,
        vec![Decision::Answer {
            key,
            action: AnswerAction::ConnectAgent
        }]
    );
    (d, key)
}

fn finish(d: &mut Dialer, key: AttemptKey, at: DateTime<Utc>) -> (Outcome, dialerd::core::NextStep) {
    match d.on_event(at, key, CallEvent::Ended(EndReason::Hangup)).as_slice() {
        [Decision::Finish { outcome, step, .. }] => (*outcome, *step),
        other => panic!("{other:?}"),
    }
}

proptest! {
    /// Abandoned exactly when the first speech is later than 2 s after the answer, or absent
    /// from a call that lasted longer than 2 s; counted once, and as soon as the core knows.
    #[test]
    fn late_or_missing_speech_is_one_abandoned_call(speech_ms in proptest::option::of(0i64..6000), end_ms in 0i64..10_000) {
        let (mut d, key) = answered(&["* * * * * *"]);
        let end_ms = end_ms.max(speech_ms.unwrap_or(0));
        if let Some(ms) = speech_ms {
            let at = t0() + Duration::milliseconds(ms);
            d.on_event(at, key, CallEvent::AgentSpoke(at));
            // A second report changes nothing.
            d.on_event(at, key, CallEvent::AgentSpoke(t0()));
            let now = d.abandonment(at, Duration::days(30));
            prop_assert_eq!(now.abandoned, u64::from(ms > 2000));
            prop_assert_eq!(d.call(1).unwrap().speech_latency_ms(), Some(ms));
        }
        let end = t0() + Duration::milliseconds(end_ms);
        let (outcome, _) = finish(&mut d, key, end);
        prop_assert_eq!(outcome, Outcome::Human);
        let counts = d.abandonment(end, Duration::days(30));
        let late = match speech_ms { Some(ms) => ms > 2000, None => end_ms > 2000 };
        prop_assert_eq!((counts.human, counts.abandoned), (1, u64::from(late)));
    }
}

#[test]
fn machines_and_calls_never_connected_are_not_measured() {
    let mut d = Dialer::new(rules(&["* * * * * *"]));
    let c = Candidate::new(2, 0, ContactStatus::Pending, t0(), vec![chrono_tz::America::New_York]);
    let key = d.plan(t0(), &[c], 1)[0];
    d.on_event(t0(), key, CallEvent::AgentSpoke(t0()));
    d.on_event(t0(), key, CallEvent::Answered(AnswerKind::Machine));
    let (outcome, _) = finish(&mut d, key, t0() + Duration::seconds(30));
    assert_eq!(outcome, Outcome::VoicemailLeft);
    assert_eq!(
        d.abandonment(t0() + Duration::seconds(30), Duration::days(30))
            .abandoned,
        0
    );
}

#[test]
fn a_late_machine_verdict_switches_a_connected_call_to_voicemail() {
    // The answer came unclassified (async AMD, or a trunk whose agent judges): the verdict decides.
    let (mut d, key) = answered_as(&["* * * * * *"], AnswerKind::Unknown);
    assert_eq!(d.counts().talking, 1);
    let got = d.on_event(t0(), key, CallEvent::AmdVerdict(AnswerKind::Machine));
    assert_eq!(
        got,
        vec![Decision::Answer {
            key,
            action: AnswerAction::LeaveVoicemail
        }]
    );
    assert_eq!((d.counts().talking, d.counts().machine), (0, 1));
    // A repeated or human verdict changes nothing.
    assert!(
        d.on_event(t0(), key, CallEvent::AmdVerdict(AnswerKind::Machine))
            .is_empty()
    );
    assert!(
        d.on_event(t0(), key, CallEvent::AmdVerdict(AnswerKind::Human))
            .is_empty()
    );
    let (outcome, step) = finish(&mut d, key, t0() + Duration::seconds(20));
    assert_eq!(
        (outcome, step.disposition),
        (Outcome::VoicemailLeft, Disposition::VoicemailLeft)
    );
}

#[test]
fn a_verdict_after_a_classified_answer_changes_nothing() {
    // The trunk's AMD already said "person": only the first verdict counts, so the call stays
    // with the agent and stays in the abandonment denominator it entered at the answer.
    let (mut d, key) = answered(&["* * * * * *"]);
    assert!(
        d.on_event(t0(), key, CallEvent::AmdVerdict(AnswerKind::Machine))
            .is_empty()
    );
    assert_eq!((d.counts().talking, d.counts().machine), (1, 0));
    let (outcome, _) = finish(&mut d, key, t0() + Duration::seconds(20));
    assert_eq!(outcome, Outcome::Human);
}

#[test]
fn a_callback_at_a_named_time_is_scheduled_inside_the_window() {
    // Dials may start 09:00-16:59 local; the person asks for 18:30 tomorrow, New York time.
    let (mut d, key) = answered(&["0 * 9-16 * * *"]);
    d.on_event(t0(), key, CallEvent::AgentSpoke(t0()));
    let asked = DateTime::parse_from_rfc3339("2026-12-02T18:30:00-05:00")
        .unwrap()
        .to_utc();
    d.on_event(t0(), key, CallEvent::CallbackRequestedAt(asked));
    let (outcome, step) = finish(&mut d, key, t0() + Duration::minutes(3));
    assert_eq!(
        (outcome, step.disposition),
        (Outcome::CallbackRequested, Disposition::CallbackScheduled)
    );
    let expected = DateTime::parse_from_rfc3339("2026-12-03T09:00:00-05:00")
        .unwrap()
        .to_utc();
    assert_eq!(step.next_attempt_at, Some(expected));

    // Within the window the time is kept; without a time the callback delay applies.
    let (mut d, key) = answered(&["0 * 9-16 * * *"]);
    let asked = DateTime::parse_from_rfc3339("2026-12-02T11:15:00-05:00")
        .unwrap()
        .to_utc();
    d.on_event(t0(), key, CallEvent::CallbackRequestedAt(asked));
    assert_eq!(finish(&mut d, key, t0()).1.next_attempt_at, Some(asked));
    let (mut d, key) = answered(&["0 * 9-16 * * *"]);
    d.on_event(t0(), key, CallEvent::CallbackRequested);
    assert_eq!(
        finish(&mut d, key, t0()).1.next_attempt_at,
        Some(t0() + Duration::hours(1))
    );
}
