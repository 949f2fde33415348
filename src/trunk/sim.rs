//! The simulated trunk (`kind = "sim"`): each call is a tokio task that plays out a call drawn
//! from the [`CallModel`], with every duration multiplied by `time_scale`. Under async AMD the
//! answer is reported as `Unknown` and the verdict follows as `AmdVerdict`. Seeded, so the same
//! seed draws the same calls in the same dial order. It places no real call.
//!
//! With `[trunk.sim] agent = "builtin"` (the default) a connected call's agent speaks after
//! `agent_speech_delay` (reported as `AgentSpoke`) and the call carries a template transcript;
//! with `agent = "external"` it carries none and stays connected until the voice agent ends it
//! (`end_call` → [`Trunk::act`] `Hangup`) or the sampled talk time runs out, the agent's events
//! arriving through the agent events API like on a real trunk.

use super::{DialRequest, Trunk, TrunkError, TrunkEvent};
use crate::call::CallDetail;
use crate::core::{AnswerAction, AnswerKind, AttemptKey, CallEvent, EndReason};
use crate::sim::transcript::{self, TranscriptRates};
use crate::sim::{CallModel, SampledCall, SampledOutcome};
use async_trait::async_trait;
use chrono::Utc;
use rand::SeedableRng;
use rand::rngs::StdRng;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

/// How long the safe-harbor message takes to play (real call time).
const SAFE_HARBOR_LENGTH: Duration = Duration::from_secs(8);
/// How long a simulated call waits for the driver's answer action before hanging up.
const ACTION_TIMEOUT: Duration = Duration::from_secs(30);
/// The safe-harbor message must start within 2 s of the answer (16 CFR 310.4(b)(4)(iii)); a later
/// start is logged (wall time: the runner's latency is not simulated).
const SAFE_HARBOR_DEADLINE: Duration = Duration::from_secs(2);

/// The answer actions awaited, by call id.
type Pending = Arc<Mutex<HashMap<String, mpsc::Sender<AnswerAction>>>>;

/// The simulated trunk.
pub struct SimTrunk {
    model: CallModel,
    time_scale: f64,
    rng: Mutex<StdRng>,
    events: mpsc::Sender<TrunkEvent>,
    pending: Pending,
    next_id: AtomicU64,
    seed: u64,
    rates: TranscriptRates,
    sent: Mutex<Vec<SentSms>>,
    external_agent: bool,
    dial_latency: Duration,
    answer_factor: std::collections::BTreeMap<String, f64>,
    account: Option<crate::core::AccountLimit>,
}

/// A text message the sim trunk "sent" (recorded, never delivered).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SentSms {
    /// Sender, E.164.
    pub from: String,
    /// Recipient, E.164.
    pub to: String,
    /// Message text.
    pub body: String,
}

impl SimTrunk {
    /// A sim trunk drawing from `model` with `seed`, scaling durations by `time_scale` (> 0),
    /// and sending events on `events`.
    pub fn new(model: CallModel, seed: u64, time_scale: f64, events: mpsc::Sender<TrunkEvent>) -> SimTrunk {
        SimTrunk {
            model,
            time_scale,
            rng: Mutex::new(StdRng::seed_from_u64(seed)),
            events,
            pending: Arc::new(Mutex::new(HashMap::new())),
            next_id: AtomicU64::new(1),
            seed,
            rates: TranscriptRates::default(),
            sent: Mutex::new(Vec::new()),
            external_agent: false,
            dial_latency: Duration::ZERO,
            answer_factor: std::collections::BTreeMap::new(),
            account: None,
        }
    }

    /// Dials as if through one provider account whose `limit` every node on the database shares
    /// (`[sim] calls_per_second`, `max_concurrent` in the settings); none by default.
    pub fn with_account_limit(mut self, limit: Option<crate::core::AccountLimit>) -> SimTrunk {
        self.account = limit;
        self
    }

    /// Calls presenting a caller ID in `factors` are answered with P(answer) × its factor
    /// (0..1); the answers taken away ring out unanswered (`[trunk.sim.answer_factor]`).
    pub fn with_answer_factors(mut self, factors: std::collections::BTreeMap<String, f64>) -> SimTrunk {
        self.answer_factor = factors;
        self
    }

    /// Each dial takes `latency` (real time) before the call exists, as a provider's create
    /// request does (`[trunk.sim] dial_latency`).
    pub fn with_dial_latency(mut self, latency: Duration) -> SimTrunk {
        self.dial_latency = latency;
        self
    }

    /// Connected calls carry no transcript of their own: an external voice agent reports the
    /// conversation (`[trunk.sim] agent = "external"`).
    pub fn with_external_agent(mut self, external: bool) -> SimTrunk {
        self.external_agent = external;
        self
    }

    /// Connected calls carry a template transcript drawn at `rates` (none by default).
    pub fn with_transcripts(mut self, rates: TranscriptRates) -> SimTrunk {
        self.rates = rates;
        self
    }

    /// Text messages sent so far, oldest first.
    pub fn sent_sms(&self) -> Vec<SentSms> {
        self.sent.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

/// The transcript rates of a `[trunk.sim]` section.
pub fn transcript_rates(s: &crate::campaign::file::SimFile) -> TranscriptRates {
    TranscriptRates {
        knowledge_gap: s.knowledge_gap_rate,
        conversion: s.conversion_rate,
        opt_out: s.opt_out_rate,
    }
}

/// One simulated call playing out.
struct SimCall {
    key: AttemptKey,
    call_id: String,
    events: mpsc::Sender<TrunkEvent>,
    scale: f64,
    rates: TranscriptRates,
    rng: StdRng,
    /// Set under `[trunk.sim] amd = "async"`: the answer is `Unknown` and the verdict follows.
    async_amd: bool,
    external_agent: bool,
    agent_speech_delay: Duration,
}

impl SimCall {
    async fn send(&self, event: CallEvent) {
        self.send_with(event, None).await
    }

    async fn send_with(&self, event: CallEvent, detail: Option<Box<CallDetail>>) {
        let ev = TrunkEvent {
            key: self.key,
            call_id: self.call_id.clone(),
            at: Utc::now(),
            event,
            detail,
        };
        // The receiver is gone only when the runner stopped; the call simply ends with it.
        let _ = self.events.send(ev).await;
    }

    async fn wait(&self, d: Duration) {
        tokio::time::sleep(d.mul_f64(self.scale)).await;
    }

    /// Waits `d` (scaled) of conversation; true when the agent hung up first (`end_call`).
    async fn talk(&self, actions: &mut mpsc::Receiver<AnswerAction>, d: Duration) -> bool {
        let sleep = tokio::time::sleep(d.mul_f64(self.scale));
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                _ = &mut sleep => return false,
                a = actions.recv() => match a {
                    Some(AnswerAction::Hangup) => return true,
                    Some(_) => {}
                    None => return false,
                },
            }
        }
    }

    async fn run(
        mut self,
        call: SampledCall,
        ring_timeout: Duration,
        voicemail: Duration,
        mut actions: mpsc::Receiver<AnswerAction>,
    ) {
        self.send(CallEvent::Ringing).await;
        let kind = match call.outcome {
            SampledOutcome::Human | SampledOutcome::Machine if call.answer_after < ring_timeout => {
                if call.outcome == SampledOutcome::Human {
                    AnswerKind::Human
                } else {
                    AnswerKind::Machine
                }
            }
            SampledOutcome::Human | SampledOutcome::Machine | SampledOutcome::NoAnswer => {
                self.wait(ring_timeout).await;
                return self.send(CallEvent::Ended(EndReason::NoAnswer)).await;
            }
            SampledOutcome::Busy => {
                self.wait(call.answer_after).await;
                return self.send(CallEvent::Ended(EndReason::Busy)).await;
            }
            SampledOutcome::Failed => {
                self.wait(call.answer_after).await;
                return self.send(CallEvent::Ended(EndReason::Failed)).await;
            }
        };
        self.wait(call.answer_after).await;
        let answered_as = if self.async_amd { AnswerKind::Unknown } else { kind };
        self.send(CallEvent::Answered(answered_as)).await;
        let answered = std::time::Instant::now();
        let mut action = tokio::time::timeout(ACTION_TIMEOUT, actions.recv())
            .await
            .ok()
            .flatten();
        if self.async_amd && action == Some(AnswerAction::ConnectAgent) {
            // Connected at once; the verdict follows, and a machine's action with it.
            self.wait(call.amd_delay).await;
            self.send(CallEvent::AmdVerdict(kind)).await;
            if kind == AnswerKind::Machine {
                action = tokio::time::timeout(ACTION_TIMEOUT, actions.recv())
                    .await
                    .ok()
                    .flatten();
            }
        }
        if action == Some(AnswerAction::PlaySafeHarbor) && answered.elapsed() > SAFE_HARBOR_DEADLINE {
            tracing::warn!(call_id = %self.call_id, waited_ms = answered.elapsed().as_millis() as u64,
                "Safe-harbor message started later than 2 s after the answer (16 CFR 310.4(b)(4)(iii)).");
        }
        let mut detail = None;
        match action {
            Some(AnswerAction::ConnectAgent) if self.external_agent => {
                self.talk(&mut actions, call.talk).await;
            }
            Some(AnswerAction::ConnectAgent) => {
                // The agent's first words, counted from the answer (an async AMD verdict runs
                // beside the agent): the 2 s rule is wall-clock, so the delay is not scaled.
                tokio::time::sleep(self.agent_speech_delay.saturating_sub(answered.elapsed())).await;
                let spoke = Utc::now();
                self.send(CallEvent::AgentSpoke(spoke)).await;
                let talk = call.talk.mul_f64(self.scale);
                detail = Some(Box::new(transcript::generate(
                    &mut self.rng,
                    self.rates,
                    spoke,
                    talk,
                    call.wants_callback,
                )));
                let opted_out = detail.as_deref().and_then(transcript::opt_out_at).is_some();
                let signal = if opted_out {
                    Some(CallEvent::OptOut)
                } else if call.wants_callback {
                    Some(CallEvent::CallbackRequested)
                } else {
                    None
                };
                match signal {
                    // The opt-out or the callback request is signalled when it is said, mid-call.
                    Some(ev) => {
                        if !self.talk(&mut actions, call.talk / 2).await {
                            self.send(ev).await;
                            self.talk(&mut actions, call.talk / 2).await;
                        }
                    }
                    None => {
                        self.talk(&mut actions, call.talk).await;
                    }
                }
            }
            Some(AnswerAction::LeaveVoicemail) => self.wait(voicemail).await,
            Some(AnswerAction::PlaySafeHarbor) => self.wait(SAFE_HARBOR_LENGTH).await,
            Some(AnswerAction::Hangup) | None => {}
        }
        self.send_with(CallEvent::Ended(EndReason::Hangup), detail).await;
    }
}

#[async_trait]
impl Trunk for SimTrunk {
    fn account_limit(&self) -> Option<crate::core::AccountLimit> {
        self.account.clone()
    }

    async fn dial(&self, req: DialRequest) -> Result<String, TrunkError> {
        if !self.dial_latency.is_zero() {
            tokio::time::sleep(self.dial_latency).await;
        }
        let call = {
            let mut rng = self
                .rng
                .lock()
                .map_err(|_| TrunkError::Unavailable("sim RNG poisoned".into()))?;
            let mut call = self.model.sample(&mut *rng);
            // Drawn only for listed caller IDs, so other campaigns' draws are unchanged.
            if let Some(f) = self.answer_factor.get(&req.from) {
                let keep: f64 = rand::RngExt::random(&mut *rng);
                if keep >= *f
                    && matches!(
                        call.outcome,
                        crate::sim::model::SampledOutcome::Human | crate::sim::model::SampledOutcome::Machine
                    )
                {
                    call.outcome = crate::sim::model::SampledOutcome::NoAnswer;
                    call.answer_after = Duration::MAX;
                }
            }
            call
        };
        let n = self.next_id.fetch_add(1, Ordering::Relaxed);
        let call_id = format!("SIM{n:012}");
        let (tx, rx) = mpsc::channel(4);
        self.pending
            .lock()
            .map_err(|_| TrunkError::Unavailable("sim call table poisoned".into()))?
            .insert(call_id.clone(), tx);
        let sim = SimCall {
            key: req.key,
            call_id: call_id.clone(),
            events: self.events.clone(),
            scale: self.time_scale,
            rates: self.rates,
            rng: StdRng::seed_from_u64(self.seed ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15)),
            async_amd: self.model.amd_async,
            external_agent: self.external_agent,
            agent_speech_delay: self.model.agent_speech_delay,
        };
        let pending = Arc::clone(&self.pending);
        let voicemail = self.model.voicemail_length;
        let id = call_id.clone();
        tokio::spawn(async move {
            sim.run(call, req.ring_timeout, voicemail, rx).await;
            if let Ok(mut p) = pending.lock() {
                p.remove(&id);
            }
        });
        Ok(call_id)
    }

    async fn act(&self, call_id: &str, action: AnswerAction) -> Result<(), TrunkError> {
        let tx = self
            .pending
            .lock()
            .map_err(|_| TrunkError::Unavailable("sim call table poisoned".into()))?
            .get(call_id)
            .cloned()
            .ok_or_else(|| TrunkError::Rejected(format!("no call {call_id}")))?;
        tx.try_send(action)
            .map_err(|_| TrunkError::Rejected(format!("call {call_id} is over")))
    }

    async fn recover(&self, _call: &super::OpenCall) -> super::Recovered {
        // Simulated calls die with the process that ran them.
        super::Recovered::Unknown
    }

    async fn sms(&self, from: &str, to: &str, body: &str) -> Result<String, TrunkError> {
        let mut sent = self
            .sent
            .lock()
            .map_err(|_| TrunkError::Unavailable("sim message log poisoned".into()))?;
        sent.push(SentSms {
            from: from.to_string(),
            to: to.to_string(),
            body: body.to_string(),
        });
        tracing::info!(
            to,
            chars = body.chars().count(),
            "Text message recorded by the sim trunk."
        );
        Ok(format!("SIMSMS{:06}", sent.len()))
    }
}
