//! Call records: written in the transaction that closes the attempt, read by the analysis
//! pipeline, and updated with the analysis result.

use super::{Store, StoreError};
use crate::call::{CallDetail, CallRecord};
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;

/// What the engine adds to an attempt's close so the pipeline can analyse the call.
#[derive(Clone, Debug, Default)]
pub struct PostCall {
    /// Voice agent that took the call.
    pub agent_id: String,
    /// Our caller id, E.164.
    pub caller_number: String,
    /// The conversation, when the trunk reported one.
    pub detail: Option<CallDetail>,
    /// Jobs inserted only when a call record is written (the trunk placed the call).
    pub call_jobs: Vec<super::NewJob>,
    /// Jobs inserted whenever the attempt is closed by this call (`contact.exhausted`, ...).
    pub jobs: Vec<super::NewJob>,
}

impl Store {
    /// The call record `call_id` with its contact's fields, first dial and campaign start.
    ///
    /// Errors: [`StoreError::Query`], [`StoreError::Corrupt`] for undecodable JSON.
    pub async fn call_record(&self, call_id: &str) -> Result<Option<CallRecord>, StoreError> {
        on_engine!(self, call_record(call_id))
    }

    /// Stores the analysis of `call_id` (JSON), finishes job `job_id` as done and inserts
    /// `follow_on` jobs, in one transaction.
    ///
    /// Errors: [`StoreError::Query`].
    pub async fn save_analysis(
        &self,
        call_id: &str,
        analysis: &serde_json::Value,
        job_id: i64,
        follow_on: &[super::NewJob],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        on_engine!(self, save_analysis(call_id, analysis, job_id, follow_on, now))
    }

    /// The stored analysis of `call_id`, once analysed.
    ///
    /// Errors: [`StoreError::Query`], [`StoreError::Corrupt`].
    pub async fn call_analysis(&self, call_id: &str) -> Result<Option<serde_json::Value>, StoreError> {
        on_engine!(self, call_analysis(call_id))
    }

    /// Ids of the call records of `campaign`, oldest first (by end, then id in byte order).
    ///
    /// Errors: [`StoreError::Query`].
    pub async fn call_ids(&self, campaign: &str) -> Result<Vec<String>, StoreError> {
        on_engine!(self, call_ids(campaign))
    }
}

/// The JSON of a call record's transcript and tool events, as both engines store them.
pub(crate) fn detail_json(post: &PostCall) -> Result<(CallDetail, String, String), StoreError> {
    let detail = post.detail.clone().unwrap_or_default();
    let transcript = serde_json::to_string(&detail.transcript).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let tools = serde_json::to_string(&detail.tool_events).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    Ok((detail, transcript, tools))
}

/// Decodes `custom_fields` (a JSON object of strings) and adds the contact's non-empty
/// `first_name`, `last_name` and `email`, as a call record's `contact_fields`.
pub(crate) fn contact_fields(
    custom_fields: &str,
    named: [(&str, Option<String>); 3],
) -> Result<BTreeMap<String, String>, StoreError> {
    let mut fields: BTreeMap<String, String> =
        serde_json::from_str(custom_fields).map_err(|e| corrupt("custom_fields", e))?;
    for (col, v) in named {
        if let Some(v) = v {
            fields.insert(col.to_string(), v);
        }
    }
    Ok(fields)
}

/// [`StoreError::Corrupt`] for stored JSON `what` that did not decode.
pub(crate) fn corrupt(what: &str, e: serde_json::Error) -> StoreError {
    StoreError::Corrupt(format!("{what}: {e}"))
}
