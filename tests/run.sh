#!/usr/bin/env bash
# The test command: sets up what the tests need on this machine, then runs every test.
# Usage: bash tests/run.sh [extra cargo test args]
set -euo pipefail
cd "$(dirname "$0")/.."

# A real SMTP server on loopback for the follow-up email test (Python `aiosmtpd` from PyPI).
# The test reads DIALERD_TEST_SMTP (host:port) and the server's log; unset, it says it skipped.
if python3 -c "import aiosmtpd" 2>/dev/null || python3 -m pip install --quiet aiosmtpd 2>/dev/null \
    || python3 -m pip install --quiet --break-system-packages aiosmtpd; then
    smtp_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    smtp_log=$(mktemp)
    python3 -u -m aiosmtpd -n -l "127.0.0.1:${smtp_port}" >"$smtp_log" 2>&1 &
    smtp_pid=$!
    trap 'kill "$smtp_pid" 2>/dev/null || true; rm -f "$smtp_log"' EXIT
    for _ in $(seq 1 50); do
        python3 -c "import socket; socket.create_connection(('127.0.0.1', ${smtp_port}), 1)" 2>/dev/null && break
        sleep 0.1
    done
    export DIALERD_TEST_SMTP="127.0.0.1:${smtp_port}" DIALERD_TEST_SMTP_LOG="$smtp_log"
else
    echo "tests/run.sh: could not install aiosmtpd; the SMTP test will skip" >&2
fi

cargo test --no-fail-fast "$@"
