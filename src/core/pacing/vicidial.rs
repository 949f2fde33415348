//! VICIdial's adaptive `ADAPT_HARD_LIMIT` dial level, as published: samples of ready slots and
//! waiting answers every second, the level adjusted every 15 s, placements every 2.5 s. Kept as a
//! baseline for the other modes.

use super::{PacingConfig, PacingInput};
use chrono::{DateTime, Duration, Utc};
use std::collections::VecDeque;

/// One per-second VICIdial sample: (time, ready slots, answered calls waiting for a slot, agents).
type VicidialSample = (DateTime<Utc>, f64, f64, f64);

/// VICIdial `ADAPT_HARD_LIMIT` state.
#[derive(Clone, Debug)]
pub(super) struct Vicidial {
    pub(super) level: f64,
    last_place: Option<DateTime<Utc>>,
    last_sample: Option<DateTime<Utc>>,
    last_adjust: Option<DateTime<Utc>>,
    samples: VecDeque<VicidialSample>,
    pub(super) placed: VecDeque<DateTime<Utc>>,
    pub(super) drops: VecDeque<DateTime<Utc>>,
}

impl Vicidial {
    pub(super) fn new() -> Vicidial {
        Vicidial {
            level: 1.0,
            last_place: None,
            last_sample: None,
            last_adjust: None,
            samples: VecDeque::new(),
            placed: VecDeque::new(),
            drops: VecDeque::new(),
        }
    }

    pub(super) fn decide(&mut self, inp: &PacingInput<'_>, cfg: &PacingConfig) -> u32 {
        let now = inp.now;
        let c = inp.counts;
        if self.last_sample.is_none_or(|t| now - t >= Duration::seconds(1)) {
            self.last_sample = Some(now);
            self.samples
                .push_back((now, f64::from(c.free()), f64::from(c.safe_harbor), f64::from(c.slots)));
        }
        while self.samples.front().is_some_and(|s| now - s.0 > Duration::seconds(15)) {
            self.samples.pop_front();
        }
        let day_ago = now - Duration::days(1);
        while self.placed.front().is_some_and(|&t| t < day_ago) {
            self.placed.pop_front();
        }
        while self.drops.front().is_some_and(|&t| t < day_ago) {
            self.drops.pop_front();
        }
        // The first adjustment comes after 15 s of samples.
        let last_adjust = *self.last_adjust.get_or_insert(now);
        if now - last_adjust >= Duration::seconds(15) && !self.samples.is_empty() {
            self.last_adjust = Some(now);
            let k = self.samples.len() as f64;
            let mean = |f: fn(&VicidialSample) -> f64| self.samples.iter().map(f).sum::<f64>() / k;
            let agents = mean(|s| s.3);
            if agents > 0.0 {
                let d = mean(|s| s.1) - mean(|s| s.2);
                let m = d / agents;
                let i = cfg.vicidial_intensity / 100.0;
                let m2 = if m >= 0.0 { m * (1.0 + i) } else { m * (i - 1.0).abs() };
                self.level = (self.level * (1.0 + m2)).clamp(1.0, 3.0);
            }
            let minute_ago = now - Duration::minutes(1);
            // Both are recorded in time order: the last minute is at the back, so counting it
            // does not walk the whole day.
            let placed_minute = self.placed.iter().rev().take_while(|&&t| t >= minute_ago).count();
            let drops_minute = self.drops.iter().rev().take_while(|&&t| t >= minute_ago).count();
            if placed_minute > 20 && drops_minute * 2 > placed_minute {
                self.level = (self.level / 2.0).max(1.0);
            }
            if self.placed.len() > 50 && inp.measured.rate() > cfg.target_abandon_rate {
                self.level = 1.0;
            }
        }
        if self.last_place.is_some_and(|t| now - t < Duration::milliseconds(2500)) {
            return 0;
        }
        self.last_place = Some(now);
        let target = (self.level * f64::from(c.slots)).round() as u32;
        target.saturating_sub(c.dialing + c.talking)
    }
}
