#!/usr/bin/env bash
# Opens index.html in headless Chromium against a chat-host started here, as a person would
# after `cargo run -p chat-host`: the page loads socket.io-client from the server
# (/socket.io/socket.io.min.js), connects with the printed admin token, joins a course and sends
# one message; the script then finds that message over REST. Installs Debian's chromium when it
# is missing. Exits non-zero when anything fails.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"

browser="$(command -v chromium || command -v chromium-browser || true)"
if [ -z "$browser" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get install -y -qq chromium >/dev/null || { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; }
    browser="$(command -v chromium)"
  else
    echo "test.sh: chromium is required (apt-get install chromium)" >&2
    exit 2
  fi
fi

cd "$root"
cargo build -q -p chat-host --bin chat-host
bin="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/debug/chat-host"

work="$(mktemp -d)"
pids=()
cleanup() {
  # Chromium's helpers (zygote, renderer) outlive its main process: end its whole process group,
  # and never let a file they were still writing turn a passed test into a failure.
  for p in "${pids[@]}"; do kill -- "-$p" 2>/dev/null || kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work" 2>/dev/null || { sleep 1; rm -rf "$work" 2>/dev/null; } || true
}
trap cleanup EXIT

# The first run with no JWT_SECRET prints the address and an admin token, as the README says.
(cd "$work" && exec "$bin" --addr 127.0.0.1:0 --data-dir "$work/data" >"$work/stdout" 2>"$work/server.log") &
pids+=($!)
url="" token=""
for _ in $(seq 1 300); do
  url="$(sed -n 's/^chat-host listening on \(http:\/\/[0-9.:]*\).*/\1/p' "$work/stdout" | head -n1)"
  token="$(sed -n '/^Admin token/{n;p}' "$work/stdout" | head -n1)"
  [ -n "$url" ] && [ -n "$token" ] && break
  sleep 0.1
done
[ -n "$url" ] && [ -n "$token" ] || { cat "$work/server.log" >&2; echo "test.sh: chat-host did not start" >&2; exit 1; }

curl -fsS -X PUT "$url/api/v1/chat/courses/demo" -H "Authorization: Bearer $token" \
  -H 'Content-Type: application/json' -d '{"name":"Demo"}' >/dev/null

text="hello from chromium $RANDOM$RANDOM"
query="server=$(python3 -c 'import sys,urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$url")"
query="$query&course=demo&token=$token&connect=1&send=$(python3 -c 'import sys,urllib.parse; print(urllib.parse.quote(sys.argv[1]))' "$text")"
setsid "$browser" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync \
  --user-data-dir="$work/profile" --remote-debugging-port=0 \
  "file://$here/index.html?$query" >"$work/browser.log" 2>&1 &
pids+=($!)

for _ in $(seq 1 300); do
  if curl -fsS "$url/api/v1/chat/course/demo" -H "Authorization: Bearer $token" | grep -qF "$text"; then
    echo "browser example: the page loaded socket.io-client from $url and sent \"$text\""
    exit 0
  fi
  sleep 0.1
done
echo "test.sh: the page's message never arrived; server log:" >&2
tail -n 30 "$work/server.log" >&2
tail -n 20 "$work/browser.log" >&2
exit 1
