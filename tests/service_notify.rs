//! The systemd service protocol, read off a real `NOTIFY_SOCKET`: the test binds a Unix
//! datagram socket, runs `dialerd run` with it and `WATCHDOG_USEC`, and reads what systemd would.

mod common;

use common::{Daemon, campaign_dir};
use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

/// A socket standing in for systemd's, and the messages read off it with their arrival times.
struct Systemd {
    sock: UnixDatagram,
    path: String,
    got: Vec<(Instant, String)>,
    /// Index just past the message the last `wait_for` matched.
    cursor: usize,
}

impl Systemd {
    fn bind(dir: &std::path::Path) -> Systemd {
        let path = dir.join("notify.sock");
        let sock = UnixDatagram::bind(&path).unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
        Systemd {
            sock,
            path: path.to_str().unwrap().to_string(),
            got: Vec::new(),
            cursor: 0,
        }
    }

    /// Reads messages for `d`.
    fn read_for(&mut self, d: Duration) {
        let end = Instant::now() + d;
        let mut buf = [0u8; 4096];
        while Instant::now() < end {
            if let Ok(n) = self.sock.recv(&mut buf) {
                for l in String::from_utf8_lossy(&buf[..n]).lines() {
                    self.got.push((Instant::now(), l.to_string()));
                }
            }
        }
    }

    /// Reads until a message starting with `prefix` arrives after the one the previous call
    /// matched (it may already have been read in the same datagram); panics after `timeout`.
    fn wait_for(&mut self, prefix: &str, timeout: Duration) {
        let end = Instant::now() + timeout;
        loop {
            if let Some(i) = self.got[self.cursor..].iter().position(|(_, m)| m.starts_with(prefix)) {
                self.cursor += i + 1;
                return;
            }
            assert!(
                Instant::now() < end,
                "no `{prefix}` within {timeout:?}; got {:?}",
                self.messages()
            );
            self.read_for(Duration::from_millis(100));
        }
    }

    fn messages(&self) -> Vec<&str> {
        self.got.iter().map(|(_, m)| m.as_str()).collect()
    }

    fn position(&self, msg: &str, from: usize) -> Option<usize> {
        self.got[from..].iter().position(|(_, m)| m == msg).map(|i| i + from)
    }
}

fn start(root: &std::path::Path, dir: &std::path::Path, sd: &Systemd) -> Daemon {
    Daemon::start_env(
        dir,
        &root.join("d.db"),
        false,
        &[],
        &[
            ("NOTIFY_SOCKET", sd.path.as_str()),
            ("WATCHDOG_USEC", "2000000"),
            ("DIALERD__LISTEN", "127.0.0.1:0"),
        ],
    )
}

#[test]
fn ready_status_watchdog_reloading_and_stopping_in_order() {
    let root = tempfile::tempdir().unwrap();
    let dir = campaign_dir(root.path(), "spring", 200, "[trunk.sim]\ntime_scale = 0.02\n");
    let mut sd = Systemd::bind(root.path());
    let mut d = start(root.path(), &dir, &sd);
    sd.wait_for("READY=1", Duration::from_secs(60));
    sd.wait_for("WATCHDOG=1", Duration::from_secs(10));
    sd.read_for(Duration::from_secs(2));
    d.signal("HUP");
    sd.wait_for("RELOADING=1", Duration::from_secs(10));
    sd.wait_for("READY=1", Duration::from_secs(10));
    d.wait_for("Reloaded", 1, Duration::from_secs(10));
    d.signal("TERM");
    sd.wait_for("STOPPING=1", Duration::from_secs(10));
    assert!(d.wait_exit(Duration::from_secs(60)).success());
    sd.read_for(Duration::from_millis(300));

    let ready = sd.position("READY=1", 0).unwrap();
    let status = sd.got.iter().position(|(_, m)| m.starts_with("STATUS=")).unwrap();
    let ping = sd.position("WATCHDOG=1", ready).expect("a ping after READY=1");
    let reloading = sd.position("RELOADING=1", ping).expect("RELOADING=1 after a ping");
    let ready_again = sd.position("READY=1", reloading).expect("READY=1 after RELOADING=1");
    let stopping = sd.position("STOPPING=1", ready_again).expect("STOPPING=1 last");
    assert!(status <= ready + 1, "STATUS= comes with READY=1: {:?}", sd.messages());
    assert!(ready < ping && ping < reloading && reloading < ready_again && ready_again < stopping);
    // The MONOTONIC_USEC= that Type=notify-reload needs travels with RELOADING=1.
    assert!(
        sd.got[reloading + 1].1.starts_with("MONOTONIC_USEC="),
        "{:?}",
        sd.messages()
    );
    let line = sd
        .got
        .iter()
        .map(|(_, m)| m.as_str())
        .find(|m| m.starts_with("STATUS=") && m.contains("campaign(s) running"))
        .expect("a status line");
    for part in ["campaign(s) running", "call(s) in flight", "outbox"] {
        assert!(line.contains(part), "{line}");
    }
    // Pings come about every quarter of WatchdogSec (2 s) while everything makes progress.
    let pings: Vec<Instant> = sd.got[ready..stopping]
        .iter()
        .filter(|(_, m)| m == "WATCHDOG=1")
        .map(|(t, _)| *t)
        .collect();
    assert!(pings.len() >= 3, "{:?}", sd.messages());
    let widest = pings.windows(2).map(|w| w[1] - w[0]).max().unwrap();
    assert!(
        widest < Duration::from_millis(1900),
        "a gap of {widest:?} between pings"
    );
}

#[test]
fn a_runner_wedged_in_a_trunk_request_stops_the_pings() {
    let root = tempfile::tempdir().unwrap();
    // The second campaign's trunk takes an hour to accept a dial: its runner awaits the first
    // one and makes no progress, as a runner stuck on a hung provider request would.
    let dir = campaign_dir(root.path(), "spring", 50, "[trunk.sim]\ntime_scale = 0.02\n");
    let same = campaign_dir(
        root.path(),
        "stuck",
        50,
        "[trunk.sim]\ntime_scale = 0.02\ndial_latency = \"1h\"\n",
    );
    assert_eq!(dir, same);
    let mut sd = Systemd::bind(root.path());
    let mut d = start(root.path(), &dir, &sd);
    sd.wait_for("READY=1", Duration::from_secs(60));
    d.wait_for("watchdog pings withheld", 1, Duration::from_secs(20));
    // What was sent before the stall was logged is read first; nothing may follow it.
    sd.read_for(Duration::from_millis(300));
    let at_stall = sd.got.len();
    sd.read_for(Duration::from_secs(3));
    assert!(
        !sd.got[at_stall..].iter().any(|(_, m)| m == "WATCHDOG=1"),
        "pings after the stall: {:?}",
        sd.messages()
    );
    assert!(
        sd.got[..at_stall].iter().any(|(_, m)| m == "WATCHDOG=1"),
        "no ping before it"
    );
    let stall = d.seen.iter().find(|l| l.contains("watchdog pings withheld")).unwrap();
    assert!(stall.contains("campaign stuck"), "{stall}");
    d.signal("KILL");
    let _ = d.wait_exit(Duration::from_secs(10));
}

#[test]
fn a_notify_socket_nobody_reads_stalls_nothing() {
    // A Unix datagram socket blocks its sender once the reader's queue is full (ten datagrams
    // by default): a manager that stops reading must not stall dialing or the shutdown.
    let root = tempfile::tempdir().unwrap();
    let dir = campaign_dir(root.path(), "spring", 400, "[trunk.sim]\ntime_scale = 0.02\n");
    let mut sd = Systemd::bind(root.path());
    let mut d = start(root.path(), &dir, &sd);
    sd.wait_for("READY=1", Duration::from_secs(60));
    d.wait_for("Dialing.", 1, Duration::from_secs(20));
    let dials_at_stall = d.seen.iter().filter(|l| l.contains("Dialing.")).count();
    // About sixteen pings and as many status lines queue up unread while calls go on.
    d.wait_for("Dialing.", dials_at_stall + 20, Duration::from_secs(30));
    std::thread::sleep(Duration::from_secs(6));
    d.wait_for("Dialing.", dials_at_stall + 25, Duration::from_secs(30));
    d.signal("TERM");
    assert!(d.wait_exit(Duration::from_secs(45)).success());
    assert!(d.seen.iter().any(|l| l.contains("dialerd stopped.")), "{:?}", d.seen);
    // What queued up is still there to read, oldest first.
    sd.read_for(Duration::from_millis(300));
    assert!(sd.messages().contains(&"WATCHDOG=1"), "{:?}", sd.messages());
}
