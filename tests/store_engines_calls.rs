//! Call records and gauges through `Store`, on SQLite and (when `DIALERD_TEST_DATABASE_URL` is
//! set) on PostgreSQL: a record written with the attempt's close (or not, for a call that never
//! reached the trunk), its values and jobs read back, its analysis saved with a follow-on job,
//! and the outbox and campaign gauges. The outbox's own methods are in `store_engines_outbox.rs`.

mod common;
mod store_outbox_common;

use chrono::{DateTime, TimeDelta, Utc};
use dialerd::call::{CallDetail, Message, Role, ToolEvent};
use dialerd::core::{AttemptKey, Disposition, NextStep, Outcome, RefusalReason};
use dialerd::store::{Claim, JobResult, MeasuredAbandonment, PostCall, Store};
use std::collections::BTreeMap;
use std::path::Path;
use store_outbox_common::{at, keys, new_job, t0};

/// A campaign `id` with `n` imported contacts (ids 1..=n on a fresh database).
async fn campaign(store: &Store, dir: &Path, id: &str, n: usize, now: DateTime<Utc>) {
    let campaigns = common::campaign_dir(dir, id, n, "");
    let c = dialerd::campaign::load_campaign(&campaigns.join(format!("{id}.toml"))).unwrap();
    store
        .activate_campaign(id, "C", &format!("{id}.toml"), now)
        .await
        .unwrap();
    store.import_contacts(id, &c.contacts, now).await.unwrap();
}

fn detail(start: DateTime<Utc>) -> CallDetail {
    CallDetail {
        transcript: vec![
            Message {
                role: Role::Agent,
                text: "Hello".into(),
                at: start,
            },
            Message {
                role: Role::User,
                text: "Hi".into(),
                at: start + TimeDelta::seconds(2),
            },
        ],
        tool_events: vec![ToolEvent {
            name: "track_conversion".into(),
            arguments: serde_json::json!({"plan": "pro"}),
            at: start + TimeDelta::seconds(3),
        }],
        first_agent_speech_at: Some(start + TimeDelta::milliseconds(700)),
    }
}

/// Claims, dials, answers and closes attempt 1 of `contact`; returns whether a record was written.
async fn call(store: &Store, contact: i64, dialed: bool, ended: DateTime<Utc>) -> bool {
    let key = AttemptKey { contact, attempt: 1 };
    let phone = format!("+1212555{contact:04}");
    let claimed = store
        .claim_attempts("c", &[Claim::new(key, &phone)], 3, at(1000))
        .await
        .unwrap();
    assert_eq!(claimed, [key]);
    if dialed {
        store
            .record_dialed_many(&[(key, format!("CA-{contact}"))])
            .await
            .unwrap();
        store.record_answered(key, at(5000)).await.unwrap();
    }
    let post = PostCall {
        agent_id: "agent_test".into(),
        caller_number: "+14155550100".into(),
        detail: Some(detail(at(5000))),
        call_jobs: vec![new_job(
            &format!("an-{contact}"),
            &format!("analyze:c{contact}a1"),
            "analyze",
            ended,
        )],
        jobs: vec![],
    };
    let step = NextStep {
        disposition: Disposition::Completed,
        next_attempt_at: None,
    };
    store
        .close_attempt_with(key, Outcome::Human, step, ended, Some(&post))
        .await
        .unwrap()
}

#[tokio::test]
async fn call_records_on_every_engine() {
    let dir = tempfile::tempdir().unwrap();
    for (label, url) in common::engine_urls(dir.path(), "outbox_calls") {
        let store = Store::open(&url).await.unwrap();
        campaign(&store, dir.path(), "c", 12, t0()).await;
        assert!(call(&store, 2, true, at(60_000)).await, "{label}");
        assert!(call(&store, 10, true, at(60_000)).await, "{label}");
        assert!(call(&store, 3, true, at(30_000)).await, "{label}");
        assert!(
            !call(&store, 5, false, at(30_000)).await,
            "{label}: never reached the trunk"
        );
        // Ties on the end in byte order of the id, as SQLite sorts them.
        assert_eq!(store.call_ids("c").await.unwrap(), ["c3a1", "c10a1", "c2a1"], "{label}");
        assert!(store.call_ids("other").await.unwrap().is_empty(), "{label}");
        assert!(store.call_record("c5a1").await.unwrap().is_none(), "{label}");
        assert!(store.call_record("nope").await.unwrap().is_none(), "{label}");

        let r = store.call_record("c2a1").await.unwrap().expect("record");
        assert_eq!(
            (
                r.call_id.as_str(),
                r.trunk_call_id.as_str(),
                r.campaign_id.as_str(),
                r.contact_id,
                r.attempt
            ),
            ("c2a1", "CA-2", "c", 2, 1),
            "{label}"
        );
        assert_eq!(
            (r.agent_id.as_str(), r.caller_number.as_str(), r.callee_number.as_str()),
            ("agent_test", "+14155550100", "+12125550002"),
            "{label}"
        );
        assert_eq!((r.contact_created_at, r.campaign_started_at), (t0(), t0()), "{label}");
        assert_eq!(
            (r.first_dialed_at, r.dialed_at, r.answered_at),
            (at(1000), at(1000), Some(at(5000)))
        );
        assert_eq!(
            (r.first_agent_speech_at, r.ended_at),
            (Some(at(5700)), at(60_000)),
            "{label}"
        );
        assert_eq!(
            (r.outcome.as_str(), r.disposition.as_str()),
            ("human", "completed"),
            "{label}"
        );
        let d = detail(at(5000));
        assert_eq!((r.transcript, r.tool_events), (d.transcript, d.tool_events), "{label}");
        assert_eq!(
            r.contact_fields.get("plan").map(String::as_str),
            Some("basic"),
            "{label}"
        );
        assert!(
            r.contact_fields
                .get("first_name")
                .is_some_and(|n| n.starts_with("Name")),
            "{label}"
        );

        // The record's jobs came with it: the analysis job, analysed and finished in one go.
        let jobs = store.all_jobs().await.unwrap();
        assert_eq!(keys(&jobs), ["an-2", "an-10", "an-3"], "{label}");
        assert_eq!(store.call_analysis("c2a1").await.unwrap(), None, "{label}");
        assert_eq!(store.call_analysis("nope").await.unwrap(), None, "{label}");
        let claimed = store.claim_jobs(at(60_000), 1).await.unwrap();
        assert_eq!(keys(&claimed), ["an-2"], "{label}");
        let analysis = serde_json::json!({"summary": "ok", "score": 3, "tags": ["a", "b"]});
        let follow = [new_job("hook-2", "call:c2a1", "webhook", at(61_000))];
        store
            .save_analysis("c2a1", &analysis, claimed[0].id, &follow, at(61_000))
            .await
            .unwrap();
        assert_eq!(store.call_analysis("c2a1").await.unwrap(), Some(analysis), "{label}");
        assert_eq!(store.call_analysis("c3a1").await.unwrap(), None, "{label}");
        let jobs = store.all_jobs().await.unwrap();
        assert_eq!(
            (jobs[0].state.as_str(), jobs[0].updated_at),
            ("done", at(61_000)),
            "{label}"
        );
        assert_eq!(
            (jobs[3].idempotency_key.as_str(), jobs[3].state.as_str()),
            ("hook-2", "pending"),
            "{label}"
        );
        eprintln!("{label}: call records ok");
    }
}

#[tokio::test]
async fn gauges_on_every_engine() {
    let dir = tempfile::tempdir().unwrap();
    for (label, url) in common::engine_urls(dir.path(), "outbox_gauges") {
        let store = Store::open(&url).await.unwrap();
        store.ping().await.unwrap();
        assert_eq!(store.migrations_pending().await.unwrap(), 0, "{label}");
        let empty = store.outbox_gauges().await.unwrap();
        assert!(empty.jobs.is_empty() && empty.oldest_pending.is_none(), "{label}");
        assert!(store.campaign_gauges(t0()).await.unwrap().is_empty(), "{label}");

        campaign(&store, dir.path(), "c", 4, t0()).await;
        store.activate_campaign("empty", "E", "empty.toml", t0()).await.unwrap();
        let key = AttemptKey { contact: 1, attempt: 1 };
        store
            .claim_attempts("c", &[Claim::new(key, "+12125550001")], 3, at(1000))
            .await
            .unwrap();
        let refusals: BTreeMap<RefusalReason, u64> = [(RefusalReason::ALL[0], 3)].into();
        store.add_refusals("c", &refusals, at(1000)).await.unwrap();
        let g = store.campaign_gauges(at(2000)).await.unwrap();
        assert_eq!(g.keys().collect::<Vec<_>>(), ["c", "empty"], "{label}");
        let want: BTreeMap<String, u64> = [("in_progress".to_string(), 1), ("pending".to_string(), 3)].into();
        assert_eq!(g["c"].contacts, want, "{label}");
        assert!(
            g["empty"].contacts.is_empty() && g["empty"].refusals.is_empty(),
            "{label}"
        );
        let want: BTreeMap<String, u64> = [(RefusalReason::ALL[0].as_str().to_string(), 3)].into();
        assert_eq!(g["c"].refusals, want, "{label}");
        assert_eq!(g["c"].abandonment_24h, MeasuredAbandonment::default(), "{label}");
        assert_eq!(g["c"].abandonment_30d, MeasuredAbandonment::default(), "{label}");

        store
            .enqueue_jobs(&[new_job("late", "kg:2", "webhook", at(0))], at(5000))
            .await
            .unwrap();
        store
            .enqueue_jobs(&[new_job("early", "kg:1", "webhook", at(0))], at(3000))
            .await
            .unwrap();
        store
            .enqueue_jobs(&[new_job("later", "kg:3", "webhook", at(0))], at(7000))
            .await
            .unwrap();
        let o = store.outbox_gauges().await.unwrap();
        assert_eq!(o.oldest_pending, Some(at(3000)), "{label}");
        assert_eq!(o.jobs, [("pending".to_string(), 3)].into(), "{label}");
        // The oldest is dead-lettered: the next pending one is the oldest now.
        let early = store
            .all_jobs()
            .await
            .unwrap()
            .into_iter()
            .find(|j| j.idempotency_key == "early")
            .unwrap();
        store
            .finish_job(early.id, &JobResult::Dead { error: "x".into() }, &[], at(8000))
            .await
            .unwrap();
        let o = store.outbox_gauges().await.unwrap();
        assert_eq!(o.oldest_pending, Some(at(5000)), "{label}");
        assert_eq!(
            o.jobs,
            [("dead".to_string(), 1), ("pending".to_string(), 2)].into(),
            "{label}"
        );
        eprintln!("{label}: gauges ok");
    }
}
