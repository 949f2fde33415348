#!/usr/bin/env bash
# The test command: sets up what the tests need on this machine, then runs every test.
# Usage: bash tests/run.sh [extra cargo test args]
set -euo pipefail
cd "$(dirname "$0")/.."

pids=()
tmpfiles=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for f in "${tmpfiles[@]}"; do rm -f "$f"; done
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Waits (up to $2 tenths of a second) until something listens on 127.0.0.1:$1.
wait_port() {
    for _ in $(seq 1 "$2"); do
        python3 -c "import socket; socket.create_connection(('127.0.0.1', $1), 1)" 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}

# PostgreSQL for the store tests that run on both engines and the multi-node tests: the local
# server (127.0.0.1:5432, trust auth, database `test`) unless DIALERD_TEST_DATABASE_URL is set.
# Started with pg_ctlcluster when installed but down; each test makes its own `dialerd_t_*`
# database, and those of earlier runs are dropped here.
if [ -z "${DIALERD_TEST_DATABASE_URL:-}" ]; then
    if ! wait_port 5432 1 && command -v pg_ctlcluster >/dev/null 2>&1; then
        for c in $(pg_lsclusters -h 2>/dev/null | awk '{print $1"/"$2}'); do pg_ctlcluster "${c%/*}" "${c#*/}" start 2>/dev/null || true; done
        wait_port 5432 100 || true
    fi
    if wait_port 5432 1; then
        export DIALERD_TEST_DATABASE_URL="postgres://postgres@127.0.0.1:5432/test"
    else
        echo "tests/run.sh: no PostgreSQL on 127.0.0.1:5432; the PostgreSQL tests will say they skipped" >&2
    fi
fi
if [ -n "${DIALERD_TEST_DATABASE_URL:-}" ] && command -v psql >/dev/null 2>&1; then
    for db in $(psql "$DIALERD_TEST_DATABASE_URL" -Atc "SELECT datname FROM pg_database WHERE datname LIKE 'dialerd_t_%'" 2>/dev/null); do
        psql "$DIALERD_TEST_DATABASE_URL" -qc "DROP DATABASE IF EXISTS \"$db\"" >/dev/null 2>&1 || true
    done
fi

# systemd-analyze (Debian's `systemd` package) scores the unit file in tests/systemd_unit.rs.
if ! command -v systemd-analyze >/dev/null 2>&1; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq systemd >/dev/null) \
        || echo "tests/run.sh: could not install systemd; the unit-file test will fail" >&2
fi

# A real journal (systemd-journald, from the same package) for tests/journald.rs, which reads it
# back with journalctl. Started here unless one already answers on its socket.
journal_alive() {
    python3 -c "import socket; socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM).sendto(b'MESSAGE=tests/run.sh probe\n', '/run/systemd/journal/socket')" 2>/dev/null
}
if ! journal_alive && [ -x /lib/systemd/systemd-journald ]; then
    /lib/systemd/systemd-journald >/dev/null 2>&1 &
    pids+=($!)
    for _ in $(seq 1 50); do journal_alive && break; sleep 0.1; done
fi
if journal_alive; then
    export DIALERD_TEST_JOURNAL=1
else
    echo "tests/run.sh: no systemd-journald; the journal test will skip" >&2
fi

# A real SMTP server on loopback for the follow-up email test (Python `aiosmtpd` from PyPI).
# The test reads DIALERD_TEST_SMTP (host:port) and the server's log; unset, it says it skipped.
if python3 -c "import aiosmtpd" 2>/dev/null || python3 -m pip install --quiet aiosmtpd 2>/dev/null \
    || python3 -m pip install --quiet --break-system-packages aiosmtpd; then
    smtp_port=$(free_port)
    smtp_log=$(mktemp)
    tmpfiles+=("$smtp_log")
    python3 -u -m aiosmtpd -n -l "127.0.0.1:${smtp_port}" >"$smtp_log" 2>&1 &
    pids+=($!)
    wait_port "$smtp_port" 50 || true
    export DIALERD_TEST_SMTP="127.0.0.1:${smtp_port}" DIALERD_TEST_SMTP_LOG="$smtp_log"
else
    echo "tests/run.sh: could not install aiosmtpd; the SMTP test will skip" >&2
fi

# HubSpot's CRM v3 contract: Prism (npm `@stoplight/prism-cli`, pinned in tests/peers/package.json
# and its lockfile, installed into the git-ignored tests/peers/node_modules) serves
# tests/peers/hubspot-crm-v3.yaml and answers 422 to any request that does not match it. The
# tests read DIALERD_TEST_PRISM (host:port) and its log; unset, they say they skipped.
prism=tests/peers/node_modules/.bin/prism
if [ -x "$prism" ] || (cd tests/peers && npm ci --no-audit --no-fund --loglevel=error >/dev/null); then
    prism_port=$(free_port)
    prism_log=$(mktemp)
    tmpfiles+=("$prism_log")
    "$prism" mock -h 127.0.0.1 -p "$prism_port" tests/peers/hubspot-crm-v3.yaml >"$prism_log" 2>&1 &
    pids+=($!)
    if wait_port "$prism_port" 300; then
        export DIALERD_TEST_PRISM="127.0.0.1:${prism_port}" DIALERD_TEST_PRISM_LOG="$prism_log"
    else
        echo "tests/run.sh: Prism did not start; the HubSpot contract tests will skip:" >&2
        cat "$prism_log" >&2
    fi
else
    echo "tests/run.sh: could not install Prism; the HubSpot contract tests will skip" >&2
fi

# Twilio's REST API as its OpenAPI file describes it (a patched copy; see tests/peers/README.md),
# served by the same Prism. The tests read DIALERD_TEST_PRISM_TWILIO (a base URL).
if [ -x "$prism" ]; then
    twilio_port=$(free_port)
    twilio_log=$(mktemp)
    tmpfiles+=("$twilio_log")
    "$prism" mock -h 127.0.0.1 -p "$twilio_port" tests/peers/twilio_api_v2010.json >"$twilio_log" 2>&1 &
    pids+=($!)
    if wait_port "$twilio_port" 300; then
        export DIALERD_TEST_PRISM_TWILIO="http://127.0.0.1:${twilio_port}"
    else
        echo "tests/run.sh: Prism did not start on the Twilio spec; the Twilio contract tests will skip:" >&2
        cat "$twilio_log" >&2
    fi
fi

# Python `twilio`'s RequestValidator, the oracle of the X-Twilio-Signature tests (pinned).
if python3 -c "import twilio" 2>/dev/null || python3 -m pip install --quiet "twilio==9.3.7" 2>/dev/null \
    || python3 -m pip install --quiet --break-system-packages "twilio==9.3.7"; then
    export DIALERD_TEST_TWILIO_PYTHON=python3
else
    echo "tests/run.sh: could not install Python twilio; the signature oracle test will skip" >&2
fi

# Python `prometheus_client`'s parser reads GET /metrics in tests/operator_api.rs (pinned).
python3 -c "import prometheus_client" 2>/dev/null || python3 -m pip install --quiet "prometheus_client==0.26.0" 2>/dev/null \
    || python3 -m pip install --quiet --break-system-packages "prometheus_client==0.26.0" \
    || echo "tests/run.sh: could not install prometheus_client; the metrics test will fail" >&2

# Headless Chromium (Debian `chromium`) and PyPI's `websocket-client` (pinned) drive the status
# page in tests/status_page.rs over the DevTools protocol; without them that test says it skipped.
if ! command -v chromium >/dev/null 2>&1; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
        || echo "tests/run.sh: could not install chromium; the status page test will skip" >&2
fi
python3 -c "import websocket" 2>/dev/null || python3 -m pip install --quiet "websocket-client==1.8.0" 2>/dev/null \
    || python3 -m pip install --quiet --break-system-packages "websocket-client==1.8.0" \
    || echo "tests/run.sh: could not install websocket-client; the status page test will skip" >&2

# schemathesis (PyPI, pinned) checks the API against its own OpenAPI file in
# tests/openapi_schemathesis.rs; without it that test says it skipped.
command -v schemathesis >/dev/null 2>&1 || python3 -m pip install --quiet "schemathesis==4.32.5" 2>/dev/null \
    || python3 -m pip install --quiet --break-system-packages "schemathesis==4.32.5" \
    || echo "tests/run.sh: could not install schemathesis; the OpenAPI test will skip" >&2

cargo test --no-fail-fast "$@"
