#!/usr/bin/env python3
"""Checks the hand-written kernel declarations in driver/src/ffi.rs against headers this project
did not write: mingw-w64's ddk headers and Wine's (Debian libwine-dev).

ffi.rs pins every field of every structure with a `layout!(Type, size, field @ offset, ...)` line
(checked by rustc against the Rust definition). This script reads those lines and the structure
definitions, maps each Rust type to the C type it mirrors (field names are the C member names in
snake_case, so the member is derived mechanically), and compiles `_Static_assert`s of the same
numbers with x86_64-w64-mingw32-gcc against each header set that declares the type. Constants
(`pub const NAME ...`) are asserted the same way where a header declares them. A mismatch is a
compile error naming the member.

usage: check.py [--ffi driver/src/ffi.rs] [--self-test] [--emit-dir DIR]
  --self-test  also shows that the check fails: one offset is changed and the build must break.
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
CC = os.environ.get("MINGW_CC", "x86_64-w64-mingw32-gcc")
WINE = os.environ.get("WINE_INCLUDE", "/usr/include/wine/wine")
MINGW_DDK = os.environ.get("MINGW_DDK", "/usr/x86_64-w64-mingw32/include/ddk")

PRELUDE = {
    # mingw-w64: the kernel headers of the cross compiler.
    "mingw": ("#include <ntifs.h>\n#include <stddef.h>\n", ["-I", MINGW_DDK]),
    # Wine: compiled on its own include tree (the recipe).
    "wine": (
        "#include <ntstatus.h>\n#define WIN32_NO_STATUS\n#include <windef.h>\n#include <winternl.h>\n"
        "#include <ddk/ntddk.h>\n#include <ddk/wdm.h>\n#include <ddk/ntifs.h>\n#include <ddk/fltkernel.h>\n"
        "#include <stddef.h>\n",
        ["-nostdinc", "-I", os.path.join(WINE, "windows"), "-I", os.path.join(WINE, "msvcrt")],
    ),
    # mingw-w64's user-mode winnt.h: token information its ddk headers leave out.
    "mingw-um": ("#include <windows.h>\n#include <stddef.h>\n", []),
    # Declared by neither header set: transcribed from the documentation (see documented.h).
    "documented": ('#include <ntifs.h>\n#include <stddef.h>\n#include "documented.h"\n',
                   ["-I", MINGW_DDK, "-I", HERE]),
}

# Rust type -> (header sets, C type(s), member prefix, size rule, field name overrides).
# "exact": sizeof must match; "prefix": Rust declares the leading members only (the kernel owns
# the allocation), so members are checked and the size is not.
STRUCTS = {
    "UnicodeString": (("mingw", "wine"), ["UNICODE_STRING"], "", "exact", {}),
    "ObjectAttributes": (("mingw", "wine"), ["OBJECT_ATTRIBUTES"], "", "exact", {}),
    "KEvent": (("mingw", "wine"), ["KEVENT"], "", "exact", {}),
    "KMutex": (("mingw", "wine"), ["KMUTEX"], "", "exact", {}),
    "RundownRef": (("mingw",), ["EX_RUNDOWN_REF"], "", "exact", {}),
    "KeyValuePartialInformation": (("mingw", "wine"), ["KEY_VALUE_PARTIAL_INFORMATION"], "", "exact", {}),
    "RegSetValueKeyInformation": (("mingw",), ["REG_SET_VALUE_KEY_INFORMATION"], "", "prefix", {}),
    "RegDeleteValueKeyInformation": (("mingw",), ["REG_DELETE_VALUE_KEY_INFORMATION"], "", "prefix", {}),
    # Every class the driver reads through the Object-first view.
    "RegObjectOnlyInformation": (("mingw",), [
        "REG_DELETE_KEY_INFORMATION", "REG_ENUMERATE_KEY_INFORMATION",
        "REG_ENUMERATE_VALUE_KEY_INFORMATION", "REG_QUERY_KEY_INFORMATION",
        "REG_QUERY_MULTIPLE_VALUE_KEY_INFORMATION", "REG_SET_INFORMATION_KEY_INFORMATION",
        "REG_SET_KEY_SECURITY_INFORMATION", "REG_RESTORE_KEY_INFORMATION", "REG_SAVE_KEY_INFORMATION",
        "REG_UNLOAD_KEY_INFORMATION"], "", "prefix", {}),
    "RegRenameKeyInformation": (("mingw",), ["REG_RENAME_KEY_INFORMATION"], "", "prefix", {}),
    "RegQueryValueKeyInformation": (("mingw",), ["REG_QUERY_VALUE_KEY_INFORMATION"], "", "prefix", {}),
    "RegCreateKeyInformation": (("mingw",), ["REG_CREATE_KEY_INFORMATION", "REG_OPEN_KEY_INFORMATION"],
                                "", "prefix", {}),
    "RegReplaceKeyInformation": (("mingw",), ["REG_REPLACE_KEY_INFORMATION"], "", "prefix", {}),
    "RegLoadKeyInformation": (("mingw",), ["REG_LOAD_KEY_INFORMATION"], "", "prefix", {}),
    "ClientId": (("mingw", "wine"), ["CLIENT_ID"], "", "exact", {}),
    "PsCreateNotifyInfo": (("mingw", "wine"), ["PS_CREATE_NOTIFY_INFO"], "", "exact", {}),
    "IoErrorLogPacket": (("mingw",), ["IO_ERROR_LOG_PACKET"], "", "exact", {}),
    "FltOperationRegistration": (("wine",), ["FLT_OPERATION_REGISTRATION"], "", "exact", {}),
    # Wine's FLT_REGISTRATION goes on to the 0x0203 member; the driver registers version 0x0202.
    "FltRegistration": (("wine",), ["FLT_REGISTRATION"], "", "prefix", {}),
    "IoStatusBlock": (("mingw", "wine"), ["IO_STATUS_BLOCK"], "", "exact", {}),
    "FltCallbackData": (("wine",), ["FLT_CALLBACK_DATA"], "", "exact", {}),
    "FltIoParameterBlock": (("wine",), ["FLT_IO_PARAMETER_BLOCK"], "", "prefix", {}),
    "IoSecurityContext": (("mingw", "wine"), ["IO_SECURITY_CONTEXT"], "", "exact", {}),
    "FltCreateParameters": (("wine",), ["FLT_PARAMETERS"], "Create.", "prefix", {}),
    "FltSetFileInformationParameters": (("wine",), ["FLT_PARAMETERS"], "SetFileInformation.", "exact",
                                        {"dummy_union_name": "DeleteHandle"}),
    "FltAcquireForSectionSynchronizationParameters": (("wine",), ["FLT_PARAMETERS"],
                                                      "AcquireForSectionSynchronization.", "prefix", {}),
    "FileRenameInformation": (("mingw", "wine"), ["FILE_RENAME_INFORMATION"], "", "exact", {}),
    "FltRelatedObjects": (("documented",), ["FLT_RELATED_OBJECTS"], "", "exact", {}),
    "FltFileNameInformation": (("documented",), ["FLT_FILE_NAME_INFORMATION"], "", "prefix", {}),
    # Object callbacks (handle protection): both header sets declare them (wdm.h).
    "ObCallbackRegistration": (("mingw", "wine"), ["OB_CALLBACK_REGISTRATION"], "", "exact", {}),
    "ObOperationRegistration": (("mingw", "wine"), ["OB_OPERATION_REGISTRATION"], "", "exact", {}),
    "ObPreOperationInformation": (("mingw", "wine"), ["OB_PRE_OPERATION_INFORMATION"], "", "exact", {}),
    "ObPreCreateHandleInformation": (("mingw", "wine"), ["OB_PRE_CREATE_HANDLE_INFORMATION"], "", "exact", {}),
    "TokenAppContainerInformation": (("mingw-um", "wine"), ["TOKEN_APPCONTAINER_INFORMATION"], "", "exact", {}),
    "Sid": (("mingw", "wine"), ["SID"], "", "exact", {}),
    "SidAndAttributes": (("mingw", "wine"), ["SID_AND_ATTRIBUTES"], "", "exact", {}),
    "TokenGroups": (("mingw", "wine"), ["TOKEN_GROUPS"], "", "exact", {}),
    "ObPreDuplicateHandleInformation": (("mingw", "wine"), ["OB_PRE_DUPLICATE_HANDLE_INFORMATION"], "", "exact",
                                        {}),
}

# Constants declared as enum members (macros are found by name with #ifdef): name -> (sets, C).
ENUM_CONSTS = {
    "KEY_VALUE_PARTIAL_INFORMATION_CLASS": (("mingw", "wine"), "KeyValuePartialInformation"),
    "FLT_FSTYPE_NTFS": (("wine",), "FLT_FSTYPE_NTFS"),
    "FLT_FSTYPE_REFS": (("wine",), "FLT_FSTYPE_REFS"),
    "FLT_FSTYPE_FAT": (("wine",), "FLT_FSTYPE_FAT"),
    "FLT_FSTYPE_EXFAT": (("wine",), "FLT_FSTYPE_EXFAT"),
    "FLT_FSTYPE_MUP": (("wine",), "FLT_FSTYPE_MUP"),
    "OB_PREOP_SUCCESS": (("mingw", "wine"), "OB_PREOP_SUCCESS"),
    "TOKEN_APP_CONTAINER_SID": (("mingw-um", "wine"), "TokenAppContainerSid"),
    "TOKEN_RESTRICTED_SIDS": (("mingw", "wine"), "TokenRestrictedSids"),
    "SECURITY_IMPERSONATION": (("mingw", "wine"), "SecurityImpersonation"),
    "FILE_BASIC_INFORMATION": (("mingw", "wine"), "FileBasicInformation"),
    "FILE_RENAME_INFORMATION": (("mingw", "wine"), "FileRenameInformation"),
    "FILE_LINK_INFORMATION": (("mingw", "wine"), "FileLinkInformation"),
    "FILE_DISPOSITION_INFORMATION": (("mingw", "wine"), "FileDispositionInformation"),
    "FILE_ALLOCATION_INFORMATION": (("mingw", "wine"), "FileAllocationInformation"),
    "FILE_END_OF_FILE_INFORMATION": (("mingw", "wine"), "FileEndOfFileInformation"),
    "FILE_VALID_DATA_LENGTH_INFORMATION": (("mingw", "wine"), "FileValidDataLengthInformation"),
    "SYNC_TYPE_CREATE_SECTION": (("wine",), "SyncTypeCreateSection"),
    "NOTIFICATION_EVENT": (("mingw", "wine"), "NotificationEvent"),
    "FLT_PREOP_SUCCESS_NO_CALLBACK": (("wine",), "FLT_PREOP_SUCCESS_NO_CALLBACK"),
    "FLT_PREOP_COMPLETE": (("wine",), "FLT_PREOP_COMPLETE"),
}


def camel(field, overrides):
    if field in overrides:
        return overrides[field]
    if field == "r#type":
        return "Type"
    return "".join(p[:1].upper() + p[1:] for p in field.split("_"))


def parse_ffi(text):
    structs = {}
    for m in re.finditer(r"pub struct (\w+)(?:<[^>]*>)?\s*(\{(.*?)\n\}|\(.*?\);)", text, re.S):
        name, body = m.group(1), m.group(3)
        fields = re.findall(r"pub (r#\w+|\w+):", body) if body is not None else []
        structs[name] = fields
    layouts = {}
    for m in re.finditer(r"^layout!\((\w+), (\w+)((?:, [\w#]+ @ \w+)*)\);", text, re.M):
        fields = dict((f, int(o, 0)) for f, o in re.findall(r", ([\w#]+) @ (\w+)", m.group(3)))
        layouts[m.group(1)] = (int(m.group(2), 0), fields)
    consts = {}
    for m in re.finditer(r"^pub const (\w+): \w+ = ([0-9A-Fa-fx_]+)(?:_u32 as i32)?;", text, re.M):
        consts[m.group(1)] = int(m.group(2).replace("_", ""), 0)
    return structs, layouts, consts


def build_units(structs, layouts, consts):
    problems = []
    units = {k: [] for k in PRELUDE}
    checked = {k: 0 for k in PRELUDE}
    for rust, fields in structs.items():
        if rust == "PointerAligned":
            continue
        if rust not in STRUCTS:
            problems.append(f"ffi.rs declares `{rust}`, which check.py does not map to a C type")
            continue
        if rust not in layouts:
            problems.append(f"ffi.rs has no layout! line for `{rust}`")
            continue
        size, offsets = layouts[rust]
        missing = [f for f in fields if f not in offsets]
        if missing:
            problems.append(f"layout!({rust}) does not pin {missing}")
        sets, ctypes, prefix, rule, overrides = STRUCTS[rust]
        for s in sets:
            for ctype in ctypes:
                for f, off in offsets.items():
                    member = prefix + camel(f, overrides)
                    base = f"offsetof({ctype}, {prefix[:-1]})" if prefix else "0"
                    units[s].append(
                        f"_Static_assert(offsetof({ctype}, {member}) - {base} == {off}, "
                        f"\"{rust}.{f} @ {off}: {ctype}.{member} ({s})\");")
                    checked[s] += 1
                if rule == "exact":
                    sz = f"sizeof((({ctype} *)0)->{prefix[:-1]})" if prefix else f"sizeof({ctype})"
                    units[s].append(f"_Static_assert({sz} == {size}, \"sizeof {rust} == {size}: {ctype} ({s})\");")
                    checked[s] += 1
    const_checked, const_unchecked = [], []
    for name, value in consts.items():
        if name in ENUM_CONSTS:
            sets, cname = ENUM_CONSTS[name]
            for s in sets:
                units[s].append(f"_Static_assert((unsigned int)({cname}) == {value:#x}u, \"{name} == {value:#x}: {cname} ({s})\");")
            const_checked.append(name)
            continue
        for s in ("mingw", "wine"):
            units[s].append(
                f"#ifdef {name}\n_Static_assert((unsigned int)({name}) == {value:#x}u, \"{name} == {value:#x} ({s})\");\n"
                f"int agentsh_const_{name} = 1;\n#endif")
        const_checked.append(name)
    return units, checked, problems


def compile_unit(kind, lines, workdir):
    prelude, flags = PRELUDE[kind]
    path = os.path.join(workdir, f"layout-{kind}.c")
    with open(path, "w") as f:
        f.write(prelude + "\n".join(lines) + "\n")
    r = subprocess.run([CC, "-S", "-o", "-", *flags, path], capture_output=True, text=True)
    return r.returncode == 0, r.stderr, r.stdout


def run(ffi_text, workdir, quiet=False):
    structs, layouts, consts = parse_ffi(ffi_text)
    units, checked, problems = build_units(structs, layouts, consts)
    for p in problems:
        print(f"layout check: {p}", file=sys.stderr)
    ok = not problems
    found_consts = set()
    for kind, lines in units.items():
        good, err, asm = compile_unit(kind, lines, workdir)
        if not good:
            ok = False
            msgs = [l for l in err.splitlines() if "static assertion failed" in l or "error" in l]
            for l in msgs[:20]:
                print(f"layout check ({kind}): {l}", file=sys.stderr)
        found_consts |= set(re.findall(r"agentsh_const_(\w+):", asm))
    if ok and not quiet:
        enum_names = {n for n in consts if n in ENUM_CONSTS}
        declared = found_consts | enum_names
        print(f"layout check: {len(structs) - 1} structures, {sum(checked.values())} member/size asserts "
              f"(mingw {checked['mingw'] + checked['mingw-um']}, Wine {checked['wine']}, documented {checked['documented']}); "
              f"{len(declared)} constants asserted against the headers")
        print("layout check: constants declared by neither header set (documented values, see docs/driver.md): "
              + ", ".join(sorted(set(consts) - declared)))
    return ok


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ffi", default=os.path.join(ROOT, "driver", "src", "ffi.rs"))
    ap.add_argument("--self-test", action="store_true")
    args = ap.parse_args()
    text = open(args.ffi).read()
    with tempfile.TemporaryDirectory(prefix="agentsh-layout-") as work:
        if not run(text, work):
            sys.exit(1)
        if args.self_test:
            # The check must be able to fail: InfoBuffer at the offset the driver once used (24).
            bad = text.replace("info_buffer @ 32", "info_buffer @ 24")
            if bad == text:
                sys.exit("layout check self-test: the InfoBuffer line was not found in ffi.rs")
            if run(bad, work, quiet=True):
                sys.exit("layout check self-test: a wrong FLT_PARAMETERS.SetFileInformation.InfoBuffer "
                         "offset (24) was accepted")
            print("layout check self-test: a wrong InfoBuffer offset (24 instead of 32) fails the check")


if __name__ == "__main__":
    main()
