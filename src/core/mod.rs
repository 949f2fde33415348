//! The pure core: pacing, calling windows, retry and voicemail policy, the call state machine.
//! No I/O, no clock reads, no randomness: every function takes an explicit `now` and returns
//! decisions. The daemon (`engine`) and the simulator (`sim`) drive the same code.

pub mod abandon;
pub mod account;
pub mod call;
pub mod caller_id;
pub mod compliance;
pub mod cps;
pub mod dialer;
pub mod due;
pub mod estimate;
pub mod jurisdiction;
pub mod jurisdiction_map;
pub mod lease;
pub mod pacing;
pub mod policy;
pub mod types;
pub mod window;
pub mod zones;

pub use abandon::{AbandonCounts, AbandonLedger, rolling_series};
pub use account::AccountLimit;
pub use call::{AnswerAction, Call, CallEvent, Phase};
pub use caller_id::{CallerIdPool, HealthChange, HealthPolicy, Pick, PickReason, PoolHealth, PoolNumber};
pub use compliance::{AbandonCap, AbandonPolicy, AttemptLimits};
pub use cps::CpsWindow;
pub use dialer::{Decision, Dialer};
pub use due::{
    Candidate, Consent, ConsentKind, ConsentRequirement, Refusal, Refused, Rules, all_refusals, check_due, consent_ok,
};
pub use estimate::{Estimates, OutcomeProbs, Priors};
pub use jurisdiction::{JurisdictionCode, StateRule, StateRules};
pub use lease::{LeasePlan, LeaseView, fair_share};
pub use pacing::{Pacer, PacingConfig, PacingInput, PacingMode, SlotCounts};
pub use policy::{CallbackPolicy, NextStep, Policy, RetryPolicy, VoicemailAction};
pub use types::{AnswerKind, AttemptKey, ContactId, ContactStatus, Disposition, EndReason, Outcome, RefusalReason};
pub use window::{CallingWindow, Closed, LegalHours, WindowError};
pub use zones::{ZoneError, format_zone_list, parse_zone_list, zones_for_number, zones_for_phone};
