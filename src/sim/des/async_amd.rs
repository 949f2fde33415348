//! The simulator under asynchronous AMD (`[trunk.sim] amd = "async"`): the answer reaches the
//! core as `Answered(Unknown)` and is connected at once; the verdict follows after the call's
//! lognormal AMD delay as `AmdVerdict`, through the same core path as the daemon's.

use super::{Ev, Sim, hours_between, ms};
use crate::core::{AnswerAction, AnswerKind, AttemptKey, CallEvent, Decision, EndReason};
use crate::sim::model::{SampledCall, SampledOutcome};

impl Sim<'_> {
    /// An answer under async AMD: the core hears `Answered(Unknown)` and connects the call (or
    /// plays the safe-harbor message); the verdict follows after the call's AMD delay. A call
    /// AMD will take for a person ends as a connected call does; one it will take for a machine
    /// ends after its verdict's action (see `verdict`).
    pub(super) fn answer_async(&mut self, key: AttemptKey, call: SampledCall) {
        let human = call.outcome == SampledOutcome::Human;
        let detected_human = human != call.amd_wrong;
        if human {
            self.m.true_human_answers += 1;
        }
        let now = self.now_ms;
        let at = self.at(now);
        let hours = hours_between(self.t0, at);
        for d in self.dialer.on_event(at, key, CallEvent::Answered(AnswerKind::Unknown)) {
            let Decision::Answer { action, .. } = d else { continue };
            match action {
                AnswerAction::PlaySafeHarbor => {
                    self.m.rolling.person(at, hours, true);
                    if let Some(l) = self.live.get_mut(&key.contact) {
                        l.harbored = true;
                    }
                    let end = now + ms(self.model.safe_harbor_length);
                    self.push(
                        end,
                        Ev::End {
                            key,
                            reason: EndReason::Hangup,
                        },
                    );
                }
                _ => {
                    if let Some(l) = self.live.get_mut(&key.contact) {
                        l.connected_at = Some(now);
                    }
                    self.push(now + ms(call.amd_delay), Ev::Verdict { key });
                    if detected_human {
                        let end_in = if human {
                            self.m.connects += 1;
                            if call.wants_callback {
                                self.push(now + ms(call.talk) / 2, Ev::Callback { key });
                            }
                            ms(call.talk)
                        } else {
                            ms(self.model.amd_false_negative_hold)
                        };
                        self.push(
                            now + end_in,
                            Ev::End {
                                key,
                                reason: EndReason::Hangup,
                            },
                        );
                    }
                }
            }
        }
        let talking = self.dialer.counts().talking;
        self.m.talking(talking);
    }

    /// The async AMD verdict of a connected call: the core keeps a person, and moves a machine
    /// to the voicemail message or a hang-up (freeing the agent slot).
    pub(super) fn verdict(&mut self, key: AttemptKey) {
        let Some(live) = self.live.get(&key.contact) else {
            return;
        };
        if live.harbored || live.connected_at.is_none() {
            return;
        }
        let call = live.call;
        let human = call.outcome == SampledOutcome::Human;
        let detected_human = human != call.amd_wrong;
        let kind = if detected_human {
            AnswerKind::Human
        } else {
            AnswerKind::Machine
        };
        let now = self.now_ms;
        let at = self.at(now);
        let hours = hours_between(self.t0, at);
        match kind {
            AnswerKind::Machine if human => self.m.rolling.false_positive(at, hours),
            AnswerKind::Machine => {}
            _ => self.m.rolling.person(at, hours, false),
        }
        for d in self.dialer.on_event(at, key, CallEvent::AmdVerdict(kind)) {
            let Decision::Answer { action, .. } = d else { continue };
            let end_in = match action {
                AnswerAction::LeaveVoicemail => ms(self.model.voicemail_length),
                _ => 0,
            };
            self.push(
                now + end_in,
                Ev::End {
                    key,
                    reason: EndReason::Hangup,
                },
            );
        }
        let talking = self.dialer.counts().talking;
        self.m.talking(talking);
    }
}
