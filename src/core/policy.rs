//! Retry, voicemail and callback policy: what happens to a contact after each attempt.
//! Pure: the caller passes the outcome, the attempts made so far and `now`.

use super::types::{Disposition, Outcome};
use super::window::CallingWindow;
use chrono::{DateTime, TimeDelta, Utc};
use chrono_tz::Tz;

/// What to do when AMD reports an answering machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VoicemailAction {
    /// Play the rendered message after the beep; the attempt ends `voicemail_left` and the contact is done.
    LeaveMessage,
    /// Hang up; the attempt ends `machine` and the contact is retried after the machine delay.
    Hangup,
}

/// Retry delays per outcome and the lifetime attempt limit.
#[derive(Clone, Debug, PartialEq)]
pub struct RetryPolicy {
    /// Attempts over the contact's lifetime (≥ 1); after the last one the contact is `exhausted`.
    pub max_attempts: u32,
    /// Delay for outcomes without their own.
    pub delay: TimeDelta,
    /// Delay after `no_answer`.
    pub no_answer: Option<TimeDelta>,
    /// Delay after `busy`.
    pub busy: Option<TimeDelta>,
    /// Delay after `machine`.
    pub machine: Option<TimeDelta>,
    /// Delay after `failed`.
    pub failed: Option<TimeDelta>,
    /// Delay after `abandoned`.
    pub abandoned: Option<TimeDelta>,
    /// Delay after `unknown` (an attempt left open by a crash).
    pub unknown: Option<TimeDelta>,
}

impl RetryPolicy {
    /// `max_attempts` attempts with the same `delay` after every outcome.
    pub fn uniform(max_attempts: u32, delay: TimeDelta) -> RetryPolicy {
        RetryPolicy {
            max_attempts,
            delay,
            no_answer: None,
            busy: None,
            machine: None,
            failed: None,
            abandoned: None,
            unknown: None,
        }
    }

    /// The delay before the next attempt after `outcome`.
    pub fn delay_after(&self, outcome: Outcome) -> TimeDelta {
        let specific = match outcome {
            Outcome::NoAnswer => self.no_answer,
            Outcome::Busy => self.busy,
            Outcome::Machine => self.machine,
            Outcome::Failed => self.failed,
            Outcome::Abandoned => self.abandoned,
            Outcome::Unknown => self.unknown,
            Outcome::Human | Outcome::CallbackRequested | Outcome::VoicemailLeft => None,
        };
        specific.unwrap_or(self.delay)
    }
}

/// Callbacks the contact asks for during a call.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CallbackPolicy {
    /// When false, a callback request is recorded but the contact is done.
    pub enabled: bool,
    /// How long after the call ends to call back.
    pub delay: TimeDelta,
}

/// The whole after-attempt policy of a campaign.
#[derive(Clone, Debug, PartialEq)]
pub struct Policy {
    /// Retry delays and attempt limit.
    pub retry: RetryPolicy,
    /// Machine handling.
    pub voicemail: VoicemailAction,
    /// Callback handling.
    pub callback: CallbackPolicy,
}

/// The policy's verdict on a finished attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NextStep {
    /// What this attempt decided for the contact.
    pub disposition: Disposition,
    /// When the contact may be dialled again (UTC); `None` when the disposition is final.
    pub next_attempt_at: Option<DateTime<Utc>>,
}

impl Policy {
    /// Decides the contact's next step after an attempt that ended with `outcome` at `now`,
    /// `attempts_made` counting this attempt. Never schedules an attempt past `max_attempts`.
    pub fn after_attempt(&self, outcome: Outcome, attempts_made: u32, now: DateTime<Utc>) -> NextStep {
        let retry_in = match outcome {
            Outcome::Human => return NextStep::done(Disposition::Completed),
            Outcome::VoicemailLeft => return NextStep::done(Disposition::VoicemailLeft),
            Outcome::CallbackRequested if !self.callback.enabled => return NextStep::done(Disposition::Completed),
            Outcome::CallbackRequested => self.callback.delay,
            other => self.retry.delay_after(other),
        };
        if attempts_made >= self.retry.max_attempts {
            return NextStep::done(Disposition::Exhausted);
        }
        let disposition = if outcome == Outcome::CallbackRequested {
            Disposition::CallbackScheduled
        } else {
            Disposition::RetryScheduled
        };
        NextStep {
            disposition,
            next_attempt_at: Some(now + retry_in),
        }
    }
}

/// When to call back a person who asked to be called at `requested` (UTC: the local time they
/// named, with its offset): that instant when the calling window is open then in every zone of
/// `zones`, else the window's next opening after it; never before `earliest` (the call's end, or
/// the minimum gap). `None` when the window never opens again (the campaign period is over) or
/// `zones` is empty; the caller then keeps the callback delay.
pub fn callback_time(
    window: &CallingWindow,
    zones: &[Tz],
    requested: DateTime<Utc>,
    earliest: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    window.next_open_all(requested.max(earliest), zones)
}

impl NextStep {
    /// A final step with `disposition` and no further attempt.
    pub fn done(disposition: Disposition) -> NextStep {
        NextStep {
            disposition,
            next_attempt_at: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn callback_at_a_named_time_is_held_to_the_window() {
        use crate::core::window::LegalHours;
        let ny: Tz = "America/New_York".parse().unwrap();
        let la: Tz = "America/Los_Angeles".parse().unwrap();
        let w = CallingWindow::new(&[], LegalHours::DEFAULT, None, None).unwrap();
        let t = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        let end = t("2026-12-01T15:00:00Z");
        // 15:00 in New York is open: kept as asked.
        let asked = t("2026-12-02T15:00:00-05:00");
        assert_eq!(callback_time(&w, &[ny], asked, end), Some(asked));
        // 22:30 local is past the legal 21:00: the next morning at 08:00 local.
        let late = t("2026-12-02T22:30:00-05:00");
        assert_eq!(
            callback_time(&w, &[ny], late, end),
            Some(t("2026-12-03T08:00:00-05:00"))
        );
        // A time already past is moved to the earliest allowed instant (open now).
        let past = t("2026-12-01T10:00:00Z");
        assert_eq!(callback_time(&w, &[ny], past, end), Some(end));
        // A number in two zones waits until both are open: 08:00 in Los Angeles.
        let early = t("2026-12-02T09:00:00-05:00");
        assert_eq!(
            callback_time(&w, &[ny, la], early, end),
            Some(t("2026-12-02T08:00:00-08:00"))
        );
        assert_eq!(callback_time(&w, &[], asked, end), None);
    }

    fn policy(voicemail: VoicemailAction, callback: bool) -> Policy {
        Policy {
            retry: RetryPolicy {
                max_attempts: 3,
                delay: TimeDelta::minutes(30),
                no_answer: Some(TimeDelta::hours(2)),
                busy: Some(TimeDelta::minutes(10)),
                machine: Some(TimeDelta::days(1)),
                failed: None,
                abandoned: Some(TimeDelta::hours(72)),
                unknown: None,
            },
            voicemail,
            callback: CallbackPolicy {
                enabled: callback,
                delay: TimeDelta::minutes(60),
            },
        }
    }

    #[test]
    fn table_of_cases() {
        use Disposition as D;
        use Outcome as O;
        let now = DateTime::parse_from_rfc3339("2026-12-01T15:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let p = policy(VoicemailAction::LeaveMessage, true);
        let off = policy(VoicemailAction::Hangup, false);
        let cases: &[(&Policy, Outcome, u32, Disposition, Option<TimeDelta>)] = &[
            (&p, O::Human, 1, D::Completed, None),
            (&p, O::VoicemailLeft, 1, D::VoicemailLeft, None),
            (&p, O::NoAnswer, 1, D::RetryScheduled, Some(TimeDelta::hours(2))),
            (&p, O::Busy, 2, D::RetryScheduled, Some(TimeDelta::minutes(10))),
            (&p, O::Machine, 1, D::RetryScheduled, Some(TimeDelta::days(1))),
            (&p, O::Failed, 1, D::RetryScheduled, Some(TimeDelta::minutes(30))),
            (&p, O::Unknown, 1, D::RetryScheduled, Some(TimeDelta::minutes(30))),
            (&p, O::Abandoned, 1, D::RetryScheduled, Some(TimeDelta::hours(72))),
            (&p, O::NoAnswer, 3, D::Exhausted, None),
            (&p, O::Unknown, 3, D::Exhausted, None),
            (
                &p,
                O::CallbackRequested,
                1,
                D::CallbackScheduled,
                Some(TimeDelta::minutes(60)),
            ),
            (&p, O::CallbackRequested, 3, D::Exhausted, None),
            (&off, O::CallbackRequested, 1, D::Completed, None),
            (&off, O::Human, 3, D::Completed, None),
        ];
        for (i, (pol, outcome, made, disp, delay)) in cases.iter().enumerate() {
            let step = pol.after_attempt(*outcome, *made, now);
            assert_eq!(step.disposition, *disp, "case {i}: {outcome} after {made}");
            assert_eq!(
                step.next_attempt_at,
                delay.map(|d| now + d),
                "case {i}: {outcome} after {made}"
            );
            assert_eq!(
                step.next_attempt_at.is_some(),
                step.disposition.contact_status().is_dialable(),
                "case {i}"
            );
        }
    }
}
