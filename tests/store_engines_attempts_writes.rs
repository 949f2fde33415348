//! The batched call writes, the caller-ID history and health and two nodes racing on both engines
//! (SQLite always, PostgreSQL when `DIALERD_TEST_DATABASE_URL` is set), through the public `Store`
//! API, with the stored rows read back in plain SQL: caller-ID samples and published health, call
//! records and jobs written in order in one transaction, a failed batch leaving nothing, and two
//! handles on one database racing to claim and to close the same attempts (each contact claimed
//! once, one attempt row each, one close applied). The claim and the attempt lifecycle one call at
//! a time are in `store_engines_attempts.rs`.

mod common;
mod store_attempts_common;

use chrono::TimeDelta;
use dialerd::core::caller_id::NumberStats;
use dialerd::core::{AttemptKey, Outcome};
use dialerd::store::{CallWrite, Claim, Store};
use std::collections::HashSet;
use store_attempts_common::{
    ATTEMPTS_SQL, AttemptRow, CONTACTS_SQL, ContactRow, Db, SampleShape, StateRow, at, claim, completed, contact, job,
    job_keys, key, ms, post, retry_at, seeded,
};

#[tokio::test]
async fn caller_id_history_and_published_health() {
    let dir = tempfile::tempdir().unwrap();
    for (engine, url) in common::engine_urls(dir.path(), "att_caller_ids") {
        let (store, c) = seeded(dir.path(), &url, 6).await;
        // Claimed at three instants; two pairs share a start. The ties come back in claim order.
        let first = [
            claim(c[4].0, 1, &c[4].1, Some("+14155550104")),
            claim(c[0].0, 1, &c[0].1, Some("+14155550100")),
        ];
        store.claim_attempts("c", &first, 3, at(10)).await.unwrap();
        store
            .claim_attempts("c", &[claim(c[1].0, 1, &c[1].1, None)], 3, at(10))
            .await
            .unwrap();
        let later = [
            claim(c[5].0, 1, &c[5].1, Some("+14155550105")),
            claim(c[2].0, 1, &c[2].1, Some("+14155550102")),
        ];
        store.claim_attempts("c", &later, 3, at(20)).await.unwrap();
        store
            .claim_attempts("c", &[claim(c[3].0, 1, &c[3].1, Some("+14155550103"))], 3, at(5))
            .await
            .unwrap();
        store.record_answered(key(c[0].0, 1), at(11)).await.unwrap();
        store
            .close_attempt(key(c[0].0, 1), Outcome::Human, completed(), at(15))
            .await
            .unwrap();
        let h = store.caller_id_history("c", at(10)).await.unwrap();
        let shape: Vec<SampleShape> = h
            .iter()
            .map(|s| (s.number.clone(), s.started_at, s.answered_at, s.ended_at))
            .collect();
        assert_eq!(
            shape,
            vec![
                ("+14155550104".into(), at(10), None, None),
                ("+14155550100".into(), at(10), Some(at(11)), Some(at(15))),
                ("+14155550105".into(), at(20), None, None),
                ("+14155550102".into(), at(20), None, None),
            ],
            "{engine}"
        );
        assert_eq!(store.caller_id_history("c", at(0)).await.unwrap().len(), 5, "{engine}");
        assert_eq!(
            store.caller_id_history("c", at(0)).await.unwrap()[0].number,
            "+14155550103"
        );
        assert!(store.caller_id_history("c", at(21)).await.unwrap().is_empty());
        assert!(store.caller_id_history("other", at(0)).await.unwrap().is_empty());

        assert!(store.caller_id_health("c").await.unwrap().is_none(), "{engine}");
        let numbers = vec![
            NumberStats {
                number: "+14155550100".into(),
                dials_24h: 12,
                calls: 10,
                answer_rate: Some(0.25),
                short_call_rate: None,
                rested_until: Some(at(3600)),
            },
            NumberStats {
                number: "+14155550101".into(),
                dials_24h: 0,
                calls: 0,
                answer_rate: None,
                short_call_rate: None,
                rested_until: None,
            },
        ];
        store.record_caller_id_health("c", &numbers, at(30)).await.unwrap();
        assert_eq!(
            store.caller_id_health("c").await.unwrap(),
            Some((numbers.clone(), at(30))),
            "{engine}"
        );
        // Replaced, not merged.
        store.record_caller_id_health("c", &numbers[1..], at(40)).await.unwrap();
        assert_eq!(
            store.caller_id_health("c").await.unwrap(),
            Some((numbers[1..].to_vec(), at(40))),
            "{engine}"
        );
        assert!(store.caller_id_health("other").await.unwrap().is_none());
        // Unreadable JSON is reported, not hidden.
        let db = Db::connect(&url).await;
        db.exec("UPDATE caller_id_health SET numbers = 'not json' WHERE campaign_id = 'c'")
            .await;
        assert!(
            matches!(
                store.caller_id_health("c").await,
                Err(dialerd::store::StoreError::Corrupt(_))
            ),
            "{engine}"
        );
        db.close().await;
    }
}

/// Makes inserting an outbox job of kind `boom` fail, on either engine.
async fn fail_boom_jobs(db: &Db) {
    match db {
        Db::Sqlite(_) => {
            db.exec(
                "CREATE TRIGGER boom BEFORE INSERT ON outbox WHEN NEW.kind = 'boom'
                 BEGIN SELECT RAISE(ABORT, 'boom'); END",
            )
            .await
        }
        Db::Pg(_) => {
            db.exec(
                "CREATE FUNCTION boom() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'boom'; END $$ LANGUAGE plpgsql;
                 CREATE TRIGGER boom BEFORE INSERT ON outbox FOR EACH ROW WHEN (NEW.kind = 'boom') EXECUTE FUNCTION boom();",
            )
            .await
        }
    }
}

#[tokio::test]
async fn call_writes_apply_in_order_in_one_transaction() {
    let dir = tempfile::tempdir().unwrap();
    for (engine, url) in common::engine_urls(dir.path(), "att_batch") {
        let (store, c) = seeded(dir.path(), &url, 4).await;
        let db = Db::connect(&url).await;
        let claims: Vec<Claim> = c.iter().map(|(id, p)| claim(*id, 1, p, None)).collect();
        assert_eq!(store.claim_attempts("c", &claims, 3, at(10)).await.unwrap().len(), 4);
        store
            .record_dialed_many(&[(key(c[0].0, 1), "CA0".into()), (key(c[1].0, 1), "CA1".into())])
            .await
            .unwrap();
        assert!(store.apply_call_writes(&[]).await.unwrap().is_empty());

        let writes = vec![
            CallWrite::Jobs(vec![job("started-0", at(11))], at(11)),
            CallWrite::Answered(key(c[0].0, 1), at(12)),
            CallWrite::Speech {
                key: key(c[0].0, 1),
                latency_ms: Some(2_500),
                silence_abandoned: true,
            },
            CallWrite::Close {
                key: key(c[0].0, 1),
                outcome: Outcome::Abandoned,
                step: retry_at(at(400)),
                ended_at: at(14),
                post: Some(Box::new(post(
                    vec![job("call-0", at(14))],
                    vec![job("always-0", at(14))],
                ))),
            },
            // The same close again in the batch: nothing the second time.
            CallWrite::Close {
                key: key(c[0].0, 1),
                outcome: Outcome::Human,
                step: completed(),
                ended_at: at(15),
                post: Some(Box::new(post(vec![job("call-0b", at(15))], vec![]))),
            },
            // A close without a post (never reached the trunk).
            CallWrite::Close {
                key: key(c[2].0, 1),
                outcome: Outcome::Failed,
                step: retry_at(at(300)),
                ended_at: at(16),
                post: None,
            },
            // The answer of an attempt that the batch closes after.
            CallWrite::Answered(key(c[1].0, 1), at(17)),
            CallWrite::Close {
                key: key(c[1].0, 1),
                outcome: Outcome::Human,
                step: completed(),
                ended_at: at(18),
                post: Some(Box::new(post(vec![], vec![]))),
            },
        ];
        let out = store.apply_call_writes(&writes).await.unwrap();
        assert_eq!(
            out,
            vec![false, false, false, true, false, false, false, true],
            "{engine}"
        );
        assert_eq!(
            job_keys(&store).await,
            vec!["always-0", "call-0", "started-0"],
            "{engine}"
        );
        let rec = store
            .call_record(&format!("c{}a1", c[1].0))
            .await
            .unwrap()
            .expect("call record");
        assert_eq!((rec.answered_at, rec.ended_at), (Some(at(17)), at(18)), "{engine}");
        let speech: Vec<(i64, Option<i64>, i64)> = db
            .rows("SELECT contact_id, speech_latency_ms, speech_abandoned FROM attempts ORDER BY id")
            .await;
        assert_eq!(speech[0], (c[0].0, Some(2_500), 1), "{engine}");
        assert_eq!(speech[1], (c[1].0, None, 0), "{engine}");
        let attempts: Vec<AttemptRow> = db.rows(ATTEMPTS_SQL).await;
        let states: Vec<StateRow> = attempts.iter().map(|a| (a.4.clone(), a.6, a.7, a.8.clone())).collect();
        assert_eq!(
            states,
            vec![
                ("ended".into(), Some(ms(12)), Some(ms(14)), Some("abandoned".into())),
                ("ended".into(), Some(ms(17)), Some(ms(18)), Some("human".into())),
                ("ended".into(), None, Some(ms(16)), Some("failed".into())),
                ("dialing".into(), None, None, None),
            ],
            "{engine}"
        );
        let rows: Vec<ContactRow> = db.rows(CONTACTS_SQL).await;
        assert_eq!(contact(&rows, c[0].0).1, "scheduled", "{engine}");
        assert_eq!(contact(&rows, c[0].0).4, ms(400), "{engine}");
        assert_eq!(contact(&rows, c[1].0).1, "done", "{engine}");

        // A batch that fails part way writes nothing, the writes before the failure included.
        fail_boom_jobs(&db).await;
        let mut boom = job("boom-1", at(20));
        boom.kind = "boom".into();
        let failing = vec![
            CallWrite::Answered(key(c[3].0, 1), at(19)),
            CallWrite::Close {
                key: key(c[3].0, 1),
                outcome: Outcome::NoAnswer,
                step: retry_at(at(500)),
                ended_at: at(20),
                post: None,
            },
            CallWrite::Jobs(vec![job("before-boom", at(20))], at(20)),
            CallWrite::Jobs(vec![boom], at(20)),
        ];
        assert!(store.apply_call_writes(&failing).await.is_err(), "{engine}");
        assert_eq!(
            job_keys(&store).await,
            vec!["always-0", "call-0", "started-0"],
            "{engine}"
        );
        let attempts: Vec<AttemptRow> = db.rows(ATTEMPTS_SQL).await;
        assert_eq!((attempts[3].4.as_str(), attempts[3].6), ("dialing", None), "{engine}");
        assert_eq!(
            contact(&db.rows::<ContactRow>(CONTACTS_SQL).await, c[3].0).1,
            "in_progress"
        );
        db.close().await;
    }
}

/// Two handles on one database (two nodes) claim the same due contacts at once, one in the
/// hopper's order and one in reverse, round after round, then both in the same order in one
/// batch: every contact is claimed by exactly one of them with exactly one attempt row, and
/// neither fails (no deadlock). Then both close the same attempts at once: each close is
/// applied once, with one call record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_racing_claim_each_contact_once() {
    let dir = tempfile::tempdir().unwrap();
    for (engine, url) in common::engine_urls(dir.path(), "att_race") {
        let (a, c) = seeded(dir.path(), &url, 300).await;
        let b = Store::open(&url).await.unwrap();
        let db = Db::connect(&url).await;
        let mut now = at(10);
        for round in 1..=4u32 {
            let forward: Vec<Claim> = c
                .iter()
                .map(|(id, p)| claim(*id, round, p, Some("+14155550100")))
                .collect();
            // The last round: the same contacts in the same order, in one batch each.
            let (backward, chunk_len): (Vec<Claim>, usize) = if round == 4 {
                (forward.clone(), c.len())
            } else {
                (forward.iter().rev().cloned().collect(), 25)
            };
            // Several small batches each, as runners claim, so the two interleave.
            let run = |store: Store, claims: Vec<Claim>| async move {
                let mut got = Vec::new();
                for chunk in claims.chunks(chunk_len) {
                    got.extend(store.claim_attempts("c", chunk, 5, now).await.unwrap());
                }
                got
            };
            let (ga, gb) = tokio::join!(
                tokio::spawn(run(a.clone(), forward.clone())),
                tokio::spawn(run(b.clone(), backward))
            );
            let (ga, gb) = (ga.unwrap(), gb.unwrap());
            let sa: HashSet<AttemptKey> = ga.iter().copied().collect();
            let sb: HashSet<AttemptKey> = gb.iter().copied().collect();
            assert!(sa.is_disjoint(&sb), "{engine} round {round}: claimed twice");
            assert_eq!(
                sa.len() + sb.len(),
                c.len(),
                "{engine} round {round}: {} + {}",
                sa.len(),
                sb.len()
            );
            assert_eq!(ga.len(), sa.len());
            assert_eq!(gb.len(), sb.len());
            println!(
                "{engine} round {round}: node a claimed {}, node b {}",
                sa.len(),
                sb.len()
            );
            let per_contact: Vec<(i64, i64, i64)> = db
                .rows("SELECT contact_id, COUNT(*), MAX(attempt) FROM attempts GROUP BY contact_id ORDER BY contact_id")
                .await;
            assert_eq!(per_contact.len(), c.len(), "{engine}");
            assert!(
                per_contact
                    .iter()
                    .all(|&(_, n, max)| n == i64::from(round) && max == i64::from(round)),
                "{engine} round {round}: {per_contact:?}"
            );
            let rows: Vec<ContactRow> = db.rows(CONTACTS_SQL).await;
            assert!(
                rows.iter().all(|r| r.1 == "in_progress" && r.3 == i64::from(round)),
                "{engine}"
            );

            // Both close every attempt of the round at once (a recovering node and the owner).
            let keys: Vec<AttemptKey> = c.iter().map(|(id, _)| key(*id, round)).collect();
            let placed: Vec<(AttemptKey, String)> = keys
                .iter()
                .map(|k| (*k, format!("CA{}-{}", k.contact, k.attempt)))
                .collect();
            a.record_dialed_many(&placed).await.unwrap();
            now += TimeDelta::seconds(10);
            let close_all = |store: Store, keys: Vec<AttemptKey>, outcome: Outcome| async move {
                let mut n = 0;
                for k in keys {
                    let p = post(vec![], vec![]);
                    if store
                        .close_attempt_with(k, outcome, retry_at(now), now, Some(&p))
                        .await
                        .unwrap()
                    {
                        n += 1;
                    }
                }
                n
            };
            let rev: Vec<AttemptKey> = keys.iter().rev().copied().collect();
            let (na, nb) = tokio::join!(
                tokio::spawn(close_all(a.clone(), keys.clone(), Outcome::NoAnswer)),
                tokio::spawn(close_all(b.clone(), rev, Outcome::Busy))
            );
            assert_eq!(
                na.unwrap() + nb.unwrap(),
                c.len(),
                "{engine} round {round}: call records"
            );
            let records: Vec<(i64,)> = db.rows("SELECT COUNT(*) FROM call_records").await;
            assert_eq!(records[0].0, i64::from(round) * c.len() as i64, "{engine}");
            // Each contact's step matches the outcome of the close that won.
            let mixed: Vec<(i64,)> = db
                .rows(
                    "SELECT COUNT(*) FROM attempts a JOIN contacts c ON c.id = a.contact_id
                     WHERE a.attempt = c.attempts AND (a.state != 'ended' OR c.status != 'scheduled'
                       OR c.last_outcome IS NULL OR c.last_outcome != a.outcome)",
                )
                .await;
            assert_eq!(mixed[0].0, 0, "{engine} round {round}");
        }
        db.close().await;
    }
}
