#!/usr/bin/env bash
# Refreshes chat-host/assets/socket.io-client/: the browser bundles of the npm socket.io-client
# that chat-host serves at /socket.io/socket.io.js (like the Node.js socket.io server does), with
# their source maps and the package's licence. The version is pinned in VERSION; the tarball is
# checked against the npm registry's integrity hash before anything is copied.
#
#   scripts/vendor-socket.io-client.sh          # the pinned version
#   scripts/vendor-socket.io-client.sh 4.8.5    # move the pin (then rerun the tests)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
dest="$root/chat-host/assets/socket.io-client"
version="${1:-$(cat "$dest/VERSION")}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"
tarball="$(npm pack "socket.io-client@$version" --silent)"
want="$(npm view "socket.io-client@$version" dist.integrity)"
got="sha512-$(openssl dgst -sha512 -binary "$tarball" | base64 -w0)"
[ "$want" = "$got" ] || { echo "integrity mismatch: $got != $want" >&2; exit 1; }
tar xzf "$tarball"
# The msgpack bundle is left out: it speaks socket.io-msgpack-parser, and chat-host speaks the
# default JSON parser only.
for f in socket.io.js socket.io.min.js socket.io.esm.min.js; do
  cp "package/dist/$f" "package/dist/$f.map" "$dest/"
done
cp package/LICENSE "$dest/LICENSE"
echo "$version" > "$dest/VERSION"
echo "vendored socket.io-client $version into $dest"
