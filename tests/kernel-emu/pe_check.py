#!/usr/bin/env python3
"""PE checks for agentsh.sys: native subsystem, DriverEntry entry point, FORCE_INTEGRITY and
NX_COMPAT, no writable+executable section, imports only from kernel modules."""
import sys

import pefile

ALLOWED_IMPORTS = {"ntoskrnl.exe", "hal.dll", "fltmgr.sys"}
IMAGE_SUBSYSTEM_NATIVE = 1
FORCE_INTEGRITY = 0x0080
NX_COMPAT = 0x0100
SCN_EXECUTE = 0x20000000
SCN_WRITE = 0x80000000


def check(path, entry_rva=None):
    """Returns a list of failures (empty when the image passes)."""
    pe = pefile.PE(path)
    failures = []
    opt = pe.OPTIONAL_HEADER
    if opt.Subsystem != IMAGE_SUBSYSTEM_NATIVE:
        failures.append(f"{path}: subsystem is {opt.Subsystem}, expected 1 (native)")
    for flag, name in ((FORCE_INTEGRITY, "FORCE_INTEGRITY"), (NX_COMPAT, "NX_COMPAT")):
        if not opt.DllCharacteristics & flag:
            failures.append(f"{path}: DllCharacteristics {opt.DllCharacteristics:#x} lacks {name}")
    for s in pe.sections:
        if s.Characteristics & SCN_EXECUTE and s.Characteristics & SCN_WRITE:
            name = s.Name.rstrip(b"\0").decode(errors="replace")
            failures.append(f"{path}: section `{name}` is writable and executable")
    imports = [e.dll.decode().lower() for e in getattr(pe, "DIRECTORY_ENTRY_IMPORT", [])]
    for dll in imports:
        if dll not in ALLOWED_IMPORTS:
            failures.append(f"{path}: imports from `{dll}` (only ntoskrnl.exe, HAL.dll, FLTMGR.SYS allowed)")
    if "ntoskrnl.exe" not in imports:
        failures.append(f"{path}: no ntoskrnl.exe import table")
    if entry_rva is not None and opt.AddressOfEntryPoint != entry_rva:
        failures.append(
            f"{path}: entry point {opt.AddressOfEntryPoint:#x} is not DriverEntry ({entry_rva:#x})"
        )
    return failures


def driver_entry_rva(map_or_nm):
    """The RVA of DriverEntry from `x86_64-w64-mingw32-nm` output (image base 0x140000000)."""
    for line in open(map_or_nm):
        parts = line.split()
        if len(parts) == 3 and parts[2] == "DriverEntry":
            return int(parts[0], 16) - 0x140000000
    raise SystemExit(f"{map_or_nm}: no DriverEntry symbol")


if __name__ == "__main__":
    if len(sys.argv) not in (2, 3):
        raise SystemExit("usage: pe_check.py agentsh.sys [nm-output]")
    entry = driver_entry_rva(sys.argv[2]) if len(sys.argv) == 3 else None
    problems = check(sys.argv[1], entry)
    for p in problems:
        print(f"pe check: {p}", file=sys.stderr)
    if problems:
        sys.exit(1)
    print(f"pe check: {sys.argv[1]}: native, DriverEntry, FORCE_INTEGRITY|NX_COMPAT, no W+X, kernel imports only")
