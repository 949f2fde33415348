//! The discrete-event simulator: virtual time, a priority queue of timestamped events, the
//! statistical call model, a seeded RNG, and the same core [`Dialer`] the daemon runs. Same
//! inputs and seed give the same report, byte for byte.
//!
//! Runs span hours or days. While the calling window is closed in every zone of the run the
//! simulator does not tick: it jumps to the window's next opening. It keeps each contact's attempt
//! history (attempt starts, last attempt, last abandoned call) and hands it to the core with each
//! candidate, so per-day limits, the minimum gap and the 72-hour hold after an abandoned call are
//! decided by the same code as in the daemon; it checks dials against the window and the hold
//! itself, independently of the core.

mod async_amd;
mod list;

pub use list::SimContact;

use super::model::{CallModel, SampledCall, SampledOutcome};
use super::report::{Metrics, SimReport};
use super::rolling::{Rolling, hours_between};
use crate::core::compliance::ABANDON_HOLD;
use crate::core::{
    AnswerAction, AnswerKind, AttemptKey, CallEvent, Candidate, Consent, ContactStatus, Decision, Dialer, EndReason,
    JurisdictionCode, Outcome, Rules,
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
use std::hash::{BuildHasherDefault, Hasher};
use std::num::NonZeroU32;

/// The CPS limiter, on virtual time.
type SimLimiter =
    RateLimiter<NotKeyed, InMemoryState, FakeRelativeClock, NoOpMiddleware<<FakeRelativeClock as Clock>::Instant>>;

/// What to simulate.
#[derive(Clone, Debug)]
pub struct SimOptions {
    /// Hours of virtual time to simulate from the first opening of the window (when `days` is `None`).
    pub hours: f64,
    /// Days of virtual time (24 hours each, open or closed) to simulate instead of `hours`.
    pub days: Option<u32>,
    /// RNG seed.
    pub seed: u64,
    /// CPS budget, dials per second.
    pub calls_per_second: u32,
    /// Zone of the contacts drawn from the unbounded pool.
    pub timezone: Tz,
    /// When the simulated run starts (UTC); it begins at the first window opening at or after it.
    pub start: DateTime<Utc>,
    /// Contacts from a file, in order. `None` draws from an unbounded pool in `timezone`.
    pub contacts: Option<Vec<SimContact>>,
}

impl SimOptions {
    /// Virtual time simulated, in hours.
    pub fn horizon_hours(&self) -> f64 {
        self.days.map_or(self.hours, |d| f64::from(d) * 24.0)
    }
}

/// Pacing decisions happen on this period at least, in milliseconds of virtual time.
const TICK_MS: i64 = 1000;
/// Attempt starts kept per contact for the per-day limit: the core asks for at least 48 hours.
const RECENT_MS: i64 = 48 * 3_600_000;
/// Rounds of candidates offered per dial decision when the core refuses some for compliance.
const PLAN_ROUNDS: usize = 8;

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
    /// The asynchronous AMD verdict of an answered call.
    Verdict {
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
    /// The core played the safe-harbor message: an abandoned call.
    harbored: bool,
}

/// What the simulator remembers of a contact between attempts (milliseconds from the start).
#[derive(Clone, Debug, Default)]
struct Contact {
    zones: Vec<Tz>,
    jurisdictions: Vec<JurisdictionCode>,
    consent: Option<Consent>,
    /// Starts of its attempts in the last [`RECENT_MS`].
    recent: Vec<i64>,
    last_attempt: Option<i64>,
    /// End of its last call the core reported `abandoned`.
    last_abandoned: Option<i64>,
    /// End of its last call the simulator saw get the safe-harbor message (the independent check).
    harbored_end: Option<i64>,
}

/// A hasher for the simulator's contact-id keys: a multiply and a fold instead of SipHash. The ids
/// are the simulator's own (no adversary picks them), and no result depends on a map's order.
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }
    fn write_i64(&mut self, x: i64) {
        let h = (x as u64 ^ self.0).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        self.0 = h ^ (h >> 32);
    }
}

/// Maps keyed by contact id.
type IdMap<V> = HashMap<i64, V, BuildHasherDefault<IdHasher>>;

struct Sim<'a> {
    model: &'a CallModel,
    dialer: Dialer,
    rng: StdRng,
    queue: BinaryHeap<Reverse<(i64, u64, Ev)>>,
    seq: u64,
    t0: DateTime<Utc>,
    now_ms: i64,
    live: IdMap<Live>,
    retries: BinaryHeap<Reverse<(i64, i64, u32)>>,
    fresh: Box<dyn Iterator<Item = (i64, SimContact)> + 'a>,
    /// Every dial: (contact, milliseconds from the start), for [`SimReport::dial_log`].
    dial_log: Vec<(i64, i64)>,
    contacts: IdMap<Contact>,
    /// The distinct zones of the run's contacts; the run is open while one of them is.
    zones: Vec<Tz>,
    /// The window was open at the last tick.
    open: bool,
    ring_ms: i64,
    hold_ms: i64,
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

    fn ms_of(&self, t: DateTime<Utc>) -> i64 {
        (t - self.t0).num_milliseconds()
    }

    fn push(&mut self, at_ms: i64, ev: Ev) {
        self.seq += 1;
        self.queue.push(Reverse((at_ms, self.seq, ev)));
    }

    /// True when a dial to some zone of the run may start at `now`.
    fn open_at(&self, now: DateTime<Utc>) -> bool {
        let w = &self.dialer.rules().window;
        self.zones.iter().any(|&z| w.is_open(now, z))
    }

    /// The next instant after `now` at which some zone of the run opens.
    fn next_open(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let w = &self.dialer.rules().window;
        self.zones.iter().filter_map(|&z| w.next_open(now, z)).min()
    }

    /// Places a call: records the attempt, checks it against the window and the abandon hold
    /// (the simulator's own checks), and schedules what the far end does.
    fn dial(&mut self, key: AttemptKey) {
        let now = self.now_ms;
        let at = self.at(now);
        self.dial_log.push((key.contact, now));
        let contact = self.contacts.entry(key.contact).or_default();
        let open = self.dialer.rules().window.is_open_all(at, &contact.zones);
        contact.recent.retain(|&t| t > now - RECENT_MS);
        contact.recent.push(now);
        contact.last_attempt = Some(now);
        let harbored_end = contact.harbored_end;
        self.m.dialed(now, open);
        if let Some(end) = harbored_end {
            self.m.redial_after_abandon(now - end, self.hold_ms);
        }
        let call = self.model.sample(&mut self.rng);
        match call.outcome {
            SampledOutcome::Human | SampledOutcome::Machine if ms(call.answer_after) < self.ring_ms => {
                // With async AMD the call is answered at once and classified later.
                let amd = if self.model.amd_async {
                    0
                } else {
                    ms(self.model.amd_time)
                };
                self.push(now + ms(call.answer_after) + amd, Ev::Answer { key });
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
                harbored: false,
            },
        );
    }

    fn answer(&mut self, key: AttemptKey) {
        let Some(live) = self.live.get(&key.contact) else {
            return;
        };
        let call = live.call;
        if self.model.amd_async {
            return self.answer_async(key, call);
        }
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
        let at = self.at(now);
        let hours = hours_between(self.t0, at);
        for d in self.dialer.on_event(at, key, CallEvent::Answered(kind)) {
            let Decision::Answer { action, .. } = d else { continue };
            // The agent's first words come `agent_speech_delay` after the connect; later than 2 s
            // is an abandoned call (16 CFR 310.4(b)(4)(i)), in the core's ledger and the report.
            let late = action == AnswerAction::ConnectAgent && self.model.agent_speech_late();
            if action == AnswerAction::ConnectAgent {
                let spoke = at + chrono::TimeDelta::from_std(self.model.agent_speech_delay).unwrap_or_default();
                self.dialer.on_event(at, key, CallEvent::AgentSpoke(spoke));
            }
            let harbored = action == AnswerAction::PlaySafeHarbor || late;
            match kind {
                AnswerKind::Human | AnswerKind::Unknown => self.m.rolling.person(at, hours, harbored),
                AnswerKind::Machine if human => self.m.rolling.false_positive(at, hours),
                AnswerKind::Machine => {}
            }
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
                AnswerAction::PlaySafeHarbor => {
                    if let Some(l) = self.live.get_mut(&key.contact) {
                        l.harbored = true;
                    }
                    ms(self.model.safe_harbor_length)
                }
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
        if let Some(live) = self.live.remove(&key.contact) {
            if let (Some(c), SampledOutcome::Human) = (live.connected_at, live.call.outcome) {
                self.m.talk(c, now);
            }
            if live.harbored {
                self.contacts.entry(key.contact).or_default().harbored_end = Some(now);
            }
        }
        for d in self.dialer.on_event(self.at(now), key, CallEvent::Ended(reason)) {
            let Decision::Finish { outcome, step, .. } = d else {
                continue;
            };
            self.m.outcome(outcome);
            if outcome == Outcome::Abandoned {
                self.contacts.entry(key.contact).or_default().last_abandoned = Some(now);
            }
            match step.next_attempt_at {
                Some(next) => {
                    let due = self.ms_of(next);
                    self.retries.push(Reverse((due, key.contact, key.attempt)));
                }
                // Done: nothing about it is needed again.
                None => {
                    self.contacts.remove(&key.contact);
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

    /// The candidate for a contact waiting in the retry queue, with its history.
    fn retry_candidate(&self, contact: i64, attempts: u32, due: i64) -> Candidate {
        let at = |t: i64| self.at(t);
        match self.contacts.get(&contact) {
            Some(c) => Candidate {
                recent_attempts: c.recent.iter().map(|&t| at(t)).collect(),
                last_attempt_at: c.last_attempt.map(at),
                last_abandoned_at: c.last_abandoned.map(at),
                jurisdictions: c.jurisdictions.clone(),
                consent: c.consent,
                ..Candidate::new(contact, attempts, ContactStatus::Scheduled, at(due), c.zones.clone())
            },
            None => Candidate::new(contact, attempts, ContactStatus::Scheduled, at(due), self.zones.clone()),
        }
    }

    /// Starts as many owed dials as the CPS budget allows; schedules a `Pace` for the rest.
    fn dial_owed(&mut self, limiter: &SimLimiter) {
        let mut budget = 0;
        while budget < self.owed && limiter.check().is_ok() {
            budget += 1;
        }
        if budget < self.owed && !self.pace_pending {
            self.pace_pending = true;
            self.push(self.now_ms + self.cps_period_ms, Ev::Pace);
        }
        self.owed -= budget;
        // As the daemon offers more due contacts than it may dial, candidates the core refuses
        // for compliance are replaced from the queue until the budget is placed or nothing is due.
        for _ in 0..PLAN_ROUNDS {
            if budget == 0 {
                break;
            }
            let (placed, refused) = self.plan_and_dial(budget);
            budget = budget.saturating_sub(placed);
            if refused == 0 {
                // Nothing was refused: the sources ran dry, another round finds nothing either.
                break;
            }
        }
    }

    /// Offers `budget` candidates (due retries first, then fresh contacts) to the core, dials
    /// the ones it plans and requeues the others. Returns how many were dialled and how many refused.
    fn plan_and_dial(&mut self, budget: u32) -> (u32, usize) {
        let now = self.at(self.now_ms);
        let mut candidates = Vec::with_capacity(budget as usize);
        while candidates.len() < budget as usize {
            match self.retries.peek() {
                Some(Reverse((due, _, _))) if *due <= self.now_ms => {
                    let Some(Reverse((due, contact, attempts))) = self.retries.pop() else {
                        break;
                    };
                    candidates.push(self.retry_candidate(contact, attempts, due));
                }
                _ => break,
            }
        }
        while candidates.len() < budget as usize {
            let Some((contact, sc)) = self.fresh.next() else { break };
            candidates.push(Candidate {
                jurisdictions: sc.jurisdictions.clone(),
                consent: sc.consent,
                ..Candidate::new(contact, 0, ContactStatus::Pending, self.t0, sc.zones.clone())
            });
            self.contacts.insert(
                contact,
                Contact {
                    zones: sc.zones,
                    jurisdictions: sc.jurisdictions,
                    consent: sc.consent,
                    ..Contact::default()
                },
            );
        }
        if candidates.is_empty() {
            return (0, 0);
        }
        let keys = self.dialer.plan(now, &candidates, budget);
        let refused = self.dialer.take_refused();
        for c in &candidates {
            if keys.iter().any(|k| k.contact == c.contact) {
                continue;
            }
            // Refused for compliance: back to the queue when the rule allows it, or never.
            // Otherwise (not planned), a minute later.
            let due = match refused.iter().find(|r| r.contact == c.contact) {
                Some(r) => match r.until {
                    Some(until) => self.ms_of(until),
                    None => {
                        self.contacts.remove(&c.contact);
                        continue;
                    }
                },
                None => self.ms_of(c.next_attempt_at),
            };
            self.retries
                .push(Reverse((due.max(self.now_ms + 60_000), c.contact, c.attempts)));
        }
        let placed = keys.len() as u32;
        for key in keys {
            self.dial(key);
        }
        (placed, refused.len())
    }

    /// One tick: samples the figures; while the window is open, paces and ticks again in a
    /// second; once it is closed everywhere, sleeps until it next opens.
    fn tick(&mut self, at: i64, limiter: &SimLimiter) {
        let now = self.at(at);
        let open = self.open_at(now);
        self.open = open;
        self.m.window(at, open);
        let counts = self.dialer.counts();
        self.m.sample(counts, open, TICK_MS);
        if open {
            let a = self.dialer.abandonment(now, Duration::hours(1));
            self.m.minute_sample(at, a);
            self.pace(limiter);
            self.push(at + TICK_MS, Ev::Tick);
        } else {
            self.owed = 0;
            if let Some(next) = self.next_open(now) {
                self.push(self.ms_of(next).max(at + 1), Ev::Tick);
            }
        }
    }
}

/// Runs `rules` under `model` for the horizon of `opts` in virtual time and reports the figures.
pub fn simulate(rules: &Rules, model: &CallModel, opts: &SimOptions) -> SimReport {
    let t0 = rules.window.next_open(opts.start, opts.timezone).unwrap_or(opts.start);
    let horizon_ms = (opts.horizon_hours() * 3_600_000.0) as i64;
    let clock = FakeRelativeClock::default();
    let cps = NonZeroU32::new(opts.calls_per_second).unwrap_or(NonZeroU32::MIN);
    let limiter: SimLimiter = RateLimiter::direct_with_clock(crate::trunk::cps_quota(cps.get()), clock.clone());
    let default_tz = opts.timezone;
    let (fresh, mut zones): (Box<dyn Iterator<Item = (i64, SimContact)>>, Vec<Tz>) = match &opts.contacts {
        Some(list) => (
            Box::new(list.clone().into_iter().enumerate().map(|(i, c)| (i as i64 + 1, c))),
            list.iter().flat_map(|c| c.zones.iter().copied()).collect(),
        ),
        None => (
            Box::new((1i64..).map(move |i| (i, SimContact::from(default_tz)))),
            vec![default_tz],
        ),
    };
    zones.sort_by_key(|z| z.name());
    zones.dedup();
    let mut sim = Sim {
        model,
        dialer: Dialer::new(rules.clone()),
        rng: StdRng::seed_from_u64(opts.seed),
        queue: BinaryHeap::new(),
        seq: 0,
        t0,
        now_ms: 0,
        live: IdMap::default(),
        retries: BinaryHeap::new(),
        fresh,
        dial_log: Vec::new(),
        contacts: IdMap::default(),
        zones,
        open: false,
        ring_ms: (rules.ring_timeout_s * 1000.0) as i64,
        hold_ms: ABANDON_HOLD.num_milliseconds(),
        owed: 0,
        pace_pending: false,
        cps_period_ms: (1000 / i64::from(cps.get())).max(1),
        m: Metrics::new(rules.slots, Rolling::new(rules.cap)),
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
            Ev::Tick => sim.tick(at, &limiter),
            Ev::Pace => {
                sim.pace_pending = false;
                if sim.open {
                    sim.dial_owed(&limiter);
                }
            }
            Ev::Answer { key } => sim.answer(key),
            Ev::Verdict { key } => sim.verdict(key),
            Ev::Callback { key } => {
                sim.dialer.on_event(sim.at(at), key, CallEvent::CallbackRequested);
            }
            Ev::End { key, reason } => {
                sim.end(key, reason);
                // As the daemon's runner: an end that leaves capacity progressive would use paces now.
                if sim.open {
                    let c = sim.dialer.counts();
                    if c.free() > c.dialing {
                        sim.pace(&limiter);
                    }
                }
            }
        }
    }
    // Conversations still going at the end count up to the horizon.
    let going: Vec<i64> = sim
        .live
        .values()
        .filter(|l| l.call.outcome == SampledOutcome::Human)
        .filter_map(|l| l.connected_at)
        .collect();
    for c in going {
        sim.m.talk(c, horizon_ms);
    }
    let mut report = sim.m.finish(opts.horizon_hours(), sim.dialer.refusal_counts());
    let t0 = sim.t0;
    report.dial_log = sim
        .dial_log
        .iter()
        .map(|&(c, t)| (c, t0 + Duration::milliseconds(t)))
        .collect();
    report
}

/// 2026-12-01T00:00:00Z, the default start of a simulated run (a Tuesday).
pub fn default_start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).single().unwrap_or_default()
}
