//! PostgreSQL: one burst of a runner's call writes in one transaction (see [`crate::store`]'s `batch`).

use super::PgEngine;
use crate::store::{CallWrite, StoreError};

impl PgEngine {
    pub(in crate::store) async fn apply_call_writes(
        &self,
        writes: &[CallWrite],
        fences: &std::collections::HashMap<String, crate::store::Fence>,
    ) -> Result<Vec<bool>, StoreError> {
        let mut out = Vec::with_capacity(writes.len());
        if writes.is_empty() {
            return Ok(out);
        }
        let mut tx = self.pool().begin().await?;
        if let Some(key) = writes.iter().find_map(CallWrite::key) {
            super::leases::check_fence_of(&mut tx, key, fences).await?;
        }
        for w in writes {
            out.push(match w {
                CallWrite::Answered(key, at) => {
                    super::attempts::answered_in(&mut tx, *key, *at).await?;
                    false
                }
                CallWrite::Close {
                    key,
                    outcome,
                    step,
                    ended_at,
                    post,
                } => super::attempts::close_in(&mut tx, *key, *outcome, *step, *ended_at, post.as_deref()).await?,
                CallWrite::Jobs(jobs, at) => {
                    super::outbox::insert_jobs(&mut tx, jobs, *at).await?;
                    false
                }
                CallWrite::Speech {
                    key,
                    latency_ms,
                    silence_abandoned,
                } => {
                    super::pacing::speech_in(&mut tx, *key, *latency_ms, *silence_abandoned).await?;
                    false
                }
            });
        }
        tx.commit().await?;
        Ok(out)
    }
}
