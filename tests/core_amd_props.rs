//! Property tests of asynchronous AMD in the pure core: whatever the order of answers, verdicts,
//! duplicates and ends, slot counts never go negative or above the slots, conversations never
//! exceed slots, a call that got a machine verdict while talking ends `machine` or
//! `voicemail_left`, and a machine is never counted as a person-answered call.

use chrono::{DateTime, Duration, TimeZone, Utc};
use dialerd::core::{
    AbandonCap, AnswerAction, AnswerKind, AttemptKey, AttemptLimits, CallEvent, CallbackPolicy, CallingWindow,
    Candidate, ContactStatus, Decision, Dialer, EndReason, LegalHours, Outcome, PacingConfig, Phase, Policy, Priors,
    RetryPolicy, Rules, VoicemailAction,
};
use proptest::prelude::*;
use std::collections::BTreeMap;

fn rules(slots: u32, voicemail: VoicemailAction) -> Rules {
    Rules {
        slots,
        pacing: PacingConfig::default(),
        ring_timeout_s: 25.0,
        priors: Priors::default(),
        policy: Policy {
            retry: RetryPolicy::uniform(3, Duration::minutes(30)),
            voicemail,
            callback: CallbackPolicy {
                enabled: true,
                delay: Duration::hours(1),
            },
        },
        window: CallingWindow::new(
            &["* * * * * *".to_string()],
            LegalHours::parse("00:00-24:00").unwrap(),
            None,
            None,
        )
        .unwrap(),
        cap: AbandonCap::DEFAULT,
        limits: AttemptLimits::default(),
        state_rules: Default::default(),
        consent: None,
    }
}

fn event(code: u8) -> CallEvent {
    match code {
        0 => CallEvent::Answered(AnswerKind::Unknown),
        1 => CallEvent::Answered(AnswerKind::Human),
        2 => CallEvent::AmdVerdict(AnswerKind::Machine),
        3 => CallEvent::AmdVerdict(AnswerKind::Human),
        4 => CallEvent::AmdVerdict(AnswerKind::Unknown),
        5 => CallEvent::Ringing,
        6 => CallEvent::Ended(EndReason::Hangup),
        _ => CallEvent::Ended(EndReason::NoAnswer),
    }
}

/// What a test remembers of each call: whether a machine verdict reached it while talking.
#[derive(Default, Clone, Copy)]
struct Seen {
    machine_while_talking: bool,
    human_counted: bool,
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn any_order_of_answers_verdicts_and_ends_keeps_the_counts_and_the_outcomes(
        slots in 1u32..4,
        calls in 1usize..8,
        steps in proptest::collection::vec((0usize..8, 0u8..8), 1..80),
        leave_message in any::<bool>(),
    ) {
        let vm = if leave_message { VoicemailAction::LeaveMessage } else { VoicemailAction::Hangup };
        let mut dialer = Dialer::new(rules(slots, vm));
        let t0: DateTime<Utc> = Utc.timestamp_opt(1_800_000_000, 0).unwrap();
        let candidates: Vec<Candidate> = (0..calls as i64)
            .map(|i| Candidate::new(i, 0, ContactStatus::Pending, t0, vec![chrono_tz::UTC]))
            .collect();
        let keys = dialer.plan(t0, &candidates, calls as u32);
        let mut seen: BTreeMap<i64, Seen> = BTreeMap::new();
        let mut ended: BTreeMap<i64, Outcome> = BTreeMap::new();
        for (i, (pick, code)) in steps.into_iter().enumerate() {
            let Some(&key) = keys.get(pick % keys.len().max(1)) else { break };
            let now = t0 + Duration::seconds(i as i64 + 1);
            let ev = event(code);
            let before = dialer.call(key.contact).map(|c| (c.phase, c.amd));
            let human_before = dialer.abandonment(now, Duration::days(1)).human;
            let decisions = dialer.on_event(now, key, ev);
            let human_after = dialer.abandonment(now, Duration::days(1)).human;
            let s = seen.entry(key.contact).or_default();
            if let (Some((Phase::Talking, None)), CallEvent::AmdVerdict(AnswerKind::Machine)) = (before, ev) {
                s.machine_while_talking = true;
                // The machine left its slot, and was not counted as a person.
                prop_assert_eq!(human_after, human_before);
                let want = if leave_message { AnswerAction::LeaveVoicemail } else { AnswerAction::Hangup };
                prop_assert_eq!(decisions.clone(), vec![Decision::Answer { key, action: want }]);
            }
            if human_after > human_before {
                prop_assert!(!s.machine_while_talking, "a machine counted as person-answered");
                prop_assert!(!s.human_counted, "a person counted twice");
                s.human_counted = true;
            }
            for d in decisions {
                if let Decision::Finish { key: AttemptKey { contact, .. }, outcome, .. } = d {
                    prop_assert!(ended.insert(contact, outcome).is_none(), "a call finished twice");
                    if seen[&contact].machine_while_talking {
                        prop_assert!(matches!(outcome, Outcome::Machine | Outcome::VoicemailLeft), "{:?}", outcome);
                    }
                }
            }
            let c = dialer.counts();
            prop_assert!(c.talking <= slots, "more conversations than slots");
            prop_assert!(c.dialing + c.talking + c.safe_harbor + c.machine == dialer.in_flight() as u32);
            prop_assert!(c.dialing <= calls as u32 && c.machine <= calls as u32);
        }
    }
}
