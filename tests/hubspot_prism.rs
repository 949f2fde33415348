//! HubSpot's contract, held by Prism: `tests/peers/hubspot-crm-v3.yaml` (written from HubSpot's
//! published CRM v3 reference) served by `prism mock`, which answers 422 to any request that does
//! not match it. `bash tests/run.sh` installs and starts it and sets `DIALERD_TEST_PRISM`
//! (host:port); without it these tests say they skipped.
//!
//! The example campaign runs with `[crm] crm_provider = "hubspot"` against that peer: every CRM
//! sync must be done and none dead (a 422 is a permanent error, so a single request off the
//! contract would dead-letter its job).

mod analysis_common;
mod common;

use analysis_common::{Receiver, example_campaign, states};
use dialerd::store::Store;
use serde_json::json;
use std::sync::atomic::Ordering;
use std::time::Duration;

const SECRET: &str = "prism-secret";
const TOKEN: &str = "pat-na1-prism";

fn prism() -> Option<String> {
    let p = std::env::var("DIALERD_TEST_PRISM").ok().filter(|p| !p.is_empty());
    if p.is_none() {
        eprintln!("SKIPPED: DIALERD_TEST_PRISM is unset (bash tests/run.sh installs and starts Prism)");
    }
    p.map(|p| format!("http://{p}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_peer_refuses_what_hubspot_refuses() {
    let Some(base) = prism() else { return };
    let http = reqwest::Client::new();
    let post = |path: &str, body: serde_json::Value, auth: bool| {
        let mut r = http.post(format!("{base}{path}")).json(&body);
        if auth {
            r = r.bearer_auth(TOKEN);
        }
        r.send()
    };
    let filters = json!([{"filters": [{"propertyName": "phone", "operator": "EQ", "value": "+12125550102"}]}]);
    // What dialerd used to send: no `sorts`, no `after`.
    let old = json!({"filterGroups": filters, "properties": ["phone", "email"], "limit": 1});
    assert_eq!(
        post("/crm/v3/objects/contacts/search", old, true)
            .await
            .unwrap()
            .status(),
        422
    );
    let full = json!({"filterGroups": filters, "properties": ["phone"], "limit": 1, "sorts": [], "after": "0"});
    assert_eq!(
        post("/crm/v3/objects/contacts/search", full.clone(), true)
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        post("/crm/v3/objects/contacts/search", full, false)
            .await
            .unwrap()
            .status(),
        401
    );
    // A create without `associations`, and a property that is not a string.
    let no_assoc = json!({"properties": {"phone": "+12125550102"}});
    assert_eq!(
        post("/crm/v3/objects/contacts", no_assoc, true).await.unwrap().status(),
        422
    );
    let number = json!({"properties": {"hs_timestamp": "2026-11-21T20:28:20.678Z", "hs_call_duration": 2051}, "associations": []});
    assert_eq!(post("/crm/v3/objects/calls", number, true).await.unwrap().status(), 422);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn example_campaign_syncs_every_call_to_hubspot_as_published() {
    let Some(base) = prism() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let rx = Receiver::start(SECRET).await;
    let addr = rx
        .url
        .trim_start_matches("http://")
        .trim_end_matches("/hook")
        .to_string();
    let crm = format!("\n[crm]\ncrm_provider = \"hubspot\"\nbase_url = \"{base}\"\n");
    let dir = example_campaign(tmp.path(), &addr, &[], &crm);
    let db = tmp.path().join("example.db");
    let env = [
        ("DIALERD__WEBHOOK_SECRET", SECRET),
        ("DIALERD__HUBSPOT_TOKEN", TOKEN),
        ("DIALERD__OUTBOX__DRAIN_TIMEOUT", "180s"),
    ];
    let mut d = common::Daemon::start_env(&dir, &db, true, &[], &env);
    let (status, log) = tokio::task::spawn_blocking(move || {
        let s = d.wait_exit(Duration::from_secs(400));
        (s, d.seen.join("\n"))
    })
    .await
    .unwrap();
    assert!(status.success(), "{log}");
    assert!(!log.contains(TOKEN), "the HubSpot token reached the log");

    let store = Store::open(db.to_str().unwrap()).await.unwrap();
    let jobs = store.all_jobs().await.unwrap();
    let crm = states(&jobs, "crm");
    let done = crm.get("done").copied().unwrap_or(0);
    eprintln!(
        "example against Prism: crm jobs {crm:?}; analyze {:?}; webhooks {:?}",
        states(&jobs, "analyze"),
        states(&jobs, "webhook")
    );
    assert_eq!(crm.get("dead"), None, "a CRM sync was refused: {crm:?}");
    assert_eq!(crm.keys().collect::<Vec<_>>(), ["done"], "{crm:?}");
    // One sync per call with a conversation: exactly the calls that got `call_analyzed`.
    let analyzed = rx.accepted().iter().filter(|r| r.event == "call_analyzed").count();
    assert!(done > 50, "only {done} CRM syncs");
    assert_eq!(done, analyzed, "CRM syncs against analysed calls");
    assert_eq!(rx.shared.bad_signatures.load(Ordering::SeqCst), 0);
}
