//! The Twilio Programmable Voice trunk (`kind = "twilio"`), hand-written on reqwest: the REST
//! [`client`] of the Calls resource with its [`error`] classes, the [`twiml`] it sends, status
//! and AMD [`callbacks`] routed by the [`hub`], checked with [`signature`]; the campaign's
//! [`trunk`] ties them together under the account's [`limits`], asks Twilio what became of
//! calls left open by a crash (`recover`), and which caller IDs the account may not present
//! (`unowned_caller_ids`).

pub mod callbacks;
pub mod client;
pub mod error;
pub mod hub;
pub mod limits;
mod recover;
pub mod signature;
pub mod track;
pub mod trunk;
pub mod twiml;

pub use callbacks::{
    AmdCallback, AmdVerdict, CallStatus, CallTrack, CallbackTarget, RecordingCallback, StatusCallback,
};
pub use client::{AccountNumber, CallResource, CallUpdate, CreateCall, Instructions, MachineDetection, TwilioClient};
pub use error::TwilioError;
pub use hub::{HubError, TwilioHub};
pub use limits::AccountLimits;
pub use trunk::{TwilioAccount, TwilioTrunk};
