#!/usr/bin/env bash
# Every test of the project, on a fresh Debian machine (as root) or a developer's.
# It installs what it needs (cargo components, apt packages, pip and npm packages) and runs:
#   1. cargo fmt --check and clippy -D warnings on the whole workspace,
#   2. cargo test --workspace (core unit/property tests, host end-to-end tests over real sockets,
#      the PostgreSQL store and the Redis cluster against local services, which
#      scripts/services.sh installs and starts when a machine lacks them, and two chat-host
#      processes serving one deployment),
#   3. the bindings: Python package in a fresh venv + pytest, Kotlin on the JVM, Swift checks,
#   4. the real npm socket.io-client against a running chat-host, and the browser example in
#      headless Chromium (Debian's package),
#   5. the reliability checks' short versions: a fuzz smoke run of every cargo-fuzz target and
#      schemathesis against docs/openapi.yaml (the crash, hostile-client and auth tests run in 2),
#   6. the benchmark harness's quick run and a second of the in-process send load (so they cannot
#      rot).
# Long versions of the reliability checks: CHAT_LONG_TESTS=1 scripts/test.sh (see README).
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
step() { printf '\n==> %s\n' "$*"; }
started=$(date +%s)

step "toolchain components"
rustup component add rustfmt clippy >/dev/null 2>&1 || true

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy -D warnings"
cargo clippy --workspace --all-targets -- -D warnings

step "services: PostgreSQL and Redis for the several-node tests"
bash scripts/services.sh

step "cargo test --workspace (PostgreSQL store and Redis cluster included)"
cargo test --workspace
# The engine without its default store still builds (sled is a feature).
cargo check --quiet -p chat-core --no-default-features

step "bindings (Python, Kotlin, Swift)"
bash bindings/test.sh

step "socket.io-client (npm) against chat-host"
bash chat-host/tests/socketio/run.sh

step "browser example in headless Chromium (client loaded from chat-host)"
bash examples/browser-socketio/test.sh

step "reliability: fuzz smoke and schemathesis"
bash scripts/reliability.sh

step "benchmark harness (quick)"
bash bench/run --quick
# The in-process load that bench/profile records, for a second; and the profiler script parses.
cargo run --release --quiet -p chat-core --example send_load -- sled 8 1
bash -n bench/profile

step "all tests passed in $(( $(date +%s) - started )) s"
