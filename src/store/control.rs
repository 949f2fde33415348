//! The operator's control of a campaign: `running`, `paused` or `cancelled`, who set it and when
//! (migration 0010). It is kept apart from the daemon's own `state`, so a file edit or a restart
//! never undoes a pause, and every claim is conditional on it (`CLAIM_SQL`), so no attempt is
//! claimed once a pause or a cancel has committed, from this process or another.

use super::{Store, StoreError, from_ms};
use chrono::{DateTime, Utc};
use serde::Serialize;

/// What the operator asked of a campaign.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CampaignControl {
    /// Dialing as its file and list allow (the default).
    Running,
    /// No new dials; calls in flight end; `resume` picks up where it stopped.
    Paused,
    /// Ended for good: never dialled again; its contacts keep their history.
    Cancelled,
}

impl CampaignControl {
    /// The stored form: `running`, `paused`, `cancelled`.
    pub fn as_str(self) -> &'static str {
        match self {
            CampaignControl::Running => "running",
            CampaignControl::Paused => "paused",
            CampaignControl::Cancelled => "cancelled",
        }
    }

    /// Reads the stored form.
    ///
    /// Errors: [`StoreError::Corrupt`] for any other value.
    pub fn parse(s: &str) -> Result<CampaignControl, StoreError> {
        match s {
            "running" => Ok(CampaignControl::Running),
            "paused" => Ok(CampaignControl::Paused),
            "cancelled" => Ok(CampaignControl::Cancelled),
            other => Err(StoreError::Corrupt(format!("campaign control `{other}`"))),
        }
    }
}

/// A campaign's control as stored: the state, who set it and when (`None` before any change).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ControlRecord {
    /// The state.
    pub control: CampaignControl,
    /// Who set it: `cli:<user>` or `api:<token name>`.
    pub by: Option<String>,
    /// When (UTC).
    pub at: Option<DateTime<Utc>>,
}

/// Why a control change was refused.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// No campaign has this id (it has never run).
    #[error("no campaign `{0}` in the database")]
    UnknownCampaign(String),
    /// The campaign is cancelled; cancelling is for good.
    #[error("campaign `{0}` is cancelled; a cancelled campaign cannot be resumed or paused")]
    Cancelled(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Store {
    /// Sets `campaign`'s control to `to`, by `by` at `now`, and returns the record now stored.
    /// Setting the state it already has changes nothing (the earlier `by` and `at` stay).
    ///
    /// Errors: [`ControlError::UnknownCampaign`]; [`ControlError::Cancelled`] when the campaign is
    /// cancelled and `to` is not; [`ControlError::Store`].
    pub async fn set_campaign_control(
        &self,
        campaign: &str,
        to: CampaignControl,
        by: &str,
        now: DateTime<Utc>,
    ) -> Result<ControlRecord, ControlError> {
        on_engine!(self, set_campaign_control(campaign, to, by, now))
    }

    /// `campaign`'s control; `None` for a campaign never run.
    ///
    /// Errors: [`StoreError::Query`], [`StoreError::Corrupt`].
    pub async fn campaign_control(&self, campaign: &str) -> Result<Option<ControlRecord>, StoreError> {
        on_engine!(self, campaign_control(campaign))
    }

    /// Every campaign's control, by id (one read, for the daemon's rescan), in no set order.
    ///
    /// Errors: [`StoreError::Query`], [`StoreError::Corrupt`].
    pub async fn campaign_controls(&self) -> Result<Vec<(String, CampaignControl)>, StoreError> {
        on_engine!(self, campaign_controls())
    }
}

/// A control record from its stored columns (`control`, `control_by`, `control_at` in ms).
///
/// Errors: [`StoreError::Corrupt`] for an unknown control.
pub(super) fn control_record(control: &str, by: Option<String>, at: Option<i64>) -> Result<ControlRecord, StoreError> {
    Ok(ControlRecord {
        control: CampaignControl::parse(control)?,
        by,
        at: at.map(from_ms),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn store_with(id: &str) -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("c.db").to_str().unwrap()).await.unwrap();
        store
            .activate_campaign(id, "Spring", "spring.toml", Utc::now())
            .await
            .unwrap();
        (dir, store)
    }

    #[tokio::test]
    async fn pause_resume_cancel_are_recorded_with_who_and_when() {
        let (_d, store) = store_with("spring").await;
        assert_eq!(
            store.campaign_control("spring").await.unwrap().unwrap().control,
            CampaignControl::Running
        );
        let t = Utc::now();
        let r = store
            .set_campaign_control("spring", CampaignControl::Paused, "cli:ops", t)
            .await
            .unwrap();
        assert_eq!(r.control, CampaignControl::Paused);
        assert_eq!(r.by.as_deref(), Some("cli:ops"));
        assert_eq!(r.at.map(|a| a.timestamp_millis()), Some(t.timestamp_millis()));
        // A re-activation (restart, file edit) keeps the pause.
        store
            .activate_campaign("spring", "Spring 2", "spring.toml", Utc::now())
            .await
            .unwrap();
        let kept = store.campaign_control("spring").await.unwrap().unwrap();
        assert_eq!(kept, r);
        // Pausing again keeps the first record.
        let again = store
            .set_campaign_control("spring", CampaignControl::Paused, "api:other", Utc::now())
            .await
            .unwrap();
        assert_eq!(again.by.as_deref(), Some("cli:ops"));
        let c = store
            .set_campaign_control("spring", CampaignControl::Cancelled, "api:ops", Utc::now())
            .await
            .unwrap();
        assert_eq!(c.control, CampaignControl::Cancelled);
        assert!(matches!(
            store
                .set_campaign_control("spring", CampaignControl::Running, "cli:ops", Utc::now())
                .await,
            Err(ControlError::Cancelled(_))
        ));
        assert!(matches!(
            store
                .set_campaign_control("autumn", CampaignControl::Paused, "cli:ops", Utc::now())
                .await,
            Err(ControlError::UnknownCampaign(_))
        ));
        assert_eq!(
            store.campaign_controls().await.unwrap(),
            vec![("spring".to_string(), CampaignControl::Cancelled)]
        );
    }
}
