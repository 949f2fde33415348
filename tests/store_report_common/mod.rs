//! What the report and conversations tests share: three campaigns on a store, filled with the
//! same attempts (answered or not, closed or open, with a call record or without), and a run
//! over every engine, PostgreSQL with an ICU collation included.
#![allow(dead_code)]

use chrono::{DateTime, TimeDelta, Utc};
use dialerd::call::{CallDetail, Message, Role, ToolEvent};
use dialerd::core::{AttemptKey, Disposition, NextStep, Outcome};
use dialerd::store::{CallWrite, Claim, PostCall, Store};
use std::collections::HashSet;
use std::path::Path;

pub const CALLER: &str = "+14155550100";

pub fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-03-02T15:00:00Z").unwrap().to_utc()
}

/// The instant several calls end at, across campaigns (a tie the cursor must break).
pub fn tie() -> DateTime<Utc> {
    now() - TimeDelta::minutes(10)
}

/// `n` minutes before [`now`].
pub fn m(n: i64) -> DateTime<Utc> {
    now() - TimeDelta::minutes(n)
}

/// `n` days before [`now`].
pub fn d(n: i64) -> DateTime<Utc> {
    now() - TimeDelta::days(n)
}

/// The recording URL [`fill`] sets on `alpha`'s fourth contact's call.
pub const RECORDING_URL: &str = "https://example.test/rec/1.wav";

/// A contact list of `n` valid US numbers from `first`, with invalid rows after rows `bad`.
fn write_list(path: &Path, first: usize, n: usize, bad: &[usize]) {
    let mut s = String::from("phone\n");
    for i in 0..n {
        s.push_str(&format!("(212) 555-{:04}\n", 1000 + first + i));
        if bad.contains(&i) {
            s.push_str("12345\n");
        }
    }
    std::fs::write(path, s).unwrap();
}

/// The contacts of `campaign`, all still pending, by id.
async fn contacts_of(store: &Store, campaign: &str) -> Vec<(i64, String)> {
    let zones: Vec<String> = store
        .hopper_zones(campaign)
        .await
        .unwrap()
        .into_iter()
        .map(|z| z.0)
        .collect();
    let mut due: Vec<(i64, String)> = store
        .hopper_batch(campaign, now(), &zones, 1000, &HashSet::new())
        .await
        .unwrap()
        .into_iter()
        .map(|d| (d.id, d.phone_e164))
        .collect();
    due.sort();
    due
}

/// One attempt as the test plays it.
pub struct Call<'a> {
    pub campaign: &'a str,
    pub contact: &'a (i64, String),
    pub attempt: u32,
    pub started: DateTime<Utc>,
    pub answered: Option<DateTime<Utc>>,
    /// Answer → first agent speech (ms) and abandoned for silence; `None`: not measured.
    pub speech: Option<(Option<i64>, bool)>,
    /// `None`: left open.
    pub end: Option<(Outcome, NextStep, DateTime<Utc>)>,
    /// Transcript turns and tool events of its call record; `None`: no call record.
    pub record: Option<(usize, usize)>,
}

fn final_step(d: Disposition) -> NextStep {
    NextStep {
        disposition: d,
        next_attempt_at: None,
    }
}

fn retry(d: Disposition, at: DateTime<Utc>) -> NextStep {
    NextStep {
        disposition: d,
        next_attempt_at: Some(at),
    }
}

pub fn trunk_id(key: AttemptKey) -> String {
    format!("CA{}x{}", key.contact, key.attempt)
}

pub fn detail(turns: usize, tools: usize, answered: DateTime<Utc>) -> CallDetail {
    CallDetail {
        transcript: (0..turns)
            .map(|i| Message {
                role: if i % 2 == 0 { Role::Agent } else { Role::User },
                text: format!("turn {i}"),
                at: answered + TimeDelta::seconds(i as i64 + 1),
            })
            .collect(),
        tool_events: (0..tools)
            .map(|i| ToolEvent {
                name: "track_conversion".into(),
                arguments: serde_json::json!({ "n": i }),
                at: answered + TimeDelta::seconds(30),
            })
            .collect(),
        first_agent_speech_at: Some(answered + TimeDelta::seconds(1)),
    }
}

async fn play(store: &Store, c: &Call<'_>) {
    let key = AttemptKey {
        contact: c.contact.0,
        attempt: c.attempt,
    };
    let claim = Claim {
        key,
        phone: c.contact.1.clone(),
        caller_id: Some(CALLER.into()),
    };
    assert_eq!(
        store.claim_attempts(c.campaign, &[claim], 3, c.started).await.unwrap(),
        vec![key]
    );
    store.record_dialed_many(&[(key, trunk_id(key))]).await.unwrap();
    if let Some(at) = c.answered {
        store.record_answered(key, at).await.unwrap();
    }
    if let Some((latency_ms, silence_abandoned)) = c.speech {
        let w = [CallWrite::Speech {
            key,
            latency_ms,
            silence_abandoned,
        }];
        assert_eq!(store.apply_call_writes(&w).await.unwrap(), vec![false]);
    }
    if let Some((outcome, step, ended)) = c.end {
        let post = c.record.map(|(turns, tools)| PostCall {
            agent_id: "agent_test".into(),
            caller_number: CALLER.into(),
            detail: Some(detail(turns, tools, c.answered.unwrap_or(c.started))),
            ..Default::default()
        });
        let recorded = store
            .close_attempt_with(key, outcome, step, ended, post.as_ref())
            .await
            .unwrap();
        assert_eq!(recorded, c.record.is_some());
    }
}

/// The contacts of the campaigns [`fill`] made, by id: `alpha`'s (`a`) and `Beta`'s (`b`).
pub struct Fixture {
    pub a: Vec<(i64, String)>,
    pub b: Vec<(i64, String)>,
}

impl Fixture {
    /// The attempts [`fill`] plays, in order.
    pub fn calls(&self) -> Vec<Call<'_>> {
        let t = now();
        let (a, b) = (&self.a, &self.b);
        let human_done = final_step(Disposition::Completed);
        vec![
            // Answered 10 days ago: in the 30-day measures only.
            Call {
                campaign: "alpha",
                contact: &a[0],
                attempt: 1,
                started: d(10),
                answered: Some(d(10)),
                speech: Some((Some(500), false)),
                end: Some((Outcome::Human, human_done, d(10) + TimeDelta::seconds(60))),
                record: Some((2, 0)),
            },
            Call {
                campaign: "alpha",
                contact: &a[1],
                attempt: 1,
                started: d(10),
                answered: None,
                speech: None,
                end: Some((
                    Outcome::NoAnswer,
                    retry(Disposition::RetryScheduled, d(9)),
                    d(10) + TimeDelta::seconds(30),
                )),
                record: Some((0, 0)),
            },
            // Second attempt: the agent spoke after 2.5 s, so the call counts abandoned.
            Call {
                campaign: "alpha",
                contact: &a[1],
                attempt: 2,
                started: m(120),
                answered: Some(m(120)),
                speech: Some((Some(2500), true)),
                end: Some((Outcome::Human, human_done, m(5))),
                record: Some((3, 1)),
            },
            Call {
                campaign: "alpha",
                contact: &a[2],
                attempt: 1,
                started: m(60),
                answered: Some(m(60)),
                speech: Some((None, true)),
                end: Some((
                    Outcome::Abandoned,
                    retry(Disposition::RetryScheduled, t + TimeDelta::hours(1)),
                    m(60) + TimeDelta::seconds(10),
                )),
                record: Some((0, 0)),
            },
            Call {
                campaign: "alpha",
                contact: &a[3],
                attempt: 1,
                started: m(30),
                answered: Some(m(29)),
                speech: Some((Some(800), false)),
                end: Some((Outcome::Human, human_done, tie())),
                record: Some((4, 0)),
            },
            // Still on the call.
            Call {
                campaign: "alpha",
                contact: &a[4],
                attempt: 1,
                started: m(3),
                answered: None,
                speech: None,
                end: None,
                record: None,
            },
            Call {
                campaign: "alpha",
                contact: &a[6],
                attempt: 1,
                started: m(8),
                answered: None,
                speech: None,
                end: Some((Outcome::Failed, final_step(Disposition::InvalidNumber), m(8))),
                record: None,
            },
            Call {
                campaign: "alpha",
                contact: &a[7],
                attempt: 1,
                started: m(20),
                answered: Some(m(20)),
                speech: None,
                end: Some((Outcome::VoicemailLeft, final_step(Disposition::VoicemailLeft), m(19))),
                record: Some((1, 0)),
            },
            Call {
                campaign: "alpha",
                contact: &a[8],
                attempt: 1,
                started: m(12),
                answered: Some(m(12)),
                speech: Some((Some(1500), false)),
                end: Some((Outcome::Human, human_done, tie())),
                record: Some((2, 0)),
            },
            Call {
                campaign: "alpha",
                contact: &a[9],
                attempt: 1,
                started: m(12),
                answered: Some(m(12)),
                speech: Some((Some(300), false)),
                end: Some((
                    Outcome::CallbackRequested,
                    retry(Disposition::CallbackScheduled, t + TimeDelta::days(1)),
                    tie(),
                )),
                record: Some((2, 0)),
            },
            // Beta's first attempt is 12 minutes old: its pace window is 12 minutes, not 15.
            Call {
                campaign: "Beta",
                contact: &b[0],
                attempt: 1,
                started: m(12),
                answered: Some(m(11)),
                speech: Some((Some(700), false)),
                end: Some((Outcome::Human, human_done, tie())),
                record: Some((2, 0)),
            },
        ]
    }
}

/// Three campaigns on `store`, the attempts of [`Fixture::calls`] played on them, a contact put on
/// the DNC list, an outcome reason and a recording URL ([`RECORDING_URL`]); returns the contacts.
pub async fn fill(label: &str, store: &Store, dir: &Path) -> Fixture {
    // Three campaigns: `alpha` (12 contacts, 2 rejected rows), `Beta` (2), `gamma` (none).
    // Byte order puts `Beta` first; a case-insensitive or natural collation would not.
    for (id, name) in [("alpha", "Alpha"), ("Beta", "Beta"), ("gamma", "Gamma")] {
        store
            .activate_campaign(id, name, &format!("{id}.toml"), d(40))
            .await
            .unwrap();
    }
    for (id, first, n, bad) in [("alpha", 0, 12, &[1usize, 4][..]), ("Beta", 100, 2, &[][..])] {
        let path = dir.join(format!("{label}-{id}.csv"));
        write_list(&path, first, n, bad);
        let src = crate::common::contact_source(&path, crate::common::contacts_columns("phone", &[]));
        store.import_contacts(id, &src, d(40)).await.unwrap();
    }
    let a = contacts_of(store, "alpha").await;
    let b = contacts_of(store, "Beta").await;
    assert_eq!((a.len(), b.len()), (12, 2), "{label}");

    let fixture = Fixture { a, b };
    for c in &fixture.calls() {
        play(store, c).await;
    }
    let a = &fixture.a;
    assert_eq!(store.mark_dnc(&[a[5].0], m(50)).await.unwrap(), 1);
    let invalid = AttemptKey {
        contact: a[6].0,
        attempt: 1,
    };
    store
        .set_outcome_reason(invalid, "twilio 21211: Invalid 'To' Phone Number")
        .await
        .unwrap();

    // Recording URLs by the trunk's call id.
    let recorded = AttemptKey {
        contact: a[3].0,
        attempt: 1,
    };
    let url = RECORDING_URL;
    assert!(
        store.set_recording_url(&trunk_id(recorded), url).await.unwrap(),
        "{label}"
    );
    assert!(
        !store.set_recording_url("CA-no-such-call", url).await.unwrap(),
        "{label}"
    );
    fixture
}

/// A fresh PostgreSQL database whose default collation is ICU English (`alpha` < `Beta`,
/// punctuation ignored at first), unlike SQLite's byte order: the store must order text the
/// same on it. `None` when `DIALERD_TEST_DATABASE_URL` is unset.
fn icu_postgres(test: &str) -> Option<(String, String)> {
    let server = crate::common::postgres_server(&format!("{test} (ICU collation)"))?;
    let name = format!("dialerd_t_{test}_icu_{}", std::process::id());
    let admin = server.clone();
    let db = name.clone();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            use sqlx::Connection;
            let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap();
            for sql in [
                format!("DROP DATABASE IF EXISTS {db}"),
                format!("CREATE DATABASE {db} TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en' LOCALE 'C.UTF-8'"),
            ] {
                sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&mut conn).await.unwrap();
            }
        })
    })
    .join()
    .unwrap();
    let (head, query) = server.split_once('?').map_or((server.as_str(), ""), |(h, q)| (h, q));
    let after_scheme = head.find("://").map_or(0, |i| i + 3);
    let base = head[after_scheme..]
        .find('/')
        .map_or(head, |slash| &head[..after_scheme + slash]);
    let query = if query.is_empty() {
        String::new()
    } else {
        format!("?{query}")
    };
    Some((format!("{base}/{name}{query}"), name))
}

/// Drops the database `name` made by [`icu_postgres`], connections and all.
fn drop_database(test: &str, name: &str) {
    let Some(server) = crate::common::postgres_server(&format!("{test} (cleanup)")) else {
        return;
    };
    let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            use sqlx::Connection;
            let mut conn = sqlx::PgConnection::connect(&server).await.unwrap();
            sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&mut conn).await.unwrap();
        })
    })
    .join()
    .unwrap();
}

/// Fills a store on every engine with [`fill`] and runs `check` on it: SQLite, then, when
/// `DIALERD_TEST_DATABASE_URL` is set, PostgreSQL and PostgreSQL with an ICU collation
/// (skipped with a line when unset). Returns each engine's answers, labelled, SQLite's first.
pub async fn on_every_engine<T>(test: &str, check: impl AsyncFn(&str, &Store, &Fixture) -> T) -> Vec<(String, T)> {
    let dir = tempfile::tempdir().unwrap();
    let mut urls = crate::common::engine_urls(dir.path(), test);
    let icu = icu_postgres(test);
    if let Some((url, _)) = &icu {
        urls.push(("postgres", url.clone()));
    }
    let mut answers = Vec::new();
    for (i, (label, url)) in urls.iter().enumerate() {
        let store = Store::open(url).await.unwrap();
        assert_eq!(store.engine_name(), *label);
        let name = format!("{label}{i}");
        let fixture = fill(&name, &store, dir.path()).await;
        answers.push((name.clone(), check(&name, &store, &fixture).await));
    }
    eprintln!("ran on {:?}", answers.iter().map(|a| a.0.as_str()).collect::<Vec<_>>());
    assert_eq!(answers[0].0, "sqlite0");
    if let Some((_, name)) = icu {
        drop_database(test, &name);
    }
    answers
}
