#!/usr/bin/env bash
# Reliability checks that need more than `cargo test` (which already runs the crash test's short
# version, the hostile-client tests and the auth sweep):
#   1. fuzz smoke: each cargo-fuzz target in fuzz/ for FUZZ_SECONDS (15 s; 300 s with
#      CHAT_LONG_TESTS=1) from the committed corpus (fuzz/corpus/<target>); installs cargo-fuzz if
#      missing; runs on stable rustc through RUSTC_BOOTSTRAP=1;
#   2. schemathesis (PyPI, in a venv under the target dir) against a running chat-host with
#      docs/openapi.yaml: no 500 and responses conforming to the schema;
#   3. with CHAT_LONG_TESTS=1: the crash test's long version (24 SIGKILL cycles), the hostile
#      tests' long version (50k connect churn).
# Usage: scripts/reliability.sh            # short (~3-5 min once built)
#        CHAT_LONG_TESTS=1 scripts/reliability.sh
#        SKIP_FUZZ=1 / SKIP_SCHEMATHESIS=1 to leave one out.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"
long="${CHAT_LONG_TESTS:-0}"
[ "$long" = "0" ] && long=""
step() { printf '\n==> %s\n' "$*"; }
summary=()

# ---- fuzz --------------------------------------------------------------------------------------
if [ -z "${SKIP_FUZZ:-}" ]; then
  secs="${FUZZ_SECONDS:-$([ -n "$long" ] && echo 300 || echo 15)}"
  if ! command -v cargo-fuzz >/dev/null 2>&1; then
    step "installing cargo-fuzz"
    cargo install --locked cargo-fuzz
  fi
  fuzz_target_dir="$CARGO_TARGET_DIR/fuzz"
  step "fuzz: building targets"
  (cd fuzz && RUSTC_BOOTSTRAP=1 CARGO_TARGET_DIR="$fuzz_target_dir" cargo fuzz build -O)
  for t in ws_frame rest_body multipart socketio_packet; do
    step "fuzz: $t for ${secs}s"
    log="$fuzz_target_dir/$t.log"
    # Runs on a scratch copy of the corpus: the committed one stays small (merge new finds with
    # `cargo fuzz cmin` by hand when worthwhile).
    work="$fuzz_target_dir/corpus-$t"
    rm -rf "$work" && mkdir -p "$work" && cp -r "fuzz/corpus/$t/." "$work/"
    if ! (cd fuzz && RUSTC_BOOTSTRAP=1 CARGO_TARGET_DIR="$fuzz_target_dir" \
          cargo fuzz run -O "$t" "$work" "corpus/$t" -- \
          -max_total_time="$secs" -max_len=8192 -rss_limit_mb=2048 -timeout=20 \
          -artifact_prefix="$fuzz_target_dir/artifacts-$t-" >"$log" 2>&1); then
      tail -n 40 "$log"
      echo "fuzz target $t failed (log: $log)" >&2
      exit 1
    fi
    runs="$(grep -Eo 'Done [0-9]+ runs' "$log" | tail -1 || true)"
    summary+=("fuzz $t: ${runs:-?} in ${secs}s")
    echo "${runs:-?}"
  done
fi

# ---- schemathesis ------------------------------------------------------------------------------
if [ -z "${SKIP_SCHEMATHESIS:-}" ]; then
  step "schemathesis: venv"
  venv="$CARGO_TARGET_DIR/schemathesis-venv"
  if [ ! -x "$venv/bin/schemathesis" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --upgrade pip
    "$venv/bin/pip" install --quiet schemathesis
  fi
  step "schemathesis: starting chat-host"
  cargo build --release -p chat-host
  data="$(mktemp -d)"
  secret="reliability-$(date +%s)-$RANDOM"
  out="$data/stdout"
  CHAT_ADDR=127.0.0.1:0 CHAT_DATA_DIR="$data/data" JWT_SECRET="$secret" RUST_LOG=warn \
    CHAT_RATE_LIMIT=1000000 "$CARGO_TARGET_DIR/release/chat-host" >"$out" 2>"$data/stderr" &
  host_pid=$!
  trap 'kill "$host_pid" 2>/dev/null || true; rm -rf "$data"' EXIT
  for _ in $(seq 1 100); do grep -q 'listening on' "$out" 2>/dev/null && break; sleep 0.1; done
  url="$(grep -Eo 'http://127\.0\.0\.1:[0-9]+' "$out" | head -1)"
  [ -n "$url" ] || { cat "$data/stderr"; echo "chat-host did not start" >&2; exit 1; }
  admin="$(SECRET="$secret" "$venv/bin/python" - <<'PY'
import base64, hashlib, hmac, json, os, time
b = lambda x: base64.urlsafe_b64encode(x).rstrip(b"=")
h = b(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
p = b(json.dumps({"sub": "admin", "name": "Admin", "role": "admin", "exp": int(time.time()) + 3600}).encode())
s = b(hmac.new(os.environ["SECRET"].encode(), h + b"." + p, hashlib.sha256).digest())
print((h + b"." + p + b"." + s).decode())
PY
)"
  for path in courses/c1 courses/c1/participants/admin; do
    curl -fsS -X PUT "$url/api/v1/chat/$path" -H "Authorization: Bearer $admin" \
      -H 'Content-Type: application/json' -d '{"name":"Course 1","role":"instructor"}' >/dev/null
  done
  curl -fsS -X POST "$url/api/v1/chat/send" -H "Authorization: Bearer $admin" \
    -H 'Content-Type: application/json' -d '{"courseId":"c1","message":"seed"}' >/dev/null
  examples="${SCHEMATHESIS_EXAMPLES:-$([ -n "$long" ] && echo 500 || echo 30)}"
  step "schemathesis: $examples examples per operation"
  help="$("$venv/bin/schemathesis" run --help)"
  args=(run "$root/docs/openapi.yaml" --url "$url" -H "Authorization: Bearer $admin"
        --checks not_a_server_error,response_schema_conformance)
  if grep -q -- '--max-examples' <<<"$help"; then args+=(--max-examples "$examples"); fi
  if grep -q -- '--hypothesis-max-examples' <<<"$help"; then args+=(--hypothesis-max-examples "$examples"); fi
  if grep -q -- '--seed' <<<"$help"; then args+=(--seed 1); fi
  if grep -q -- '--hypothesis-seed' <<<"$help"; then args+=(--hypothesis-seed 1); fi
  log="$data/schemathesis.log"
  # From the scratch folder: schemathesis keeps its state in ./.schemathesis.
  if ! (cd "$data" && "$venv/bin/schemathesis" "${args[@]}") 2>&1 | tee "$log"; then
    echo "schemathesis found problems" >&2
    grep -i panick "$data/stderr" || true
    exit 1
  fi
  summary+=("schemathesis: $(grep -Eio '[0-9]+ (test cases|generated)[^\n]*' "$log" | tail -1 || echo done)")
  kill "$host_pid" 2>/dev/null || true
  wait "$host_pid" 2>/dev/null || true
  trap - EXIT
  rm -rf "$data"
fi

# ---- long versions of the cargo tests ----------------------------------------------------------
if [ -n "$long" ]; then
  step "crash test, long (24 SIGKILL cycles)"
  CHAT_LONG_TESTS=1 cargo test -p chat-host --test crash -- --nocapture 2>&1 | grep -E 'crash test|refused|test result'
  step "hostile clients, long (50k connect churn)"
  CHAT_LONG_TESTS=1 cargo test -p chat-host --test hostile -- --nocapture 2>&1 | grep -E ': |test result'
fi

step "reliability checks passed"
printf '  %s\n' "${summary[@]}"
