//! Language-model stages through an OpenAI-compatible chat-completions API
//! (`POST {base_url}/chat/completions`, `response_format: json_schema`). Each reply is checked
//! against what the stage allows; a reply that fails is asked for once more, then the stage is
//! recorded as an error. A stage with no endpoint configured is `skipped`.

use crate::call::{Message, Role};
use crate::campaign::analysis_file::{AnalysisFile, DataKind};
use crate::settings::{LlmEndpoint, LlmSettings};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use std::time::Duration;

/// Where one analysis field came from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Provenance {
    /// `model` or `rule`.
    pub source: String,
    /// The model name, for `model`.
    pub model: Option<String>,
    /// `ok`, `skipped` or `error`.
    pub status: String,
    /// Why it is `skipped` or `error`.
    pub error: Option<String>,
}

impl Provenance {
    /// A field computed by a deterministic rule.
    pub fn rule() -> Provenance {
        Provenance {
            source: "rule".into(),
            model: None,
            status: "ok".into(),
            error: None,
        }
    }
    fn model(model: &str, status: &str, error: Option<String>) -> Provenance {
        Provenance {
            source: "model".into(),
            model: Some(model.into()),
            status: status.into(),
            error,
        }
    }
    fn skipped(why: &str) -> Provenance {
        Provenance {
            source: "model".into(),
            model: None,
            status: "skipped".into(),
            error: Some(why.into()),
        }
    }
}

/// A stage's validated value (when any) and its provenance.
#[derive(Clone, Debug, PartialEq)]
pub struct StageResult {
    /// The stage's output object, validated.
    pub value: Option<Value>,
    /// How it was obtained.
    pub provenance: Provenance,
}

/// The transcript as the model reads it: one `agent: ...` / `user: ...` line per message.
pub fn transcript_text(t: &[Message]) -> String {
    t.iter()
        .map(|m| format!("{}: {}", if m.role == Role::Agent { "agent" } else { "user" }, m.text))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Checks a reply object beyond its schema; `Err` names the problem.
pub type Checker = Box<dyn Fn(&Value) -> Result<(), String> + Send + Sync>;

/// One stage: its name (the `[llm.stages.<name>]` key), instructions, output schema and checker.
pub struct Stage {
    /// Stage name.
    pub name: &'static str,
    /// System prompt.
    pub prompt: String,
    /// JSON schema of the reply object.
    pub schema: Value,
    /// Checks a reply object beyond the schema; `Err` names the problem.
    pub check: Checker,
}

fn obj(props: Value, required: &[&str]) -> Value {
    json!({"type": "object", "properties": props, "required": required, "additionalProperties": false})
}

/// The five stages for `a` (tagging and scoring only when categories or criteria are set).
pub fn stages(a: &AnalysisFile) -> Vec<Stage> {
    let mut out = vec![Stage {
        name: "summary",
        prompt: a
            .call_summary_prompt
            .clone()
            .unwrap_or_else(|| "Summarise this phone call in two or three sentences.".into()),
        schema: obj(json!({"summary": {"type": "string"}}), &["summary"]),
        check: Box::new(|v| match v["summary"].as_str() {
            Some(s) if !s.trim().is_empty() => Ok(()),
            _ => Err("summary must be a non-empty string".into()),
        }),
    }];
    if !a.call_tagging_categories.is_empty() {
        let cats = a.call_tagging_categories.clone();
        out.push(Stage {
            name: "tagging",
            prompt: format!(
                "Tag this phone call with every fitting category from: {}. Choose the single best one as the disposition.",
                cats.join(", ")
            ),
            schema: obj(
                json!({"tags": {"type": "array", "items": {"type": "string", "enum": cats}},
                       "disposition": {"type": "string", "enum": cats}}),
                &["tags", "disposition"],
            ),
            check: Box::new(move |v| {
                let ok = |x: &Value| x.as_str().is_some_and(|s| cats.iter().any(|c| c == s));
                let tags = v["tags"].as_array().ok_or("tags must be an array")?;
                if !tags.iter().all(ok) {
                    return Err("a tag is not one of call_tagging_categories".into());
                }
                if !ok(&v["disposition"]) {
                    return Err("disposition is not one of call_tagging_categories".into());
                }
                Ok(())
            }),
        });
    }
    if !a.scoring_criteria.is_empty() {
        let crit = a.scoring_criteria.clone();
        out.push(Stage {
            name: "scoring",
            prompt: format!(
                "Score the agent on each criterion from 0 to 10, each with a one-sentence rationale: {}.",
                crit.join(", ")
            ),
            schema: obj(
                json!({"scores": {"type": "array", "items": obj(json!({
                    "criterion": {"type": "string", "enum": crit},
                    "score": {"type": "integer", "minimum": 0, "maximum": 10},
                    "rationale": {"type": "string"}}), &["criterion", "score", "rationale"])}}),
                &["scores"],
            ),
            check: Box::new(move |v| {
                let scores = v["scores"].as_array().ok_or("scores must be an array")?;
                for c in &crit {
                    let s = scores
                        .iter()
                        .find(|s| s["criterion"].as_str() == Some(c))
                        .ok_or_else(|| format!("no score for `{c}`"))?;
                    match s["score"].as_f64() {
                        Some(x) if (0.0..=10.0).contains(&x) => {}
                        _ => return Err(format!("score for `{c}` is not in 0..10")),
                    }
                    if s["rationale"].as_str().is_none_or(|r| r.trim().is_empty()) {
                        return Err(format!("no rationale for `{c}`"));
                    }
                }
                if scores.len() != crit.len() {
                    return Err("scores must name each criterion once".into());
                }
                Ok(())
            }),
        });
    }
    if !a.post_call_analysis_data.is_empty() {
        let fields = a.post_call_analysis_data.clone();
        let mut props = Map::new();
        let mut desc = Vec::new();
        for f in &fields {
            let t = match f.kind {
                DataKind::Enum => {
                    json!({"type": ["string", "null"], "enum": f.choices.iter().map(|c| Value::from(c.as_str())).chain([Value::Null]).collect::<Vec<_>>()})
                }
                DataKind::String => json!({"type": ["string", "null"]}),
                DataKind::Boolean => json!({"type": ["boolean", "null"]}),
                DataKind::Number => json!({"type": ["number", "null"]}),
            };
            props.insert(f.name.clone(), t);
            desc.push(format!("{}: {}", f.name, f.description));
        }
        let names: Vec<&str> = fields.iter().map(|f| f.name.as_str()).collect();
        out.push(Stage {
            name: "extraction",
            prompt: format!(
                "Extract these fields from the call; use null for anything not mentioned.\n{}",
                desc.join("\n")
            ),
            schema: obj(json!({"data": obj(Value::Object(props), &names)}), &["data"]),
            check: Box::new(move |v| {
                let data = v["data"].as_object().ok_or("data must be an object")?;
                for f in &fields {
                    let x = data.get(&f.name).unwrap_or(&Value::Null);
                    let ok = x.is_null()
                        || match f.kind {
                            DataKind::Enum => x.as_str().is_some_and(|s| f.choices.iter().any(|c| c == s)),
                            DataKind::String => x.is_string(),
                            DataKind::Boolean => x.is_boolean(),
                            DataKind::Number => x.is_number(),
                        };
                    if !ok {
                        return Err(format!("`{}` is not a valid {:?}: {x}", f.name, f.kind));
                    }
                }
                if let Some(k) = data.keys().find(|k| !fields.iter().any(|f| &f.name == *k)) {
                    return Err(format!("unknown field `{k}`"));
                }
                Ok(())
            }),
        });
    }
    out.push(Stage {
        name: "sentiment",
        prompt: "Rate the user's sentiment and whether the call reached its goal.".into(),
        schema: obj(
            json!({"user_sentiment": {"type": "string", "enum": ["positive", "neutral", "negative", "unknown"]},
                   "call_completion_rating": {"type": "string", "enum": ["complete", "incomplete", "unknown"]}}),
            &["user_sentiment", "call_completion_rating"],
        ),
        check: Box::new(|v| {
            if !matches!(
                v["user_sentiment"].as_str(),
                Some("positive" | "neutral" | "negative" | "unknown")
            ) {
                return Err("user_sentiment must be positive, neutral, negative or unknown".into());
            }
            if !matches!(
                v["call_completion_rating"].as_str(),
                Some("complete" | "incomplete" | "unknown")
            ) {
                return Err("call_completion_rating must be complete, incomplete or unknown".into());
            }
            Ok(())
        }),
    });
    out
}

async fn ask(
    http: &reqwest::Client,
    e: &LlmEndpoint,
    model: &str,
    timeout: Duration,
    stage: &Stage,
    transcript: &str,
) -> Result<Value, String> {
    let base = e.base_url.as_deref().unwrap_or_default().trim_end_matches('/');
    let body = json!({
        "model": model,
        "temperature": 0,
        "messages": [
            {"role": "system", "content": stage.prompt},
            {"role": "user", "content": transcript},
        ],
        "response_format": {"type": "json_schema", "json_schema": {"name": stage.name, "strict": true, "schema": stage.schema}},
    });
    let mut req = http
        .post(format!("{base}/chat/completions"))
        .timeout(timeout)
        .json(&body);
    if let Some(k) = &e.api_key {
        req = req.bearer_auth(k.expose());
    }
    let resp = req.send().await.map_err(|e| format!("request failed: {e}"))?;
    let status = resp.status();
    if !status.is_success() {
        return Err(format!("HTTP {}", status.as_u16()));
    }
    let reply: Value = resp.json().await.map_err(|e| format!("reply is not JSON: {e}"))?;
    let content = reply["choices"][0]["message"]["content"]
        .as_str()
        .ok_or("reply has no choices[0].message.content")?;
    let v: Value = serde_json::from_str(content).map_err(|e| format!("content is not JSON: {e}"))?;
    (stage.check)(&v).map_err(|e| format!("invalid reply: {e}"))?;
    Ok(v)
}

/// Runs `stage` on `transcript`: skipped without an endpoint, otherwise asked up to twice.
pub async fn run(http: &reqwest::Client, llm: &LlmSettings, stage: &Stage, transcript: &str) -> StageResult {
    let Some(e) = llm.endpoint(stage.name) else {
        return StageResult {
            value: None,
            provenance: Provenance::skipped("no model configured"),
        };
    };
    let model = e.model.clone().unwrap_or_default();
    let mut last = String::new();
    for attempt in 1..=2 {
        match ask(http, &e, &model, llm.timeout, stage, transcript).await {
            Ok(v) => {
                return StageResult {
                    value: Some(v),
                    provenance: Provenance::model(&model, "ok", None),
                };
            }
            Err(err) => {
                tracing::warn!(stage = stage.name, model = %model, attempt, error = %err, "Model stage failed.");
                last = err;
            }
        }
    }
    StageResult {
        value: None,
        provenance: Provenance::model(&model, "error", Some(last)),
    }
}
