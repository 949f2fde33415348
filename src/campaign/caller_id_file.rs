//! `caller_id` in the campaign file: one E.164 number (`caller_id = "+14155550100"`), or a
//! `[caller_id]` table with a pool of numbers (inline and/or from a file beside the campaign),
//! the default of last resort and the pool's health and cap rules. Checked into the core's
//! [`CallerIdPool`].

use crate::core::caller_id::{CallerIdPool, HealthPolicy, PoolNumber};
use chrono::TimeDelta;
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use std::path::Path;
use std::time::Duration;

/// `caller_id`: a single number, or a pool.
#[derive(Debug, Clone, PartialEq)]
pub enum CallerIdFile {
    /// `caller_id = "+14155550100"`: every call presents this number.
    One(String),
    /// `[caller_id]` with `default` and `pool`.
    Pool(CallerIdPoolFile),
}

impl CallerIdFile {
    /// The default number as written (the single number, or the pool's `default`).
    pub fn default_number(&self) -> &str {
        match self {
            CallerIdFile::One(n) => n,
            CallerIdFile::Pool(p) => &p.default,
        }
    }
}

impl<'de> Deserialize<'de> for CallerIdFile {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<CallerIdFile, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = CallerIdFile;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an E.164 number, or a table with `default` and `pool`")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<CallerIdFile, E> {
                Ok(CallerIdFile::One(v.to_string()))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<CallerIdFile, A::Error> {
                // The table's own errors (an unknown key, a wrong type) keep their key.
                CallerIdPoolFile::deserialize(de::value::MapAccessDeserializer::new(map)).map(CallerIdFile::Pool)
            }
        }
        d.deserialize_any(V)
    }
}

/// `[caller_id]`: a pool of caller IDs with local presence and number health.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallerIdPoolFile {
    /// E.164 number used when no pool number is local to the contact (never rested or capped).
    pub default: String,
    /// Pool numbers, E.164.
    #[serde(default)]
    pub pool: Vec<String>,
    /// A text file beside the campaign file with more pool numbers: one E.164 per line, `#`
    /// starts a comment.
    #[serde(default)]
    pub pool_file: Option<String>,
    /// Most dials from one pool number in any rolling 24 hours; unset for no cap.
    #[serde(default)]
    pub daily_cap: Option<u32>,
    /// The rolling window of the answer and short-call rates (default 6 h).
    #[serde(default = "default_window", with = "humantime_serde")]
    pub health_window: Duration,
    /// Ended calls a number needs in the window before it is judged (default 30).
    #[serde(default = "default_min_calls")]
    pub min_calls: u32,
    /// A number is rested when its answer rate is below this share (0..1) of the rest of the
    /// pool's (default 0.5).
    #[serde(default = "default_rest_below")]
    pub rest_below: f64,
    /// How long a rested number is kept off new contacts (default 4 h).
    #[serde(default = "default_rest_for", with = "humantime_serde")]
    pub rest_for: Duration,
    /// An answered call shorter than this is a short call (default 10 s).
    #[serde(default = "default_short_call", with = "humantime_serde")]
    pub short_call: Duration,
}

fn default_window() -> Duration {
    Duration::from_secs(6 * 3600)
}
fn default_min_calls() -> u32 {
    30
}
fn default_rest_below() -> f64 {
    0.5
}
fn default_rest_for() -> Duration {
    Duration::from_secs(4 * 3600)
}
fn default_short_call() -> Duration {
    Duration::from_secs(10)
}

fn delta(d: Duration) -> TimeDelta {
    TimeDelta::from_std(d).unwrap_or(TimeDelta::MAX)
}

/// Checks `caller_id` into a pool; `campaign_dir` is where `pool_file` is read from. Reports
/// each problem with its key (`caller_id.pool[2]`, `caller_id.pool_file:LINE`) through `err`
/// and returns `None` when any was found.
pub fn build(
    f: &CallerIdFile,
    campaign_dir: &Path,
    is_e164: &dyn Fn(&str) -> bool,
    err: &mut dyn FnMut(&str, String),
) -> Option<CallerIdPool> {
    let bad = |n: &str| format!("`{n}` is not a valid E.164 number (like +14155550100)");
    let p = match f {
        CallerIdFile::One(n) => {
            if !is_e164(n) {
                err("caller_id", bad(n));
                return None;
            }
            return Some(CallerIdPool::single(n));
        }
        CallerIdFile::Pool(p) => p,
    };
    let mut ok = true;
    if !is_e164(&p.default) {
        err("caller_id.default", bad(&p.default));
        ok = false;
    }
    let mut numbers: Vec<(String, String)> = p
        .pool
        .iter()
        .enumerate()
        .map(|(i, n)| (format!("caller_id.pool[{i}]"), n.trim().to_string()))
        .collect();
    if let Some(file) = &p.pool_file {
        let path = campaign_dir.join(file);
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                for (i, line) in text.lines().enumerate() {
                    let n = line.split('#').next().unwrap_or("").trim();
                    if !n.is_empty() {
                        numbers.push((format!("caller_id.pool_file ({file}) line {}", i + 1), n.to_string()));
                    }
                }
            }
            Err(e) => {
                err("caller_id.pool_file", format!("cannot read {}: {e}", path.display()));
                ok = false;
            }
        }
    }
    let mut pool: Vec<PoolNumber> = Vec::new();
    for (key, n) in numbers {
        if !is_e164(&n) {
            err(&key, bad(&n));
            ok = false;
        } else if n != p.default && !pool.iter().any(|x| x.e164 == n) {
            pool.push(PoolNumber::new(&n));
        }
    }
    if !(0.0..=1.0).contains(&p.rest_below) {
        err(
            "caller_id.rest_below",
            format!("must be within 0..1, not {}", p.rest_below),
        );
        ok = false;
    }
    if p.daily_cap == Some(0) {
        err(
            "caller_id.daily_cap",
            "must be at least 1 (leave it out for no cap)".into(),
        );
        ok = false;
    }
    if p.health_window < Duration::from_secs(60) {
        err("caller_id.health_window", "must be at least 1 minute".into());
        ok = false;
    }
    ok.then(|| CallerIdPool {
        default: p.default.clone(),
        numbers: pool,
        health: HealthPolicy {
            window: delta(p.health_window),
            min_calls: p.min_calls,
            rest_below: p.rest_below,
            rest_for: delta(p.rest_for),
            daily_cap: p.daily_cap,
            short_call_s: p.short_call.as_secs_f64(),
        },
    })
}
