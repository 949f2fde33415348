//! Helpers for tests that run the `dialerd` binary against real SQLite files.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The built binary.
pub fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_dialerd"))
}

/// A campaign folder with `n` valid US contacts (555-01xx and 555-02xx style numbers across area codes).
pub fn campaign_dir(root: &Path, id: &str, n: usize, extra_toml: &str) -> PathBuf {
    let dir = root.join("campaigns");
    std::fs::create_dir_all(&dir).unwrap();
    write_contacts(&dir.join(format!("{id}.csv")), n);
    std::fs::write(dir.join(format!("{id}.toml")), campaign_toml(id, extra_toml)).unwrap();
    dir
}

/// Writes `n` contacts with distinct valid numbers.
pub fn write_contacts(path: &Path, n: usize) {
    let areas = ["212", "415", "312", "602", "617", "303", "206", "404", "512", "702"];
    let mut s = String::from("phone,first_name,plan\n");
    for i in 0..n {
        let area = areas[i / 1000 % areas.len()];
        s.push_str(&format!(
            "({area}) {:03}-{:04},Name{i},basic\n",
            220 + (i % 1000) / 20,
            1000 + i % 1000
        ));
    }
    std::fs::write(path, s).unwrap();
}

/// A sim campaign file; `extra` is appended (its sections must not repeat the ones below).
pub fn campaign_toml(id: &str, extra: &str) -> String {
    format!(
        r#"name = "Test {id}"
agent_id = "agent_test"
caller_id = "+14155550100"
default_region = "US"
default_timezone = "America/New_York"

[contacts]
file = "{id}.csv"

[schedule]
windows = ["* * * * * *"]

[dialer]
max_concurrent = 10
calls_per_second = 50
ring_timeout = "20s"

[retry]
max_attempts = 3
delay = "1s"

[voicemail]
action = "leave_message"
message = "Hi {{{{first_name}}}}, please call us back."

[callback]
delay = "1s"

[compliance]
legal_hours = "00:00-24:00"
state_rules = false
{extra}
"#
    )
}

/// A [`campaign_toml`] switched to predictive pacing, with the safe-harbor message that mode
/// requires and one attempt per contact: an abandoned contact would otherwise wait out its
/// 72-hour hold, and `--until-idle` waits for every contact still to be dialled, however late.
pub fn predictive(toml: &str) -> String {
    toml.replace("[dialer]\n", "[dialer]\nmode = \"predictive\"\n")
        .replace("max_attempts = 3", "max_attempts = 1")
        .replace(
            "[compliance]\n",
            "[compliance]\nsafe_harbor_message = \"This is Acme; we will call you back. Call us at +1 415 555 0100.\"\n",
        )
}

/// A running daemon whose stderr lines are collected on a channel.
pub struct Daemon {
    pub child: Child,
    pub lines: mpsc::Receiver<String>,
    pub seen: Vec<String>,
}

impl Daemon {
    /// Starts `dialerd run` on `dir` with the database `db`.
    pub fn start(dir: &Path, db: &Path, until_idle: bool) -> Daemon {
        Daemon::start_with(dir, db, until_idle, &[])
    }

    /// Starts `dialerd [extra...] run` on `dir` with the database `db`.
    pub fn start_with(dir: &Path, db: &Path, until_idle: bool, extra: &[&str]) -> Daemon {
        Daemon::start_env(dir, db, until_idle, extra, &[])
    }

    /// Starts `dialerd [extra...] run` on `dir` with the database `db` and extra environment
    /// variables (set after the defaults below, so they can override them).
    pub fn start_env(dir: &Path, db: &Path, until_idle: bool, extra: &[&str], env: &[(&str, &str)]) -> Daemon {
        let mut cmd = bin();
        cmd.args(extra)
            .args(["run", "--campaigns"])
            .arg(dir)
            .arg("--database")
            .arg(db);
        if until_idle {
            cmd.arg("--until-idle");
        }
        let mut child = cmd
            .env("RUST_LOG", "info")
            .env("DIALERD__POLL_INTERVAL", "200ms")
            .env("DIALERD__SHUTDOWN_GRACE", "20s")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Daemon {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits until `count` log lines contain `needle`; panics after `timeout`.
    pub fn wait_for(&mut self, needle: &str, count: usize, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.seen.iter().filter(|l| l.contains(needle)).count() < count {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => self.seen.push(l),
                Err(_) => panic!(
                    "timed out waiting for {count}× `{needle}`; log so far:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }

    /// Waits for exit (collecting the rest of the log); panics after `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            while let Ok(l) = self.lines.try_recv() {
                self.seen.push(l);
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                while let Ok(l) = self.lines.recv_timeout(Duration::from_millis(200)) {
                    self.seen.push(l);
                }
                return status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                // The tail says where it hung; CI output keeps the end of a long message.
                let from = self.seen.len().saturating_sub(80);
                panic!(
                    "daemon did not exit in {timeout:?}; last {} of {} log lines:\n{}",
                    self.seen.len() - from,
                    self.seen.len(),
                    self.seen[from..].join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits for the "HTTP listener started." line and returns the address it bound
    /// (`127.0.0.1:port`, from its `listen=` field).
    pub fn listen_addr(&mut self, timeout: Duration) -> String {
        self.wait_for("HTTP listener started", 1, timeout);
        let line = self.seen.iter().find(|l| l.contains("HTTP listener started")).unwrap();
        line.split_whitespace()
            .find_map(|w| w.strip_prefix("listen="))
            .unwrap_or_else(|| panic!("no listen= in `{line}`"))
            .to_string()
    }

    /// Sends a signal (`TERM`, `INT`) with kill(1).
    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(ok.success());
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `[contacts]` columns of a list whose number is in `phone`, with `alternates`.
pub fn contacts_columns(phone: &str, alternates: &[&str]) -> dialerd::campaign::file::ContactsFile {
    dialerd::campaign::file::ContactsFile {
        file: "contacts.csv".into(),
        phone: phone.into(),
        alternate_phones: alternates.iter().map(|s| s.to_string()).collect(),
        first_name: None,
        last_name: None,
        email: None,
        timezone: None,
        priority: None,
        ..Default::default()
    }
}

/// A contact list at `path` read with `columns`, US numbers, New York by default.
pub fn contact_source(
    path: &Path,
    columns: dialerd::campaign::file::ContactsFile,
) -> dialerd::campaign::contacts::ContactSource {
    dialerd::campaign::contacts::ContactSource {
        path: path.to_path_buf(),
        columns,
        default_region: dialerd::campaign::phone::Region::US,
        default_timezone: chrono_tz::America::New_York,
    }
}

/// Runs a `dialerd` subcommand to completion.
pub fn run(args: &[&str]) -> Output {
    bin().args(args).env("RUST_LOG", "warn").output().unwrap()
}

/// One row of `dialerd export`.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Row {
    pub campaign: String,
    pub contact_id: i64,
    pub phone_e164: String,
    pub attempt: u32,
    pub started_at: String,
    pub ended_at: Option<String>,
    pub outcome: Option<String>,
    pub disposition: Option<String>,
    #[serde(default)]
    pub outcome_reason: Option<String>,
    #[serde(default)]
    pub caller_id: Option<String>,
}

/// `dialerd export CAMPAIGN` parsed.
pub fn export(db: &Path, campaign: &str) -> Vec<Row> {
    let out = run(&["export", campaign, "--database", db.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "export failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut r = csv::Reader::from_reader(out.stdout.as_slice());
    r.deserialize().map(|row| row.unwrap()).collect()
}

/// Human `dialerd status` of `db`, checked to name `campaign` and to contain none of `secrets`.
pub fn assert_status_keeps_secrets(db: &Path, campaign: &str, secrets: &[&str]) {
    let out = run(&["status", "--database", db.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains(campaign),
        "status names `{campaign}`:\n{text}"
    );
    for secret in secrets {
        assert!(!text.contains(secret), "a credential is in `dialerd status`:\n{text}");
    }
}

/// `dialerd status --json` parsed.
pub fn status(db: &Path) -> serde_json::Value {
    let out = run(&["status", "--json", "--database", db.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "status failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// One HTTP request over loopback (`GET` or `POST`, optional bearer token); returns the
/// status and the body.
pub fn http(method: &str, url: &str, token: Option<&str>) -> (u16, String) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let c = reqwest::Client::new();
        let mut req = match method {
            "POST" => c.post(url),
            _ => c.get(url),
        };
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.text().await.unwrap())
    })
}

/// Polls `ok` every 100 ms until it holds; panics naming `what` after `timeout`.
pub fn wait_until(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) {
    let end = Instant::now() + timeout;
    while !ok() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The server a test that needs PostgreSQL runs against (`DIALERD_TEST_DATABASE_URL`, which
/// `tests/run.sh` sets for the local server), or `None` after printing that `test` skipped its
/// PostgreSQL part.
pub fn postgres_server(test: &str) -> Option<String> {
    match std::env::var("DIALERD_TEST_DATABASE_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            eprintln!("{test}: SKIPPED on PostgreSQL: DIALERD_TEST_DATABASE_URL is unset");
            None
        }
    }
}

/// A fresh, empty PostgreSQL database on the test server for `test`, as a URL, or `None` (with
/// a line saying so) when `DIALERD_TEST_DATABASE_URL` is unset. Each call makes a new database,
/// so tests running in parallel never share one.
pub fn fresh_postgres(test: &str) -> Option<String> {
    let server = postgres_server(test)?;
    static SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let slug: String = test
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .take(30)
        .collect();
    let name = format!(
        "dialerd_t_{slug}_{}_{}",
        std::process::id(),
        SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    let admin = server.clone();
    let db = name.clone();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            use sqlx::Connection;
            let mut conn = sqlx::PgConnection::connect(&admin)
                .await
                .expect("connect to DIALERD_TEST_DATABASE_URL");
            sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {db}")))
                .execute(&mut conn)
                .await
                .unwrap();
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {db}")))
                .execute(&mut conn)
                .await
                .unwrap();
        })
    })
    .join()
    .unwrap();
    // Same server and credentials, the new database: replace the path of the URL.
    let (head, query) = match server.split_once('?') {
        Some((h, q)) => (h.to_string(), format!("?{q}")),
        None => (server.clone(), String::new()),
    };
    let after_scheme = head.find("://").map(|i| i + 3).unwrap_or(0);
    let base = match head[after_scheme..].find('/') {
        Some(slash) => head[..after_scheme + slash].to_string(),
        None => head,
    };
    Some(format!("{base}/{name}{query}"))
}

/// The databases a store test runs on, labelled: a new SQLite file `dir/<test>.db` always, and
/// a fresh PostgreSQL database when `DIALERD_TEST_DATABASE_URL` is set.
pub fn engine_urls(dir: &Path, test: &str) -> Vec<(&'static str, String)> {
    let mut urls = vec![(
        "sqlite",
        format!("sqlite://{}", dir.join(format!("{test}.db")).display()),
    )];
    if let Some(pg) = fresh_postgres(test) {
        urls.push(("postgres", pg));
    }
    urls
}

/// The most instants of `starts` (ms, sorted) in any rolling second.
pub fn busiest_second(starts: &[i64]) -> usize {
    let mut best = 0;
    let mut lo = 0;
    for hi in 0..starts.len() {
        while starts[hi] - starts[lo] >= 1_000 {
            lo += 1;
        }
        best = best.max(hi - lo + 1);
    }
    best
}
