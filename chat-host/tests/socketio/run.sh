#!/usr/bin/env bash
# Runs the Socket.IO suite: installs socket.io-client from the npm registry (npm ci, from the
# committed package-lock.json), builds chat-host, starts it on a free port with a temporary data
# folder, a known JWT secret and a short heartbeat, runs `node --test`, and stops the server.
# Exits non-zero when anything fails. Honours CARGO_TARGET_DIR (and Cargo's own settings).
#
#   bash chat-host/tests/socketio/run.sh            # from anywhere in the repository
#   KEEP_LOG=1 bash chat-host/tests/socketio/run.sh # keep the server's log
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../../.." && pwd)"

command -v node >/dev/null || { echo "run.sh: node (>= 18) is required" >&2; exit 2; }
command -v npm >/dev/null || { echo "run.sh: npm is required" >&2; exit 2; }

cd "$here"
if ! npm ci --no-audit --no-fund --loglevel=error; then
  echo "run.sh: npm ci failed, trying npm install" >&2
  npm install --no-audit --no-fund --loglevel=error
fi

cd "$root"
cargo build -p chat-host --bin chat-host
target_dir="$(cargo metadata --format-version 1 --no-deps | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).target_directory))')"
bin="$target_dir/debug/chat-host"

work="$(mktemp -d)"
server_pid=""
cleanup() {
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$server_pid" 2>/dev/null || true
  fi
  if [ -n "${KEEP_LOG:-}" ]; then
    echo "run.sh: server log kept in $work/server.log" >&2
  else
    rm -rf "$work"
  fi
}
trap cleanup EXIT

secret="socketio-test-$(date +%s)-$RANDOM"
ping_interval=1
ping_timeout=2
: >"$work/stdout"
: >"$work/server.log"
RUST_LOG="${RUST_LOG:-info}" "$bin" \
  --addr 127.0.0.1:0 \
  --data-dir "$work/data" \
  --jwt-secret "$secret" \
  --ping-interval "$ping_interval" \
  --ping-timeout "$ping_timeout" \
  --rate-limit 1000 \
  >"$work/stdout" 2>"$work/server.log" &
server_pid=$!

url=""
for _ in $(seq 1 300); do
  url="$(sed -n 's/^chat-host listening on \(http:\/\/[0-9.:]*\).*/\1/p' "$work/stdout" 2>/dev/null | head -n1 || true)"
  [ -n "$url" ] && break
  kill -0 "$server_pid" 2>/dev/null || { cat "$work/server.log" >&2; echo "run.sh: chat-host exited" >&2; exit 1; }
  sleep 0.1
done
[ -n "$url" ] || { echo "run.sh: chat-host did not start" >&2; exit 1; }
echo "run.sh: chat-host at $url"

cd "$here"
status=0
CHAT_URL="$url" JWT_SECRET="$secret" \
  CHAT_PING_INTERVAL_MS=$((ping_interval * 1000)) CHAT_PING_TIMEOUT_MS=$((ping_timeout * 1000)) \
  node --test --test-concurrency=1 || status=$?

if [ "$status" -ne 0 ]; then
  echo "run.sh: tests failed; last lines of the server log:" >&2
  tail -n 40 "$work/server.log" >&2 || true
fi
exit "$status"
