//! A LiveKit server API mock on loopback with the semantics of LiveKit's own `cmd/test-server`:
//! Twirp over `POST /twirp/livekit.<Service>/<Method>` in protobuf or JSON (the response in the
//! request's encoding), the bearer JWT verified with the API secret and the grants each method
//! needs checked as LiveKit's server does (401 `unauthenticated`, 403 `permission_denied`;
//! `roomAdmin` methods also need the token's `room` to be the request's room), and SIP dial
//! failures as the server derives them from a SIP status (Twirp code from LiveKit's
//! `sipCodeToGRPCCode`, meta `sip_status_code` / `sip_status`). Unlike the stateless test-server,
//! each call to a number plays a script (answer after a delay and talk, or a SIP status after a
//! delay) and the mock then posts the webhooks LiveKit would (`participant_joined`,
//! `participant_left`, `room_finished`), signed as LiveKit signs them: `Authorization` is a JWT
//! of the API key whose `sha256` claim is the base64 SHA-256 of the body. It also lists the
//! project's outbound SIP trunks (`SIP.ListSIPOutboundTrunk`, `sip.admin` grant, with the
//! server's `trunk_ids`, `numbers` and page filters) from [`Mock::set_outbound_trunks`].
#![allow(dead_code)]

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine as _;
use livekit_api::access_token::{AccessToken, Claims, TokenVerifier};
use livekit_protocol as proto;
use prost::Message;
use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::Digest as _;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub const API_KEY: &str = "APImockKey7f3a";
pub const API_SECRET: &str = "mock-secret-5d0c2b9e81f4a6c7d3e2";

/// What one call to a number does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Script {
    /// Answered after `ring_ms`; the callee hangs up after `talk_ms` (participant_left,
    /// room_finished), unless the daemon deletes the room first.
    Answer { ring_ms: u64, talk_ms: u64 },
    /// Fails after `ring_ms` with this SIP status (486, 603, 480, 404, 408, 487, ...).
    Sip { code: u16, ring_ms: u64 },
}

/// The SIP status's reason phrase as LiveKit's `SIPStatusCode` names it.
fn sip_status_name(code: u16) -> &'static str {
    match code {
        404 => "SIP_STATUS_NOTFOUND",
        408 => "SIP_STATUS_REQUEST_TIMEOUT",
        480 => "SIP_STATUS_TEMPORARILY_UNAVAILABLE",
        486 => "SIP_STATUS_BUSY_HERE",
        487 => "SIP_STATUS_REQUEST_TERMINATED",
        600 => "SIP_STATUS_GLOBAL_BUSY_EVERYWHERE",
        603 => "SIP_STATUS_GLOBAL_DECLINE",
        _ => "SIP_STATUS_UNKNOWN",
    }
}

/// LiveKit's `sipCodeToGRPCCode` for the codes scripted here, then its defaults by class.
fn twirp_code_of_sip(code: u16) -> &'static str {
    match code {
        486 | 600 | 480 => "resource_exhausted",
        603 | 401 | 403 => "permission_denied",
        404 | 604 => "not_found",
        408 | 504 => "deadline_exceeded",
        487 => "aborted",
        500..=599 => "failed_precondition",
        _ => "invalid_argument",
    }
}

/// Twirp's HTTP status of an error code (`twirp.ServerHTTPStatusFromErrorCode`).
fn http_status(code: &str) -> StatusCode {
    match code {
        "invalid_argument" | "malformed" | "out_of_range" => StatusCode::BAD_REQUEST,
        "unauthenticated" => StatusCode::UNAUTHORIZED,
        "permission_denied" => StatusCode::FORBIDDEN,
        "not_found" | "bad_route" => StatusCode::NOT_FOUND,
        "canceled" | "deadline_exceeded" => StatusCode::REQUEST_TIMEOUT,
        "already_exists" | "aborted" => StatusCode::CONFLICT,
        "resource_exhausted" => StatusCode::TOO_MANY_REQUESTS,
        "failed_precondition" => StatusCode::PRECONDITION_FAILED,
        "unimplemented" => StatusCode::NOT_IMPLEMENTED,
        "unavailable" => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

fn twirp_error(code: &str, msg: &str, meta: Option<serde_json::Value>) -> Response {
    let mut body = serde_json::json!({"code": code, "msg": msg});
    if let Some(m) = meta {
        body["meta"] = m;
    }
    (
        http_status(code),
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// One `CreateSIPParticipant` the mock accepted.
#[derive(Clone, Debug)]
pub struct Dial {
    pub json: bool,
    pub request: proto::CreateSipParticipantRequest,
}

/// What the mock saw.
#[derive(Default)]
pub struct Seen {
    pub dials: Vec<Dial>,
    pub dispatches: Vec<proto::CreateAgentDispatchRequest>,
    pub room_metadata: Vec<(String, String)>,
    pub deleted_rooms: Vec<String>,
    pub removed: Vec<(String, String)>,
    /// Requests refused with (method, Twirp code).
    pub refused: Vec<(String, String)>,
    /// Numbers dialled while a call to them was live.
    pub twice_at_once: Vec<String>,
    /// Webhooks posted: (event, room, status of the daemon's answer).
    pub webhooks: Vec<(String, String, u16)>,
    /// `ListSIPOutboundTrunk` requests answered.
    pub trunk_lists: Vec<proto::ListSipOutboundTrunkRequest>,
}

#[derive(Default)]
struct Inner {
    scripts: HashMap<String, Vec<Script>>,
    calls_to: HashMap<String, usize>,
    /// Live rooms and the number in each.
    live: HashMap<String, String>,
    finished: HashSet<String>,
    /// The project's outbound SIP trunks.
    outbound_trunks: Vec<proto::SipOutboundTrunkInfo>,
    next_event: u64,
    seen: Seen,
}

/// The mock: its base URL, where it posts webhooks, and what it saw.
#[derive(Clone)]
pub struct Mock {
    pub url: String,
    inner: Arc<Mutex<Inner>>,
    webhook_url: Arc<Mutex<Option<String>>>,
    /// Posts every webhook twice (same event id), as a retrying LiveKit may.
    pub duplicate_webhooks: bool,
}

impl Mock {
    /// Starts a mock on 127.0.0.1 with `scripts` per number (the nth call to a number plays the
    /// nth script, the last one repeating).
    pub async fn start(scripts: HashMap<String, Vec<Script>>, duplicate_webhooks: bool) -> Mock {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let mock = Mock {
            url,
            inner: Arc::new(Mutex::new(Inner {
                scripts,
                ..Default::default()
            })),
            webhook_url: Arc::default(),
            duplicate_webhooks,
        };
        let app = Router::new()
            .route("/twirp/{*method}", post(twirp))
            .with_state(mock.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        mock
    }

    /// Where webhooks go (the daemon's `public_url` + the webhook path).
    pub fn set_webhook_url(&self, url: &str) {
        *self.webhook_url.lock().unwrap() = Some(url.to_string());
    }

    /// Sets the project's outbound SIP trunks (`ListSIPOutboundTrunk` lists them by id).
    pub fn set_outbound_trunks(&self, trunks: Vec<proto::SipOutboundTrunkInfo>) {
        self.inner.lock().unwrap().outbound_trunks = trunks;
    }

    /// Reads what the mock saw.
    pub fn seen<T>(&self, f: impl FnOnce(&Seen) -> T) -> T {
        f(&self.inner.lock().unwrap().seen)
    }

    fn script_for(&self, to: &str) -> Script {
        let mut inner = self.inner.lock().unwrap();
        let n = {
            let c = inner.calls_to.entry(to.to_string()).or_default();
            *c += 1;
            *c
        };
        let list = inner.scripts.get(to).cloned().unwrap_or_default();
        list.get(n - 1)
            .or(list.last())
            .copied()
            .unwrap_or(Script::Sip { code: 404, ring_ms: 0 })
    }

    /// Posts one webhook signed as LiveKit signs it; returns the daemon's status.
    pub async fn post_webhook(&self, event: &str, room: &str, identity: Option<&str>) {
        let Some(url) = self.webhook_url.lock().unwrap().clone() else {
            return;
        };
        let id = {
            let mut inner = self.inner.lock().unwrap();
            inner.next_event += 1;
            format!("EV_mock{}", inner.next_event)
        };
        let ev = proto::WebhookEvent {
            event: event.into(),
            id,
            created_at: chrono::Utc::now().timestamp(),
            room: Some(proto::Room {
                name: room.into(),
                sid: format!("RM_{room}"),
                ..Default::default()
            }),
            participant: identity.map(|i| proto::ParticipantInfo {
                identity: i.into(),
                kind: if i == "callee" {
                    proto::participant_info::Kind::Sip as i32
                } else {
                    proto::participant_info::Kind::Agent as i32
                },
                ..Default::default()
            }),
            ..Default::default()
        };
        let body = serde_json::to_string(&ev).unwrap();
        let times = if self.duplicate_webhooks { 2 } else { 1 };
        for _ in 0..times {
            let status = send_signed(&url, &body, API_KEY, API_SECRET).await;
            self.inner
                .lock()
                .unwrap()
                .seen
                .webhooks
                .push((event.into(), room.into(), status));
        }
    }

    /// Ends a live room: the callee leaves, then the room finishes (once).
    async fn finish(&self, room: &str) {
        let was_live = {
            let mut inner = self.inner.lock().unwrap();
            let live = inner.live.remove(room).is_some();
            let fresh = inner.finished.insert(room.to_string());
            live || fresh
        };
        if was_live {
            self.post_webhook("participant_left", room, Some("callee")).await;
            self.post_webhook("room_finished", room, None).await;
        }
    }
}

/// The `Authorization` value LiveKit sends with a webhook of `body`: a JWT signed with the API
/// secret whose `sha256` claim is the base64 SHA-256 of the body.
pub fn webhook_token(body: &str, key: &str, secret: &str) -> String {
    let hash = base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(body.as_bytes()));
    AccessToken::with_api_key(key, secret)
        .with_sha256(&hash)
        .to_jwt()
        .unwrap()
}

/// Posts `body` to `url` signed with `key`/`secret`; returns the HTTP status.
pub async fn send_signed(url: &str, body: &str, key: &str, secret: &str) -> u16 {
    reqwest::Client::new()
        .post(url)
        .header("Authorization", webhook_token(body, key, secret))
        .header("Content-Type", "application/webhook+json")
        .body(body.to_string())
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

/// The grants a method needs (LiveKit `pkg/service/auth.go`, as `cmd/test-server` lists them).
fn authorized(method: &str, claims: &Claims, room: &str) -> bool {
    let v = &claims.video;
    let room_admin = v.room_admin && (room.is_empty() || v.room == room);
    match method {
        "livekit.SIP/CreateSIPParticipant" => claims.sip.call,
        "livekit.SIP/ListSIPOutboundTrunk" => claims.sip.admin,
        "livekit.RoomService/DeleteRoom" | "livekit.RoomService/CreateRoom" => v.room_create,
        "livekit.RoomService/ListRooms" => v.room_list,
        "livekit.RoomService/ListParticipants"
        | "livekit.RoomService/RemoveParticipant"
        | "livekit.RoomService/UpdateRoomMetadata"
        | "livekit.AgentDispatchService/CreateDispatch" => room_admin,
        _ => false,
    }
}

fn decode<T: Message + Default + DeserializeOwned>(json: bool, body: &[u8]) -> Option<T> {
    if json {
        serde_json::from_slice(body).ok()
    } else {
        T::decode(body).ok()
    }
}

fn encode<T: Message + Serialize>(json: bool, msg: &T) -> Response {
    if json {
        (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            serde_json::to_string(msg).unwrap(),
        )
            .into_response()
    } else {
        (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/protobuf")],
            msg.encode_to_vec(),
        )
            .into_response()
    }
}

async fn twirp(State(mock): State<Mock>, Path(method): Path<String>, headers: HeaderMap, body: Bytes) -> Response {
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("json"));
    // The request's room, for room-scoped grants.
    let room = match method.as_str() {
        "livekit.SIP/CreateSIPParticipant" => {
            decode::<proto::CreateSipParticipantRequest>(json, &body).map(|r| r.room_name)
        }
        "livekit.AgentDispatchService/CreateDispatch" => {
            decode::<proto::CreateAgentDispatchRequest>(json, &body).map(|r| r.room)
        }
        "livekit.RoomService/DeleteRoom" => decode::<proto::DeleteRoomRequest>(json, &body).map(|r| r.room),
        "livekit.RoomService/UpdateRoomMetadata" => {
            decode::<proto::UpdateRoomMetadataRequest>(json, &body).map(|r| r.room)
        }
        "livekit.RoomService/RemoveParticipant" => {
            decode::<proto::RoomParticipantIdentity>(json, &body).map(|r| r.room)
        }
        "livekit.RoomService/ListParticipants" => decode::<proto::ListParticipantsRequest>(json, &body).map(|r| r.room),
        // Not room-scoped.
        "livekit.SIP/ListSIPOutboundTrunk" => {
            decode::<proto::ListSipOutboundTrunkRequest>(json, &body).map(|_| String::new())
        }
        _ => return twirp_error("bad_route", &format!("no handler for {method}"), None),
    };
    let Some(room) = room else {
        return twirp_error("malformed", "the body does not decode", None);
    };
    let refuse = |code: &str| {
        mock.inner
            .lock()
            .unwrap()
            .seen
            .refused
            .push((method.clone(), code.to_string()));
        twirp_error(code, &format!("mock: {code}"), None)
    };
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim_start_matches("Bearer ").trim().to_string())
        .unwrap_or_default();
    let Ok(claims) = TokenVerifier::with_api_key(API_KEY, API_SECRET).verify(&token) else {
        return refuse("unauthenticated");
    };
    if !authorized(&method, &claims, &room) {
        return refuse("permission_denied");
    }
    match method.as_str() {
        "livekit.SIP/CreateSIPParticipant" => {
            let req: proto::CreateSipParticipantRequest = decode(json, &body).unwrap_or_default();
            create_sip_participant(mock, json, req).await
        }
        "livekit.AgentDispatchService/CreateDispatch" => {
            let req: proto::CreateAgentDispatchRequest = decode(json, &body).unwrap_or_default();
            let resp = proto::AgentDispatch {
                id: format!("AD_{}", req.room),
                agent_name: req.agent_name.clone(),
                room: req.room.clone(),
                metadata: req.metadata.clone(),
                ..Default::default()
            };
            mock.inner.lock().unwrap().seen.dispatches.push(req);
            encode(json, &resp)
        }
        "livekit.RoomService/DeleteRoom" => {
            mock.inner.lock().unwrap().seen.deleted_rooms.push(room.clone());
            let m = mock.clone();
            tokio::spawn(async move { m.finish(&room).await });
            encode(json, &proto::DeleteRoomResponse {})
        }
        "livekit.RoomService/UpdateRoomMetadata" => {
            let req: proto::UpdateRoomMetadataRequest = decode(json, &body).unwrap_or_default();
            mock.inner
                .lock()
                .unwrap()
                .seen
                .room_metadata
                .push((req.room.clone(), req.metadata.clone()));
            encode(
                json,
                &proto::Room {
                    name: req.room,
                    metadata: req.metadata,
                    ..Default::default()
                },
            )
        }
        "livekit.RoomService/RemoveParticipant" => {
            let req: proto::RoomParticipantIdentity = decode(json, &body).unwrap_or_default();
            mock.inner
                .lock()
                .unwrap()
                .seen
                .removed
                .push((req.room.clone(), req.identity.clone()));
            let m = mock.clone();
            tokio::spawn(async move { m.finish(&req.room).await });
            encode(json, &proto::RemoveParticipantResponse {})
        }
        "livekit.RoomService/ListParticipants" => {
            let live = mock.inner.lock().unwrap().live.contains_key(&room);
            let participants = if live {
                vec![proto::ParticipantInfo {
                    identity: "callee".into(),
                    kind: proto::participant_info::Kind::Sip as i32,
                    // As the SIP service marks a callee that picked up.
                    attributes: [("sip.callStatus".to_string(), "active".to_string())].into(),
                    ..Default::default()
                }]
            } else {
                Vec::new()
            };
            encode(json, &proto::ListParticipantsResponse { participants })
        }
        "livekit.SIP/ListSIPOutboundTrunk" => {
            let req: proto::ListSipOutboundTrunkRequest = decode(json, &body).unwrap_or_default();
            let items = list_outbound_trunks(&mock.inner.lock().unwrap().outbound_trunks, &req);
            mock.inner.lock().unwrap().seen.trunk_lists.push(req);
            encode(json, &proto::ListSipOutboundTrunkResponse { items })
        }
        _ => twirp_error("bad_route", "unreachable", None),
    }
}

/// The trunks a `ListSIPOutboundTrunk` request lists, as LiveKit's server filters them: by id
/// order, those of `trunk_ids` when given, those with one of `numbers` or with none (a wildcard
/// trunk) when given, then the page (after `after_id`, at most `limit` when set).
fn list_outbound_trunks(
    trunks: &[proto::SipOutboundTrunkInfo],
    req: &proto::ListSipOutboundTrunkRequest,
) -> Vec<proto::SipOutboundTrunkInfo> {
    let mut items: Vec<_> = trunks
        .iter()
        .filter(|t| req.trunk_ids.is_empty() || req.trunk_ids.contains(&t.sip_trunk_id))
        .filter(|t| req.numbers.is_empty() || t.numbers.is_empty() || t.numbers.iter().any(|n| req.numbers.contains(n)))
        .cloned()
        .collect();
    items.sort_by(|a, b| a.sip_trunk_id.cmp(&b.sip_trunk_id));
    if let Some(page) = &req.page {
        items.retain(|t| t.sip_trunk_id > page.after_id);
        if page.limit > 0 {
            items.truncate(page.limit as usize);
        }
    }
    items
}

async fn create_sip_participant(mock: Mock, json: bool, req: proto::CreateSipParticipantRequest) -> Response {
    let to = req.sip_call_to.clone();
    let room = req.room_name.clone();
    let script = mock.script_for(&to);
    {
        let mut inner = mock.inner.lock().unwrap();
        if inner.live.values().any(|n| *n == to) {
            inner.seen.twice_at_once.push(to.clone());
        }
        inner.live.insert(room.clone(), to.clone());
        inner.seen.dials.push(Dial {
            json,
            request: req.clone(),
        });
    }
    // The SIP participant joins the room as soon as it starts dialing.
    mock.post_webhook("participant_joined", &room, Some("callee")).await;
    match script {
        Script::Sip { code, ring_ms } => {
            tokio::time::sleep(Duration::from_millis(ring_ms)).await;
            let m = mock.clone();
            let r = room.clone();
            tokio::spawn(async move {
                // The callee's participant leaves the room when its dial fails.
                let was_live = m.inner.lock().unwrap().live.remove(&r).is_some();
                if was_live {
                    m.post_webhook("participant_left", &r, Some("callee")).await;
                }
            });
            let name = sip_status_name(code);
            twirp_error(
                twirp_code_of_sip(code),
                &format!("sip status {code}: {name}"),
                Some(serde_json::json!({"sip_status_code": code.to_string(), "sip_status": name})),
            )
        }
        Script::Answer { ring_ms, talk_ms } => {
            tokio::time::sleep(Duration::from_millis(ring_ms)).await;
            let m = mock.clone();
            let r = room.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(talk_ms)).await;
                m.finish(&r).await;
            });
            encode(
                json,
                &proto::SipParticipantInfo {
                    participant_id: format!("PA_{room}"),
                    participant_identity: req.participant_identity,
                    room_name: room.clone(),
                    sip_call_id: format!("SCL_{room}"),
                },
            )
        }
    }
}
