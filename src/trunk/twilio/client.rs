//! A hand-written client of Twilio's Calls resource (REST API 2010-04-01, Twilio "Call
//! resource"): form-encoded requests with HTTP basic auth (account SID + auth token, or an API
//! key SID + secret), JSON answers. Create, update (new TwiML or `Status=completed`), fetch, and
//! list by `To` and `StartTime>=`; and whether a caller ID is the account's (IncomingPhoneNumbers,
//! OutgoingCallerIds). Redirects are not followed, so credentials go nowhere else.

use super::callbacks::CallStatus;
use super::error::TwilioError;
use crate::settings::{Secret, TwilioSettings};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use std::time::Duration;

/// Shortest and longest `Timeout` Twilio takes for a new call, in seconds.
pub const TIMEOUT_RANGE: (u64, u64) = (5, 600);

/// The call progress events every call subscribes to (`StatusCallbackEvent`, repeated).
pub const STATUS_EVENTS: [&str; 4] = ["initiated", "ringing", "answered", "completed"];

/// Answering machine detection for a new call (`MachineDetection`), always asynchronous.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MachineDetection {
    /// `Enable`: a verdict as soon as AMD can tell (campaigns that hang up on machines).
    Enable,
    /// `DetectMessageEnd`: for a machine, the verdict waits for the end of its greeting, so the
    /// voicemail message starts after the beep (campaigns that leave one).
    DetectMessageEnd,
}

impl MachineDetection {
    /// The form value.
    pub fn as_str(self) -> &'static str {
        match self {
            MachineDetection::Enable => "Enable",
            MachineDetection::DetectMessageEnd => "DetectMessageEnd",
        }
    }
}

/// What Twilio runs when the call is answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Instructions {
    /// Inline TwiML (`Twiml`).
    Twiml(String),
    /// A TwiML URL Twilio fetches (`Url`).
    Url(String),
}

/// A new outbound call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CreateCall {
    /// Number called, E.164.
    pub to: String,
    /// Caller id, E.164 (a number of the account, or verified).
    pub from: String,
    /// Ring time before `no-answer` (clamped to [`TIMEOUT_RANGE`]).
    pub ring_timeout: Duration,
    /// URL of the status callbacks.
    pub status_callback: String,
    /// AMD mode.
    pub machine_detection: MachineDetection,
    /// URL of the async AMD verdict.
    pub amd_callback: String,
    /// Record the call, and post the recording's `completed` status here (`Record`,
    /// `RecordingStatusCallback`); `None`: no recording.
    pub recording_callback: Option<String>,
    /// What the answered call runs.
    pub instructions: Instructions,
}

impl CreateCall {
    /// The form fields, in order; `StatusCallbackEvent` once per event.
    pub fn form(&self) -> Vec<(&'static str, String)> {
        let timeout = self.ring_timeout.as_secs().clamp(TIMEOUT_RANGE.0, TIMEOUT_RANGE.1);
        let mut f = vec![
            ("To", self.to.clone()),
            ("From", self.from.clone()),
            ("Timeout", timeout.to_string()),
            ("StatusCallback", self.status_callback.clone()),
            ("StatusCallbackMethod", "POST".into()),
        ];
        f.extend(STATUS_EVENTS.iter().map(|e| ("StatusCallbackEvent", e.to_string())));
        f.extend([
            ("MachineDetection", self.machine_detection.as_str().to_string()),
            ("AsyncAmd", "true".into()),
            ("AsyncAmdStatusCallback", self.amd_callback.clone()),
            ("AsyncAmdStatusCallbackMethod", "POST".into()),
        ]);
        if let Some(url) = &self.recording_callback {
            f.extend([
                ("Record", "true".into()),
                ("RecordingStatusCallback", url.clone()),
                ("RecordingStatusCallbackMethod", "POST".into()),
            ]);
        }
        f.push(match &self.instructions {
            Instructions::Twiml(t) => ("Twiml", t.clone()),
            Instructions::Url(u) => ("Url", u.clone()),
        });
        f
    }
}

/// A change to a live call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CallUpdate {
    /// Replace what the call runs now (`Twiml`): a message then `<Hangup/>`.
    Twiml(String),
    /// End the call (`Status=completed`; a call not yet answered is cancelled).
    Complete,
}

impl CallUpdate {
    fn form(&self) -> Vec<(&'static str, String)> {
        match self {
            CallUpdate::Twiml(t) => vec![("Twiml", t.clone())],
            CallUpdate::Complete => vec![("Status", "completed".into())],
        }
    }
}

/// The fields dialerd reads from a Call resource.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct CallResource {
    /// The call's SID (`CA…`).
    pub sid: String,
    /// Where the call stands.
    pub status: CallStatus,
    /// Number called.
    #[serde(default)]
    pub to: Option<String>,
    /// Caller id.
    #[serde(default)]
    pub from: Option<String>,
    /// AMD verdict, once known.
    #[serde(default)]
    pub answered_by: Option<String>,
    /// When Twilio created the call (RFC 2822), queued calls included.
    #[serde(default)]
    pub date_created: Option<String>,
    /// When the call started (RFC 2822); empty while queued.
    #[serde(default)]
    pub start_time: Option<String>,
    /// When it ended (RFC 2822).
    #[serde(default)]
    pub end_time: Option<String>,
    /// Length in seconds, as a string.
    #[serde(default)]
    pub duration: Option<String>,
}

#[derive(Deserialize)]
struct CallPage {
    calls: Vec<CallResource>,
}

/// A number the account may present as caller ID, as Twilio lists it: one of its
/// IncomingPhoneNumbers (`PN…`) or a verified OutgoingCallerId (`PN…`).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct AccountNumber {
    /// The resource's SID.
    #[serde(default)]
    pub sid: Option<String>,
    /// The number, E.164 (nullable in Twilio's spec).
    #[serde(default)]
    pub phone_number: Option<String>,
}

/// One page of `GET IncomingPhoneNumbers.json` (the list is required: a page without it is
/// not Twilio's answer, and must not read as "not owned").
#[derive(Deserialize)]
struct IncomingNumberPage {
    incoming_phone_numbers: Vec<AccountNumber>,
}

/// One page of `GET OutgoingCallerIds.json`.
#[derive(Deserialize)]
struct CallerIdPage {
    outgoing_caller_ids: Vec<AccountNumber>,
}

/// Largest page Twilio returns when listing (`PageSize`).
pub const MAX_PAGE_SIZE: u32 = 1000;

/// The Twilio REST client of one account.
#[derive(Clone)]
pub struct TwilioClient {
    http: reqwest::Client,
    base: String,
    account_sid: String,
    user: String,
    password: Secret,
}

impl std::fmt::Debug for TwilioClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TwilioClient")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

impl TwilioClient {
    /// A client for the `[twilio]` settings: an API key pair when both halves are set, else the
    /// account SID and auth token.
    ///
    /// Errors: [`TwilioError::Config`] without an account SID or a credential, or when the
    /// HTTP client cannot be built.
    pub fn new(s: &TwilioSettings) -> Result<TwilioClient, TwilioError> {
        let account_sid = s
            .account_sid
            .clone()
            .filter(|a| !a.is_empty())
            .ok_or(TwilioError::Config(
                "no [twilio] account_sid (DIALERD__TWILIO__ACCOUNT_SID)",
            ))?;
        let nonempty = |x: &Option<Secret>| x.clone().filter(|v| !v.expose().is_empty());
        let (user, password) = match (
            s.api_key_sid.clone().filter(|k| !k.is_empty()),
            nonempty(&s.api_key_secret),
        ) {
            (Some(key), Some(secret)) => (key, secret),
            _ => (
                account_sid.clone(),
                nonempty(&s.auth_token).ok_or(TwilioError::Config(
                    "no [twilio] auth_token, nor api_key_sid with api_key_secret",
                ))?,
            ),
        };
        let http = reqwest::Client::builder()
            .timeout(s.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|_| TwilioError::Config("the HTTP client could not be built"))?;
        Ok(TwilioClient {
            http,
            base: s.base_url.trim_end_matches('/').to_string(),
            account_sid,
            user,
            password,
        })
    }

    /// The account SID.
    pub fn account_sid(&self) -> &str {
        &self.account_sid
    }

    fn url(&self, tail: &str) -> String {
        format!("{}/2010-04-01/Accounts/{}/{tail}", self.base, self.account_sid)
    }

    async fn send<T: serde::de::DeserializeOwned>(
        &self,
        op: &'static str,
        req: reqwest::RequestBuilder,
    ) -> Result<T, TwilioError> {
        let started = std::time::Instant::now();
        let result = self.send_timed(req).await;
        let code = result.as_ref().err().map(|e| match e {
            TwilioError::Api { status, .. } => status.to_string(),
            TwilioError::Transport { .. } => "transport".to_string(),
            TwilioError::Decode(_) => "decode".to_string(),
            TwilioError::Config(_) => "config".to_string(),
        });
        crate::telemetry::trunk_request("twilio", op, started.elapsed().as_secs_f64(), code);
        result
    }

    async fn send_timed<T: serde::de::DeserializeOwned>(&self, req: reqwest::RequestBuilder) -> Result<T, TwilioError> {
        let resp = req
            .basic_auth(&self.user, Some(self.password.expose()))
            .send()
            .await
            .map_err(TwilioError::transport)?;
        let status = resp.status();
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = resp.text().await.map_err(TwilioError::transport)?;
        if !status.is_success() {
            return Err(TwilioError::from_response(status.as_u16(), &body).with_retry_after(retry_after.as_deref()));
        }
        serde_json::from_str(&body).map_err(|e| TwilioError::Decode(e.to_string()))
    }

    /// Places a call (`POST Calls.json`).
    ///
    /// Errors: [`TwilioError`]; see [`TwilioError::is_retryable`] and [`TwilioError::never_created`].
    pub async fn create_call(&self, call: &CreateCall) -> Result<CallResource, TwilioError> {
        self.create_call_form(&call.form()).await
    }

    /// Places a call from raw form fields (those of [`CreateCall::form`], or a variation of
    /// them: how tests send a request Twilio must refuse).
    ///
    /// Errors: as [`TwilioClient::create_call`].
    pub async fn create_call_form(&self, form: &[(&'static str, String)]) -> Result<CallResource, TwilioError> {
        self.send("create", self.http.post(self.url("Calls.json")).form(form))
            .await
    }

    /// Changes a live call (`POST Calls/{Sid}.json`).
    ///
    /// Errors: [`TwilioError`]; a call already over is a 4xx (Twilio 21220).
    pub async fn update_call(&self, sid: &str, update: &CallUpdate) -> Result<CallResource, TwilioError> {
        self.send(
            "update",
            self.http
                .post(self.url(&format!("Calls/{sid}.json")))
                .form(&update.form()),
        )
        .await
    }

    /// Reads a call (`GET Calls/{Sid}.json`).
    ///
    /// Errors: [`TwilioError`]; an unknown SID is a 404 (Twilio 20404).
    pub async fn fetch_call(&self, sid: &str) -> Result<CallResource, TwilioError> {
        self.send("fetch", self.http.get(self.url(&format!("Calls/{sid}.json"))))
            .await
    }

    /// Calls to `to` created at or after `since` (UTC), newest first: one page of up to
    /// [`MAX_PAGE_SIZE`] of `GET Calls.json?To=…`, filtered here on `date_created` (Twilio's
    /// `StartTime>=` filter takes dates only and skips calls still queued, which have no start
    /// time). How a call whose SID was never stored is found after a crash.
    ///
    /// Errors: [`TwilioError`].
    pub async fn list_calls(&self, to: &str, since: DateTime<Utc>) -> Result<Vec<CallResource>, TwilioError> {
        let query = [("To", to.to_string()), ("PageSize", MAX_PAGE_SIZE.to_string())];
        let page: CallPage = self
            .send("list", self.http.get(self.url("Calls.json")).query(&query))
            .await?;
        let created = |c: &CallResource| {
            c.date_created
                .as_deref()
                .and_then(|t| DateTime::parse_from_rfc2822(t).ok())
                .map(|t| t.with_timezone(&Utc))
        };
        Ok(page
            .calls
            .into_iter()
            .filter(|c| created(c).is_some_and(|t| t >= since))
            .collect())
    }

    /// The account's phone numbers matching `number`: one page of
    /// `GET IncomingPhoneNumbers.json?PhoneNumber=…` (Twilio matches partial numbers here, so
    /// the answer may hold others; see [`TwilioClient::may_present`]).
    ///
    /// Errors: [`TwilioError`].
    pub async fn list_incoming_numbers(&self, number: &str) -> Result<Vec<AccountNumber>, TwilioError> {
        let query = [("PhoneNumber", number)];
        let page: IncomingNumberPage = self
            .send(
                "list_incoming_numbers",
                self.http.get(self.url("IncomingPhoneNumbers.json")).query(&query),
            )
            .await?;
        Ok(page.incoming_phone_numbers)
    }

    /// The account's verified caller IDs matching `number`: one page of
    /// `GET OutgoingCallerIds.json?PhoneNumber=…`.
    ///
    /// Errors: [`TwilioError`].
    pub async fn list_outgoing_caller_ids(&self, number: &str) -> Result<Vec<AccountNumber>, TwilioError> {
        let query = [("PhoneNumber", number)];
        let page: CallerIdPage = self
            .send(
                "list_caller_ids",
                self.http.get(self.url("OutgoingCallerIds.json")).query(&query),
            )
            .await?;
        Ok(page.outgoing_caller_ids)
    }

    /// Whether the account may present `number` (E.164) as `From`: it is one of the account's
    /// IncomingPhoneNumbers, or else a verified OutgoingCallerId. Only an entry whose
    /// `phone_number` is `number` itself counts; the caller IDs are asked only when the
    /// account's numbers do not hold it.
    ///
    /// Errors: [`TwilioError`] from either request.
    pub async fn may_present(&self, number: &str) -> Result<bool, TwilioError> {
        let is = |n: &AccountNumber| n.phone_number.as_deref() == Some(number);
        if self.list_incoming_numbers(number).await?.iter().any(is) {
            return Ok(true);
        }
        Ok(self.list_outgoing_caller_ids(number).await?.iter().any(is))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call() -> CreateCall {
        CreateCall {
            to: "+14155550101".into(),
            from: "+14155550100".into(),
            ring_timeout: Duration::from_secs(25),
            status_callback: "https://d.example/v1/trunk/twilio/status?campaign=c&contact=1&attempt=1".into(),
            machine_detection: MachineDetection::DetectMessageEnd,
            amd_callback: "https://d.example/v1/trunk/twilio/amd?campaign=c&contact=1&attempt=1".into(),
            recording_callback: None,
            instructions: Instructions::Twiml("<Response><Hangup/></Response>".into()),
        }
    }

    #[test]
    fn create_form_has_every_field_twilio_needs() {
        let f = call().form();
        let get = |k: &str| {
            f.iter()
                .filter(|(n, _)| *n == k)
                .map(|(_, v)| v.as_str())
                .collect::<Vec<_>>()
        };
        assert_eq!(get("To"), ["+14155550101"]);
        assert_eq!(get("From"), ["+14155550100"]);
        assert_eq!(get("Timeout"), ["25"]);
        assert_eq!(
            get("StatusCallbackEvent"),
            ["initiated", "ringing", "answered", "completed"]
        );
        assert_eq!(get("MachineDetection"), ["DetectMessageEnd"]);
        assert_eq!(get("AsyncAmd"), ["true"]);
        assert_eq!(get("AsyncAmdStatusCallback").len(), 1);
        assert_eq!(get("Twiml"), ["<Response><Hangup/></Response>"]);
        assert!(get("Url").is_empty());
        assert!(get("Record").is_empty(), "no recording unless asked");
        let recorded = CreateCall {
            recording_callback: Some(
                "https://d.example/v1/trunk/twilio/recording?campaign=c&contact=1&attempt=1".into(),
            ),
            ..call()
        }
        .form();
        let get = |k: &str| {
            recorded
                .iter()
                .filter(|(n, _)| *n == k)
                .map(|(_, v)| v.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(get("Record"), ["true"]);
        assert_eq!(get("RecordingStatusCallbackMethod"), ["POST"]);
        assert_eq!(get("RecordingStatusCallback").len(), 1);
    }

    #[test]
    fn timeout_is_clamped_and_url_mode_sends_url() {
        let mut c = call();
        c.ring_timeout = Duration::from_secs(3600);
        c.instructions = Instructions::Url("https://agent.example/twiml".into());
        let f = c.form();
        assert!(f.contains(&("Timeout", "600".into())));
        assert!(f.contains(&("Url", "https://agent.example/twiml".into())));
        assert!(!f.iter().any(|(n, _)| *n == "Twiml"));
    }

    #[test]
    fn the_client_needs_an_account_and_a_credential_and_hides_them() {
        let mut s = TwilioSettings::default();
        assert!(matches!(TwilioClient::new(&s), Err(TwilioError::Config(_))));
        s.account_sid = Some("AC123".into());
        assert!(matches!(TwilioClient::new(&s), Err(TwilioError::Config(_))));
        s.auth_token = Some(Secret::new("tok-secret"));
        let c = TwilioClient::new(&s).unwrap();
        assert_eq!(c.user, "AC123");
        assert!(!format!("{c:?}").contains("tok-secret"));
        s.api_key_sid = Some("SK9".into());
        s.api_key_secret = Some(Secret::new("key-secret"));
        let c = TwilioClient::new(&s).unwrap();
        assert_eq!((c.user.as_str(), c.password.expose()), ("SK9", "key-secret"));
        assert!(!format!("{c:?}").contains("key-secret"));
    }
}
