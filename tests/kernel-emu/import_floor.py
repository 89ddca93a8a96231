#!/usr/bin/env python3
"""The import floor of agentsh.sys: every import of the image is listed in driver/imports/floor.txt
with the build it exists from, none above the floor, and the floor equals the lowest build the INF
installs on (its lowest DefaultInstall.NTamd64.10.0...N decoration) and `agentsh driver install`'s
MIN_BUILD. An image that imported something newer would fail to load on the oldest supported build
with STATUS_PROCEDURE_NOT_FOUND; this check fails first.

usage: import_floor.py IMAGE [--self-test]
  --self-test  also shows the check fails: with ExAllocatePool2 unlisted, and with the floor at 17763.
"""
import os
import re
import sys

import pefile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def read_floor(path):
    floor, since = None, {}
    for n, line in enumerate(open(path), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        if parts[0] == "floor" and len(parts) == 2:
            floor = int(parts[1])
        elif len(parts) == 3:
            since[(parts[0].lower(), parts[1])] = int(parts[2])
        else:
            raise SystemExit(f"{path}:{n}: expected `floor BUILD` or `DLL FUNCTION BUILD`, got `{line}`")
    if floor is None:
        raise SystemExit(f"{path}: no `floor BUILD` line")
    return floor, since


def imports(image):
    pe = pefile.PE(image)
    out = []
    for entry in getattr(pe, "DIRECTORY_ENTRY_IMPORT", []):
        for imp in entry.imports:
            name = imp.name.decode() if imp.name else f"#{imp.ordinal}"
            out.append((entry.dll.decode().lower(), name))
    return out


def check(image_imports, floor, since, inf_text, rust_text):
    failures = []
    for dll, name in image_imports:
        if (dll, name) not in since:
            failures.append(f"{dll}!{name} is imported but not in the floor list")
        elif since[(dll, name)] > floor:
            failures.append(f"{dll}!{name} exists from build {since[(dll, name)]}, above the floor {floor}")
    builds = [int(b) for b in re.findall(r"\[DefaultInstall\.NTamd64\.10\.0\.\.\.(\d+)\]", inf_text, re.I)]
    if not builds or min(builds) != floor:
        failures.append(f"agentsh.inf's lowest decoration is {min(builds) if builds else None}, not the floor {floor}")
    m = re.search(r"pub const MIN_BUILD: u32 = ([0-9_]+);", rust_text)
    if not m or int(m.group(1).replace("_", "")) != floor:
        failures.append(f"crates/windows MIN_BUILD is {m.group(1) if m else None}, not the floor {floor}")
    return failures


def main():
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    image = sys.argv[1]
    floor, since = read_floor(os.path.join(ROOT, "driver/imports/floor.txt"))
    inf = open(os.path.join(ROOT, "packaging/agentsh.inf"), encoding="utf-8", errors="replace").read()
    rust = open(os.path.join(ROOT, "crates/windows/src/driver.rs")).read()
    found = imports(image)
    failures = check(found, floor, since, inf, rust)
    for f in failures:
        print(f"import floor: {f}", file=sys.stderr)
    if failures:
        sys.exit(1)
    newest = max(since[i] for i in found)
    print(f"import floor: {len(found)} imports, all available from build {floor} (newest needs {newest}); "
          f"INF and driver install agree")
    if "--self-test" in sys.argv:
        unlisted = {k: v for k, v in since.items() if k[1] != "ExAllocatePool2"}
        if not check(found, floor, unlisted, inf, rust):
            raise SystemExit("import floor self-test: an unlisted import was accepted")
        if not check(found, 17763, since, inf, rust):
            raise SystemExit("import floor self-test: a floor below ExAllocatePool2's build was accepted")
        print("import floor self-test: an unlisted import and a floor of 17763 both fail the check")


if __name__ == "__main__":
    main()
