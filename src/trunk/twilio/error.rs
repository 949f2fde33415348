//! Errors of the Twilio REST client, classified the way the dialer acts on them (Twilio
//! "API error and warning dictionary"): 429 / 20429 and 5xx may succeed later; 21211 (invalid
//! `To`), 21214 (`To` cannot be reached), 21215 (geo permission), 21216 (blocked), 21217 (not a
//! valid number) and any other 4xx are permanent for that request. Whether Twilio provably never
//! created the call tells the dialer if the contact may go back without counting an attempt.
//! No variant carries a credential or a URL with the account SID in it.

use crate::trunk::TrunkError;

/// A failed Twilio request.
#[derive(Debug, thiserror::Error)]
pub enum TwilioError {
    /// Settings are missing something (`[twilio] account_sid`, a credential).
    #[error("Twilio is not configured: {0}")]
    Config(&'static str),
    /// Twilio answered with an error status.
    #[error("Twilio answered HTTP {status}{}: {message}", code.map(|c| format!(", error {c}")).unwrap_or_default())]
    Api {
        /// HTTP status.
        status: u16,
        /// Twilio's error code (`21211`, `20429`, …), when the body had one.
        code: Option<u32>,
        /// Twilio's message.
        message: String,
        /// The answer's `Retry-After`, in whole seconds, when it had one.
        retry_after: Option<u64>,
    },
    /// No answer from Twilio. `sent` is false when the connection failed before the request
    /// went out (so nothing was created).
    #[error("Twilio could not be reached: {message}")]
    Transport {
        /// What failed (no URL).
        message: String,
        /// Whether the request may have reached Twilio.
        sent: bool,
    },
    /// A 2xx answer that is not the resource expected.
    #[error("unexpected answer from Twilio: {0}")]
    Decode(String),
}

/// Twilio's "too many requests" error code.
pub const TOO_MANY_REQUESTS: u32 = 20429;

impl TwilioError {
    /// Whether the same request may succeed later: HTTP 429, error 20429, 5xx, or no answer.
    pub fn is_retryable(&self) -> bool {
        match self {
            TwilioError::Api { status, code, .. } => {
                *status == 429 || *code == Some(TOO_MANY_REQUESTS) || (500..600).contains(status)
            }
            TwilioError::Transport { .. } => true,
            TwilioError::Config(_) | TwilioError::Decode(_) => false,
        }
    }

    /// Whether Twilio provably did not act on the request: any 4xx (429 included: the request
    /// was refused before it was processed), 503 (not accepted), or a connection that failed
    /// before the request was sent. A 500/502/504, a timeout or an unreadable 2xx may hide a
    /// created call, to be found by listing calls to the number.
    pub fn never_created(&self) -> bool {
        match self {
            TwilioError::Api { status, .. } => (400..500).contains(status) || *status == 503,
            TwilioError::Transport { sent, .. } => !sent,
            TwilioError::Config(_) => true,
            TwilioError::Decode(_) => false,
        }
    }

    /// Twilio's error code, when it gave one.
    pub fn code(&self) -> Option<u32> {
        match self {
            TwilioError::Api { code, .. } => *code,
            _ => None,
        }
    }

    /// Reads an error answer: Twilio's `{"code", "message", "more_info", "status"}`, or any
    /// other body (a proxy's page, a mock's problem JSON) cut to its first 200 characters.
    pub fn from_response(status: u16, body: &str) -> TwilioError {
        let json: Option<serde_json::Value> = serde_json::from_str(body).ok();
        let code = json
            .as_ref()
            .and_then(|j| j.get("code"))
            .and_then(serde_json::Value::as_u64)
            .and_then(|c| u32::try_from(c).ok());
        let message = json
            .as_ref()
            .and_then(|j| {
                ["message", "detail", "title"]
                    .iter()
                    .find_map(|k| j.get(*k).and_then(serde_json::Value::as_str))
            })
            .map(str::to_string)
            .unwrap_or_else(|| body.chars().take(200).collect());
        TwilioError::Api {
            status,
            code,
            message,
            retry_after: None,
        }
    }

    /// This error with the answer's `Retry-After` (seconds; an HTTP date is ignored).
    pub fn with_retry_after(mut self, header: Option<&str>) -> TwilioError {
        if let TwilioError::Api { retry_after, .. } = &mut self {
            *retry_after = header.and_then(|h| h.trim().parse::<u64>().ok());
        }
        self
    }

    /// The attempt's outcome reason for an error Twilio answered: `twilio <code>: <message>`
    /// (`twilio HTTP <status>: …` without a code).
    pub fn reason(&self) -> String {
        match self {
            TwilioError::Api {
                code: Some(c), message, ..
            } => format!("twilio {c}: {message}"),
            TwilioError::Api { status, message, .. } => format!("twilio HTTP {status}: {message}"),
            other => format!("twilio: {other}"),
        }
    }

    /// A reqwest failure, without its URL (which holds the account SID), with its causes.
    pub fn transport(e: reqwest::Error) -> TwilioError {
        let sent = !e.is_connect() && !e.is_builder();
        let e = e.without_url();
        let mut message = e.to_string();
        let mut cause = std::error::Error::source(&e);
        while let Some(c) = cause {
            message.push_str(": ");
            message.push_str(&c.to_string());
            cause = c.source();
        }
        TwilioError::Transport {
            message: message.chars().take(300).collect(),
            sent,
        }
    }
}

impl From<TwilioError> for TrunkError {
    /// Retryable and provably never created → [`TrunkError::NotPlaced`] (with `Retry-After`);
    /// retryable otherwise → [`TrunkError::Unavailable`]; any other 4xx Twilio answered, except
    /// the account's own authentication (401, 403), → [`TrunkError::Permanent`] with its code;
    /// the rest → [`TrunkError::Rejected`].
    fn from(e: TwilioError) -> TrunkError {
        if e.is_retryable() {
            let retry_after = match &e {
                TwilioError::Api { retry_after, .. } => retry_after.map(std::time::Duration::from_secs),
                _ => None,
            };
            return if e.never_created() {
                TrunkError::NotPlaced {
                    reason: e.to_string(),
                    retry_after,
                }
            } else {
                TrunkError::Unavailable(e.to_string())
            };
        }
        match &e {
            TwilioError::Api { status, code, .. } if (400..500).contains(status) && !matches!(status, 401 | 403) => {
                TrunkError::Permanent {
                    code: *code,
                    reason: e.reason(),
                }
            }
            _ => TrunkError::Rejected(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(status: u16, body: &str) -> TwilioError {
        TwilioError::from_response(status, body)
    }

    #[test]
    fn classes_of_twilio_errors() {
        // (status, body, retryable, never created, code)
        let table: &[(u16, &str, bool, bool, Option<u32>)] = &[
            (
                429,
                r#"{"code":20429,"message":"Too Many Requests","status":429}"#,
                true,
                true,
                Some(20429),
            ),
            (
                400,
                r#"{"code":20429,"message":"Too Many Requests","status":400}"#,
                true,
                true,
                Some(20429),
            ),
            (503, "<html>Service Unavailable</html>", true, true, None),
            (
                500,
                r#"{"code":20500,"message":"Internal Server Error"}"#,
                true,
                false,
                Some(20500),
            ),
            (502, "", true, false, None),
            (
                400,
                r#"{"code":21211,"message":"Invalid 'To' Phone Number","status":400}"#,
                false,
                true,
                Some(21211),
            ),
            (
                400,
                r#"{"code":21214,"message":"'To' phone number cannot be reached"}"#,
                false,
                true,
                Some(21214),
            ),
            (
                400,
                r#"{"code":21215,"message":"Geo Permission configuration is not permitting call"}"#,
                false,
                true,
                Some(21215),
            ),
            (
                400,
                r#"{"code":21216,"message":"Account not allowed to call this number"}"#,
                false,
                true,
                Some(21216),
            ),
            (
                400,
                r#"{"code":21217,"message":"Phone number does not appear to be valid"}"#,
                false,
                true,
                Some(21217),
            ),
            (
                401,
                r#"{"code":20003,"message":"Authenticate"}"#,
                false,
                true,
                Some(20003),
            ),
            (
                422,
                r#"{"title":"Invalid request","detail":"Your request is not valid"}"#,
                false,
                true,
                None,
            ),
        ];
        for &(status, body, retry, never, code) in table {
            let e = api(status, body);
            assert_eq!(e.is_retryable(), retry, "{status} {body}");
            assert_eq!(e.never_created(), never, "{status} {body}");
            assert_eq!(e.code(), code, "{status} {body}");
            let t = TrunkError::from(e);
            let retry_class = matches!(t, TrunkError::Unavailable(_) | TrunkError::NotPlaced { .. });
            assert_eq!(retry_class, retry, "{t}");
            assert_eq!(matches!(t, TrunkError::NotPlaced { .. }), retry && never, "{t}");
            let permanent = !retry && (400..500).contains(&status) && !matches!(status, 401 | 403);
            assert_eq!(matches!(t, TrunkError::Permanent { .. }), permanent, "{t}");
        }
    }

    #[test]
    fn rejected_errors_name_the_code_and_message() {
        let t = TrunkError::from(api(400, r#"{"code":21211,"message":"Invalid 'To' Phone Number"}"#));
        assert_eq!(
            t.to_string(),
            "trunk refused the number: twilio 21211: Invalid 'To' Phone Number"
        );
        assert!(matches!(t, TrunkError::Permanent { code: Some(21211), .. }));
        let t =
            TrunkError::from(api(429, r#"{"code":20429,"message":"Too Many Requests"}"#).with_retry_after(Some("3")));
        assert!(
            matches!(t, TrunkError::NotPlaced { retry_after: Some(d), .. } if d.as_secs() == 3),
            "{t}"
        );
        let t = TrunkError::from(api(401, r#"{"code":20003,"message":"Authenticate"}"#));
        assert!(matches!(t, TrunkError::Rejected(_)), "{t}");
        let long = "x".repeat(1000);
        let TwilioError::Api { message, .. } = api(400, &long) else {
            unreachable!()
        };
        assert_eq!(message.len(), 200);
    }

    #[test]
    fn transport_failures() {
        let refused = TwilioError::Transport {
            message: "connection refused".into(),
            sent: false,
        };
        assert!(refused.is_retryable() && refused.never_created());
        let timeout = TwilioError::Transport {
            message: "timed out".into(),
            sent: true,
        };
        assert!(timeout.is_retryable() && !timeout.never_created());
    }
}
