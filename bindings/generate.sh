#!/usr/bin/env bash
# Regenerates the committed bindings (Python, Kotlin, Swift) from the chat-ffi library with the
# in-workspace uniffi-bindgen (same uniffi version as the library). Never edit them by hand.
#
#   bindings/generate.sh            # writes bindings/{python,kotlin,swift}/generated
#   bindings/generate.sh OUT_DIR    # writes OUT_DIR/{python,kotlin,swift} (used by the drift check)
#
# Honours CARGO_TARGET_DIR (default: <repo>/target). Builds the dev profile.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
target="${CARGO_TARGET_DIR:-$root/target}"
out="${1:-}"

cargo build --quiet --manifest-path "$root/Cargo.toml" -p chat-ffi --features cli --lib --bin uniffi-bindgen
lib="$target/debug/libchat_ffi.so"
bindgen="$target/debug/uniffi-bindgen"

gen() { # language dest
  rm -rf "$2" && mkdir -p "$2"
  "$bindgen" generate --library "$lib" --language "$1" --out-dir "$2" --no-format >/dev/null
}
if [ -n "$out" ]; then
  gen python "$out/python"; gen kotlin "$out/kotlin"; gen swift "$out/swift"
else
  gen python "$here/python/generated"; gen kotlin "$here/kotlin/generated"; gen swift "$here/swift/generated"
fi
