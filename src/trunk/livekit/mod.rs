//! The LiveKit SIP trunk (`kind = "livekit"`): one room per attempt, the campaign's agent
//! dispatched into it, the callee dialled in with `CreateSIPParticipant`; the end comes from
//! LiveKit's webhooks, verified by the listener. Modules: `calls` (room names, SIP status → end
//! reason, the JSON the agent reads), `hub` (dial results and webhooks → core events, once each),
//! `trunk` (`LivekitTrunk`, `LivekitAccount`).

pub mod calls;
pub mod hub;
pub mod trunk;

pub use calls::{CALLEE_IDENTITY, DispatchMetadata, RoomAction};
pub use hub::{DialResult, HubError, LivekitHub, WebhookOutcome};
pub use trunk::{LivekitAccount, LivekitError, LivekitTrunk};
