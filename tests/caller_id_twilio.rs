//! Caller-ID pools on a real trunk adapter, against the Twilio emulator: at start the pool is
//! checked with the account (`IncomingPhoneNumbers`, `OutgoingCallerIds`); a campaign whose pool
//! holds a number the account does not own is refused with that number named and places no
//! call, while one whose numbers are all owned dials, each call presenting its picked number.

mod common;
#[path = "twilio_emu/mod.rs"]
mod twilio_emu;

use std::time::Duration;
use twilio_emu::Script;

const OWNED: &str = "+12125550101";
const VERIFIED: &str = "+13055550103";
const STRANGER: &str = "+13125550199";

fn pool(numbers: &[&str]) -> String {
    let list: Vec<String> = numbers.iter().map(|n| format!("\"{n}\"")).collect();
    format!(
        "\n[caller_id]\ndefault = \"+14155550100\"\npool = [{}]\n",
        list.join(", ")
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_with_a_number_the_account_does_not_own_is_refused() {
    let good_phones = twilio_emu::phones(5000, 6);
    let bad_phones = twilio_emu::phones(5100, 6);
    let (emu, url) = twilio_emu::start(|_, _| Script::Human { talk_ms: 100 }).await;
    {
        let mut e = emu.lock().unwrap();
        e.incoming_numbers = vec![OWNED.into(), "+14155550100".into()];
        e.caller_ids = vec![VERIFIED.into()];
    }
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("campaigns");
    std::fs::create_dir(&dir).unwrap();
    let dialer = "max_concurrent = 2\ncalls_per_second = 10\nring_timeout = \"20s\"\n\n[retry]\nmax_attempts = 1";
    let extra = "\n[compliance]\nabandon_policy = \"us_tsr\"\n";
    twilio_emu::campaign(&dir, "good", &good_phones, dialer, extra);
    twilio_emu::campaign(&dir, "bad", &bad_phones, dialer, extra);
    for (id, numbers) in [("good", vec![OWNED, VERIFIED]), ("bad", vec![OWNED, STRANGER])] {
        let path = dir.join(format!("{id}.toml"));
        let toml = std::fs::read_to_string(&path)
            .unwrap()
            .replace("caller_id = \"+14155550100\"\n", "");
        std::fs::write(&path, format!("{toml}{}", pool(&numbers))).unwrap();
    }
    let db = root.path().join("d.db");
    let env = twilio_emu::env(&url);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut d = common::Daemon::start_env(&dir, &db, true, &[], &env);
    let (status, log) = tokio::task::spawn_blocking(move || {
        let s = d.wait_exit(Duration::from_secs(120));
        (s, d.seen.join("\n"))
    })
    .await
    .unwrap();
    assert!(status.success(), "{log}");

    let refused = log
        .lines()
        .find(|l| l.contains("campaign=bad") && l.contains("Campaign could not start"))
        .unwrap_or_else(|| panic!("no refusal for `bad`:\n{log}"));
    assert!(refused.contains(STRANGER) && !refused.contains(OWNED), "{refused}");
    assert!(log.contains("Every caller ID of the pool is owned"), "{log}");
    let e = emu.lock().unwrap();
    // Every pool number of both campaigns was asked about; the stranger in both lists.
    for n in [OWNED, VERIFIED, STRANGER] {
        assert!(
            e.lookups.iter().any(|(_, p)| p == n),
            "{n} not looked up: {:?}",
            e.lookups
        );
    }
    let calls: Vec<&twilio_emu::Call> = e.calls.values().collect();
    assert!(
        calls.iter().all(|c| !bad_phones.contains(&c.to)),
        "the refused campaign dialled"
    );
    assert_eq!(calls.len(), good_phones.len(), "{log}");
    // Manhattan contacts (212) are called from the Manhattan number of the pool.
    for c in &calls {
        assert_eq!(c.from, OWNED, "{} called from {}", c.to, c.from);
    }
    drop(e);
    let rows = common::export(&db, "good");
    assert!(rows.iter().all(|r| r.caller_id.as_deref() == Some(OWNED)), "{rows:?}");
}
