//! `Trunk::unowned_caller_ids`, against real peers on loopback. Twilio: the call-flow emulator
//! (`twilio_emu`) serving `IncomingPhoneNumbers.json` and `OutgoingCallerIds.json` from the
//! account's numbers and verified caller IDs: a number of the account is owned, a verified caller
//! ID is owned, a number that only partly matches one is not, an unknown number is reported, the
//! answer keeps the input's order (each number once), and a lookup Twilio fails is an error of
//! its class, never a verdict; then Prism on Twilio's OpenAPI file accepts both requests (skipped
//! unless tests/run.sh set DIALERD_TEST_PRISM_TWILIO). LiveKit: the mock (`livekit_mock`) lists
//! the project's outbound SIP trunks; the numbers on the campaign's trunk are owned, others are
//! reported in order, a trunk without numbers presents any, an unknown trunk is an error. The sim
//! trunk cannot tell.

#[path = "livekit_mock/mod.rs"]
mod livekit_mock;
#[path = "twilio_emu/mod.rs"]
mod twilio_emu;

use dialerd::campaign::livekit_file::LivekitFile;
use dialerd::core::VoicemailAction;
use dialerd::settings::{LivekitSettings, Secret, TwilioSettings};
use dialerd::trunk::livekit::{LivekitAccount, LivekitHub};
use dialerd::trunk::twilio::twiml::AgentConnect;
use dialerd::trunk::twilio::{TwilioAccount, TwilioClient, TwilioHub, TwilioTrunk};
use dialerd::trunk::{Trunk, TrunkError, TrunkEvent};
use livekit_protocol as proto;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

fn strings(xs: &[&str]) -> Vec<String> {
    xs.iter().map(|x| x.to_string()).collect()
}

// ---------------------------------------------------------------------------------------------
// Twilio

const INCOMING: &str = "IncomingPhoneNumbers";
const CALLER_IDS: &str = "OutgoingCallerIds";

fn twilio_settings(base: &str, account: &str, token: &str) -> TwilioSettings {
    TwilioSettings {
        account_sid: Some(account.into()),
        auth_token: Some(Secret::new(token)),
        base_url: base.into(),
        ..TwilioSettings::default()
    }
}

/// A campaign's trunk on the account at `base` with `token`; the event channel is kept open.
fn twilio_trunk(base: &str, account: &str, token: &str) -> (TwilioTrunk, mpsc::Receiver<TrunkEvent>) {
    let settings = twilio_settings(base, account, token);
    let account = TwilioAccount::new(
        TwilioClient::new(&settings).unwrap(),
        Arc::new(TwilioHub::new()),
        "https://dialer.example.com/".into(),
        &settings,
    );
    let (tx, rx) = mpsc::channel(16);
    let connect = AgentConnect::Stream {
        url: "wss://agent.example.com/media".into(),
    };
    (account.trunk("spring", connect, VoicemailAction::Hangup, tx), rx)
}

/// The emulator with the account's `incoming` numbers and verified `caller_ids`, a trunk on it
/// and its URL.
async fn emulator(
    incoming: &[&str],
    caller_ids: &[&str],
) -> (twilio_emu::Shared, TwilioTrunk, mpsc::Receiver<TrunkEvent>, String) {
    let (emu, url) = twilio_emu::start(|_, _| twilio_emu::Script::Busy).await;
    {
        let mut e = emu.lock().unwrap();
        e.incoming_numbers = strings(incoming);
        e.caller_ids = strings(caller_ids);
    }
    let (trunk, rx) = twilio_trunk(&url, twilio_emu::ACCOUNT, twilio_emu::TOKEN);
    (emu, trunk, rx, url)
}

fn lookups(emu: &twilio_emu::Shared) -> Vec<(&'static str, String)> {
    emu.lock().unwrap().lookups.clone()
}

#[tokio::test]
async fn a_number_of_the_account_is_owned() {
    let (emu, trunk, _rx, _) = emulator(&["+14155550100", "+14155550101"], &[]).await;
    let unowned = trunk.unowned_caller_ids(&strings(&["+14155550101"])).await.unwrap();
    assert_eq!(unowned, Some(vec![]));
    // Found among the account's numbers: the caller IDs are not asked.
    assert_eq!(lookups(&emu), [(INCOMING, "+14155550101".to_string())]);
}

#[tokio::test]
async fn a_verified_caller_id_is_owned() {
    let (emu, trunk, _rx, _) = emulator(&["+14155550100"], &["+14155550122"]).await;
    let unowned = trunk.unowned_caller_ids(&strings(&["+14155550122"])).await.unwrap();
    assert_eq!(unowned, Some(vec![]));
    assert_eq!(
        lookups(&emu),
        [
            (INCOMING, "+14155550122".to_string()),
            (CALLER_IDS, "+14155550122".to_string())
        ]
    );
}

#[tokio::test]
async fn an_unknown_number_is_reported_unowned() {
    let (emu, trunk, _rx, _) = emulator(&["+14155550100"], &["+14155550122"]).await;
    let unowned = trunk.unowned_caller_ids(&strings(&["+14155550199"])).await.unwrap();
    assert_eq!(unowned, Some(strings(&["+14155550199"])));
    // Both lists were asked.
    assert_eq!(
        lookups(&emu),
        [
            (INCOMING, "+14155550199".to_string()),
            (CALLER_IDS, "+14155550199".to_string())
        ]
    );
}

#[tokio::test]
async fn a_number_twilio_matches_only_in_part_is_not_owned() {
    // IncomingPhoneNumbers matches partial numbers: asking for a prefix of an owned number lists
    // that number, which is not the one asked.
    let (emu, trunk, _rx, url) = emulator(&["+14155550100"], &[]).await;
    let asked = "+1415555010";
    let client = TwilioClient::new(&twilio_settings(&url, twilio_emu::ACCOUNT, twilio_emu::TOKEN)).unwrap();
    let listed = client.list_incoming_numbers(asked).await.unwrap();
    assert_eq!(
        listed.iter().map(|n| n.phone_number.as_deref()).collect::<Vec<_>>(),
        [Some("+14155550100")]
    );
    assert!(!client.may_present(asked).await.unwrap());
    let unowned = trunk.unowned_caller_ids(&strings(&[asked])).await.unwrap();
    assert_eq!(unowned, Some(strings(&[asked])));
    assert!(lookups(&emu).iter().all(|(_, n)| n == asked));
}

#[tokio::test]
async fn unowned_numbers_come_back_in_input_order_each_once() {
    let (emu, trunk, _rx, _) = emulator(&["+14155550100", "+14155550101"], &["+14155550122"]).await;
    let asked = strings(&[
        "+14155550199",
        "+14155550100",
        "+14155550198",
        "+14155550122",
        "+14155550197",
        "+14155550199",
        "+14155550101",
    ]);
    let unowned = trunk.unowned_caller_ids(&asked).await.unwrap();
    assert_eq!(
        unowned,
        Some(strings(&["+14155550199", "+14155550198", "+14155550197"]))
    );
    // Each distinct number asked once, in order: the repeated one is not asked again.
    let asked_incoming: Vec<String> = lookups(&emu)
        .into_iter()
        .filter(|(r, _)| *r == INCOMING)
        .map(|(_, n)| n)
        .collect();
    assert_eq!(
        asked_incoming,
        strings(&[
            "+14155550199",
            "+14155550100",
            "+14155550198",
            "+14155550122",
            "+14155550197",
            "+14155550101"
        ])
    );
    // Nothing asked, nothing requested.
    let before = lookups(&emu).len();
    assert_eq!(trunk.unowned_caller_ids(&[]).await.unwrap(), Some(vec![]));
    assert_eq!(lookups(&emu).len(), before);
}

#[tokio::test]
async fn a_lookup_twilio_fails_is_an_error_of_its_class() {
    let (emu, trunk, _rx, _) = emulator(&["+14155550100"], &[]).await;
    emu.lock().unwrap().lookup_errors.extend([
        ("+14155550500".to_string(), (500, 20500)),
        ("+14155550429".to_string(), (429, 20429)),
    ]);
    // The owned number before the failing one does not make the answer partial.
    let e = trunk
        .unowned_caller_ids(&strings(&["+14155550100", "+14155550500", "+14155550199"]))
        .await
        .unwrap_err();
    assert!(matches!(e, TrunkError::Unavailable(_)), "{e}");
    // The check stopped at the failure.
    assert!(!lookups(&emu).iter().any(|(_, n)| n == "+14155550199"));
    let e = trunk.unowned_caller_ids(&strings(&["+14155550429"])).await.unwrap_err();
    assert!(matches!(e, TrunkError::NotPlaced { .. }), "{e}");
    // A credential Twilio refuses: refused again next time, and the token is in no message.
    let url = {
        let (_, url) = twilio_emu::start(|_, _| twilio_emu::Script::Busy).await;
        url
    };
    let (wrong, _rx2) = twilio_trunk(&url, twilio_emu::ACCOUNT, "not-the-token-3b1f");
    let e = wrong.unowned_caller_ids(&strings(&["+14155550100"])).await.unwrap_err();
    assert!(matches!(e, TrunkError::Rejected(_)), "{e}");
    assert!(!e.to_string().contains("not-the-token-3b1f"), "{e}");
}

#[tokio::test]
async fn the_sim_trunk_cannot_tell() {
    let model = dialerd::sim::CallModel::new(&dialerd::campaign::file::SimFile::default()).unwrap();
    let (tx, _rx) = mpsc::channel(4);
    let sim = dialerd::trunk::sim::SimTrunk::new(model, 1, 1.0, tx);
    assert_eq!(sim.unowned_caller_ids(&strings(&["+14155550100"])).await.unwrap(), None);
}

/// Prism serving Twilio's OpenAPI file answers each endpoint with its first example, whatever
/// the number asked: `+18089255327` among IncomingPhoneNumbers, `+141586753096` among
/// OutgoingCallerIds. So the spec accepts both requests, its answers parse, and only the number
/// each example names is owned.
#[tokio::test]
async fn prism_accepts_the_caller_id_lookups() {
    let Ok(base) = std::env::var("DIALERD_TEST_PRISM_TWILIO") else {
        eprintln!("skipped: DIALERD_TEST_PRISM_TWILIO is not set (tests/run.sh starts Prism and sets it)");
        return;
    };
    let account = "AC0123456789abcdef0123456789abcdef";
    let client = TwilioClient::new(&twilio_settings(&base, account, "prism-test-token")).unwrap();
    let incoming = client.list_incoming_numbers("+18089255327").await.unwrap();
    assert_eq!(
        incoming.iter().map(|n| n.phone_number.as_deref()).collect::<Vec<_>>(),
        [Some("+18089255327")]
    );
    assert!(
        incoming[0].sid.as_deref().is_some_and(|s| s.starts_with("PN")),
        "{incoming:?}"
    );
    let verified = client.list_outgoing_caller_ids("+141586753096").await.unwrap();
    assert_eq!(
        verified.iter().map(|n| n.phone_number.as_deref()).collect::<Vec<_>>(),
        [Some("+141586753096")]
    );
    let (trunk, _rx) = twilio_trunk(&base, account, "prism-test-token");
    let unowned = trunk
        .unowned_caller_ids(&strings(&["+14155550199", "+18089255327", "+141586753096"]))
        .await
        .unwrap();
    assert_eq!(unowned, Some(strings(&["+14155550199"])));
}

// ---------------------------------------------------------------------------------------------
// LiveKit

fn livekit_file(sip_trunk_id: &str) -> LivekitFile {
    LivekitFile {
        sip_trunk_id: sip_trunk_id.into(),
        agent_name: "renewals-agent".into(),
        room_prefix: None,
        max_call_duration: None,
        message_timeout: None,
    }
}

fn outbound(id: &str, numbers: &[&str]) -> proto::SipOutboundTrunkInfo {
    proto::SipOutboundTrunkInfo {
        sip_trunk_id: id.into(),
        name: format!("trunk {id}"),
        address: "sip.carrier.example.com".into(),
        numbers: strings(numbers),
        ..Default::default()
    }
}

/// The mock with three outbound trunks, and the campaign's trunk on `sip_trunk_id` signed with
/// `secret`.
async fn livekit(sip_trunk_id: &str, secret: &str) -> (livekit_mock::Mock, dialerd::trunk::livekit::LivekitTrunk) {
    let mock = livekit_mock::Mock::start(HashMap::new(), false).await;
    mock.set_outbound_trunks(vec![
        outbound("ST_other", &["+14155550177"]),
        outbound("ST_outbound", &["+14155550100", "+14155550101"]),
        outbound("ST_any", &[]),
    ]);
    let settings = LivekitSettings {
        url: Some(mock.url.clone()),
        api_key: Some(Secret::new(livekit_mock::API_KEY)),
        api_secret: Some(Secret::new(secret)),
        timeout: Duration::from_secs(10),
    };
    let account = LivekitAccount::new(&settings, Arc::new(LivekitHub::new())).unwrap();
    let (tx, _rx) = mpsc::channel(4);
    let trunk = account.trunk("spring", &livekit_file(sip_trunk_id), tx);
    (mock, trunk)
}

#[tokio::test]
async fn livekit_numbers_on_the_campaign_s_trunk_are_owned_others_reported_in_order() {
    let (mock, trunk) = livekit("ST_outbound", livekit_mock::API_SECRET).await;
    let owned = trunk
        .unowned_caller_ids(&strings(&["+14155550101", "+14155550100"]))
        .await
        .unwrap();
    assert_eq!(owned, Some(vec![]));
    // On another trunk of the project is not on the campaign's.
    let unowned = trunk
        .unowned_caller_ids(&strings(&[
            "+14155550199",
            "+14155550100",
            "+14155550177",
            "+14155550199",
            "+14155550101",
        ]))
        .await
        .unwrap();
    assert_eq!(unowned, Some(strings(&["+14155550199", "+14155550177"])));
    mock.seen(|s| {
        // The requests passed the mock's grant check (sip.admin).
        assert!(s.refused.is_empty(), "{:?}", s.refused);
        assert_eq!(s.trunk_lists.len(), 2);
    });
}

#[tokio::test]
async fn livekit_a_trunk_without_numbers_presents_any() {
    let (_mock, trunk) = livekit("ST_any", livekit_mock::API_SECRET).await;
    let unowned = trunk
        .unowned_caller_ids(&strings(&["+14155550199", "+14155550177"]))
        .await
        .unwrap();
    assert_eq!(unowned, Some(vec![]));
}

#[tokio::test]
async fn livekit_an_unknown_trunk_or_a_refused_token_is_an_error() {
    let (_mock, trunk) = livekit("ST_missing", livekit_mock::API_SECRET).await;
    let e = trunk.unowned_caller_ids(&strings(&["+14155550100"])).await.unwrap_err();
    assert!(matches!(&e, TrunkError::Rejected(m) if m.contains("ST_missing")), "{e}");
    let (mock, trunk) = livekit("ST_outbound", "not-the-secret-0c4e").await;
    let e = trunk.unowned_caller_ids(&strings(&["+14155550100"])).await.unwrap_err();
    assert!(matches!(e, TrunkError::Rejected(_)), "{e}");
    assert!(!e.to_string().contains("not-the-secret-0c4e"), "{e}");
    mock.seen(|s| {
        assert_eq!(
            s.refused,
            [(
                "livekit.SIP/ListSIPOutboundTrunk".to_string(),
                "unauthenticated".to_string()
            )]
        )
    });
}
