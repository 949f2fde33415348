//! The systemd service protocol as the daemon speaks it (sd_notify(3), through the `sd-notify`
//! crate): `READY=1` once the campaigns are loaded, a one-line `STATUS=`, `RELOADING=1` /
//! `READY=1` around a reload, `STOPPING=1` on shutdown, and `WATCHDOG=1` only while every
//! campaign runner and the daemon loop itself keep making progress ([`Heartbeats`]), so a wedged
//! runner stops the pings and systemd restarts the service (`WatchdogSec=`). Without
//! `NOTIFY_SOCKET` every message is dropped; without `WATCHDOG_USEC` nothing is pinged.

use sd_notify::NotifyState;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;
use tracing::{error, info, warn};

/// A heartbeat value meaning "not watched now" (a runner importing its list, or exited).
const EXEMPT: u64 = u64::MAX;

/// One task's heartbeat: the milliseconds since the set's origin at its last step.
#[derive(Clone, Debug)]
pub struct Heartbeat {
    origin: Instant,
    last_ms: Arc<AtomicU64>,
}

impl Heartbeat {
    /// Records progress now.
    pub fn beat(&self) {
        let ms = u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(EXEMPT - 1);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    /// Stops watching this task until its next [`Heartbeat::beat`] (long work that cannot beat,
    /// such as a list import, or the task's end).
    pub fn exempt(&self) {
        self.last_ms.store(EXEMPT, Ordering::Relaxed);
    }
}

/// The heartbeats of the daemon loop and every campaign runner, by name, and whether the
/// daemon has loaded its campaigns (`READY=1`, `GET /readyz`).
#[derive(Clone, Debug)]
pub struct Heartbeats {
    origin: Instant,
    beats: Arc<Mutex<BTreeMap<String, Arc<AtomicU64>>>>,
    loaded: Arc<AtomicBool>,
}

impl Default for Heartbeats {
    fn default() -> Self {
        Heartbeats::new()
    }
}

impl Heartbeats {
    /// An empty set.
    pub fn new() -> Heartbeats {
        Heartbeats {
            origin: Instant::now(),
            beats: Arc::default(),
            loaded: Arc::default(),
        }
    }

    /// Records that the daemon's first folder scan is done: every valid campaign has a runner.
    pub fn set_loaded(&self) {
        self.loaded.store(true, Ordering::Relaxed);
    }

    /// Whether [`Heartbeats::set_loaded`] was called.
    pub fn loaded(&self) -> bool {
        self.loaded.load(Ordering::Relaxed)
    }

    /// A heartbeat for `name` (replacing an earlier one of the same name), beaten now.
    pub fn register(&self, name: &str) -> Heartbeat {
        let hb = Heartbeat {
            origin: self.origin,
            last_ms: Arc::new(AtomicU64::new(0)),
        };
        hb.beat();
        if let Ok(mut beats) = self.beats.lock() {
            beats.insert(name.to_string(), Arc::clone(&hb.last_ms));
        }
        hb
    }

    /// Forgets `name`.
    pub fn remove(&self, name: &str) {
        if let Ok(mut beats) = self.beats.lock() {
            beats.remove(name);
        }
    }

    /// The watched tasks whose last beat is older than `limit`, with that age.
    pub fn stale(&self, limit: Duration) -> Vec<(String, Duration)> {
        let now = u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(EXEMPT - 1);
        let Ok(beats) = self.beats.lock() else {
            return vec![("heartbeats".into(), Duration::MAX)];
        };
        beats
            .iter()
            .filter_map(|(name, last)| {
                let last = last.load(Ordering::Relaxed);
                let age = Duration::from_millis(now.saturating_sub(last));
                (last != EXEMPT && age > limit).then(|| (name.clone(), age))
            })
            .collect()
    }
}

/// The daemon's side of the service protocol.
#[derive(Debug)]
pub struct Notifier {
    watchdog: Option<Duration>,
    status: String,
}

impl Notifier {
    /// Reads `WATCHDOG_USEC` (and `WATCHDOG_PID`) from the environment, as sd_watchdog_enabled(3).
    pub fn from_env() -> Notifier {
        let watchdog = sd_notify::watchdog_enabled().filter(|d| !d.is_zero());
        Notifier {
            watchdog,
            status: String::new(),
        }
    }

    /// `WatchdogSec=` as systemd passed it; `None` when the watchdog is off.
    pub fn watchdog(&self) -> Option<Duration> {
        self.watchdog
    }

    /// `READY=1` with the current status line.
    pub fn ready(&self) {
        send(&[NotifyState::Ready, NotifyState::Status(&self.status)]);
    }

    /// `RELOADING=1` with `MONOTONIC_USEC=` (systemd 253's `Type=notify-reload` needs both).
    pub fn reloading(&self) {
        match NotifyState::monotonic_usec_now() {
            Ok(now) => send(&[NotifyState::Reloading, now]),
            Err(_) => send(&[NotifyState::Reloading]),
        }
    }

    /// `STOPPING=1`.
    pub fn stopping(&self) {
        send(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
    }

    /// `STATUS=line`, sent only when it changed.
    pub fn status(&mut self, line: String) {
        if line != self.status {
            self.status = line;
            send(&[NotifyState::Status(&self.status)]);
        }
    }
}

/// Messages waiting for the notify thread; beyond this many, new ones are dropped.
const NOTIFY_QUEUE: usize = 64;

/// Hands `states` to the notify thread without waiting. `sd_notify` writes a blocking datagram,
/// and a Unix datagram socket blocks its sender once the reader's queue is full
/// (`net.unix.max_dgram_qlen`, 10 by default): a manager that stops reading (a hung or busy
/// systemd, a test that stopped listening) would otherwise stall the runtime thread that sent.
/// Only the notify thread waits; a message that finds its queue full is dropped with a warning.
fn send(states: &[NotifyState]) {
    static QUEUE: std::sync::OnceLock<Option<std::sync::mpsc::SyncSender<Vec<String>>>> = std::sync::OnceLock::new();
    static DROPPED: AtomicBool = AtomicBool::new(false);
    if std::env::var_os("NOTIFY_SOCKET").is_none() {
        return;
    }
    let queue = QUEUE.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<String>>(NOTIFY_QUEUE);
        let spawned = std::thread::Builder::new().name("sd-notify".into()).spawn(move || {
            for msg in rx {
                let states: Vec<NotifyState> = msg.iter().map(|m| NotifyState::Custom(m)).collect();
                if let Err(e) = sd_notify::notify(&states) {
                    warn!(error = %e, "Cannot notify systemd (NOTIFY_SOCKET).");
                }
            }
        });
        match spawned {
            Ok(_) => Some(tx),
            Err(e) => {
                warn!(error = %e, "Cannot start the systemd notify thread; nothing is sent to systemd.");
                None
            }
        }
    });
    let Some(queue) = queue else { return };
    let msg = states.iter().map(ToString::to_string).collect();
    match queue.try_send(msg) {
        Ok(()) => DROPPED.store(false, Ordering::Relaxed),
        Err(_) => {
            if !DROPPED.swap(true, Ordering::Relaxed) {
                warn!(
                    error = "notify queue full",
                    "systemd is not reading NOTIFY_SOCKET; its messages are dropped until it does."
                );
            }
        }
    }
}

/// Pings `WATCHDOG=1` every quarter of `watchdog` while no heartbeat in `beats` is older than
/// half of it; a stalled one withholds the pings (one error line per stall), so systemd restarts
/// the service. Runs until aborted.
pub fn spawn_watchdog(beats: Heartbeats, watchdog: Duration) -> tokio::task::JoinHandle<()> {
    info!(watchdog_s = watchdog.as_secs_f64(), "systemd watchdog enabled.");
    let limit = watchdog / 2;
    tokio::spawn(async move {
        let mut every = tokio::time::interval(watchdog / 4);
        let mut reported: Vec<String> = Vec::new();
        loop {
            every.tick().await;
            let stale = beats.stale(limit);
            if stale.is_empty() {
                if !reported.is_empty() {
                    info!("Every task is making progress again; watchdog pings resumed.");
                    reported.clear();
                }
                send(&[NotifyState::Watchdog]);
                continue;
            }
            for (name, age) in stale {
                if !reported.contains(&name) {
                    error!(task = %name, stalled_s = age.as_secs_f64(), error = "no progress",
                        "A task has made no progress; watchdog pings withheld so systemd restarts the service.");
                    reported.push(name);
                }
            }
        }
    })
}

/// How old a heartbeat may be before `GET /readyz` calls its task wedged: half of
/// `WatchdogSec=` (as the watchdog), else 90 s (runners beat at least every 30 s).
pub fn wedge_limit(watchdog: Option<Duration>) -> Duration {
    watchdog.map_or(Duration::from_secs(90), |w| w / 2)
}

/// The `STATUS=` line: campaigns running, calls in flight, outbox depth.
pub fn status_line(running: usize, paused: usize, in_flight: usize, outbox: Option<u64>) -> String {
    let outbox = outbox.map_or_else(|| "outbox ?".to_string(), |n| format!("outbox {n} pending"));
    format!("{running} campaign(s) running, {paused} paused, {in_flight} call(s) in flight, {outbox}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_heartbeat_not_beaten_goes_stale_and_an_exempt_one_never_does() {
        let beats = Heartbeats::new();
        let a = beats.register("a");
        let b = beats.register("b");
        b.exempt();
        tokio::time::advance(Duration::from_millis(1500)).await;
        assert!(beats.stale(Duration::from_secs(2)).is_empty());
        tokio::time::advance(Duration::from_millis(1000)).await;
        let stale = beats.stale(Duration::from_secs(2));
        assert_eq!(stale.len(), 1);
        assert_eq!(stale[0].0, "a");
        a.beat();
        assert!(beats.stale(Duration::from_secs(2)).is_empty());
        beats.remove("a");
        tokio::time::advance(Duration::from_secs(10)).await;
        assert!(beats.stale(Duration::from_secs(2)).is_empty());
    }

    #[test]
    fn the_status_line_names_the_figures() {
        assert_eq!(
            status_line(2, 1, 17, Some(4)),
            "2 campaign(s) running, 1 paused, 17 call(s) in flight, outbox 4 pending"
        );
    }
}
