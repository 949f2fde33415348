//! What `GET /readyz` and `GET /metrics` read from the database: a round trip, the migrations
//! applied against those embedded, and the gauges that must hold across restarts (contacts by
//! status, measured abandonment, refusals, outbox depth and the age of its oldest pending job).

use super::{MeasuredAbandonment, Store, StoreError, from_ms};
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;

/// One campaign's gauges at scrape time.
#[derive(Clone, Debug, Default)]
pub struct CampaignGauges {
    /// Contacts by status.
    pub contacts: BTreeMap<String, u64>,
    /// Abandonment over the last 24 hours.
    pub abandonment_24h: MeasuredAbandonment,
    /// Abandonment over the last 30 days.
    pub abandonment_30d: MeasuredAbandonment,
    /// Refusals by reason since the campaign began.
    pub refusals: BTreeMap<String, u64>,
}

/// The outbox at scrape time.
#[derive(Clone, Debug, Default)]
pub struct OutboxGauges {
    /// Jobs by state.
    pub jobs: BTreeMap<String, u64>,
    /// When the oldest pending job was created (UTC); `None` when none is pending.
    pub oldest_pending: Option<DateTime<Utc>>,
}

impl Store {
    /// One round trip to the database, on a read connection.
    ///
    /// Errors: [`StoreError::Query`] when the database does not answer.
    pub async fn ping(&self) -> Result<(), StoreError> {
        on_engine!(self, ping())
    }

    /// Embedded migrations not applied (successfully) to this database: 0 once it is migrated.
    ///
    /// Errors: [`StoreError::Query`].
    pub async fn migrations_pending(&self) -> Result<usize, StoreError> {
        on_engine!(self, migrations_pending())
    }

    /// Every campaign's gauges at `now`, by campaign id.
    ///
    /// Errors: [`StoreError::Query`].
    pub async fn campaign_gauges(&self, now: DateTime<Utc>) -> Result<BTreeMap<String, CampaignGauges>, StoreError> {
        let mut out: BTreeMap<String, CampaignGauges> = BTreeMap::new();
        let counts: Vec<(String, BTreeMap<String, u64>)> = on_engine!(self, contacts_by_status())?;
        for (id, contacts) in counts {
            let g = out.entry(id.clone()).or_default();
            g.contacts = contacts;
            g.abandonment_24h = self
                .measured_abandonment(&id, now - chrono::Duration::hours(24))
                .await?;
            g.abandonment_30d = self.measured_abandonment(&id, now - chrono::Duration::days(30)).await?;
            g.refusals = self
                .refusal_counts(&id)
                .await?
                .into_iter()
                .map(|(r, n)| (r.as_str().to_string(), n))
                .collect();
        }
        Ok(out)
    }

    /// The outbox's depth by state and its oldest pending job.
    ///
    /// Errors: [`StoreError::Query`].
    pub async fn outbox_gauges(&self) -> Result<OutboxGauges, StoreError> {
        let oldest: Option<i64> = on_engine!(self, oldest_pending_job_ms())?;
        Ok(OutboxGauges {
            jobs: self.job_counts().await?,
            oldest_pending: oldest.map(from_ms),
        })
    }
}
