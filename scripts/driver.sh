#!/usr/bin/env bash
# agentsh.sys end to end: install the cross toolchain (idempotently), build the driver on Linux,
# check the PE, test-sign and verify it, then run it in the emulated kernel (tests/kernel-emu).
# usage: scripts/driver.sh [build|check|sign|emu|all]   (default: all)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
what=${1:-all}
out=$root/target/driver
mkdir -p "$out"

need_apt=()
[ -x /usr/bin/rustc ] && /usr/bin/rustc -vV 2>/dev/null | grep -q '^release: 1\.9[6-9]' || need_apt+=(rustc-web)
[ -d /usr/lib/rustlib/src/rust/library ] || need_apt+=(rust-web-src)
command -v x86_64-w64-mingw32-gcc >/dev/null || need_apt+=(gcc-mingw-w64-x86-64)
command -v osslsigncode >/dev/null || need_apt+=(osslsigncode)
command -v openssl >/dev/null || need_apt+=(openssl)
[ -f /usr/include/wine/wine/windows/ddk/fltkernel.h ] || need_apt+=(libwine-dev)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "driver.sh: installing ${need_apt[*]}"
  sudo_=""; [ "$(id -u)" = 0 ] || sudo_=sudo
  $sudo_ apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -qq --no-install-recommends "${need_apt[@]}"
fi
if ! python3 -c 'import speakeasy, pefile' 2>/dev/null; then
  echo "driver.sh: installing speakeasy-emulator and pefile from PyPI"
  python3 -m pip install -q speakeasy-emulator pefile 2>/dev/null \
    || python3 -m pip install -q --break-system-packages speakeasy-emulator pefile
fi

# The rustup cargo drives /usr/bin/rustc (the only compiler here with Windows library sources);
# neither is taken from PATH order.
cargo_bin=${CARGO:-$HOME/.cargo/bin/cargo}
[ -x "$cargo_bin" ] || cargo_bin=$(rustup which cargo)

build() {
  (cd driver && RUSTC=/usr/bin/rustc RUSTC_BOOTSTRAP=1 "$cargo_bin" build --release --locked \
    -Zbuild-std=core,alloc,compiler_builtins --target x86_64-pc-windows-gnu)
  cp driver/target/x86_64-pc-windows-gnu/release/agentsh.exe "$out/agentsh.unsigned.sys"
  echo "driver.sh: built $out/agentsh.unsigned.sys"
}

check() {
  x86_64-w64-mingw32-nm "$out/agentsh.unsigned.sys" > "$out/agentsh.nm"
  python3 tests/kernel-emu/pe_check.py "$out/agentsh.unsigned.sys" "$out/agentsh.nm"
  # The check must be able to fail: a user-mode console program is rejected.
  printf '#include <stdio.h>\nint main(void){puts("x");return 0;}\n' > "$out/usermode.c"
  x86_64-w64-mingw32-gcc -o "$out/usermode.exe" "$out/usermode.c"
  if python3 tests/kernel-emu/pe_check.py "$out/usermode.exe" 2>/dev/null; then
    echo "driver.sh: the PE check accepted a user-mode program" >&2; exit 1
  fi
  echo "driver.sh: PE check rejects a user-mode program (msvcrt/kernel32 imports, console subsystem)"
  # Every FFI structure and constant against mingw-w64's and Wine's headers (and, once, proof that a
  # wrong offset fails the check).
  python3 driver/layout/check.py --self-test
  # Every import exists on the oldest build the INF and `driver install` accept (and the check can fail).
  python3 tests/kernel-emu/import_floor.py "$out/agentsh.unsigned.sys" --self-test
  # Every Event Log code the driver writes has text in the image's RT_MESSAGETABLE (and the check can fail).
  python3 tests/kernel-emu/message_table.py "$out/agentsh.unsigned.sys" --self-test
}

sign() {
  packaging/driver-test-signing/sign.sh "$out/agentsh.unsigned.sys" "$out/agentsh.sys" "$out/signing"
  # The signed image: certificate table present, checksum recomputed over the signed file.
  python3 tests/kernel-emu/pe_check.py --signed "$out/agentsh.sys"
  # The checksum check must be able to fail: a copy with a stale checksum is rejected.
  python3 - "$out/agentsh.sys" "$out/agentsh.badsum.sys" <<'PY'
import sys, pefile
pe = pefile.PE(sys.argv[1])
pe.OPTIONAL_HEADER.CheckSum ^= 0x10
pe.write(sys.argv[2])
PY
  if python3 tests/kernel-emu/pe_check.py --signed "$out/agentsh.badsum.sys" 2>/dev/null; then
    echo "driver.sh: the PE check accepted a wrong image checksum" >&2; exit 1
  fi
  echo "driver.sh: PE check rejects a signed image with a wrong checksum"
}

emu() {
  # The driver's side against a small Python stand-in of the service.
  python3 tests/kernel-emu/run.py --driver "$out/agentsh.unsigned.sys"
  # The issue's scenarios end to end against the real `agentsh service run`.
  "$cargo_bin" build -p agentsh --locked
  python3 tests/kernel-emu/real_service.py --driver "$out/agentsh.unsigned.sys" \
    --agentsh "$root/target/debug/agentsh"
}

case $what in
  build) build ;;
  check) build; check ;;
  sign) build; sign ;;
  emu) build; emu ;;
  all) build; check; sign; emu ;;
  *) echo "driver.sh: unknown step \`$what\` (expected build, check, sign, emu or all)" >&2; exit 2 ;;
esac
