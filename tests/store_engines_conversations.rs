//! The conversations API on both engines, through the public `Store` API: newest first across
//! campaigns, ties on one instant by call id in byte order, every record once through the cursor
//! (a cursor inside the tie, one a client made up), each filter, one record with its analysis,
//! its transcript, the recording URL. The calls are those of `store_report_common`, which
//! `store_engines_report.rs` reports on. Each engine's results are checked against the expected
//! values, and SQLite's against PostgreSQL's, with its default and with an ICU collation
//! (`DIALERD_TEST_DATABASE_URL`; skipped with a line when unset).

mod common;
mod store_report_common;

use chrono::TimeDelta;
use dialerd::core::{AttemptKey, Disposition};
use dialerd::store::{Conversation, ConversationFilter, Cursor, Store};
use store_report_common::{CALLER, Call, Fixture, RECORDING_URL, detail, now, on_every_engine, tie, trunk_id};

/// Every page of `f` through the cursor, `f.limit` at a time, each page's ids.
async fn walk(store: &Store, mut f: ConversationFilter) -> Vec<Vec<String>> {
    let mut pages = Vec::new();
    loop {
        let (page, next) = store.conversations(&f).await.unwrap();
        assert!(page.len() <= f.limit.clamp(1, 500) as usize);
        let full = page.len() == f.limit.clamp(1, 500) as usize;
        assert_eq!(next.is_some(), full, "a cursor exactly when the page is full");
        if let (Some(n), Some(last)) = (&next, page.last()) {
            assert_eq!(
                (n.ended_ms, n.call_id.as_str()),
                (last.ended_at.timestamp_millis(), last.id.as_str())
            );
            // Clients pass the opaque form back.
            assert_eq!(Cursor::decode(&n.encode()).as_ref(), Some(n));
        }
        pages.push(page.into_iter().map(|c| c.id).collect());
        match next {
            Some(c) => f.after = Some(c),
            None => return pages,
        }
    }
}

fn flat(pages: &[Vec<String>]) -> Vec<String> {
    pages.iter().flatten().cloned().collect()
}

/// Reads the filled `store` through the conversations API and checks every answer against the
/// expected values; returns the pages it walked and two records, for the comparison between engines.
async fn conversations(label: &str, store: &Store, fx: &Fixture) -> (Vec<String>, String) {
    let (a, calls, url) = (&fx.a, fx.calls(), RECORDING_URL);
    // The call records, newest end first, ties by call id descending in byte order.
    let mut all: Vec<(i64, String, &Call)> = calls
        .iter()
        .filter(|c| c.record.is_some())
        .map(|c| {
            let (_, _, ended) = c.end.unwrap();
            (ended.timestamp_millis(), format!("c{}a{}", c.contact.0, c.attempt), c)
        })
        .collect();
    all.sort_by(|x, y| (y.0, &y.1).cmp(&(x.0, &x.1)));
    let ids: Vec<String> = all.iter().map(|r| r.1.clone()).collect();
    assert_eq!(ids.len(), 9);
    let at_tie: Vec<&str> = all
        .iter()
        .filter(|r| r.0 == tie().timestamp_millis())
        .map(|r| r.1.as_str())
        .collect();
    assert_eq!(at_tie.len(), 4, "four calls end at one instant, across two campaigns");

    let f = |limit: u32| ConversationFilter {
        limit,
        ..Default::default()
    };
    let mut answers = Vec::new();
    for limit in [1, 2, 3, 4, 9, 500] {
        let pages = walk(store, f(limit)).await;
        assert_eq!(flat(&pages), ids, "{label}: limit {limit}: {pages:?}");
        answers.push(format!("{limit}: {pages:?}"));
    }
    // Limits outside 1..=500 are clamped.
    let (zero, next) = store.conversations(&f(0)).await.unwrap();
    assert_eq!((zero.len(), next.map(|c| c.call_id)), (1, Some(ids[0].clone())));
    assert_eq!(store.conversations(&f(100_000)).await.unwrap().0.len(), 9);

    // A cursor inside the tie: the rest of the tie, then the older calls.
    let mid = Cursor {
        ended_ms: tie().timestamp_millis(),
        call_id: at_tie[1].to_string(),
    };
    let rest = walk(
        store,
        ConversationFilter {
            after: Some(mid),
            ..f(500)
        },
    )
    .await;
    let from = ids.iter().position(|i| i == at_tie[1]).unwrap() + 1;
    assert_eq!(flat(&rest), ids[from..].to_vec(), "{label}");

    // A cursor a client made up, its id compared in byte order (`C5` sorts before every `c…`;
    // a linguistic collation would put it between `c4a1` and `c9a1`).
    let crafted = Cursor {
        ended_ms: tie().timestamp_millis(),
        call_id: "C5".into(),
    };
    let expected: Vec<String> = all
        .iter()
        .filter(|r| r.0 < crafted.ended_ms || (r.0 == crafted.ended_ms && r.1.as_str() < "C5"))
        .map(|r| r.1.clone())
        .collect();
    assert_eq!(expected.len(), 4, "none of the tie, the four older calls");
    let rest = walk(
        store,
        ConversationFilter {
            after: Some(crafted),
            ..f(3)
        },
    )
    .await;
    assert_eq!(flat(&rest), expected, "{label}");

    // Filters.
    let select = |pred: &dyn Fn(&Call) -> bool| -> Vec<String> {
        all.iter().filter(|r| pred(r.2)).map(|r| r.1.clone()).collect()
    };
    let outcome_of = |c: &Call| c.end.unwrap().0.as_str();
    let cases: Vec<(&str, ConversationFilter, Vec<String>)> = vec![
        (
            "campaign",
            ConversationFilter {
                campaign: Some("Beta".into()),
                ..f(2)
            },
            select(&|c| c.campaign == "Beta"),
        ),
        (
            "contact",
            ConversationFilter {
                contact: Some(a[1].0),
                ..f(1)
            },
            select(&|c| c.contact.0 == a[1].0),
        ),
        (
            "outcome",
            ConversationFilter {
                outcome: Some("human".into()),
                ..f(2)
            },
            select(&|c| outcome_of(c) == "human"),
        ),
        (
            "disposition",
            ConversationFilter {
                disposition: Some("retry_scheduled".into()),
                ..f(2)
            },
            select(&|c| c.end.unwrap().1.disposition == Disposition::RetryScheduled),
        ),
        (
            "ended_after",
            ConversationFilter {
                ended_after: Some(tie()),
                ..f(2)
            },
            select(&|c| c.end.unwrap().2 >= tie()),
        ),
        (
            "ended_before",
            ConversationFilter {
                ended_before: Some(tie()),
                ..f(2)
            },
            select(&|c| c.end.unwrap().2 < tie()),
        ),
        (
            "all of them",
            ConversationFilter {
                campaign: Some("alpha".into()),
                outcome: Some("human".into()),
                disposition: Some("completed".into()),
                ended_after: Some(now() - TimeDelta::hours(1)),
                ended_before: Some(now()),
                ..f(1)
            },
            select(&|c| {
                c.campaign == "alpha" && outcome_of(c) == "human" && c.end.unwrap().2 >= now() - TimeDelta::hours(1)
            }),
        ),
    ];
    for (name, filter, expected) in cases {
        assert!(!expected.is_empty(), "{name}");
        let pages = walk(store, filter).await;
        assert_eq!(flat(&pages), expected, "{label}: {name}");
        answers.push(format!("{name}: {pages:?}"));
    }
    let nothing = ConversationFilter {
        campaign: Some("gamma".into()),
        ..f(10)
    };
    assert_eq!(store.conversations(&nothing).await.unwrap(), (vec![], None));

    // One conversation, with its analysis; its transcript.
    let second = calls.iter().find(|c| c.contact.0 == a[1].0 && c.attempt == 2).unwrap();
    let id = format!("c{}a2", a[1].0);
    let analysis = serde_json::json!({ "resolution": "resolved", "score": 4 });
    store.save_analysis(&id, &analysis, 0, &[], now()).await.unwrap();
    let one: Conversation = store.conversation(&id).await.unwrap().unwrap();
    let answered = second.answered.unwrap();
    assert_eq!(one.id, id);
    assert_eq!(
        (one.campaign.as_str(), one.contact_id, one.attempt),
        ("alpha", a[1].0, 2),
        "{label}"
    );
    assert_eq!(
        one.trunk_call_id,
        trunk_id(AttemptKey {
            contact: a[1].0,
            attempt: 2
        })
    );
    assert_eq!(
        (one.agent_id.as_str(), one.from.as_str(), one.to.as_str()),
        ("agent_test", CALLER, a[1].1.as_str())
    );
    assert_eq!(
        (one.dialed_at, one.answered_at, one.ended_at),
        (second.started, Some(answered), now() - TimeDelta::minutes(5))
    );
    assert_eq!(one.first_agent_speech_at, Some(answered + TimeDelta::seconds(1)));
    assert_eq!((one.outcome.as_str(), one.disposition.as_str()), ("human", "completed"));
    assert_eq!((one.turn_count, one.recording_url.as_deref()), (3, None), "{label}");
    assert_eq!(one.analysis.as_ref(), Some(&analysis), "{label}");
    let listed = store.conversations(&f(1)).await.unwrap().0;
    assert_eq!(listed[0].analysis, None, "pages do not load analyses");
    assert_eq!(
        Conversation {
            analysis: None,
            ..one.clone()
        },
        listed[0],
        "{label}"
    );
    let rec = store.conversation(&format!("c{}a1", a[3].0)).await.unwrap().unwrap();
    assert_eq!(
        (rec.recording_url.as_deref(), rec.turn_count, rec.analysis.as_ref()),
        (Some(url), 4, None),
        "{label}"
    );
    let silent = store.conversation(&format!("c{}a1", a[2].0)).await.unwrap().unwrap();
    assert_eq!((silent.turn_count, silent.outcome.as_str()), (0, "abandoned"));
    let unanswered = store.conversation(&format!("c{}a1", a[1].0)).await.unwrap().unwrap();
    assert_eq!(unanswered.answered_at, None);
    assert_eq!(store.conversation("c999999a1").await.unwrap(), None);

    let (messages, tools) = store.conversation_transcript(&id).await.unwrap().unwrap();
    let expected = detail(3, 1, answered);
    assert_eq!(
        (messages, tools),
        (expected.transcript, expected.tool_events),
        "{label}"
    );
    let (m0, t0) = store
        .conversation_transcript(&format!("c{}a1", a[2].0))
        .await
        .unwrap()
        .unwrap();
    assert!(m0.is_empty() && t0.is_empty());
    assert_eq!(store.conversation_transcript("c999999a1").await.unwrap(), None);
    (answers, format!("{one:?} {rec:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conversations_agree_on_both_engines() {
    let answers = on_every_engine("store_engines_conversations", conversations).await;
    let (pages, one) = &answers[0].1;
    for (label, other) in &answers[1..] {
        assert_eq!(pages, &other.0, "conversation pages differ on {label}");
        assert_eq!(one, &other.1, "{label}");
    }
}
