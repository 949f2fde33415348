//! Pacing: how many new calls to start now. Every mode answers from slot counts alone and
//! never returns more than the free agent slots allow under its own rule.

/// Snapshot of a campaign's agent slots and calls, taken by the driver before asking the pacer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SlotCounts {
    /// Agent slots (`max_concurrent`): the most conversations at once.
    pub slots: u32,
    /// Calls connected to an agent slot (talking).
    pub talking: u32,
    /// Calls placed and not yet answered or classified (dialing or ringing).
    pub dialing: u32,
    /// Answered calls held by no slot: leaving voicemail, hanging up a machine, playing the safe-harbor message.
    pub unattended: u32,
}

impl SlotCounts {
    /// Agent slots not in a conversation.
    pub fn free(&self) -> u32 {
        self.slots.saturating_sub(self.talking)
    }
}

/// Pacing modes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PacingMode {
    /// One call per free agent slot: `n = free − dialing`. Never abandons, since every answer finds a slot.
    Progressive,
}

/// New calls to start now under `mode` (before the CPS budget is applied).
pub fn calls_to_start(mode: PacingMode, c: SlotCounts) -> u32 {
    match mode {
        PacingMode::Progressive => c.free().saturating_sub(c.dialing),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progressive_fills_free_slots_only() {
        let c = |talking, dialing| SlotCounts {
            slots: 5,
            talking,
            dialing,
            unattended: 3,
        };
        assert_eq!(calls_to_start(PacingMode::Progressive, c(0, 0)), 5);
        assert_eq!(calls_to_start(PacingMode::Progressive, c(2, 1)), 2);
        assert_eq!(calls_to_start(PacingMode::Progressive, c(5, 0)), 0);
        assert_eq!(calls_to_start(PacingMode::Progressive, c(3, 4)), 0);
    }
}
