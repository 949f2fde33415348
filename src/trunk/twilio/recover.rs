//! Recovery after a crash: an attempt left open is looked up at Twilio (`GET Calls/{Sid}.json`,
//! or, when its SID was never stored, `GET Calls.json?To=…` filtered on the claim instant) and
//! its Call resource read as [`Recovered`]: still live (the hub follows it from now on), ended
//! with its real status and AMD verdict, or unknown.

use super::callbacks::{AmdVerdict, CallStatus, end_reason};
use super::client::CallResource;
use crate::trunk::Recovered;

/// Calls created up to this long before their claim are taken as its call (clocks differ).
pub const CLOCK_SLACK: chrono::TimeDelta = chrono::TimeDelta::seconds(5);

/// The AMD verdict of a Call resource (`answered_by`), when it has a known one.
pub fn verdict(call: &CallResource) -> Option<AmdVerdict> {
    call.answered_by
        .as_deref()
        .and_then(|v| serde_json::from_value(serde_json::Value::String(v.to_string())).ok())
}

/// What a Call resource says of the call: a status that is not final is `Live` (answered when
/// `in-progress`); a final one is `Ended` with the reason its status gives (`completed` was
/// answered), with the AMD verdict either way.
pub fn classify(call: &CallResource) -> Recovered {
    let amd = verdict(call).map(AmdVerdict::answer_kind);
    match end_reason(call.status, None) {
        None => Recovered::Live {
            call_id: call.sid.clone(),
            answered: call.status == CallStatus::InProgress,
            amd,
        },
        Some(reason) => Recovered::Ended {
            call_id: Some(call.sid.clone()),
            reason,
            answered: call.status == CallStatus::Completed,
            amd,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::{AnswerKind, EndReason};

    fn call(status: &str, answered_by: Option<&str>) -> CallResource {
        serde_json::from_value(serde_json::json!({"sid": "CA1", "status": status, "answered_by": answered_by})).unwrap()
    }

    #[test]
    fn call_resources_read_as_recovery_states() {
        assert_eq!(
            classify(&call("completed", Some("machine_end_beep"))),
            Recovered::Ended {
                call_id: Some("CA1".into()),
                reason: EndReason::Hangup,
                answered: true,
                amd: Some(AnswerKind::Machine)
            }
        );
        assert_eq!(
            classify(&call("busy", None)),
            Recovered::Ended {
                call_id: Some("CA1".into()),
                reason: EndReason::Busy,
                answered: false,
                amd: None
            }
        );
        assert_eq!(
            classify(&call("in-progress", Some("human"))),
            Recovered::Live {
                call_id: "CA1".into(),
                answered: true,
                amd: Some(AnswerKind::Human)
            }
        );
        assert_eq!(
            classify(&call("ringing", None)),
            Recovered::Live {
                call_id: "CA1".into(),
                answered: false,
                amd: None
            }
        );
        assert_eq!(verdict(&call("completed", Some("robot"))), None);
    }
}
