//! A campaign runner's writes of one burst of call events (answers, ends with their call records
//! and outbox jobs, queued events), applied in their order in one transaction. At hundreds of
//! calls per second this turns one commit per event into one per burst.

use super::{NewJob, PostCall, Store, StoreError};
use crate::core::{AttemptKey, NextStep, Outcome};
use chrono::{DateTime, Utc};

/// One write of a runner, in the order the events came.
#[derive(Debug)]
pub enum CallWrite {
    /// An attempt was answered at this instant (UTC).
    Answered(AttemptKey, DateTime<Utc>),
    /// An attempt ended: [`Store::close_attempt_with`] in the batch's transaction.
    Close {
        /// The attempt.
        key: AttemptKey,
        /// How it ended.
        outcome: Outcome,
        /// The policy's next step for its contact.
        step: NextStep,
        /// When it ended (UTC).
        ended_at: DateTime<Utc>,
        /// The call record and its first jobs; `None` for an attempt that never reached the trunk.
        post: Option<Box<PostCall>>,
    },
    /// Outbox jobs to queue (a `call_started` event), due at this instant (UTC).
    Jobs(Vec<NewJob>, DateTime<Utc>),
    /// A connected call's answer → first agent speech latency (ms; `None`: the agent never
    /// spoke) and whether it made the call abandoned (16 CFR 310.4(b)(4)(i)); queued before its close.
    Speech {
        /// The attempt.
        key: AttemptKey,
        /// Answer → first agent speech, milliseconds.
        latency_ms: Option<i64>,
        /// Counted abandoned: the agent first spoke more than 2 s after the answer, or never.
        silence_abandoned: bool,
    },
}

impl CallWrite {
    /// The attempt this write is about, if it names one (jobs do not).
    pub fn key(&self) -> Option<AttemptKey> {
        match self {
            CallWrite::Answered(key, _) | CallWrite::Close { key, .. } | CallWrite::Speech { key, .. } => Some(*key),
            CallWrite::Jobs(..) => None,
        }
    }
}

impl Store {
    /// Applies `writes` in order in one transaction. Returns, for each write, whether it wrote a
    /// call record (always `false` for answers and jobs). Nothing is written when it fails. A
    /// runner's batch is of one campaign; with a fence set for it, the batch is conditional on
    /// the fence like a claim.
    ///
    /// Errors: [`StoreError::LeaseLost`], [`StoreError::Query`], [`StoreError::Corrupt`].
    pub async fn apply_call_writes(&self, writes: &[CallWrite]) -> Result<Vec<bool>, StoreError> {
        if writes.is_empty() {
            return Ok(Vec::new());
        }
        let fences = self.fences_snapshot();
        on_engine!(self, apply_call_writes(writes, &fences))
    }
}
