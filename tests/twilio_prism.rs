//! The Twilio REST client against Prism serving Twilio's own OpenAPI file (a patched copy in
//! tests/peers): every request the adapter makes (create in each connect mode, update with
//! TwiML and with `Status=completed`, fetch, list by `To` and `StartTime>=`) is accepted, and
//! a create without `From` gets Prism's 422, which the client reports as permanent. The
//! caller-ID lookups (`IncomingPhoneNumbers`, `OutgoingCallerIds`) are checked against the same
//! Prism in `tests/caller_id_ownership.rs`.
//! tests/run.sh starts Prism and sets DIALERD_TEST_PRISM_TWILIO; unset, each test says it skipped.

use chrono::Utc;
use dialerd::settings::{Secret, TwilioSettings};
use dialerd::trunk::TrunkError;
use dialerd::trunk::twilio::twiml::{self, AgentConnect, Announcement, CallParameters};
use dialerd::trunk::twilio::{CallStatus, CallUpdate, CreateCall, Instructions, MachineDetection, TwilioClient};
use std::time::Duration;

const ACCOUNT: &str = "AC0123456789abcdef0123456789abcdef";

fn client() -> Option<TwilioClient> {
    let Ok(base) = std::env::var("DIALERD_TEST_PRISM_TWILIO") else {
        eprintln!("skipped: DIALERD_TEST_PRISM_TWILIO is not set (tests/run.sh starts Prism and sets it)");
        return None;
    };
    let settings = TwilioSettings {
        account_sid: Some(ACCOUNT.into()),
        auth_token: Some(Secret::new("prism-test-token")),
        base_url: base,
        ..TwilioSettings::default()
    };
    Some(TwilioClient::new(&settings).unwrap())
}

fn params() -> CallParameters {
    CallParameters {
        campaign: "spring".into(),
        contact: 42,
        attempt: 1,
        agent_id: "agent_456".into(),
    }
}

fn create(instructions: Instructions, amd: MachineDetection) -> CreateCall {
    let cb = "https://dialer.example.com/v1/trunk/twilio";
    let q = "campaign=spring&contact=42&attempt=1";
    CreateCall {
        to: "+14155550101".into(),
        from: "+14155550100".into(),
        ring_timeout: Duration::from_secs(25),
        status_callback: format!("{cb}/status?{q}"),
        machine_detection: amd,
        amd_callback: format!("{cb}/amd?{q}"),
        recording_callback: None,
        instructions,
    }
}

#[tokio::test]
async fn prism_accepts_a_call_in_every_connect_mode() {
    let Some(c) = client() else { return };
    let stream = AgentConnect::Stream {
        url: "wss://agent.example.com/media".into(),
    };
    let sip = AgentConnect::Sip {
        uri: "sip:agent_456@sip.agent.example.com".into(),
    };
    for (to, amd) in [
        (&stream, MachineDetection::DetectMessageEnd),
        (&sip, MachineDetection::Enable),
    ] {
        let t = twiml::connect(to, &params()).unwrap();
        let call = c.create_call(&create(Instructions::Twiml(t), amd)).await.unwrap();
        assert!(call.sid.starts_with("CA"), "{call:?}");
    }
    let url = Instructions::Url("https://agent.example.com/twiml".into());
    let call = c.create_call(&create(url, MachineDetection::Enable)).await.unwrap();
    assert!(call.sid.starts_with("CA"));
    // `[trunk] record = true`: Record and its callback, as the spec takes them.
    let recorded = CreateCall {
        recording_callback: Some(
            "https://dialer.example.com/v1/trunk/twilio/recording?campaign=spring&contact=42&attempt=1".into(),
        ),
        ..create(Instructions::Twiml(twiml::hangup()), MachineDetection::Enable)
    };
    let call = c.create_call(&recorded).await.unwrap();
    assert!(call.sid.starts_with("CA"), "{call:?}");
}

#[tokio::test]
async fn prism_accepts_updates_fetch_and_list() {
    let Some(c) = client() else { return };
    let sid = "CA0123456789abcdef0123456789abcdef";
    let vm = twiml::announce_then_hangup(&Announcement::Say("Hi Ann, this is Acme & co. Call us back.".into()));
    c.update_call(sid, &CallUpdate::Twiml(vm)).await.unwrap();
    let play = twiml::announce_then_hangup(&Announcement::Play("https://cdn.example.com/vm.mp3".into()));
    c.update_call(sid, &CallUpdate::Twiml(play)).await.unwrap();
    c.update_call(sid, &CallUpdate::Complete).await.unwrap();
    let call = c.fetch_call(sid).await.unwrap();
    assert!(call.sid.starts_with("CA"));
    assert!(
        matches!(
            call.status,
            CallStatus::Completed | CallStatus::InProgress | CallStatus::Queued
        ),
        "{call:?}"
    );
    let calls = c
        // The spec's examples were created in 2010.
        .list_calls("+14155550101", Utc::now() - chrono::TimeDelta::days(365 * 30))
        .await
        .unwrap();
    assert!(!calls.is_empty());
}

#[tokio::test]
async fn a_create_without_from_is_a_permanent_error() {
    let Some(c) = client() else { return };
    let form: Vec<_> = create(Instructions::Twiml(twiml::hangup()), MachineDetection::Enable)
        .form()
        .into_iter()
        .filter(|(name, _)| *name != "From")
        .collect();
    let e = c.create_call_form(&form).await.unwrap_err();
    assert!(
        matches!(e, dialerd::trunk::twilio::TwilioError::Api { status: 422, .. }),
        "{e}"
    );
    assert!(!e.is_retryable());
    assert!(e.never_created());
    let t = TrunkError::from(e);
    // A 4xx about the request is permanent: the number is not dialled again.
    assert!(matches!(t, TrunkError::Permanent { .. }), "{t}");
    assert!(
        !t.to_string().contains("prism-test-token") && !t.to_string().contains(ACCOUNT),
        "{t}"
    );
}

#[tokio::test]
async fn a_closed_port_is_retryable_and_created_nothing() {
    // No Prism needed: a port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let settings = TwilioSettings {
        account_sid: Some(ACCOUNT.into()),
        auth_token: Some(Secret::new("closed-port-token")),
        base_url: format!("http://127.0.0.1:{port}"),
        ..TwilioSettings::default()
    };
    let c = TwilioClient::new(&settings).unwrap();
    let e = c.fetch_call("CA1").await.unwrap_err();
    assert!(e.is_retryable() && e.never_created(), "{e}");
    let text = e.to_string();
    assert!(!text.contains(ACCOUNT) && !text.contains("closed-port-token"), "{text}");
}
