//! Post-call pipeline throughput and delivery latency:
//! `cargo bench --bench pipeline [-- --calls N --slots S --keep]`.
//!
//! Runs the real daemon binary on a sim campaign where every call is answered by a person, with
//! the model stages pointed at a local OpenAI-compatible mock and webhooks at a local receiver
//! that verifies every signature. Prints analysed calls per second and the delivery latency
//! (receipt time − the envelope's `created_at`) p50 / p99.

#[path = "../tests/analysis_common/mod.rs"]
mod analysis_common;
#[path = "../tests/common/mod.rs"]
mod common;

use analysis_common::{Receiver, chat};
use serde_json::json;
use std::process::Stdio;
use std::time::Instant;
use wiremock::matchers::{body_string_contains, method, path};
use wiremock::{Mock, MockServer};

const SECRET: &str = "bench-secret";

/// A mock model that answers every stage validly.
async fn llm_mock() -> MockServer {
    let s = MockServer::start().await;
    let replies = [
        (
            "summary",
            json!({"summary": "The customer asked about the annual plan."}),
        ),
        ("tagging", json!({"tags": ["renewal"], "disposition": "renewal"})),
        (
            "scoring",
            json!({"scores": [{"criterion": "greeting", "score": 8, "rationale": "Warm."},
                              {"criterion": "clarity", "score": 7, "rationale": "Clear."}]}),
        ),
        ("extraction", json!({"data": {"plan_interest": "annual"}})),
        (
            "sentiment",
            json!({"user_sentiment": "positive", "call_completion_rating": "complete"}),
        ),
    ];
    for (stage, reply) in replies {
        Mock::given(method("POST"))
            .and(path("/v1/chat/completions"))
            .and(body_string_contains(format!("\"name\":\"{stage}\"")))
            .respond_with(chat(reply))
            .mount(&s)
            .await;
    }
    s
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let calls: usize = args
        .iter()
        .position(|a| a == "--calls")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(500);
    let slots: usize = args
        .iter()
        .position(|a| a == "--slots")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let tmp = tempfile::tempdir().expect("temp dir");
    let keep = args.iter().any(|a| a == "--keep");
    let rx = Receiver::start(SECRET).await;
    let llm = llm_mock().await;
    let extra = format!(
        r#"
[trunk.sim]
seed = 11
time_scale = 0.002
p_human = 1.0
p_machine = 0.0
p_no_answer = 0.0
p_busy = 0.0
p_failed = 0.0
talk_mean = "60s"

[analysis]
call_summary_prompt = "Summarise the renewal call."
call_tagging_categories = ["renewal", "not_interested"]
scoring_criteria = ["greeting", "clarity"]

[[analysis.post_call_analysis_data]]
name = "plan_interest"
type = "enum"
description = "Which plan the customer leans to"
choices = ["monthly", "annual"]

[webhooks]
url = "{}"
webhook_events = ["call_ended", "call_analyzed"]
"#,
        rx.url
    );
    let dir = common::campaign_dir(tmp.path(), "bench", calls, &extra);
    let toml = std::fs::read_to_string(dir.join("bench.toml")).expect("campaign");
    let toml = toml
        .replace("max_concurrent = 10", &format!("max_concurrent = {slots}"))
        .replace("calls_per_second = 50", "calls_per_second = 1000");
    std::fs::write(dir.join("bench.toml"), toml).expect("campaign");
    let db = tmp.path().join("d.db");
    let started = Instant::now();
    let status = common::bin()
        .args(["run", "--until-idle", "--campaigns"])
        .arg(&dir)
        .arg("--database")
        .arg(&db)
        .env("RUST_LOG", "warn")
        .env("DIALERD__WEBHOOK_SECRET", SECRET)
        .env("DIALERD__LLM__BASE_URL", format!("{}/v1", llm.uri()))
        .env("DIALERD__LLM__MODEL", "mock-model")
        .env("DIALERD__LLM__API_KEY", "sk-bench")
        .env("DIALERD__OUTBOX__POLL_INTERVAL", "20ms")
        .stdout(Stdio::null())
        .status()
        .expect("run dialerd");
    let wall = started.elapsed();
    assert!(status.success(), "dialerd failed");
    let got = rx.accepted();
    let ended: Vec<_> = got.iter().filter(|r| r.event == "call_ended").collect();
    let analysed: Vec<_> = got.iter().filter(|r| r.event == "call_analyzed").collect();
    let mut latency_ms: Vec<f64> = got
        .iter()
        .filter_map(|r| {
            let created = chrono::DateTime::parse_from_rfc3339(r.json["created_at"].as_str()?).ok()?;
            Some((r.received_at - created.with_timezone(&chrono::Utc)).num_microseconds()? as f64 / 1000.0)
        })
        .collect();
    latency_ms.sort_by(f64::total_cmp);
    let first = got.iter().map(|r| r.received_at).min();
    let last_analysed = analysed.iter().map(|r| r.received_at).max();
    let last_ended = ended.iter().map(|r| r.received_at).max();
    let span = |a: Option<chrono::DateTime<chrono::Utc>>, b: Option<chrono::DateTime<chrono::Utc>>| match (a, b) {
        (Some(a), Some(b)) => (b - a).num_milliseconds().max(1) as f64 / 1000.0,
        _ => f64::NAN,
    };
    let analyse_s = span(first, last_analysed);
    println!("call_ended events              {}", ended.len());
    println!(
        "call_analyzed events           {} (none is sent for a call nobody answered)",
        analysed.len()
    );
    println!(
        "bad signatures                 {}",
        rx.shared.bad_signatures.load(std::sync::atomic::Ordering::SeqCst)
    );
    println!(
        "calls ended within             {:.2} s of the first delivery",
        span(first, last_ended)
    );
    println!("all analysed within            {analyse_s:.2} s of the first delivery");
    println!(
        "throughput                     {:.1} analysed calls/s",
        analysed.len() as f64 / analyse_s
    );
    println!("deliveries                     {}", latency_ms.len());
    println!(
        "delivery latency p50 / p99     {:.1} ms / {:.1} ms",
        percentile(&latency_ms, 0.5),
        percentile(&latency_ms, 0.99)
    );
    println!("daemon wall time               {:.2} s", wall.as_secs_f64());
    if keep {
        println!("database kept at               {}", db.display());
        std::mem::forget(tmp);
    }
}
