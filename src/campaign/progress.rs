//! Progress of a long read of a contact list (`dialerd check`, the store's import): the
//! [`ReadObserver`] the reader reports to once per chunk of rows, and [`StderrProgress`], which
//! shows an `indicatif` bar (rows per second, ETA from the bytes read) when stderr is a terminal,
//! else logs a line at info level every [`LOG_EVERY`]. Short reads show nothing. Bars of reads
//! running at once (the daemon imports each campaign's list on its own task) share one
//! `MultiProgress`, a line each. A log line written while a bar is shown may leave a partial
//! bar line behind: the bar redraws below it.

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};

/// The bars of every read in the process, drawn on stderr.
static BARS: LazyLock<MultiProgress> = LazyLock::new(MultiProgress::new);

/// A read that lasts less than this shows no bar.
pub const BAR_AFTER: Duration = Duration::from_secs(1);
/// Interval between two log lines when stderr is not a terminal (the first comes after it too).
pub const LOG_EVERY: Duration = Duration::from_secs(5);

/// Where a read is: what the reading thread has consumed so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReadProgress {
    /// Bytes of the file read so far (header included).
    pub bytes: u64,
    /// The file's size in bytes when it was opened; `None` when unknown.
    pub total_bytes: Option<u64>,
    /// CSV records read so far (header and blank lines excluded), accepted or not.
    pub rows: u64,
}

/// Observes a read. Called from the reading thread, so it must be cheap: the reader calls
/// [`ReadObserver::progress`] once per chunk of rows (about a thousand), never per row.
pub trait ReadObserver: Send + Sync {
    /// The read got this far. Values only grow from one call to the next.
    fn progress(&self, _progress: &ReadProgress) {}
    /// The read ended (whatever its result); `last` is the last progress (zero when it failed
    /// before the end). Called once.
    fn finish(&self, _last: &ReadProgress) {}
}

/// Reports nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl ReadObserver for NoProgress {}

/// Rates of a read after `elapsed`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rates {
    /// Records per second since the start.
    pub rows_per_second: f64,
    /// Fraction of the file read, 0 to 1; `None` when its size is unknown or zero.
    pub fraction: Option<f64>,
    /// Time left at the byte rate so far; `None` before any byte or when the size is unknown.
    pub eta: Option<Duration>,
}

impl Rates {
    /// The rates of `p` after `elapsed` since the read started.
    pub fn of(p: &ReadProgress, elapsed: Duration) -> Rates {
        let secs = elapsed.as_secs_f64();
        let rows_per_second = if secs > 0.0 { p.rows as f64 / secs } else { 0.0 };
        let fraction = p
            .total_bytes
            .filter(|&t| t > 0)
            .map(|t| (p.bytes as f64 / t as f64).min(1.0));
        let eta = match (p.total_bytes, p.bytes) {
            (Some(total), read) if read > 0 && secs > 0.0 => {
                let left = total.saturating_sub(read) as f64;
                Some(Duration::from_secs_f64(left * secs / read as f64))
            }
            _ => None,
        };
        Rates {
            rows_per_second,
            fraction,
            eta,
        }
    }
}

/// Progress on stderr: a bar on a terminal, else a log line every [`LOG_EVERY`].
#[derive(Debug)]
pub struct StderrProgress {
    label: String,
    started: Instant,
    terminal: bool,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    bar: Option<ProgressBar>,
    last_log: Instant,
    logged: bool,
}

impl StderrProgress {
    /// Progress of the read named `label` (`contacts of spring`), started now; a bar when stderr
    /// is a terminal.
    pub fn new(label: impl Into<String>) -> StderrProgress {
        StderrProgress::with_terminal(label, std::io::stderr().is_terminal())
    }

    /// As [`StderrProgress::new`], with the choice between bar (`terminal`) and log lines made
    /// by the caller.
    pub fn with_terminal(label: impl Into<String>, terminal: bool) -> StderrProgress {
        let now = Instant::now();
        StderrProgress {
            label: label.into(),
            started: now,
            terminal,
            state: Mutex::new(State {
                bar: None,
                last_log: now,
                logged: false,
            }),
        }
    }

    fn bar(&self, p: &ReadProgress) -> ProgressBar {
        let template = if p.total_bytes.is_some() {
            "{prefix} [{bar:30}] {percent:>3}% {msg}, ETA {eta}"
        } else {
            "{prefix} {spinner} {msg}"
        };
        let style = ProgressStyle::with_template(template)
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
        let bar = BARS.add(ProgressBar::no_length().with_style(style));
        if let Some(total) = p.total_bytes {
            bar.set_length(total);
        }
        bar.set_prefix(self.label.clone());
        bar
    }
}

impl ReadObserver for StderrProgress {
    fn progress(&self, p: &ReadProgress) {
        let elapsed = self.started.elapsed();
        // A poisoned lock only loses the display.
        let Ok(mut state) = self.state.lock() else { return };
        let rates = Rates::of(p, elapsed);
        if self.terminal {
            if state.bar.is_none() {
                if elapsed < BAR_AFTER {
                    return;
                }
                state.bar = Some(self.bar(p));
            }
            if let Some(bar) = &state.bar {
                bar.set_position(p.bytes);
                bar.set_message(format!("{} rows, {:.0} rows/s", p.rows, rates.rows_per_second));
            }
        } else if state.last_log.elapsed() >= LOG_EVERY {
            state.last_log = Instant::now();
            state.logged = true;
            tracing::info!(
                read = %self.label,
                rows = p.rows,
                bytes = p.bytes,
                total_bytes = p.total_bytes,
                percent = rates.fraction.map(|f| (f * 1000.0).round() / 10.0),
                rows_per_second = rates.rows_per_second.round(),
                eta_seconds = rates.eta.map(|d| d.as_secs()),
                "Reading contacts."
            );
        }
    }

    fn finish(&self, last: &ReadProgress) {
        let Ok(mut state) = self.state.lock() else { return };
        if let Some(bar) = state.bar.take() {
            bar.finish_and_clear();
            BARS.remove(&bar);
        }
        if state.logged {
            let elapsed = self.started.elapsed();
            tracing::info!(read = %self.label, rows = last.rows, seconds = elapsed.as_secs_f64(),
                rows_per_second = Rates::of(last, elapsed).rows_per_second.round(), "Contacts read.");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_give_rows_per_second_and_eta_from_bytes() {
        let p = ReadProgress {
            bytes: 250,
            total_bytes: Some(1000),
            rows: 5000,
        };
        let r = Rates::of(&p, Duration::from_secs(2));
        assert_eq!(r.rows_per_second, 2500.0);
        assert_eq!(r.fraction, Some(0.25));
        // 250 bytes in 2 s: the 750 left take 6 s.
        assert_eq!(r.eta, Some(Duration::from_secs(6)));

        let unknown = ReadProgress { total_bytes: None, ..p };
        let r = Rates::of(&unknown, Duration::from_secs(2));
        assert_eq!((r.fraction, r.eta), (None, None));
        assert_eq!(Rates::of(&ReadProgress::default(), Duration::ZERO).rows_per_second, 0.0);
    }

    #[test]
    fn a_short_read_draws_no_bar_and_logs_nothing() {
        for terminal in [true, false] {
            let progress = StderrProgress::with_terminal("test", terminal);
            let p = ReadProgress {
                bytes: 10,
                total_bytes: Some(100),
                rows: 1,
            };
            progress.progress(&p);
            let state = progress.state.lock().unwrap();
            assert!(state.bar.is_none() && !state.logged, "terminal {terminal}");
        }
    }

    #[test]
    fn a_long_read_logs_or_shows_a_bar_and_finish_clears_it() {
        let long_ago = |d: Duration| Instant::now().checked_sub(d).unwrap();
        let p = ReadProgress {
            bytes: 10,
            total_bytes: Some(100),
            rows: 1,
        };
        let log = StderrProgress::with_terminal("test", false);
        log.state.lock().unwrap().last_log = long_ago(LOG_EVERY * 2);
        log.progress(&p);
        assert!(log.state.lock().unwrap().logged);

        let mut bar = StderrProgress::with_terminal("test", true);
        bar.started = long_ago(BAR_AFTER * 2);
        bar.progress(&p);
        assert_eq!(
            bar.state
                .lock()
                .unwrap()
                .bar
                .as_ref()
                .map(|b| (b.position(), b.length())),
            Some((10, Some(100)))
        );
        bar.finish(&p);
        assert!(bar.state.lock().unwrap().bar.is_none());
    }
}
