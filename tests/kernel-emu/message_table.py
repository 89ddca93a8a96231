#!/usr/bin/env python3
"""agentsh.sys's Event Log messages resolve to text: the image has an RT_MESSAGETABLE resource
(parsed here from the PE resource directory and the documented MESSAGE_RESOURCE_DATA layout), every
`EventCode` of driver/src/kernel.rs (the IoWriteErrorLogEntry codes the driver writes) has an entry
with text, and no id falls in the agentsh service's range of packaging/agentsh.mc.

usage: message_table.py IMAGE [--self-test]
  --self-test  also shows the check fails for a code the table lacks.
"""
import os
import re
import struct
import sys

import pefile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RT_MESSAGETABLE = 11


def table(image):
    pe = pefile.PE(image)
    found = {}
    root = getattr(pe, "DIRECTORY_ENTRY_RESOURCE", None)
    for rtype in root.entries if root else []:
        if rtype.id != RT_MESSAGETABLE:
            continue
        for name in rtype.directory.entries:
            for lang in name.directory.entries:
                d = lang.data.struct
                data = pe.get_data(d.OffsetToData, d.Size)
                (blocks,) = struct.unpack_from("<I", data, 0)
                for b in range(blocks):
                    low, high, offset = struct.unpack_from("<III", data, 4 + 12 * b)
                    for mid in range(low, high + 1):
                        length, flags = struct.unpack_from("<HH", data, offset)
                        raw = data[offset + 4:offset + length]
                        text = raw.decode("utf-16-le" if flags & 1 else "latin-1").rstrip("\0")
                        found[mid] = text
                        offset += length
    return found


def codes():
    src = open(os.path.join(ROOT, "driver/src/kernel.rs")).read()
    body = re.search(r"pub enum EventCode \{(.*?)\}", src, re.S)
    if not body:
        raise SystemExit("message table: no `pub enum EventCode` in driver/src/kernel.rs")
    return {name: int(v.replace("_", ""), 16) for name, v in re.findall(r"(\w+) = (0x[0-9A-Fa-f_]+)", body.group(1))}


def service_ids():
    mc = open(os.path.join(ROOT, "packaging/agentsh.mc")).read()
    return {int(i) for i in re.findall(r"^MessageId=(\d+)", mc, re.M)}


def check(found, wanted, service):
    failures = []
    if not wanted:
        failures.append("no EventCode values found")
    for name, code in wanted.items():
        if not found.get(code, "").strip():
            failures.append(f"EventCode::{name} ({code:#010x}) has no message in the image")
    for mid in found:
        if mid & 0xFFFF in service and not mid & 0x2000_0000:
            failures.append(f"message {mid:#010x} overlaps the service's id {mid & 0xFFFF}")
    return failures


def main():
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    found, wanted, service = table(sys.argv[1]), codes(), service_ids()
    failures = check(found, wanted, service)
    for f in failures:
        print(f"message table: {f}", file=sys.stderr)
    if failures:
        sys.exit(1)
    print(f"message table: {len(found)} messages in RT_MESSAGETABLE, every one of the {len(wanted)} "
          f"EventCode values has text, none overlaps the service's {len(service)} ids")
    if "--self-test" in sys.argv:
        if not check(found, {**wanted, "Missing": 0xE000_00FF}, service):
            raise SystemExit("message table self-test: a code without a message was accepted")
        print("message table self-test: a code without a message fails the check")


if __name__ == "__main__":
    main()
