//! The call vocabulary every layer shares: what a trunk knows about a conversation
//! ([`CallDetail`]: transcript [`Message`]s, [`ToolEvent`]s, the first agent speech), the
//! [`CallRecord`] the engine stores when a call ends and every analysis stage reads, and the
//! voice agent's events ([`agent`]). Trunks, the store, the simulator, the agent events API and
//! the analysis import it from here; it imports nothing from them.

pub mod agent;
mod record;

pub use agent::{AgentEvent, AgentEventKind, AnsweredBy};
pub use record::{CallDetail, CallRecord, Message, Role, ToolEvent};
