//! Property tests of the compliance rules in the pure core: whatever the contacts, zones,
//! windows, holidays, lists, histories and instants, a dial is allowed only when every rule holds
//! (checked against an independent oracle), never at 21:00:00 local in any zone, and no event
//! stream can push measured abandonment over the cap.

use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use dialerd::core::compliance::ABANDON_HOLD;
use dialerd::core::{
    AbandonCap, AbandonPolicy, AnswerKind, AttemptKey, AttemptLimits, CallEvent, CallbackPolicy, CallingWindow,
    Candidate, ContactStatus, Decision, Dialer, EndReason, LegalHours, PacingConfig, PacingMode, Policy, Priors,
    Refusal, RefusalReason, RetryPolicy, Rules, VoicemailAction, check_due,
};
use proptest::prelude::*;

const ZONES: &[Tz] = &[
    chrono_tz::America::New_York,
    chrono_tz::America::Chicago,
    chrono_tz::America::Phoenix,
    chrono_tz::America::Los_Angeles,
    chrono_tz::Pacific::Honolulu,
    chrono_tz::Europe::London,
    chrono_tz::Australia::Lord_Howe,
    chrono_tz::Asia::Kolkata,
];

/// Either every minute, or 09:00–16:59 Monday to Friday.
const WINDOWS: &[&str] = &["* * * * * *", "0 * 9-16 * * Mon-Fri"];

fn rules(window: usize, holidays: &[NaiveDate], limits: AttemptLimits, max_attempts: u32, mode: PacingMode) -> Rules {
    Rules {
        slots: 10,
        pacing: PacingConfig {
            mode,
            ratio: 3.0,
            ..PacingConfig::default()
        },
        ring_timeout_s: 30.0,
        priors: Priors::default(),
        policy: Policy {
            retry: RetryPolicy::uniform(max_attempts, Duration::minutes(1)),
            voicemail: VoicemailAction::Hangup,
            callback: CallbackPolicy {
                enabled: true,
                delay: Duration::minutes(5),
            },
        },
        window: CallingWindow::new(&[WINDOWS[window].to_string()], LegalHours::DEFAULT, None, None)
            .unwrap()
            .with_holidays(holidays.iter().copied()),
        cap: AbandonCap::DEFAULT,
        limits,
        state_rules: Default::default(),
        consent: None,
    }
}

/// The oracle for one zone: legal hours by the clock face, the cron window by hour and weekday,
/// and the holiday list, all read in local time.
fn zone_open(now: DateTime<Utc>, tz: Tz, window: usize, holidays: &[NaiveDate]) -> bool {
    let local = now.with_timezone(&tz);
    let clock = local.format("%H:%M:%S").to_string();
    let legal = clock.as_str() >= "08:00:00" && clock.as_str() < "21:00:00";
    let cron = match window {
        0 => true,
        _ => (9..=16).contains(&local.hour()) && local.weekday().num_days_from_monday() < 5,
    };
    legal && cron && !holidays.contains(&local.date_naive())
}

fn day(n: i64) -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 1, 1).unwrap() + Duration::days(n)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(600))]

    /// `check_due` allows a dial exactly when every rule holds, in every candidate zone.
    #[test]
    fn allowed_only_when_every_rule_holds(
        zone_picks in proptest::collection::btree_set(0usize..ZONES.len(), 1..4),
        window in 0usize..WINDOWS.len(),
        holiday_days in proptest::collection::vec(0i64..800, 0..40),
        secs in 0i64..(2 * 365 * 86400),
        on_the_hour in any::<bool>(),
        dnc in any::<bool>(),
        attempts in 0u32..4,
        max_attempts in 1u32..4,
        max_per_day in proptest::option::of(1u32..3),
        min_gap_h in proptest::option::of(1i64..6),
        hold in any::<bool>(),
        ago_h in proptest::collection::vec(0i64..100, 0..4),
        abandoned_ago_h in proptest::option::of(0i64..100),
    ) {
        let zones: Vec<Tz> = zone_picks.iter().map(|&i| ZONES[i]).collect();
        let holidays: Vec<NaiveDate> = holiday_days.iter().map(|&d| day(d)).collect();
        let mut now = Utc.timestamp_opt(1_767_225_600 + secs, 0).unwrap();
        if on_the_hour {
            // Land exactly on 21:00:00 in the first zone: the edge that must be refused.
            let local = now.with_timezone(&zones[0]);
            let target = local.date_naive().and_hms_opt(21, 0, 0).unwrap();
            if let Some(t) = zones[0].from_local_datetime(&target).earliest() {
                now = t.with_timezone(&Utc);
            }
        }
        let limits = AttemptLimits {
            max_per_day,
            min_gap: min_gap_h.map(Duration::hours),
            abandon_hold: hold.then_some(ABANDON_HOLD),
        };
        let r = rules(window, &holidays, limits, max_attempts, PacingMode::Predictive);
        let mut recent: Vec<DateTime<Utc>> = ago_h.iter().map(|&h| now - Duration::hours(h) - Duration::minutes(1)).collect();
        recent.sort();
        let c = Candidate {
            dnc,
            recent_attempts: recent.clone(),
            last_attempt_at: recent.last().copied(),
            last_abandoned_at: abandoned_ago_h.map(|h| now - Duration::hours(h)),
            ..Candidate::new(1, attempts, ContactStatus::Scheduled, now, zones.clone())
        };
        let verdict = check_due(&r, &c, now);

        // The oracle, rule by rule.
        let per_day_ok = max_per_day.is_none_or(|max| zones.iter().all(|z| {
            let today = now.with_timezone(z).date_naive();
            (recent.iter().filter(|t| t.with_timezone(z).date_naive() == today).count() as u32) < max
        }));
        let gap_ok = min_gap_h.is_none_or(|g| recent.last().is_none_or(|&t| now - t >= Duration::hours(g)));
        let hold_ok = !hold || abandoned_ago_h.is_none_or(|h| h >= 72);
        let zones_ok = zones.iter().all(|&z| zone_open(now, z, window, &holidays));
        let allowed = !dnc && attempts < max_attempts && per_day_ok && gap_ok && hold_ok && zones_ok;
        prop_assert_eq!(verdict.is_ok(), allowed, "verdict {:?} at {} for {:?}", verdict, now, zones);

        // Never at 21:00:00 local in any candidate zone.
        if zones.iter().any(|z| now.with_timezone(z).format("%H:%M:%S").to_string() == "21:00:00") {
            prop_assert!(verdict.is_err());
        }
        // The reason names a rule that is broken, and the instant it gives is not earlier than now.
        if let Err(Refusal::Compliance { reason, until }) = verdict {
            let broken = match reason {
                RefusalReason::Dnc => dnc,
                RefusalReason::AttemptLimit => attempts >= max_attempts || !per_day_ok,
                RefusalReason::MinGap => !gap_ok,
                RefusalReason::RecentAbandon => !hold_ok,
                RefusalReason::Holiday => zones.iter().any(|z| holidays.contains(&now.with_timezone(z).date_naive())),
                RefusalReason::OutsideHours => !zones_ok,
                // No state rules, no consent requirement in these rules; caller-ID caps are the
                // runner's, never check_due's.
                RefusalReason::AbandonCap
                | RefusalReason::StateHours
                | RefusalReason::StateDay
                | RefusalReason::StateCap
                | RefusalReason::NoConsent
                | RefusalReason::CallerIdCap => false,
            };
            prop_assert!(broken, "{} named but not broken", reason);
            if let Some(t) = until {
                prop_assert!(t > now || reason == RefusalReason::OutsideHours && t >= now);
            }
        }
    }

    /// `next_open_all` gives an instant at which every zone is open, and it is not a holiday.
    #[test]
    fn next_open_all_is_open_everywhere(
        zone_picks in proptest::collection::btree_set(0usize..ZONES.len(), 1..4),
        window in 0usize..WINDOWS.len(),
        holiday_days in proptest::collection::vec(0i64..800, 0..60),
        secs in 0i64..(2 * 365 * 86400),
    ) {
        let zones: Vec<Tz> = zone_picks.iter().map(|&i| ZONES[i]).collect();
        let holidays: Vec<NaiveDate> = holiday_days.iter().map(|&d| day(d)).collect();
        let r = rules(window, &holidays, AttemptLimits::default(), 3, PacingMode::Progressive);
        let now = Utc.timestamp_opt(1_767_225_600 + secs, 0).unwrap();
        if let Some(t) = r.window.next_open_all(now, &zones) {
            prop_assert!(t >= now);
            for &z in &zones {
                prop_assert!(zone_open(t, z, window, &holidays), "{} not open in {}", t, z);
            }
        }
    }

    /// Whatever answers the trunk reports, measured abandonment never goes over the cap, in any
    /// mode and under either measure, at any answer: the headroom is a worst-case bound.
    #[test]
    fn abandonment_never_over_the_cap(
        mode in prop_oneof![Just(PacingMode::Ratio), Just(PacingMode::Predictive), Just(PacingMode::VicidialAdaptive)],
        policy in prop_oneof![Just(AbandonPolicy::UsTsr), Just(AbandonPolicy::UkOfcom), Just(AbandonPolicy::Both)],
        fp in 0.0f64..0.02,
        steps in proptest::collection::vec((0u32..40, 0u8..6, 0usize..64), 50..600),
    ) {
        let mut r = rules(0, &[], AttemptLimits::default(), 1000, mode);
        r.window = CallingWindow::legal_only(LegalHours { start_secs: 0, end_secs: 86_400 }, None, None);
        r.cap = AbandonCap { policy, cap: 0.03, amd_false_positive_rate: fp };
        let cap = r.cap;
        let mut dialer = Dialer::new(r);
        let mut now = Utc.timestamp_opt(1_767_225_600, 0).unwrap();
        let mut next_contact = 0i64;
        let mut live: Vec<(AttemptKey, DateTime<Utc>)> = Vec::new();
        for (advance, code, pick) in steps {
            now += Duration::seconds(i64::from(advance));
            // The trunk ends calls that rang past the ring timeout.
            let expired: Vec<AttemptKey> = live.iter()
                .filter(|(k, at)| *at + Duration::seconds(30) <= now && dialer.call(k.contact).is_some_and(|c| c.answered_at.is_none()))
                .map(|(k, _)| *k).collect();
            for k in expired {
                for d in dialer.on_event(now, k, CallEvent::Ended(EndReason::NoAnswer)) {
                    if let Decision::Finish { key, .. } = d { live.retain(|(l, _)| *l != key); }
                }
            }
            match code {
                0 | 1 => {
                    let n = dialer.wanted(now);
                    let offered: Vec<Candidate> = (0..n).map(|i| Candidate::new(next_contact + i64::from(i), 0,
                        ContactStatus::Pending, now, vec![chrono_tz::UTC])).collect();
                    next_contact += i64::from(n);
                    for k in dialer.plan(now, &offered, n) { live.push((k, now)); }
                }
                _ if live.is_empty() => {}
                2..=4 => {
                    // Adversarial: a person answers whenever possible.
                    let (k, _) = live[pick % live.len()];
                    dialer.on_event(now, k, CallEvent::Answered(AnswerKind::Human));
                    // The agent greets at once: late speech is abandonment the cap cannot foresee.
                    dialer.on_event(now, k, CallEvent::AgentSpoke(now));
                    let worst = cap.worst_rate_of(&dialer, now);
                    prop_assert!(worst <= 0.03 + 1e-12, "abandonment {} over the cap at {}", worst, now);
                }
                _ => {
                    let (k, _) = live[pick % live.len()];
                    for d in dialer.on_event(now, k, CallEvent::Ended(EndReason::Hangup)) {
                        if let Decision::Finish { key, .. } = d { live.retain(|(l, _)| *l != key); }
                    }
                }
            }
        }
    }
}

/// Reads the worst measure through the dialer's public view of its ledger.
trait WorstRate {
    fn worst_rate_of(&self, dialer: &Dialer, now: DateTime<Utc>) -> f64;
}

impl WorstRate for AbandonCap {
    fn worst_rate_of(&self, dialer: &Dialer, now: DateTime<Utc>) -> f64 {
        let tsr = AbandonCap::tsr(dialer.abandonment(now, Duration::days(30)));
        let ofcom = self.ofcom(dialer.abandonment(now, Duration::hours(24)));
        let mut w: f64 = 0.0;
        if self.policy.tsr() {
            w = w.max(tsr.rate());
        }
        if self.policy.ofcom() {
            w = w.max(ofcom.rate());
        }
        w
    }
}

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

/// The 72-hour rule: an abandoned contact is scheduled, and refused, for 72 hours after the
/// abandoned call, even when the retry delay for `abandoned` is shorter; progressive has no hold.
#[test]
fn abandoned_contact_waits_72_hours_unless_progressive() {
    let now = utc("2026-12-01T15:00:00Z");
    let hold = AttemptLimits {
        abandon_hold: Some(ABANDON_HOLD),
        ..AttemptLimits::default()
    };
    let mut r = rules(0, &[], hold, 5, PacingMode::Predictive);
    r.slots = 1;
    let mut dialer = Dialer::new(r.clone());
    let zones = vec![chrono_tz::America::New_York];
    let offered: Vec<Candidate> = (1..=2)
        .map(|i| Candidate::new(i, 0, ContactStatus::Pending, now, zones.clone()))
        .collect();
    let keys = dialer.plan(now, &offered, 2);
    assert_eq!(keys.len(), 2);
    dialer.on_event(now, keys[0], CallEvent::Answered(AnswerKind::Human));
    dialer.on_event(now, keys[1], CallEvent::Answered(AnswerKind::Human));
    let end = now + Duration::seconds(10);
    let step = match dialer
        .on_event(end, keys[1], CallEvent::Ended(EndReason::Hangup))
        .as_slice()
    {
        [Decision::Finish { outcome, step, .. }] => {
            assert_eq!(outcome.as_str(), "abandoned");
            *step
        }
        other => panic!("{other:?}"),
    };
    // The retry delay is 1 minute; the hold makes it 72 hours.
    assert_eq!(step.next_attempt_at, Some(end + Duration::hours(72)));

    // Offered early anyway (a changed campaign file, an operator edit): refused until the hold ends.
    let again = Candidate {
        last_abandoned_at: Some(end),
        recent_attempts: vec![now],
        last_attempt_at: Some(now),
        ..Candidate::new(
            2,
            1,
            ContactStatus::Scheduled,
            end + Duration::minutes(1),
            zones.clone(),
        )
    };
    let at = end + Duration::hours(71);
    assert_eq!(
        check_due(&r, &again, at),
        Err(Refusal::Compliance {
            reason: RefusalReason::RecentAbandon,
            until: Some(end + Duration::hours(72))
        })
    );
    // 72 hours later (10:00 local in New York, inside the window).
    assert_eq!(check_due(&r, &again, end + Duration::hours(72)), Ok(()));
    // Progressive cannot abandon, so it holds nothing.
    let progressive = rules(0, &[], AttemptLimits::default(), 5, PacingMode::Progressive);
    assert_eq!(check_due(&progressive, &again, end + Duration::minutes(2)), Ok(()));
}
