//! The sample Grafana dashboard (`systemd/grafana-dashboard.json`) queries only metrics that
//! `GET /metrics` exports under those names, and shows every one of them.

use dialerd::telemetry as t;
use std::collections::BTreeSet;

/// The metric names a PromQL expression mentions, with a histogram's `_bucket` / `_sum` /
/// `_count` series folded into the histogram's name.
fn metric_names(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = expr;
    while let Some(i) = rest.find("dialerd_") {
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        let name = &tail[..end];
        let name = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s).filter(|base| base.ends_with("_seconds")))
            .unwrap_or(name);
        out.push(name.to_string());
        rest = &tail[end..];
    }
    out
}

#[test]
fn the_dashboard_queries_the_exported_metrics_and_all_of_them() {
    let exported: BTreeSet<&str> = [
        t::DIALS,
        t::ANSWERS,
        t::OUTCOMES,
        t::REFUSALS,
        t::CALLS_IN_FLIGHT,
        t::SLOTS_BUSY,
        t::SLOTS,
        t::DIAL_RATIO,
        t::ABANDONMENT,
        t::CONTACTS,
        t::OUTBOX_JOBS,
        t::OUTBOX_OLDEST,
        t::DELIVERIES,
        t::DELIVERY_SECONDS,
        t::TRUNK_SECONDS,
        t::TRUNK_ERRORS,
        t::BUILD_INFO,
    ]
    .into_iter()
    .collect();
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/systemd/grafana-dashboard.json");
    let dash: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let panels = dash["panels"].as_array().expect("panels");
    let mut ids = BTreeSet::new();
    let mut used = BTreeSet::new();
    for p in panels {
        assert!(
            ids.insert(p["id"].as_i64().expect("panel id")),
            "duplicate panel id in {p}"
        );
        let targets = p["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "panel {} has no query", p["title"]);
        for target in targets {
            let expr = target["expr"].as_str().expect("expr");
            for name in metric_names(expr) {
                assert!(
                    exported.contains(name.as_str()),
                    "panel {} queries `{name}`, which /metrics does not export",
                    p["title"]
                );
                used.insert(name);
            }
        }
    }
    let missing: Vec<_> = exported.iter().filter(|m| !used.contains(**m)).collect();
    assert!(missing.is_empty(), "metrics not on the dashboard: {missing:?}");
    let campaign = dash["templating"]["list"]
        .as_array()
        .and_then(|l| l.iter().find(|v| v["name"] == "campaign"))
        .expect("a campaign variable");
    assert!(campaign["definition"].as_str().unwrap().contains(t::CONTACTS));
}

#[test]
fn histogram_series_fold_into_their_metric() {
    assert_eq!(
        metric_names(
            "histogram_quantile(0.5, rate(dialerd_delivery_duration_seconds_bucket[5m])) + dialerd_dials_total"
        ),
        ["dialerd_delivery_duration_seconds", "dialerd_dials_total"]
    );
}
