#!/usr/bin/env bash
# The bindings' test command. On a fresh Debian machine (as root) it installs what it needs, then:
#   1. builds chat-ffi (cdylib) and the in-workspace uniffi-bindgen,
#   2. checks the committed Python/Kotlin/Swift bindings against a regeneration (drift),
#   3. checks the Swift header: gcc -fsyntax-only, and its symbols against `nm -D` of the library,
#   4. installs the Python package (maturin) in a fresh venv and runs pytest,
#   5. compiles the Kotlin tests with kotlinc and runs them on the JVM with JNA.
# The client SDK's tests (Python and Kotlin) drive a real chat-host process (built in step 1).
# Idempotent; re-runs reuse the cargo target dir, the Kotlin compiler and the pip cache.
#
#   bindings/test.sh            # everything
#   SKIP_KOTLIN=1 bindings/test.sh
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"
lib_dir="$CARGO_TARGET_DIR/debug"
lib="$lib_dir/libchat_ffi.so"
step() { printf '\n==> %s\n' "$*"; }
have() { command -v "$1" >/dev/null 2>&1; }

# ---- 0. system tools ---------------------------------------------------------------------------
have cargo || { echo "cargo (Rust) is required: https://rustup.rs" >&2; exit 1; }
missing=()
[ -f /usr/share/java/jna.jar ] || missing+=(libjna-java)
have java || missing+=(default-jre-headless)
have npm || missing+=(npm)
have gcc || missing+=(gcc)
have nm || missing+=(binutils)
have python3 || missing+=(python3)
if have python3 && ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then missing+=(python3-venv); fi
if [ "${SKIP_KOTLIN:-}" = 1 ]; then
  missing=("${missing[@]/libjna-java/}"); missing=("${missing[@]/default-jre-headless/}"); missing=("${missing[@]/npm/}")
fi
pkgs="$(printf '%s ' "${missing[@]}" | xargs || true)"
if [ -n "$pkgs" ]; then
  step "apt-get install $pkgs"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # shellcheck disable=SC2086
  apt-get install -y -qq $pkgs >/dev/null
fi

# ---- 1. build ----------------------------------------------------------------------------------
step "build chat-ffi, uniffi-bindgen and chat-host ($CARGO_TARGET_DIR)"
cargo build --manifest-path "$root/Cargo.toml" -p chat-ffi --features cli --lib --bin uniffi-bindgen
cargo build --manifest-path "$root/Cargo.toml" -p chat-host --bin chat-host
export CHAT_HOST_BIN="$lib_dir/chat-host"
export CHAT_MEDIA_DIR="$root/chat-core/tests/fixtures/media"

# ---- 2. drift ----------------------------------------------------------------------------------
step "drift: committed bindings vs a regeneration"
fresh="$(mktemp -d)"
trap 'rm -rf "$fresh"' EXIT
"$here/generate.sh" "$fresh"
drift=0
for lang in python kotlin swift; do
  if diff -r -q "$here/$lang/generated" "$fresh/$lang" >/dev/null; then
    echo "ok   $lang bindings are up to date"
  else
    echo "FAIL $lang bindings drifted; run bindings/generate.sh and commit:"
    diff -r -u "$here/$lang/generated" "$fresh/$lang" | head -40 || true
    drift=1
  fi
done
[ "$drift" = 0 ] || exit 1

# ---- 3. swift header ---------------------------------------------------------------------------
step "swift: header syntax, symbols vs nm -D, modulemap"
swift_dir="$here/swift/generated"
header="$swift_dir/chat_ffiFFI.h"
# _Nonnull/_Nullable are clang nullability qualifiers (Swift builds use clang); gcc lacks them.
printf '#include "chat_ffiFFI.h"\n' |
  gcc -fsyntax-only -std=c11 -Wall -Wextra -Werror -D_Nonnull= -D_Nullable= -D_Null_unspecified= \
    -I "$swift_dir" -x c -
echo "ok   gcc -fsyntax-only $(basename "$header")"
header_syms="$(grep -oE '\b(uniffi|ffi)_chat_ffi_[A-Za-z0-9_]+\s*\(' "$header" | sed -E 's/\s*\($//' | sort -u)"
lib_syms="$(nm -D --defined-only "$lib" | awk '{print $3}' | grep -E '^(uniffi|ffi)_chat_ffi_' | sort -u)"
n_header="$(printf '%s\n' "$header_syms" | grep -c . || true)"
only_header="$(comm -23 <(printf '%s\n' "$header_syms") <(printf '%s\n' "$lib_syms"))"
# uniffi 0.32's Swift header leaves out the checksum functions of methods on error enums
# (ChatError.code / http_status); the Swift code never calls them. Anything else must match.
only_lib="$(comm -13 <(printf '%s\n' "$header_syms") <(printf '%s\n' "$lib_syms") |
  grep -v -E '^uniffi_chat_ffi_checksum_method_chaterror_' || true)"
if [ -n "$only_header" ] || [ -n "$only_lib" ] || [ "$n_header" -lt 50 ]; then
  echo "FAIL header and library disagree (header: $n_header functions)"
  [ -z "$only_header" ] || printf 'missing from the library:\n%s\n' "$only_header"
  [ -z "$only_lib" ] || printf 'missing from the header:\n%s\n' "$only_lib"
  exit 1
fi
echo "ok   $n_header header functions match the exported symbols of libchat_ffi.so"
grep -q 'header "chat_ffiFFI.h"' "$swift_dir/chat_ffiFFI.modulemap"
grep -q 'module chat_ffiFFI' "$swift_dir/chat_ffiFFI.modulemap"
grep -q 'canImport(chat_ffiFFI)' "$swift_dir/chat_ffi.swift"
echo "ok   modulemap names the header and the module the Swift file imports"

# ---- 4. python ---------------------------------------------------------------------------------
step "python: fresh venv, pip install bindings/python, pytest"
venv="$here/python/.venv"
rm -rf "$venv"
python3 -m venv "$venv"
"$venv/bin/pip" install -q --disable-pip-version-check "maturin>=1.5,<2.0" pytest "pyjwt>=2,<3"
# Build with the dev profile into the same target dir as step 1 (no second full compile).
PATH="$venv/bin:$PATH" MATURIN_PEP517_ARGS="--profile dev" \
  "$venv/bin/pip" install -q --disable-pip-version-check --no-build-isolation "$here/python"
installed="$("$venv/bin/python" -c 'import sys, chat_ffi; print(sys.modules["chat_ffi.chat_ffi.chat_ffi"].__file__)')"
if ! diff -q "$installed" "$here/python/generated/chat_ffi.py" >/dev/null; then
  echo "FAIL the module maturin generated differs from bindings/python/generated/chat_ffi.py"
  exit 1
fi
echo "ok   installed module == committed bindings/python/generated/chat_ffi.py"
(cd "$here/python" && "$venv/bin/python" -m pytest -q -p no:cacheprovider tests)

# ---- 5. kotlin ---------------------------------------------------------------------------------
if [ "${SKIP_KOTLIN:-}" = 1 ]; then
  echo "kotlin: skipped (SKIP_KOTLIN=1)"
  exit 0
fi
step "kotlin: kotlinc + JVM (JNA)"
tools="$here/kotlin/.tools"
kotlin_home="$tools/node_modules/kotlin-compiler"
if [ ! -x "$kotlin_home/bin/kotlinc" ]; then
  mkdir -p "$tools"
  (cd "$tools" && npm install --silent --no-audit --no-fund --no-save kotlin-compiler@2)
fi
build="$here/kotlin/build"
mkdir -p "$build"
jar="$build/test.jar"
sources=("$here/kotlin/generated/uniffi/chat_ffi/chat_ffi.kt" "$here/kotlin/test/Main.kt" "$here/kotlin/test/ClientTest.kt")
stamp="$(cat "${sources[@]}" | sha256sum | cut -d' ' -f1)"
if [ ! -f "$jar" ] || [ "$(cat "$build/test.jar.sha256" 2>/dev/null)" != "$stamp" ]; then
  "$kotlin_home/bin/kotlinc" -nowarn "${sources[@]}" -cp /usr/share/java/jna.jar -d "$jar"
  echo "$stamp" >"$build/test.jar.sha256"
else
  echo "(test.jar is up to date)"
fi
for main in MainKt ClientTestKt; do
  java -Djna.library.path="$lib_dir" \
    -cp "$jar:/usr/share/java/jna.jar:$kotlin_home/lib/kotlin-stdlib.jar" "$main"
done

step "all bindings checks passed"
