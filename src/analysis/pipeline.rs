//! The `analyze` job: deterministic stages, model stages, then the deliveries they feed
//! (`call_ended`, `call_analyzed`, `sentiment.alert`, `error_occurred`, knowledge gaps, CRM,
//! follow-ups), all enqueued in the transaction that stores the analysis.

use super::events::{self, AnalyzeJob, call_order_key};
use super::llm::{self, Provenance};
use super::{Pipeline, SinkError, crm, followup, stages};
use crate::call::CallRecord;
use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

/// Analyses a call: returns the `call_analyzed` data (with `provenance`) and the jobs it feeds.
pub async fn analyze(
    p: &Pipeline,
    rec: &CallRecord,
    job: &AnalyzeJob,
    now: DateTime<Utc>,
) -> (Value, Vec<crate::store::NewJob>) {
    let cfg = &job.config;
    let metrics = stages::metrics(rec);
    let gaps = stages::knowledge_gaps(&rec.transcript);
    let transcript = stages::clean_transcript(&rec.transcript);
    let conversions = stages::conversions(rec, cfg.analysis.conversion_event.as_deref());
    let mut prov = Map::new();
    for f in [
        "metrics",
        "speed_to_lead",
        "knowledge_gaps",
        "conversions",
        "transcript",
    ] {
        prov.insert(f.into(), json!(Provenance::rule()));
    }
    let mut a = json!({
        "call_id": rec.call_id, "campaign_id": rec.campaign_id, "contact_id": rec.contact_id,
        "agent_id": rec.agent_id, "from_number": rec.caller_number, "to_number": rec.callee_number,
        "outcome": rec.outcome, "disposition": rec.disposition, "started_at": rec.dialed_at,
        "answered_at": rec.answered_at, "ended_at": rec.ended_at,
        "call_summary": null, "user_sentiment": "unknown", "call_completion_rating": "unknown",
        "custom_analysis_data": {}, "tags": [], "scores": [],
        "knowledge_gaps": gaps, "conversions": conversions, "transcript": transcript,
        "metrics": metrics, "speed_to_lead": stages::speed_to_lead(rec),
        "consent": crate::campaign::contact_signals::consent_in(&cfg.consent_columns, &rec.contact_fields),
    });
    let mut errors = Vec::new();
    if transcript.is_empty() {
        for f in [
            "call_summary",
            "tags",
            "disposition",
            "scores",
            "custom_analysis_data",
            "user_sentiment",
            "call_completion_rating",
        ] {
            prov.insert(
                f.into(),
                json!(Provenance {
                    source: "model".into(),
                    model: None,
                    status: "skipped".into(),
                    error: Some("no conversation".into())
                }),
            );
        }
    } else {
        let text = llm::transcript_text(&transcript);
        prov.insert("disposition".into(), json!(Provenance::rule()));
        for stage in llm::stages(&cfg.analysis) {
            let r = llm::run(&p.http, &p.llm, &stage, &text).await;
            if r.provenance.status == "error" {
                errors.push(json!({"stage": stage.name, "error": r.provenance.error}));
            }
            let v = r.value.unwrap_or(Value::Null);
            let mut set = |field: &str, value: &Value, a: &mut Value| {
                if !value.is_null() {
                    a[field] = value.clone();
                }
                prov.insert(field.into(), json!(r.provenance));
            };
            match stage.name {
                "summary" => set("call_summary", &v["summary"], &mut a),
                "tagging" => {
                    set("tags", &v["tags"], &mut a);
                    if !v["disposition"].is_null() {
                        set("disposition", &v["disposition"], &mut a);
                    }
                }
                "scoring" => set("scores", &v["scores"], &mut a),
                "extraction" => set("custom_analysis_data", &v["data"], &mut a),
                _ => {
                    set("user_sentiment", &v["user_sentiment"], &mut a);
                    set("call_completion_rating", &v["call_completion_rating"], &mut a);
                }
            }
        }
        // Structured-data fields the model did not mention stay null.
        for f in &cfg.analysis.post_call_analysis_data {
            if a["custom_analysis_data"].get(&f.name).is_none() {
                a["custom_analysis_data"][&f.name] = Value::Null;
            }
        }
    }
    a["provenance"] = Value::Object(prov);
    let jobs = deliveries(rec, job, &a, &errors, now);
    (a, jobs)
}

fn deliveries(
    rec: &CallRecord,
    job: &AnalyzeJob,
    a: &Value,
    errors: &[Value],
    now: DateTime<Utc>,
) -> Vec<crate::store::NewJob> {
    let cfg = &job.config;
    let w = &cfg.webhooks;
    let (c, id) = (rec.campaign_id.as_str(), rec.call_id.as_str());
    let order = call_order_key(id);
    let mut jobs = Vec::new();
    let ended = json!({
        "call_id": id, "duration_s": a["metrics"]["duration_s"], "reason": rec.outcome,
        "disposition": a["disposition"], "summary": a["call_summary"], "ended_at": rec.ended_at,
    });
    jobs.extend(events::webhook(w, c, &order, "call_ended", &[id], ended, now));
    let conversation = !rec.transcript.is_empty();
    if conversation {
        jobs.extend(events::webhook(w, c, &order, "call_analyzed", &[id], a.clone(), now));
        if a["user_sentiment"] == "negative" {
            let d = json!({"call_id": id, "user_sentiment": "negative", "summary": a["call_summary"]});
            jobs.extend(events::webhook(w, c, &order, "sentiment.alert", &[id], d, now));
        }
    }
    for (i, e) in errors.iter().enumerate() {
        let n = format!("stage{i}");
        jobs.extend(events::webhook(
            w,
            c,
            &order,
            "error_occurred",
            &[id, &n],
            json!({"call_id": id, "error": e}),
            now,
        ));
    }
    let gaps = a["knowledge_gaps"].as_array().map_or(0, Vec::len);
    if let (Some(url), true) = (&w.knowledge_gap_webhook_url, gaps > 0) {
        let d = json!({"call_id": id, "agent_id": rec.agent_id, "knowledge_gaps": a["knowledge_gaps"]});
        jobs.push(events::webhook_to(
            url,
            w,
            c,
            &format!("kg:{id}"),
            "knowledge_gap",
            &[id],
            d,
            now,
        ));
    }
    if conversation {
        if let Some(crm) = &cfg.crm {
            jobs.push(crm::job(crm, w, rec, a, now));
        }
        let (fu, errs) = followup::jobs(&cfg.follow_up, w, rec, a, &job.caller_id, now);
        jobs.extend(fu);
        for (i, e) in errs.iter().enumerate() {
            let n = format!("follow_up{i}");
            let d = json!({"call_id": id, "error": {"stage": "follow_up", "error": e}});
            jobs.extend(events::webhook(w, c, &order, "error_occurred", &[id, &n], d, now));
        }
    }
    jobs
}

/// Runs an `analyze` job: loads the record, analyses it, stores the analysis and the jobs it
/// feeds, and marks the job done, in one transaction.
///
/// Errors: [`SinkError::Permanent`] for a malformed job or a missing record; retryable store errors.
pub async fn run_job(p: &Pipeline, job_id: i64, payload: &str) -> Result<(), SinkError> {
    let job: AnalyzeJob =
        serde_json::from_str(payload).map_err(|e| SinkError::Permanent(format!("analyze payload: {e}")))?;
    let rec = p
        .store
        .call_record(&job.call_id)
        .await?
        .ok_or_else(|| SinkError::Permanent(format!("no call record {}", job.call_id)))?;
    let now = Utc::now();
    let (analysis, jobs) = analyze(p, &rec, &job, now).await;
    p.store
        .save_analysis(&rec.call_id, &analysis, job_id, &jobs, Utc::now())
        .await?;
    tracing::info!(campaign = %rec.campaign_id, call_id = %rec.call_id, deliveries = jobs.len(),
        knowledge_gaps = analysis["knowledge_gaps"].as_array().map_or(0, Vec::len), "Call analysed.");
    Ok(())
}
