#!/usr/bin/env bash
# Cross-builds the whole workspace for Windows and runs its Windows-target tests under Wine.
#
#   scripts/windows.sh            install (if missing), build, test — what CI runs
#   scripts/windows.sh install    only install the Debian cross toolchain (idempotent)
#   scripts/windows.sh build      cross-build every workspace crate (debug)
#   scripts/windows.sh test       build the test binaries and run each under Wine
#   scripts/windows.sh release    release build of agentsh.exe (the shipped binary)
#   scripts/windows.sh sign-test  test-sign agentsh.exe with a throwaway certificate and verify it
#
# One target is built, tested and shipped: x86_64-pc-windows-gnu. Its std imports ProcessPrng from
# bcryptprimitives.dll (Windows 10+), which Wine 8 lacks; the test harness alone puts a tiny shim
# exporting ProcessPrng next to the test executables (never into a package), so Wine runs the very
# binaries that ship.
set -euo pipefail
cd "$(dirname "$0")/.."

TARGET=x86_64-pc-windows-gnu
TARGET_DIR="${AGENTSH_WINDOWS_TARGET_DIR:-target/windows}"
SHIM_DIR="$TARGET_DIR/shim"
case "$TARGET_DIR" in /*) ;; *) TARGET_DIR="$PWD/$TARGET_DIR" ;; esac
export WINEPREFIX="$TARGET_DIR/wineprefix"
export WINEDEBUG=-all
WINE=/usr/lib/wine/wine64

# The rustup toolchain drives the build; Debian's rustc-web (with rust-web-src) compiles std for
# Windows. Neither is taken from PATH order: Debian may install its own /usr/bin/cargo.
if command -v rustup >/dev/null 2>&1; then
  CARGO="$(rustup which cargo)"
else
  CARGO="${CARGO:-$HOME/.cargo/bin/cargo}"
fi
export RUSTC=/usr/bin/rustc
export RUSTC_BOOTSTRAP=1
# Warnings are errors for the Windows build as they are natively. clippy cannot run here: rustup's
# clippy-driver belongs to another compiler version than /usr/bin/rustc and Debian ships no clippy
# for rustc-web, so the cfg(windows) code gets rustc's lints (workspace [lints] included) only.
# build.warnings=deny applies to workspace crates only (RUSTFLAGS would also hit std and rebuild it).
XARGS=(-Zbuild-std -Zwarnings --config 'build.warnings="deny"' --target "$TARGET" --target-dir "$TARGET_DIR" --workspace --exclude agentsh-emulator --locked)

need_sudo() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

install() {
  local pkgs=(rustc-web rust-web-src gcc-mingw-w64-x86-64 binutils-mingw-w64-x86-64 wine64 osslsigncode openssl)
  local missing=()
  for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    echo "installing: ${missing[*]}"
    need_sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive need_sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
  fi
}

shim() {
  # ProcessPrng for Wine 8, implemented over RtlGenRandom (advapi32!SystemFunction036).
  mkdir -p "$SHIM_DIR"
  if [ ! -f "$SHIM_DIR/bcryptprimitives.dll" ]; then
    cat >"$SHIM_DIR/bcryptprimitives.c" <<'EOF'
#include <windows.h>
BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);
__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len) {
  while (len > 0) {
    ULONG chunk = len > 0x40000000 ? 0x40000000 : (ULONG)len;
    if (!SystemFunction036(data, chunk)) return FALSE;
    data += chunk; len -= chunk;
  }
  return TRUE;
}
EOF
    x86_64-w64-mingw32-gcc -O2 -shared -o "$SHIM_DIR/bcryptprimitives.dll" \
      "$SHIM_DIR/bcryptprimitives.c" -ladvapi32
  fi
}

build() {
  "$CARGO" build "${XARGS[@]}" --all-targets
  # Event Viewer can only show text if the message table really is inside agentsh.exe.
  local exe="$TARGET_DIR/$TARGET/debug/agentsh.exe"
  if [ -f "$exe" ] && ! strings -el "$exe" | grep -q 'The driver entered fail-closed mode'; then
    echo "agentsh.exe has no Event Log message table (packaging/agentsh.mc)" >&2
    return 1
  fi
}

# clippy's undocumented_unsafe_blocks cannot run on the cfg(windows) code (see above), so the rule
# is checked textually there: a line opening an `unsafe` block must directly follow a comment block
# containing `// SAFETY:`.
safety_comments() {
  local files
  files=$(grep -rl 'unsafe' crates/*/src/imp 2>/dev/null | sort -u || true)
  [ -n "$files" ] || return 0
  awk '
    FNR == 1 { documented = 0 }
    /^[[:space:]]*\/\// { if ($0 ~ /SAFETY:/) documented = 1; next }
    /^[[:space:]]*$/ { next }
    /unsafe[[:space:]]*\{/ && !documented {
      printf "%s:%d: unsafe block without a // SAFETY: comment\n", FILENAME, FNR; bad = 1
    }
    { documented = (documented && $0 ~ /=[[:space:]]*$/) }
    END { exit bad }
  ' $files
}

wineprefix() {
  if [ ! -f "$WINEPREFIX/system.reg" ]; then
    mkdir -p "$WINEPREFIX"
    "$WINE" wineboot --init >/dev/null 2>&1 || true
    /usr/lib/wine/wineserver -w 2>/dev/null || true
  fi
}

run_tests() {
  shim
  local list
  list="$("$CARGO" test "${XARGS[@]}" --no-run --message-format=json 2>/dev/null |
    python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("profile", {}).get("test") and m.get("executable"):
        print(m["executable"])')"
  # The shim goes next to every test executable and the binaries they spawn.
  local dir
  for dir in $(printf '%s\n' "$list" | xargs -n1 dirname | sort -u) "$TARGET_DIR/$TARGET/debug" "$TARGET_DIR/$TARGET/debug/examples"; do
    mkdir -p "$dir" && cp -f "$SHIM_DIR/bcryptprimitives.dll" "$dir/"
  done
  wineprefix
  # One persistent wineserver for the whole run: otherwise each test binary may connect while the
  # previous one's server is shutting down ("recvmsg: Connection reset by peer").
  /usr/lib/wine/wineserver -p
  trap '/usr/lib/wine/wineserver -k 2>/dev/null || true' RETURN
  # insta finds its snapshots through the workspace root; it cannot run cargo from inside Wine.
  export INSTA_WORKSPACE_ROOT="$PWD" INSTA_UPDATE=no
  local failed=0 exe
  for exe in $list; do
    echo "--- wine $(basename "$exe")"
    if ! "$WINE" "$exe" --test-threads=2 </dev/null; then
      echo "FAILED under Wine: $exe" >&2
      failed=1
    fi
  done
  return "$failed"
}

# The test-signing steps of docs/deployment.md, run on the built agentsh.exe: a self-made code-signing
# certificate (openssl), an Authenticode signature with a SHA-256 digest (osslsigncode), and the
# verification against that certificate. The same commands sign agentsh.sys for a test-signing host.
sign_test() {
  local dir="$TARGET_DIR/signing" exe="$TARGET_DIR/$TARGET/debug/agentsh.exe"
  mkdir -p "$dir"
  if [ ! -f "$dir/agentsh-test.crt" ]; then
    openssl req -x509 -newkey rsa:3072 -sha256 -days 30 -nodes -subj "/CN=AgentSH Test" \
      -addext "extendedKeyUsage=codeSigning" -addext "keyUsage=digitalSignature" \
      -keyout "$dir/agentsh-test.key" -out "$dir/agentsh-test.crt" 2>/dev/null
  fi
  rm -f "$dir/agentsh-signed.exe"
  osslsigncode sign -certs "$dir/agentsh-test.crt" -key "$dir/agentsh-test.key" -h sha256 \
    -n "AgentSH" -in "$exe" -out "$dir/agentsh-signed.exe" >/dev/null
  osslsigncode verify -CAfile "$dir/agentsh-test.crt" -in "$dir/agentsh-signed.exe" >/dev/null
  echo "test signature made and verified: $dir/agentsh-signed.exe"
}

release() { "$CARGO" build "${XARGS[@]}" --release -p agentsh; }

case "${1:-all}" in
  install) install ;;
  build) install; build ;;
  test) install; run_tests ;;
  release) install; release ;;
  sign-test) install; sign_test ;;
  all)
    install
    start=$SECONDS
    safety_comments
    build
    run_tests
    sign_test
    echo "windows stage: $((SECONDS - start)) s"
    ;;
  *) echo "usage: scripts/windows.sh [install|build|test|release|sign-test|all]" >&2; exit 2 ;;
esac
