#!/usr/bin/env python3
"""PE checks for agentsh.sys: native subsystem, DriverEntry entry point, FORCE_INTEGRITY, NX_COMPAT
and DYNAMIC_BASE, a base relocation table (the kernel always relocates drivers), a correct image
checksum (also after signing: `--signed` additionally requires the certificate table), no
writable+executable section, imports only from kernel modules, and the CET decision: the image does
not claim CET compatibility (GNU ld 2.40 cannot mark it; see docs/driver.md), and a claim appearing
without that decision being revisited fails the check."""
import sys

import pefile

ALLOWED_IMPORTS = {"ntoskrnl.exe", "hal.dll", "fltmgr.sys"}
IMAGE_SUBSYSTEM_NATIVE = 1
FORCE_INTEGRITY = 0x0080
NX_COMPAT = 0x0100
DYNAMIC_BASE = 0x0040
IMAGE_DIRECTORY_ENTRY_SECURITY = 4
IMAGE_DIRECTORY_ENTRY_BASERELOC = 5
IMAGE_DEBUG_TYPE_EX_DLLCHARACTERISTICS = 20
IMAGE_DLLCHARACTERISTICS_EX_CET_COMPAT = 0x01
SCN_EXECUTE = 0x20000000
SCN_WRITE = 0x80000000


def cet_compat(pe):
    """Whether the extended DLL characteristics debug entry marks the image CET-compatible."""
    for entry in getattr(pe, "DIRECTORY_ENTRY_DEBUG", []):
        if entry.struct.Type == IMAGE_DEBUG_TYPE_EX_DLLCHARACTERISTICS:
            data = pe.get_data(entry.struct.AddressOfRawData, entry.struct.SizeOfData)
            if data and data[0] & IMAGE_DLLCHARACTERISTICS_EX_CET_COMPAT:
                return True
    return False


def check(path, entry_rva=None, signed=False):
    """Returns a list of failures (empty when the image passes)."""
    pe = pefile.PE(path)
    failures = []
    opt = pe.OPTIONAL_HEADER
    if not opt.DllCharacteristics & DYNAMIC_BASE:
        failures.append(f"{path}: DllCharacteristics {opt.DllCharacteristics:#x} lacks DYNAMIC_BASE")
    reloc = opt.DATA_DIRECTORY[IMAGE_DIRECTORY_ENTRY_BASERELOC]
    if reloc.Size == 0 or not any(s.Name.rstrip(b"\0") == b".reloc" for s in pe.sections):
        failures.append(f"{path}: no .reloc section / base relocation table (drivers are always relocated)")
    if opt.CheckSum == 0 or opt.CheckSum != pe.generate_checksum():
        failures.append(f"{path}: image checksum {opt.CheckSum:#x}, computed {pe.generate_checksum():#x}")
    if signed and opt.DATA_DIRECTORY[IMAGE_DIRECTORY_ENTRY_SECURITY].Size == 0:
        failures.append(f"{path}: no certificate table (not signed)")
    if cet_compat(pe):
        failures.append(f"{path}: marked CET-compatible, but the driver's CET decision (docs/driver.md) "
                        "says it is not; revisit the decision before claiming it")
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
    args = [a for a in sys.argv[1:] if a != "--signed"]
    if len(args) not in (1, 2):
        raise SystemExit("usage: pe_check.py [--signed] agentsh.sys [nm-output]")
    entry = driver_entry_rva(args[1]) if len(args) == 2 else None
    problems = check(args[0], entry, signed="--signed" in sys.argv)
    for p in problems:
        print(f"pe check: {p}", file=sys.stderr)
    if problems:
        sys.exit(1)
    print(f"pe check: {args[0]}: native, DriverEntry, FORCE_INTEGRITY|NX_COMPAT|DYNAMIC_BASE, .reloc, "
          f"checksum {pefile.PE(args[0]).OPTIONAL_HEADER.CheckSum:#x} correct"
          f"{', signed' if '--signed' in sys.argv else ''}, no W+X, kernel imports only, not CET-compatible "
          "(documented)")
