//! Prometheus metrics: the names, units and labels every layer records with (through the
//! `metrics` facade, so a library user without a recorder pays nothing), the recorder
//! (`metrics-exporter-prometheus`) that `dialerd run` installs, and the histogram buckets.
//! Names follow Prometheus' conventions: `dialerd_` prefix, base units (seconds), `_total` on
//! counters. Counters count what this process saw since it started; gauges read from the store
//! at scrape time (contacts, abandonment, outbox) hold across restarts.

use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Dials placed (the trunk accepted the request); label `campaign`.
pub const DIALS: &str = "dialerd_dials_total";
/// Answers by AMD kind (`human`, `machine`, `unknown`); labels `campaign`, `kind`.
pub const ANSWERS: &str = "dialerd_answers_total";
/// Attempts closed, by outcome; labels `campaign`, `outcome`.
pub const OUTCOMES: &str = "dialerd_attempts_closed_total";
/// Dials refused for compliance since the campaign began (from the audit table); labels
/// `campaign`, `reason`.
pub const REFUSALS: &str = "dialerd_refusals_total";
/// Calls in flight; label `campaign`.
pub const CALLS_IN_FLIGHT: &str = "dialerd_calls_in_flight";
/// Agent slots in a conversation; label `campaign`.
pub const SLOTS_BUSY: &str = "dialerd_agent_slots_busy";
/// Agent slots (`max_concurrent`); label `campaign`.
pub const SLOTS: &str = "dialerd_agent_slots";
/// (dialing + talking) / slots; label `campaign`.
pub const DIAL_RATIO: &str = "dialerd_dial_ratio";
/// Measured abandonment, abandoned / person-answered, 0..1; labels `campaign`, `window`
/// (`24h`, `30d`).
pub const ABANDONMENT: &str = "dialerd_abandonment_ratio";
/// Contacts by status; labels `campaign`, `status`.
pub const CONTACTS: &str = "dialerd_contacts";
/// Outbox jobs by state (`pending`, `running`, `done`, `dead`); label `state`.
pub const OUTBOX_JOBS: &str = "dialerd_outbox_jobs";
/// Age of the oldest pending outbox job, seconds (0 when none).
pub const OUTBOX_OLDEST: &str = "dialerd_outbox_oldest_pending_age_seconds";
/// Deliveries tried, by sink kind and result (`done`, `retry`, `deferred`, `dead`); labels
/// `kind`, `result`.
pub const DELIVERIES: &str = "dialerd_deliveries_total";
/// Delivery latency, seconds; label `kind`.
pub const DELIVERY_SECONDS: &str = "dialerd_delivery_duration_seconds";
/// Trunk REST request latency, seconds; labels `trunk`, `op`.
pub const TRUNK_SECONDS: &str = "dialerd_trunk_request_duration_seconds";
/// Trunk REST requests that failed, by code (HTTP status, `transport`, `decode`); labels
/// `trunk`, `op`, `code`.
pub const TRUNK_ERRORS: &str = "dialerd_trunk_request_errors_total";
/// Always 1; labels `version`, `libphonenumber`.
pub const BUILD_INFO: &str = "dialerd_build_info";

/// Histogram buckets, seconds: a webhook or a trunk request takes milliseconds to seconds.
const BUCKETS: &[f64] = &[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// Installs the Prometheus recorder for this process and describes every metric.
///
/// Errors: a recorder is already installed, or the buckets are refused.
pub fn install() -> Result<PrometheusHandle, metrics_exporter_prometheus::BuildError> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), BUCKETS)?
        .install_recorder()?;
    describe();
    gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION"),
        "libphonenumber" => crate::campaign::phone::LIBPHONENUMBER_METADATA)
    .set(1.0);
    Ok(handle)
}

fn describe() {
    describe_counter!(DIALS, "Dials placed: the trunk accepted the request.");
    describe_counter!(ANSWERS, "Answers by AMD kind.");
    describe_counter!(OUTCOMES, "Attempts closed, by outcome.");
    describe_counter!(
        REFUSALS,
        "Dials refused for compliance since the campaign began, by reason."
    );
    describe_gauge!(CALLS_IN_FLIGHT, "Calls in flight.");
    describe_gauge!(SLOTS_BUSY, "Agent slots in a conversation.");
    describe_gauge!(SLOTS, "Agent slots (max_concurrent).");
    describe_gauge!(DIAL_RATIO, "(dialing + talking) / agent slots.");
    describe_gauge!(ABANDONMENT, "Measured abandonment: abandoned / person-answered, 0..1.");
    describe_gauge!(CONTACTS, "Contacts by status.");
    describe_gauge!(OUTBOX_JOBS, "Outbox jobs by state.");
    describe_gauge!(OUTBOX_OLDEST, "Age of the oldest pending outbox job.");
    describe_counter!(DELIVERIES, "Outbox deliveries tried, by sink kind and result.");
    describe_histogram!(DELIVERY_SECONDS, "Outbox delivery latency.");
    describe_histogram!(TRUNK_SECONDS, "Trunk REST request latency.");
    describe_counter!(TRUNK_ERRORS, "Trunk REST requests that failed, by code.");
    describe_gauge!(BUILD_INFO, "Build information; always 1.");
}

/// Counts a dial the trunk accepted.
pub fn dial(campaign: &str) {
    counter!(DIALS, "campaign" => campaign.to_string()).increment(1);
}

/// Counts an answer of AMD kind `kind` (`human`, `machine`, `unknown`).
pub fn answer(campaign: &str, kind: &'static str) {
    counter!(ANSWERS, "campaign" => campaign.to_string(), "kind" => kind).increment(1);
}

/// Counts an attempt closed with `outcome`.
pub fn outcome(campaign: &str, outcome: &str) {
    counter!(OUTCOMES, "campaign" => campaign.to_string(), "outcome" => outcome.to_string()).increment(1);
}

/// A runner's slot figures now: calls in flight, slots busy, slots, dial ratio.
pub fn slots(campaign: &str, in_flight: usize, busy: u32, slots: u32, dial_ratio: f64) {
    let c = campaign.to_string();
    gauge!(CALLS_IN_FLIGHT, "campaign" => c.clone()).set(in_flight as f64);
    gauge!(SLOTS_BUSY, "campaign" => c.clone()).set(f64::from(busy));
    gauge!(SLOTS, "campaign" => c.clone()).set(f64::from(slots));
    gauge!(DIAL_RATIO, "campaign" => c).set(dial_ratio);
}

/// Counts one outbox delivery of `kind` with `result`, which took `seconds`.
pub fn delivery(kind: &str, result: &'static str, seconds: f64) {
    counter!(DELIVERIES, "kind" => kind.to_string(), "result" => result).increment(1);
    histogram!(DELIVERY_SECONDS, "kind" => kind.to_string()).record(seconds);
}

/// Records one trunk REST request: `op` (`create`, `update`, `fetch`, `list`,
/// `list_incoming_numbers`, `list_caller_ids`), its latency in seconds, and `error` (the HTTP
/// status or `transport` / `decode`) when it failed.
pub fn trunk_request(trunk: &'static str, op: &'static str, seconds: f64, error: Option<String>) {
    histogram!(TRUNK_SECONDS, "trunk" => trunk, "op" => op).record(seconds);
    if let Some(code) = error {
        counter!(TRUNK_ERRORS, "trunk" => trunk, "op" => op, "code" => code).increment(1);
    }
}
