//! The runner's side of the operator's control (`dialerd pause|resume|cancel`, the API): read
//! from the store at start and after a short claim, or sent by the daemon; dialing stops while
//! it is not `running`, and calls in flight end as usual.

use super::Runner;
use crate::store::{CampaignControl, ControlRecord, StoreError};
use tracing::info;

impl Runner {
    /// True while no new dial may start: the file is gone or invalid, or the operator paused or
    /// cancelled the campaign.
    pub(super) fn dialing_stopped(&self) -> bool {
        self.paused || self.operator != CampaignControl::Running
    }

    /// Reads the operator's control from the store.
    ///
    /// Errors: [`StoreError`] from the read.
    pub(super) async fn read_operator(&mut self) -> Result<(), StoreError> {
        if let Some(rec) = self.store.campaign_control(&self.campaign.id).await? {
            self.on_operator(rec);
        }
        Ok(())
    }

    /// Applies a control record; one log line when it changes what the runner does.
    pub(super) fn on_operator(&mut self, rec: ControlRecord) {
        if rec.control == self.operator {
            return;
        }
        self.operator = rec.control;
        let by = rec.by.as_deref().unwrap_or("-");
        let at = rec.at.map(|t| t.to_rfc3339()).unwrap_or_default();
        let in_flight = self.dialer.in_flight();
        match rec.control {
            CampaignControl::Paused => {
                self.hopper.clear();
                self.live_state("paused", rec.by.clone());
                info!(campaign = %self.id(), by, at = %at, in_flight,
                    "Campaign paused by the operator: no new dials; calls in flight end. `dialerd resume` picks up where it stopped.");
            }
            CampaignControl::Cancelled => {
                self.hopper.clear();
                self.live_state("cancelled", rec.by.clone());
                info!(campaign = %self.id(), by, at = %at, in_flight,
                    "Campaign cancelled by the operator: never dialled again; its contacts keep their history.");
            }
            CampaignControl::Running => {
                self.finished = false;
                self.announced_sleep = None;
                self.live_state("resumed", rec.by.clone());
                info!(campaign = %self.id(), by, at = %at, "Campaign resumed by the operator.");
            }
        }
    }
}
