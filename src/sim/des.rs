//! The discrete-event simulator: virtual time, a priority queue of timestamped events, the
//! statistical call model, a seeded RNG, and the same core [`Dialer`] the daemon runs. Same
//! inputs and seed give the same report, byte for byte.

use super::model::{CallModel, SampledCall, SampledOutcome};
use super::report::{Metrics, SimReport};
use crate::core::{
    AnswerAction, AnswerKind, AttemptKey, CallEvent, Candidate, ContactStatus, Decision, Dialer, EndReason, Rules,
};
use chrono::{DateTime, Duration, TimeZone, Utc};
use chrono_tz::Tz;
use governor::RateLimiter;
use governor::clock::{Clock, FakeRelativeClock};
use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use rand::SeedableRng;
use rand::rngs::StdRng;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::num::NonZeroU32;

/// The CPS limiter, on virtual time.
type SimLimiter =
    RateLimiter<NotKeyed, InMemoryState, FakeRelativeClock, NoOpMiddleware<<FakeRelativeClock as Clock>::Instant>>;

/// What to simulate.
#[derive(Clone, Debug)]
pub struct SimOptions {
    /// Hours of dialing to simulate (virtual time).
    pub hours: f64,
    /// RNG seed.
    pub seed: u64,
    /// CPS budget.
    pub calls_per_second: u32,
    /// Zone of the contacts drawn from the unbounded pool.
    pub timezone: Tz,
    /// When the simulated day starts (UTC); the first window opening at or after it.
    pub start: DateTime<Utc>,
    /// Contacts from a file: (zone) per contact. `None` draws from an unbounded pool.
    pub contacts: Option<Vec<Tz>>,
}

/// Pacing decisions happen on this period at least, in milliseconds of virtual time.
const TICK_MS: i64 = 1000;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Ev {
    Tick,
    /// The CPS budget allows the next of the dials pacing still owes.
    Pace,
    Answer {
        key: AttemptKey,
    },
    Callback {
        key: AttemptKey,
    },
    End {
        key: AttemptKey,
        reason: EndReason,
    },
}

/// One call as the simulator knows it (the truth, which the core only sees through events).
struct Live {
    call: SampledCall,
    connected_at: Option<i64>,
}

struct Sim<'a> {
    model: &'a CallModel,
    dialer: Dialer,
    rng: StdRng,
    queue: BinaryHeap<Reverse<(i64, u64, Ev)>>,
    seq: u64,
    t0: DateTime<Utc>,
    now_ms: i64,
    live: HashMap<i64, Live>,
    retries: BinaryHeap<Reverse<(i64, i64, u32)>>,
    fresh: Box<dyn Iterator<Item = (i64, Tz)> + 'a>,
    zones: HashMap<i64, Tz>,
    ring_ms: i64,
    /// Dials the last pacing decision asked for that the CPS budget has not yet allowed.
    owed: u32,
    pace_pending: bool,
    cps_period_ms: i64,
    m: Metrics,
}

fn ms(d: std::time::Duration) -> i64 {
    d.as_millis().min(i64::MAX as u128) as i64
}

impl Sim<'_> {
    fn at(&self, t_ms: i64) -> DateTime<Utc> {
        self.t0 + Duration::milliseconds(t_ms)
    }

    fn push(&mut self, at_ms: i64, ev: Ev) {
        self.seq += 1;
        self.queue.push(Reverse((at_ms, self.seq, ev)));
    }

    /// Places a call; `open` records whether the contact's window was open (checked by the sim, not the core).
    fn dial(&mut self, key: AttemptKey, open: bool) {
        let call = self.model.sample(&mut self.rng);
        let now = self.now_ms;
        self.m.dialed(now, open);
        match call.outcome {
            SampledOutcome::Human | SampledOutcome::Machine if ms(call.answer_after) < self.ring_ms => {
                self.push(
                    now + ms(call.answer_after) + ms(self.model.amd_time),
                    Ev::Answer { key },
                );
            }
            SampledOutcome::Human | SampledOutcome::Machine | SampledOutcome::NoAnswer => self.push(
                now + self.ring_ms,
                Ev::End {
                    key,
                    reason: EndReason::NoAnswer,
                },
            ),
            SampledOutcome::Busy => self.push(
                now + ms(call.answer_after),
                Ev::End {
                    key,
                    reason: EndReason::Busy,
                },
            ),
            SampledOutcome::Failed => self.push(
                now + ms(call.answer_after),
                Ev::End {
                    key,
                    reason: EndReason::Failed,
                },
            ),
        }
        self.live.insert(
            key.contact,
            Live {
                call,
                connected_at: None,
            },
        );
    }

    fn answer(&mut self, key: AttemptKey) {
        let Some(live) = self.live.get(&key.contact) else {
            return;
        };
        let call = live.call;
        let human = call.outcome == SampledOutcome::Human;
        let detected_human = human != call.amd_wrong;
        let kind = if detected_human {
            AnswerKind::Human
        } else {
            AnswerKind::Machine
        };
        if human {
            self.m.true_human_answers += 1;
        }
        let now = self.now_ms;
        for d in self.dialer.on_event(self.at(now), key, CallEvent::Answered(kind)) {
            let Decision::Answer { action, .. } = d else { continue };
            let end_in = match action {
                AnswerAction::ConnectAgent => {
                    if let Some(l) = self.live.get_mut(&key.contact) {
                        l.connected_at = Some(now);
                    }
                    if human {
                        self.m.connects += 1;
                        if call.wants_callback {
                            self.push(now + ms(call.talk) / 2, Ev::Callback { key });
                        }
                        ms(call.talk)
                    } else {
                        ms(self.model.amd_false_negative_hold)
                    }
                }
                AnswerAction::PlaySafeHarbor => ms(self.model.safe_harbor_length),
                AnswerAction::LeaveVoicemail => ms(self.model.voicemail_length),
                AnswerAction::Hangup => 0,
            };
            self.push(
                now + end_in,
                Ev::End {
                    key,
                    reason: EndReason::Hangup,
                },
            );
        }
        let talking = self.dialer.counts().talking;
        self.m.talking(talking);
    }

    fn end(&mut self, key: AttemptKey, reason: EndReason) {
        let now = self.now_ms;
        if let Some(live) = self.live.remove(&key.contact)
            && let Some(c) = live.connected_at
            && live.call.outcome == SampledOutcome::Human
        {
            self.m.talk_ms += now - c;
        }
        for d in self.dialer.on_event(self.at(now), key, CallEvent::Ended(reason)) {
            if let Decision::Finish { outcome, step, .. } = d {
                self.m.outcome(outcome);
                if let Some(next) = step.next_attempt_at {
                    let due = (next - self.t0).num_milliseconds();
                    self.retries.push(Reverse((due, key.contact, key.attempt)));
                }
            }
        }
    }

    /// Asks the core how many calls to start and starts what the CPS budget allows now.
    fn pace(&mut self, limiter: &SimLimiter) {
        let now = self.at(self.now_ms);
        self.owed = self.dialer.wanted(now);
        self.dial_owed(limiter);
    }

    /// Starts as many owed dials as the CPS budget allows; schedules a `Pace` for the rest.
    fn dial_owed(&mut self, limiter: &SimLimiter) {
        let now = self.at(self.now_ms);
        let mut budget = 0;
        while budget < self.owed && limiter.check().is_ok() {
            budget += 1;
        }
        if budget < self.owed && !self.pace_pending {
            self.pace_pending = true;
            self.push(self.now_ms + self.cps_period_ms, Ev::Pace);
        }
        if budget == 0 {
            return;
        }
        self.owed -= budget;
        let mut candidates = Vec::with_capacity(budget as usize);
        while candidates.len() < budget as usize {
            match self.retries.peek() {
                Some(Reverse((due, _, _))) if *due <= self.now_ms => {
                    let Some(Reverse((due, contact, attempts))) = self.retries.pop() else {
                        break;
                    };
                    let tz = self.zones.get(&contact).copied().unwrap_or(chrono_tz::UTC);
                    candidates.push(Candidate {
                        contact,
                        attempts,
                        status: ContactStatus::Scheduled,
                        next_attempt_at: self.at(due),
                        timezone: tz,
                    });
                }
                _ => break,
            }
        }
        while candidates.len() < budget as usize {
            let Some((contact, tz)) = self.fresh.next() else { break };
            self.zones.insert(contact, tz);
            candidates.push(Candidate {
                contact,
                attempts: 0,
                status: ContactStatus::Pending,
                next_attempt_at: self.t0,
                timezone: tz,
            });
        }
        let keys = self.dialer.plan(now, &candidates, budget);
        let placed: std::collections::HashSet<i64> = keys.iter().map(|k| k.contact).collect();
        for c in candidates.iter().filter(|c| !placed.contains(&c.contact)) {
            // Not dialable now (its zone's window is closed): back to the queue, a minute later.
            let due = (c.next_attempt_at - self.t0)
                .num_milliseconds()
                .max(self.now_ms + 60_000);
            self.retries.push(Reverse((due, c.contact, c.attempts)));
        }
        for key in keys {
            let tz = self.zones.get(&key.contact).copied().unwrap_or(chrono_tz::UTC);
            let open = self.dialer.rules().window.is_open(now, tz);
            self.dial(key, open);
        }
    }
}

/// Runs `rules` under `model` for `opts.hours` of virtual time and reports the figures.
pub fn simulate(rules: &Rules, model: &CallModel, opts: &SimOptions) -> SimReport {
    let t0 = rules.window.next_open(opts.start, opts.timezone).unwrap_or(opts.start);
    let horizon_ms = (opts.hours * 3_600_000.0) as i64;
    let clock = FakeRelativeClock::default();
    let cps = NonZeroU32::new(opts.calls_per_second).unwrap_or(NonZeroU32::MIN);
    let limiter: SimLimiter = RateLimiter::direct_with_clock(crate::trunk::cps_quota(cps.get()), clock.clone());
    let default_tz = opts.timezone;
    let fresh: Box<dyn Iterator<Item = (i64, Tz)>> = match &opts.contacts {
        Some(list) => Box::new(list.clone().into_iter().enumerate().map(|(i, tz)| (i as i64 + 1, tz))),
        None => Box::new((1i64..).map(move |i| (i, default_tz))),
    };
    let mut sim = Sim {
        model,
        dialer: Dialer::new(rules.clone()),
        rng: StdRng::seed_from_u64(opts.seed),
        queue: BinaryHeap::new(),
        seq: 0,
        t0,
        now_ms: 0,
        live: HashMap::new(),
        retries: BinaryHeap::new(),
        fresh,
        zones: HashMap::new(),
        ring_ms: (rules.ring_timeout_s * 1000.0) as i64,
        owed: 0,
        pace_pending: false,
        cps_period_ms: (1000 / i64::from(cps.get())).max(1),
        m: Metrics::new(rules.slots),
    };
    sim.push(0, Ev::Tick);
    let mut clock_ms = 0i64;
    while let Some(Reverse((at, _, ev))) = sim.queue.pop() {
        if at > horizon_ms {
            break;
        }
        if at > clock_ms {
            clock.advance(std::time::Duration::from_millis((at - clock_ms) as u64));
            clock_ms = at;
        }
        sim.now_ms = at;
        sim.m.events += 1;
        match ev {
            Ev::Tick => {
                let now = sim.at(at);
                let counts = sim.dialer.counts();
                let open = rules.window.is_open(now, default_tz);
                sim.m.sample(counts, open, TICK_MS);
                let a = sim.dialer.abandonment(now, Duration::hours(1));
                sim.m.minute_sample(at, a);
                sim.pace(&limiter);
                sim.push(at + TICK_MS, Ev::Tick);
            }
            Ev::Pace => {
                sim.pace_pending = false;
                sim.dial_owed(&limiter);
            }
            Ev::Answer { key } => sim.answer(key),
            Ev::Callback { key } => {
                sim.dialer.on_event(sim.at(at), key, CallEvent::CallbackRequested);
            }
            Ev::End { key, reason } => {
                sim.end(key, reason);
                let c = sim.dialer.counts();
                if c.free() > c.dialing {
                    sim.pace(&limiter);
                }
            }
        }
    }
    // Conversations still going at the end count up to the horizon.
    for live in sim.live.values() {
        if let (Some(c), SampledOutcome::Human) = (live.connected_at, live.call.outcome) {
            sim.m.talk_ms += horizon_ms - c;
        }
    }
    let end = t0 + Duration::milliseconds(horizon_ms);
    let day = sim.dialer.abandonment(end, Duration::days(30));
    sim.m.finish(day)
}

/// 2026-12-01T00:00:00Z, the default start of a simulated day (a Tuesday).
pub fn default_start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).single().unwrap_or_default()
}
