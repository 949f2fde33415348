//! A trunk account's limits shared by every node dialing through it: at most `calls_per_second`
//! dials in any rolling second and at most `max_concurrent` calls in progress, across every
//! campaign and every node. Pure: the store keeps the account's recent grants in one row, locks it
//! in the claim transaction, reads the clock once under that lock and asks [`grant`] how many
//! claims may go ahead; the grant times are the claimed attempts' start times.
//!
//! Because the clock is read under the row lock, grant times are non-decreasing across nodes (one
//! database clock on PostgreSQL, one machine's clock for SQLite's writers), so the same sliding
//! window as [`crate::core::CpsWindow`] bounds every rolling second exactly.

/// The window's length in milliseconds: carriers and Twilio state CPS per second.
pub const WINDOW_MS: i64 = 1_000;
/// How long a claim refused for the concurrency limit waits before its campaign tries again, in ms.
pub const CONCURRENCY_WAIT_MS: i64 = 250;

/// A trunk account's shared limits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccountLimit {
    /// The account's key in the store, such as `twilio:AC…` or `sim`.
    pub account: String,
    /// Dials allowed in any rolling second across every node (0 is taken as 1).
    pub calls_per_second: u32,
    /// Calls in progress allowed at once across every node; none when unset.
    pub max_concurrent: Option<u32>,
}

/// What [`grant`] allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Grant {
    /// How many claims may go ahead now (at most what was asked).
    pub granted: u32,
    /// When fewer than asked were granted: milliseconds until the limit that held them has room.
    pub retry_after_ms: Option<i64>,
}

/// How many of `want` dials `limit` allows at `now_ms` (milliseconds, never before the last
/// grant), given the account's grant times of the last second `recent` (oldest first) and the
/// calls `in_progress` on the account. Drops grants older than a second from `recent`; the caller
/// appends the grants it uses with [`record`].
pub fn grant(limit: &AccountLimit, recent: &mut Vec<i64>, now_ms: i64, want: u32, in_progress: u64) -> Grant {
    recent.retain(|t| now_ms - *t < WINDOW_MS);
    let cps = u64::from(limit.calls_per_second.max(1));
    let cps_room = cps.saturating_sub(recent.len() as u64);
    let concurrency_room = limit
        .max_concurrent
        .map_or(u64::MAX, |m| u64::from(m).saturating_sub(in_progress));
    let granted = u64::from(want).min(cps_room).min(concurrency_room);
    let retry_after_ms = (granted < u64::from(want)).then(|| {
        if cps_room <= concurrency_room {
            // The oldest grant of the window leaves it first.
            recent.first().map_or(1, |t| (t + WINDOW_MS - now_ms).max(1))
        } else {
            CONCURRENCY_WAIT_MS
        }
    });
    Grant {
        granted: u32::try_from(granted).unwrap_or(u32::MAX),
        retry_after_ms,
    }
}

/// Appends `used` grants at `now_ms` to `recent`.
pub fn record(recent: &mut Vec<i64>, now_ms: i64, used: usize) {
    recent.extend(std::iter::repeat_n(now_ms, used));
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn limit(cps: u32, max: Option<u32>) -> AccountLimit {
        AccountLimit {
            account: "sim".into(),
            calls_per_second: cps,
            max_concurrent: max,
        }
    }

    #[test]
    fn the_tighter_limit_says_how_long_to_wait() {
        let mut recent = vec![];
        let l = limit(3, Some(10));
        let g = grant(&l, &mut recent, 0, 5, 0);
        assert_eq!(
            g,
            Grant {
                granted: 3,
                retry_after_ms: Some(1)
            }
        );
        record(&mut recent, 0, 3);
        assert_eq!(grant(&l, &mut recent, 400, 1, 3).retry_after_ms, Some(600));
        let g = grant(&l, &mut recent, 1_000, 5, 9);
        assert_eq!(
            g,
            Grant {
                granted: 1,
                retry_after_ms: Some(CONCURRENCY_WAIT_MS)
            }
        );
        assert!(recent.is_empty(), "grants a second old leave the window");
        assert_eq!(grant(&l, &mut recent, 1_000, 2, 2).retry_after_ms, None);
    }

    proptest! {
        /// Nodes asking in any order and any amount, with calls ending at random: no rolling
        /// second holds more than `calls_per_second` grants, calls in progress never exceed
        /// `max_concurrent`, and a request is cut only when one of the two is full.
        #[test]
        fn no_rolling_second_or_moment_exceeds_the_account(
            cps in 1u32..40,
            max in 1u32..60,
            steps in proptest::collection::vec((0i64..300, 0u32..25, 0u64..10), 1..200),
        ) {
            let l = limit(cps, Some(max));
            let mut recent = Vec::new();
            let mut now = 0;
            let mut live: u64 = 0;
            let mut dials: Vec<i64> = Vec::new();
            for (gap, want, ended) in steps {
                now += gap;
                live = live.saturating_sub(ended);
                let in_last_second = dials.iter().filter(|t| now - **t < WINDOW_MS).count() as u64;
                let g = grant(&l, &mut recent, now, want, live);
                let room = (u64::from(cps) - in_last_second).min(u64::from(max) - live);
                prop_assert_eq!(u64::from(g.granted), u64::from(want).min(room));
                prop_assert_eq!(g.retry_after_ms.is_some(), u64::from(want) > room);
                record(&mut recent, now, g.granted as usize);
                dials.extend(std::iter::repeat_n(now, g.granted as usize));
                live += u64::from(g.granted);
                prop_assert!(live <= u64::from(max));
            }
            for (i, t) in dials.iter().enumerate() {
                let within = dials[i..].iter().filter(|u| **u - *t < WINDOW_MS).count() as u32;
                prop_assert!(within <= cps, "{} dials in the second from {}", within, t);
            }
        }
    }
}
