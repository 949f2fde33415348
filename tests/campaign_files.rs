//! Campaign file validation: every error names the file, the line, the key and the reason.

use dialerd::campaign::{CampaignError, parse_campaign};
use std::path::Path;

const GOOD: &str = r#"name = "Spring renewals"
agent_id = "agent_456"
caller_id = "+14155550100"
default_region = "US"
default_timezone = "America/New_York"

[contacts]
file = "spring.csv"

[schedule]
windows = ["0 * 9-11,13-19 * * Mon-Fri", "0 * 10-15 * * Sat"]
start_at = 2026-12-01T08:00:00Z
end_at = 2026-12-20T00:00:00Z

[dialer]
mode = "progressive"
max_concurrent = 20
calls_per_second = 5
ring_timeout = "25s"

[retry]
max_attempts = 3
delay = "30m"
no_answer = "2h"

[voicemail]
action = "leave_message"
message = "Hi {{first_name}}, call us back."

[callback]
enabled = true
delay = "60m"

[trunk]
kind = "sim"
"#;

fn errors(src: &str) -> Vec<CampaignError> {
    match parse_campaign(Path::new("campaigns/spring.toml"), src) {
        Ok(_) => Vec::new(),
        Err(e) => e.0,
    }
}

fn one_error(src: &str) -> CampaignError {
    let errs = errors(src);
    assert_eq!(errs.len(), 1, "expected one error, got {errs:?}");
    errs.into_iter().next().unwrap()
}

#[test]
fn the_good_file_is_valid() {
    let c = parse_campaign(Path::new("campaigns/spring.toml"), GOOD).unwrap();
    assert_eq!(c.id, "spring");
    assert_eq!(c.rules.slots, 20);
    assert_eq!(c.rules.policy.retry.max_attempts, 3);
    assert_eq!(c.contacts.path, Path::new("campaigns/spring.csv"));
}

/// (replace this, with this, expected line, expected key, a word the reason must contain)
#[test]
fn errors_name_line_key_and_reason() {
    let cases: &[(&str, &str, usize, &str, &str)] = &[
        (
            "max_concurrent = 20",
            "max_concurent = 20",
            17,
            "dialer.max_concurent",
            "unknown field",
        ),
        (
            "ring_timeout = \"25s\"",
            "ring_timeout = \"10s\"",
            19,
            "dialer.ring_timeout",
            "310.4(b)(4)",
        ),
        (
            "ring_timeout = \"25s\"",
            "ring_timeout = \"soon\"",
            19,
            "dialer.ring_timeout",
            "soon",
        ),
        (
            "caller_id = \"+14155550100\"",
            "caller_id = \"4155550100\"",
            3,
            "caller_id",
            "E.164",
        ),
        (
            "default_timezone = \"America/New_York\"",
            "default_timezone = \"America/Gotham\"",
            5,
            "default_timezone",
            "IANA",
        ),
        (
            "default_region = \"US\"",
            "default_region = \"XX\"",
            4,
            "default_region",
            "region",
        ),
        (
            "\"0 * 10-15 * * Sat\"",
            "\"0 * 10-15 * * Caturday\"",
            11,
            "schedule.windows",
            "cron",
        ),
        (
            "max_attempts = 3",
            "max_attempts = 0",
            22,
            "retry.max_attempts",
            "at least 1",
        ),
        (
            "mode = \"progressive\"",
            "mode = \"psychic\"",
            16,
            "dialer.mode",
            "psychic",
        ),
        (
            "kind = \"sim\"",
            "kind = \"carrier-pigeon\"",
            35,
            "trunk.kind",
            "carrier-pigeon",
        ),
        (
            "end_at = 2026-12-20T00:00:00Z",
            "end_at = 2026-11-20T00:00:00Z",
            13,
            "schedule.end_at",
            "after",
        ),
        (
            "message = \"Hi {{first_name}}, call us back.\"",
            "message = \"Hi {{first_name\"",
            28,
            "voicemail.message",
            "template",
        ),
    ];
    for (from, to, line, key, word) in cases {
        assert!(GOOD.contains(from), "fixture lacks {from}");
        let e = one_error(&GOOD.replacen(from, to, 1));
        assert_eq!(e.line, Some(*line), "{to}: {e}");
        assert_eq!(e.key.as_deref(), Some(*key), "{to}: {e}");
        assert!(e.reason.contains(word), "{to}: reason `{}` lacks `{word}`", e.reason);
        assert!(
            e.to_string()
                .starts_with(&format!("campaigns/spring.toml:{line}: {key}: ")),
            "{e}"
        );
    }
}

#[test]
fn missing_voicemail_message_is_refused_at_its_table() {
    let e = one_error(&GOOD.replace("message = \"Hi {{first_name}}, call us back.\"\n", ""));
    assert_eq!(e.key.as_deref(), Some("voicemail.message"));
    assert_eq!(e.line, Some(26), "points at [voicemail]: {e}");
}

#[test]
fn toml_syntax_error_has_a_line() {
    let e = one_error(&GOOD.replace("max_concurrent = 20", "max_concurrent = = 20"));
    assert_eq!(e.line, Some(17), "{e}");
}

#[test]
fn several_rule_errors_are_all_reported() {
    let src = GOOD
        .replace("ring_timeout = \"25s\"", "ring_timeout = \"5s\"")
        .replace("caller_id = \"+14155550100\"", "caller_id = \"+1\"");
    let errs = errors(&src);
    let keys: Vec<_> = errs.iter().filter_map(|e| e.key.clone()).collect();
    assert!(
        keys.contains(&"dialer.ring_timeout".to_string()) && keys.contains(&"caller_id".to_string()),
        "{errs:?}"
    );
}

#[test]
fn legal_hours_only_widen_on_the_sim_trunk() {
    let wide = GOOD.replace("[trunk]", "[compliance]\nlegal_hours = \"00:00-24:00\"\n\n[trunk]");
    assert!(errors(&wide).is_empty(), "sim trunk may run the demo at any hour");
    let narrow = GOOD.replace("[trunk]", "[compliance]\nlegal_hours = \"09:00-20:00\"\n\n[trunk]");
    assert!(errors(&narrow).is_empty());
    let bad = GOOD.replace("[trunk]", "[compliance]\nlegal_hours = \"21:00-08:00\"\n\n[trunk]");
    assert_eq!(one_error(&bad).key.as_deref(), Some("compliance.legal_hours"));
}

#[test]
fn sim_probabilities_must_sum_to_one() {
    let src = GOOD.replace("kind = \"sim\"", "kind = \"sim\"\n\n[trunk.sim]\np_human = 0.9");
    let e = one_error(&src);
    assert_eq!(e.key.as_deref(), Some("trunk.sim"));
    assert!(e.reason.contains("must be 1"), "{e}");
}

#[test]
fn the_shipped_example_is_valid() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("campaigns/example.toml");
    let c = dialerd::campaign::load_campaign(&dir).unwrap();
    assert_eq!(c.id, "example");
}

#[test]
fn ring_timeout_below_fifteen_seconds_is_refused_with_the_rule() {
    let e = one_error(&GOOD.replace("ring_timeout = \"25s\"", "ring_timeout = \"10s\""));
    assert_eq!(e.key.as_deref(), Some("dialer.ring_timeout"));
    assert_eq!(e.line, Some(19), "{e}");
    assert!(e.reason.contains("16 CFR 310.4(b)(4)(ii)"), "{e}");
}

#[test]
fn predictive_without_a_safe_harbor_message_is_refused() {
    let predictive = GOOD.replace("mode = \"progressive\"", "mode = \"predictive\"");
    let e = one_error(&predictive);
    assert_eq!(e.key.as_deref(), Some("compliance.safe_harbor_message"));
    assert!(e.reason.contains("310.4(b)(4)(iii)"), "{e}");
    let with = predictive.replace(
        "[trunk]",
        "[compliance]\nsafe_harbor_message = \"Acme here; we will call back. Call +1 415 555 0100.\"\n\n[trunk]",
    );
    assert!(errors(&with).is_empty(), "{:?}", errors(&with));
    let no_number = predictive.replace(
        "[trunk]",
        "[compliance]\nsafe_harbor_message = \"Acme here; we will call back.\"\n\n[trunk]",
    );
    assert!(one_error(&no_number).reason.contains("callback number"));
}

#[test]
fn compliance_settings_are_checked() {
    let with = |extra: &str| GOOD.replace("[trunk]", &format!("[compliance]\n{extra}\n\n[trunk]"));
    let c = parse_campaign(
        Path::new("campaigns/spring.toml"),
        &with("holidays = [\"2026-12-24\", \"2026-12-25\"]\nabandon_policy = \"uk_ofcom\"\nmax_attempts_per_day = 2\nmin_gap = \"4h\""),
    )
    .unwrap();
    assert_eq!(c.rules.window.holidays().len(), 2);
    assert_eq!(c.rules.cap.policy, dialerd::core::AbandonPolicy::UkOfcom);
    assert_eq!(c.rules.limits.max_per_day, Some(2));
    assert_eq!(c.rules.limits.min_gap, Some(chrono::TimeDelta::hours(4)));
    // Progressive cannot abandon: no 72-hour hold.
    assert_eq!(c.rules.limits.abandon_hold, None);
    let cases: &[(&str, &str)] = &[
        ("holidays = [\"2026-12-24\", \"Christmas\"]", "compliance.holidays[1]"),
        ("abandon_policy = \"eu\"", "compliance.abandon_policy"),
        ("abandon_cap = 0.05", "compliance.abandon_cap"),
        ("max_attempts_per_day = 0", "compliance.max_attempts_per_day"),
        ("amd_false_positive_rate = 0.04", "compliance.amd_false_positive_rate"),
    ];
    for (extra, key) in cases {
        let e = one_error(&with(extra));
        assert_eq!(e.key.as_deref(), Some(*key), "{extra}: {e}");
    }
}
