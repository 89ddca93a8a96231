#!/usr/bin/env python3
"""Loads the real agentsh.sys into the strict emulated kernel (kernel.py), runs DriverEntry, and
drives the captured callbacks with registry, process and file operations laid out from the
independent headers (layouts.py), against a small stand-in service over the loopback socket:
contract checks, the review's defects by number, fault injection (every pool allocation of a
scenario failing once, every documented FltSendMessage status, name-query failures) and the cost of
operations outside every session. Exit status 0 only when every scenario passes."""
import argparse
import json
import logging
import os
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kernel as K  # noqa: E402
from layouts import L, Struct  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
RUN_KEY = "\\REGISTRY\\MACHINE\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Run"
USER_APP = "\\REGISTRY\\USER\\S-1-5-21-1000\\SOFTWARE\\TestApp"
SERVICES = "\\REGISTRY\\MACHINE\\SYSTEM\\ControlSet001\\Services"
HKLM = "\\REGISTRY\\MACHINE"
VOLUME = "\\Device\\HarddiskVolume2"
ALLOW = L["FLT_PREOP_SUCCESS_NO_CALLBACK"]
COMPLETE = L["FLT_PREOP_COMPLETE"]
IRP_MJ_CREATE, IRP_MJ_WRITE = L["IRP_MJ_CREATE"], L["IRP_MJ_WRITE"]
IRP_MJ_SET_INFORMATION, IRP_MJ_SET_SECURITY = L["IRP_MJ_SET_INFORMATION"], L["IRP_MJ_SET_SECURITY"]
IRP_MJ_SECTION = L["IRP_MJ_ACQUIRE_FOR_SECTION_SYNCHRONIZATION"]
FILE_OPEN, FILE_CREATE, FILE_OPEN_IF = 1, 2, 3
FILE_WRITE_DATA, FILE_DELETE_CHILD = 0x2, 0x40
MAXIMUM_ALLOWED, GENERIC_ALL, GENERIC_WRITE, GENERIC_READ = 0x02000000, 0x10000000, 0x40000000, 0x80000000
SL_OPEN_TARGET_DIRECTORY = 0x04
PAGE_READONLY, PAGE_READWRITE = 0x02, 0x04
FAILS_TRIPPED = 0xA0000002
NO_INSTANCE = 0xA0000004

results = []


def check(name, ok, detail=""):
    results.append((name, bool(ok)))
    print(f"{'PASS' if ok else 'FAIL'}  {name}" + (f"  ({detail})" if detail and not ok else ""))


def guarded(name, fn):
    """Runs a scenario; a bug-check or a hang in it is that scenario's failure, not the suite's end."""
    try:
        return fn()
    except (K.BugCheck, K.Hang) as e:
        check(name, False, f"{type(e).__name__}: {e}")
        return None


class Harness:
    def __init__(self, driver, workdir):
        self.k = K.Kernel(driver)
        self.workdir = workdir
        self.sock = os.path.join(workdir, "agentsh.sock")
        self.log = os.path.join(workdir, "service.jsonl")
        self.service = None
        self.serial = 0

    def unique(self, prefix):
        self.serial += 1
        return f"{prefix}{self.serial}"

    def service_log(self):
        if not os.path.exists(self.log):
            return []
        return [json.loads(line) for line in open(self.log)]

    def start_fake_service(self, fail_mode):
        self.service = subprocess.Popen([sys.executable, os.path.join(HERE, "fake_service.py"),
                                         "--socket", self.sock, "--log", self.log, "--fail-mode", fail_mode])
        self.k.accept(self.service.pid)
        deadline = time.monotonic() + 10
        while len(self.k.inbox) < 6 and time.monotonic() < deadline:
            self.k.pump(0.1)
        self.k.deliver()
        time.sleep(0.2)

    def stop_service(self):
        self.service.kill()
        self.service.wait()
        self.k.pump(0.5)
        if self.k.conn is not None or self.k.connected_pid is not None:
            self.k.disconnect()

    def key_object(self, name):
        obj = self.k.alloc(16)
        self.k.key_objects[obj] = name
        return obj

    def run_work_items(self):
        while self.k.work_items:
            self.k.run_work_items()
            self.k.check_released("work item")

    def registry(self, pid, klass, info):
        self.k.pid, self.k.tid = pid, pid + 1
        status = self.k.call(self.k.cm[0], [0, klass, info]) & 0xFFFFFFFF
        self.k.check_released(f"registry callback (class {klass})")
        self.run_work_items()
        return status

    def set_value(self, pid, key, value, data=b"x\0"):
        k = self.k
        info = Struct("REG_SET_VALUE_KEY_INFORMATION").put("Object", 8, self.key_object(key)) \
            .put("ValueName", 8, k.unicode_string(value)).put("Type", 4, 1) \
            .put("Data", 8, k.alloc(len(data), data)).put("DataSize", 4, len(data))
        return self.registry(pid, L["RegNtPreSetValueKey"], k.alloc(len(info.buf), info.bytes()))

    def create_key(self, pid, complete, root=None, access=0xF003F, klass=None):
        k = self.k
        info = Struct("REG_CREATE_KEY_INFORMATION").put("CompleteName", 8, k.unicode_string(complete)) \
            .put("RootObject", 8, self.key_object(root) if root else 0).put("DesiredAccess", 4, access)
        return self.registry(pid, klass if klass is not None else L["RegNtPreCreateKeyEx"],
                             k.alloc(len(info.buf), info.bytes()))

    def object_op(self, pid, klass, key, ctype="REG_DELETE_KEY_INFORMATION"):
        info = Struct(ctype).put("Object", 8, self.key_object(key))
        return self.registry(pid, klass, self.k.alloc(len(info.buf), info.bytes()))

    def process_created(self, pid, creating_pid, parent_pid):
        k = self.k
        info = Struct("PS_CREATE_NOTIFY_INFO").put("Size", 8, L["sizeof PS_CREATE_NOTIFY_INFO"]) \
            .put("ParentProcessId", 8, parent_pid) \
            .put("CreatingThreadId", 8, creating_pid) \
            .put("ImageFileName", 8, k.unicode_string("C:\\agent\\tool.exe"))
        put_at(info.buf, L["PS_CREATE_NOTIFY_INFO.CreatingThreadId"] + L["CLIENT_ID.UniqueThread"], 8,
               creating_pid + 1)
        addr = k.alloc(len(info.buf), info.bytes())
        k.call(k.process_notify, [0, pid, addr])
        k.check_released("process notify")
        self.run_work_items()
        return k.r32(addr + L["PS_CREATE_NOTIFY_INFO.CreationStatus"])

    def file_op(self, pid, major, path, desired=0, options=FILE_OPEN << 24, info_class=0, info=b"",
                op_flags=0, sync=None):
        """One pre-operation through the registered callback; returns (preop status, IoStatus.Status),
        or (None, None) when the driver did not register for `major`."""
        k = self.k
        k.pid, k.tid, k.file_path = pid, pid + 1, path
        iopb = Struct("FLT_IO_PARAMETER_BLOCK").put("MajorFunction", 1, major).put("OperationFlags", 1, op_flags) \
            .put("TargetFileObject", 8, 0xF0).put("TargetInstance", 8, 0x1A57)
        base = L["FLT_IO_PARAMETER_BLOCK.Parameters"]
        p = "FLT_PARAMETERS."
        if major == IRP_MJ_CREATE:
            sec = Struct("IO_SECURITY_CONTEXT").put("DesiredAccess", 4, desired)
            put_at(iopb.buf, base + L[p + "Create.SecurityContext"], 8, k.alloc(24, sec.bytes()))
            put_at(iopb.buf, base + L[p + "Create.Options"], 4, options)
        elif major == IRP_MJ_SET_INFORMATION:
            put_at(iopb.buf, base + L[p + "SetFileInformation.Length"], 4, len(info))
            put_at(iopb.buf, base + L[p + "SetFileInformation.FileInformationClass"], 4, info_class)
            put_at(iopb.buf, base + L[p + "SetFileInformation.InfoBuffer"], 8, k.alloc(max(len(info), 8), info))
        elif major == IRP_MJ_SECTION:
            sync_type, protection = sync
            put_at(iopb.buf, base + L[p + "AcquireForSectionSynchronization.SyncType"], 4, sync_type)
            put_at(iopb.buf, base + L[p + "AcquireForSectionSynchronization.PageProtection"], 4, protection)
        elif major == IRP_MJ_SET_SECURITY:
            put_at(iopb.buf, base + L[p + "SetSecurity.SecurityInformation"], 4, 4)
        data = Struct("FLT_CALLBACK_DATA").put("Iopb", 8, k.alloc(len(iopb.buf), iopb.bytes()))
        data_addr = k.alloc(len(data.buf), data.bytes())
        objects = Struct("FLT_RELATED_OBJECTS").put("Size", 2, L["sizeof FLT_RELATED_OBJECTS"]) \
            .put("Filter", 8, 0xF117E400).put("Volume", 8, 0x701).put("Instance", 8, 0x1A57).put("FileObject", 8, 0xF0)
        pre = next((op[2] for op in k.filter["ops"] if op[0] == major), None)
        if pre is None:
            return None, None
        status = k.call(pre, [data_addr, k.alloc(len(objects.buf), objects.bytes()), k.alloc(8)]) & 0xFFFFFFFF
        k.check_released(f"pre-operation (major {major:#x})")
        self.run_work_items()
        io_status = k.r64(data_addr + L["FLT_CALLBACK_DATA.IoStatus"] + L["IO_STATUS_BLOCK.Status"]) & 0xFFFFFFFF
        return status, io_status

    def handle_op(self, opener, kind, owner, access, duplicate_into=None, kernel_handle=False):
        """One process/thread handle through the registered object pre-operation callback, as the
        object manager calls it in the opener's context: `kind` is "process" or "thread", `owner`
        the process the object is (or whose thread it is). A duplicate names the process the handle
        lands in. Returns the DesiredAccess the callback leaves."""
        k = self.k
        k.pid, k.tid = opener, opener + 1
        var = "PsProcessType" if kind == "process" else "PsThreadType"
        obj = 0xE0_0000_0000 + owner * 0x100 + (0 if kind == "process" else 8)
        (k.process_objects if kind == "process" else k.thread_objects)[obj] = owner
        if duplicate_into is not None:
            target = 0xE0_0000_0000 + duplicate_into * 0x100
            k.process_objects[target] = duplicate_into
            params = Struct("OB_PRE_DUPLICATE_HANDLE_INFORMATION").put("DesiredAccess", 4, access) \
                .put("OriginalDesiredAccess", 4, access).put("TargetProcess", 8, target) \
                .put("SourceProcess", 8, 0xE0_0000_0000 + opener * 0x100)
            k.process_objects[0xE0_0000_0000 + opener * 0x100] = opener
            operation = L["OB_OPERATION_HANDLE_DUPLICATE"]
        else:
            params = Struct("OB_PRE_CREATE_HANDLE_INFORMATION").put("DesiredAccess", 4, access) \
                .put("OriginalDesiredAccess", 4, access)
            operation = L["OB_OPERATION_HANDLE_CREATE"]
        params_addr = k.alloc(len(params.buf), params.bytes())
        info = Struct("OB_PRE_OPERATION_INFORMATION").put("Operation", 4, operation) \
            .put("Flags", 4, 1 if kernel_handle else 0).put("Object", 8, obj) \
            .put("ObjectType", 8, K.DATA_IMPORTS[var]).put("Parameters", 8, params_addr)
        _ops, pre, _post = k.ob["entries"][var]
        status = k.call(pre, [k.ob["context"], k.alloc(len(info.buf), info.bytes())]) & 0xFFFFFFFF
        k.check_released("object pre-operation callback")
        if status != 0:
            raise K.BugCheck(f"object pre-operation returned {status:#x}, not OB_PREOP_SUCCESS")
        return k.r32(params_addr + L["OB_PRE_CREATE_HANDLE_INFORMATION.DesiredAccess"])

    def queries(self, since):
        return [e for e in self.service_log()[since:] if "answer" in e]

    def measure(self, fn):
        """Runs `fn` and returns (its result, counter deltas, messages sent)."""
        before, sent = dict(self.k.counters), len(self.k.sent)
        r = fn()
        delta = {key: self.k.counters[key] - before.get(key, 0) for key in self.k.counters}
        return r, delta, len(self.k.sent) - sent


def sid_bytes(authority, subs):
    """A SID laid out at the headers' offsets (authority big-endian, sub-authorities little-endian)."""
    raw = bytearray(L["SID.SubAuthority"] + 4 * len(subs))
    raw[L["SID.Revision"]] = 1
    raw[L["SID.SubAuthorityCount"]] = len(subs)
    off = L["SID.IdentifierAuthority"]
    raw[off:off + 6] = authority.to_bytes(6, "big")
    for i, sub in enumerate(subs):
        raw[L["SID.SubAuthority"] + 4 * i:L["SID.SubAuthority"] + 4 * i + 4] = sub.to_bytes(4, "little")
    return bytes(raw)


CONTAINER_SID = sid_bytes(15, [2, 11, 22, 33, 44, 55, 66, 77])   # S-1-15-2-11-22-33-44-55-66-77
OTHER_CONTAINER_SID = sid_bytes(15, [2, 1, 2, 3, 4, 5, 6, 7])
# The fallback's per-session SID: S-1-9-1634169704-a-b-c-d (0x61677368, "agsh", then 128 random bits;
# docs/driver.md, "Broker attribution"), and the other restricting SIDs of its token.
AGSH = int.from_bytes(b"agsh", "big")
SESSION_SID = sid_bytes(9, [AGSH, 0x9E3779B9, 0x7F4A7C15, 0xF39CC060, 0x5CEDC834])
OTHER_SESSION_SID = sid_bytes(9, [AGSH, 1, 2, 3, 4])
USER_SID = sid_bytes(5, [21, 1111, 2222, 3333, 1001])      # S-1-5-21-1111-2222-3333-1001
USERS_SID = sid_bytes(5, [32, 545])                        # S-1-5-32-545


def put_at(buf, offset, width, value):
    buf[offset:offset + width] = (value & ((1 << (8 * width)) - 1)).to_bytes(width, "little")


def rename_info(target):
    name = target.encode("utf-16-le")
    info = Struct("FILE_RENAME_INFORMATION", L["FILE_RENAME_INFORMATION.FileName"] + len(name))
    info.put("FileNameLength", 4, len(name))
    info.buf[L["FILE_RENAME_INFORMATION.FileName"]:] = name
    return info.bytes()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--driver", required=True)
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO if args.verbose else logging.ERROR)
    logging.getLogger("speakeasy").setLevel(logging.ERROR)
    started = time.monotonic()
    work = tempfile.mkdtemp(prefix="agentsh-kemu-")
    h = Harness(args.driver, work)
    k = h.k

    status = guarded("review 1: DriverEntry writes no null _Out_ pointer (KeQueryInterruptTimePrecise)",
                     k.driver_entry)
    if status is None:
        sys.exit(report(started))
    check("review 1: DriverEntry returns STATUS_SUCCESS under the strict _Out_ models", status == 0, hex(status))
    if status != 0:
        sys.exit(report(started))
    entry_allocs = k.counters["pool_allocs"]
    guarded("review 4: DriverEntry allocation failures", lambda: driver_entry_faults(args.driver, entry_allocs))
    check("filter, port, registry callback, process notify and object callbacks registered; filtering started",
          k.registrations == {"filter", "port", "registry", "process", "objects", "filtering"}, k.registrations)
    both = L["OB_OPERATION_HANDLE_CREATE"] | L["OB_OPERATION_HANDLE_DUPLICATE"]
    check("review 15: object callbacks on processes and threads (create and duplicate, pre-operation), at the "
          "registry callback's altitude",
          k.ob and {v: (ops, pre != 0) for v, (ops, pre, _) in k.ob["entries"].items()}
          == {"PsProcessType": (both, True), "PsThreadType": (both, True)}
          and k.ob["altitude"] == getattr(k, "cm_altitude", None), k.ob)
    check("registry callback altitude is the default 376300 when no altitude is installed",
          getattr(k, "cm_altitude", None) == "376300", getattr(k, "cm_altitude", None))
    guarded("item 4: installed altitudes", lambda: altitude_scenarios(args.driver))
    check("port is \\AgentshPort, one connection, default (admins/SYSTEM) descriptor",
          k.port["name"] == "\\AgentshPort" and k.port["max"] == 1 and k.sd_access == 0x1F0001 and k.port["sd"])
    check("minifilter pre-operations: create, write, set-information, set-security, section synchronisation",
          [op[0] for op in k.filter["ops"]] == [IRP_MJ_CREATE, IRP_MJ_WRITE, IRP_MJ_SET_INFORMATION,
                                                IRP_MJ_SET_SECURITY, IRP_MJ_SECTION]
          and k.filter["version"] == 0x0202, k.filter["ops"])
    # The session root (pid 1000) runs in an AppContainer: the driver reads its SID when the service
    # registers the session (broker attribution).
    k.primary_tokens[1000] = k.token(CONTAINER_SID)
    # The second session's root (pid 1100) runs with the restricted-token fallback: its restricting
    # SIDs are the user, a group and its session SID, which the driver keeps at registration.
    k.primary_tokens[1100] = k.token(None, [USER_SID, USERS_SID, SESSION_SID])
    k.listen(h.sock)
    h.start_fake_service("closed")
    no_instance = [e for e in k.event_log if e[0] == NO_INSTANCE]
    check("item 4: the service connecting to a load with no volume instance writes the no-instance Event Log "
          "entry (0xA0000004)", len(no_instance) == 1, k.event_log)
    setup = k.filter["setup"]
    attach = ("NTFS", "REFS", "FAT", "EXFAT", "MUP")
    skip = ("RAW", "CDFS", "NPFS")
    got = {fs: k.call(setup, [0, 0, 0, L[f"FLT_FSTYPE_{fs}"]]) & 0xFFFFFFFF for fs in attach + skip}
    check("review 14 / I1: instances attach to NTFS, ReFS, FAT, exFAT and the network redirector (MUP); "
          "not to raw, CD or named-pipe volumes",
          got == {**{fs: 0 for fs in attach}, **{fs: L["STATUS_FLT_DO_NOT_ATTACH"] for fs in skip}}, got)

    setup_results = [e for e in h.service_log() if "send_result" in e]
    check("handshake, config, two sessions and exclusion accepted by the driver",
          len(setup_results) == 6 and all(e["send_result"] == 0 and e["status"] == 0 for e in setup_results[:5]),
          setup_results)
    check("QuerySession about a process in no session -> NotFound (4), 8 bytes, no session id",
          len(setup_results) == 6 and setup_results[5]["type"] == 0x1A and setup_results[5]["status"] == 4
          and setup_results[5]["size"] == 8 and "session_id" not in setup_results[5], setup_results)

    n = len(h.service_log())
    h.process_created(1001, creating_pid=1000, parent_pid=4)
    h.process_created(1002, creating_pid=4, parent_pid=1000)
    time.sleep(0.3)
    announced = [e for e in h.service_log()[n:] if "process_event" in e]
    check("the session's new process is announced to the service with its image (one-way)",
          [(e["process_event"], e["pid"], e["creating_pid"], e["image"]) for e in announced]
          == [(1, 1001, 1000, "C:\\agent\\tool.exe")], announced)
    # The service asked about the announced child (QuerySession); run the message callback.
    deadline = time.monotonic() + 5
    while not k.inbox and time.monotonic() < deadline:
        k.pump(0.1)
    k.deliver()
    time.sleep(0.3)
    answers = [e for e in h.service_log()[n:] if e.get("type") == 0x1A]
    check("QuerySession about the announced child -> Ok with the session's public id (7), 16 bytes",
          [(e["send_result"], e["status"], e["size"], e.get("session_id")) for e in answers] == [(0, 0, 16, 7)],
          answers)

    guarded("registry decisions", lambda: registry_scenarios(h))
    guarded("file decisions", lambda: file_scenarios(h))
    guarded("review 14: loopback redirector", lambda: loopback_scenarios(h))
    guarded("review 15: handle protection", lambda: handle_scenarios(h))
    guarded("review 15: broker attribution", lambda: broker_scenarios(h))
    guarded("outside every session", lambda: unsandboxed_scenarios(h))
    guarded("review 9", lambda: probe_scenarios(h))
    guarded("review 21", lambda: notification_scenarios(h))
    guarded("review 12", lambda: hold_scenarios(h))
    guarded("review 4: allocation failures", lambda: allocation_faults(h))
    guarded("send statuses (fail-closed)", lambda: send_faults(h, "closed"))
    guarded("review 10 (fail-closed)", lambda: name_faults(h, "closed"))

    h.stop_service()
    s = h.set_value(1001, USER_APP, "config")
    check("service stopped, fail-closed -> denied", s == K.STATUS_ACCESS_DENIED, hex(s))
    check("fail-mode transition written to the Event Log",
          any(code == FAILS_TRIPPED for code, _, _ in k.event_log), k.event_log)

    h.start_fake_service("open")
    check("item 4: ... and no such entry once an instance has attached (the service connecting again)",
          sum(1 for e in k.event_log if e[0] == NO_INSTANCE) == 1, k.event_log)
    guarded("review 3", lambda: terminating_requester(h))
    guarded("send statuses (fail-open)", lambda: send_faults(h, "open"))
    guarded("review 10 (fail-open)", lambda: name_faults(h, "open"))
    h.stop_service()
    s = h.set_value(1001, USER_APP, h.unique("config"))
    check("service stopped, fail-open -> allowed", s == 0, hex(s))
    s = h.set_value(1001, RUN_KEY, "WhileDown")
    check("... but a critical key stays denied while the service is unavailable",
          s == K.STATUS_ACCESS_DENIED, hex(s))

    # Unload with a connected service (the review's item 5): CmUnRegisterCallback must not be
    # reached while a registry operation could still be held behind the open client port.
    h.start_fake_service("closed")

    def unload():
        return k.call(k.filter["unload"], [0]) & 0xFFFFFFFF
    s = guarded("review 5: unload with a connected service closes the port before CmUnRegisterCallback", unload)
    if s is not None:
        check("review 5: unload with a connected service closes the port before CmUnRegisterCallback", True)
        check("unload returns STATUS_SUCCESS and leaves nothing registered",
              s == 0 and not (k.registrations - {"filtering"}), k.registrations)
        check("unload waited for callbacks in flight (rundown)", k.rundown_waited)
        check("every pool allocation was freed by unload", not k.pools, f"{len(k.pools)} left: {list(k.pools.values())[:5]}")
    if h.service:
        h.service.kill()
    sys.exit(report(started))


def driver_entry_faults(driver, n):
    """DriverEntry's allocation sites, each failing once: the session filter (the first), kcore's
    high-risk set (the second and third: a pattern's segment and its list), and the driver state
    (the last of the `n`). Loading fails cleanly every time."""
    for i in (1, 2, 3, n):
        k = K.Kernel(driver)
        k.fail_alloc_at = i
        status = k.driver_entry()
        check(f"review 4: DriverEntry with pool allocation {i} failing returns STATUS_INSUFFICIENT_RESOURCES, "
              "registers nothing and leaks nothing",
              status == K.STATUS_INSUFFICIENT_RESOURCES and not k.registrations and not k.pools,
              (hex(status), k.registrations, len(k.pools)))


def loopback_scenarios(h):
    """Session opens through the network redirector: back to this machine (a loopback name, or an
    administrative share anywhere) is denied without asking; another server's share is decided by
    the service on its \\Device\\Mup name (UNC rules)."""
    k = h.k
    for path in ("\\Device\\Mup\\localhost\\C$\\work\\a.txt", "\\Device\\Mup\\127.0.0.1\\share\\work\\a.txt",
                 "\\Device\\Mup\\0--1.ipv6-literal.net\\share\\a.txt", "\\Device\\Mup\\buildhost\\ADMIN$\\a.txt"):
        n = len(h.service_log())
        st, io = h.file_op(1001, IRP_MJ_CREATE, path, desired=FILE_WRITE_DATA)
        check(f"review 14: a session's write open of {path} -> denied without a query",
              st == COMPLETE and io == K.STATUS_ACCESS_DENIED and not h.queries(n), (st, io, h.queries(n)))
    n = len(h.service_log())
    st, io = h.file_op(1001, IRP_MJ_SET_INFORMATION, VOLUME + "\\work\\a.txt", info_class=L["FileRenameInformation"],
                       info=rename_info("\\Device\\Mup\\localhost\\C$\\work\\b.txt"))
    check("review 14: a rename onto a loopback share -> denied", st == COMPLETE and not h.queries(n), (st, h.queries(n)))
    n = len(h.service_log())
    unc = "\\Device\\Mup\\fileserver\\share\\work\\a.txt"
    st, io = h.file_op(1001, IRP_MJ_CREATE, unc, desired=FILE_WRITE_DATA)
    q = h.queries(n)
    check("I1: a session's write open on another server's share is decided by the service on its MUP name",
          st == ALLOW and q and q[0]["path"] == unc, (st, q))
    st, io = h.file_op(1001, IRP_MJ_CREATE, "\\Device\\Mup\\fileserver\\share\\protected\\a.txt",
                       desired=FILE_WRITE_DATA)
    check("I1: ... and denied where the policy denies it", st == COMPLETE and io == K.STATUS_ACCESS_DENIED, (st, io))
    n = len(h.service_log())
    st, io = h.file_op(3000, IRP_MJ_CREATE, "\\Device\\Mup\\localhost\\C$\\a.txt", desired=FILE_WRITE_DATA)
    check("review 14: a process outside every session reaches the loopback redirector unchanged",
          st == ALLOW and not h.queries(n), (st, io))


def handle_scenarios(h):
    """Handles session processes open, or have duplicated into them, to processes outside their
    session lose the injection rights; everything else keeps what it asked for."""
    k = h.k
    pall, tall = L["PROCESS_ALL_ACCESS"], L["THREAD_ALL_ACCESS"]
    pstrip = L["PROCESS_VM_WRITE"] | L["PROCESS_VM_OPERATION"] | L["PROCESS_CREATE_THREAD"] | L["PROCESS_DUP_HANDLE"]
    tstrip = L["THREAD_SET_CONTEXT"] | L["THREAD_SUSPEND_RESUME"]
    cases = [
        ("a session process opening a process outside its session", (1001, "process", 2000, pall), pall & ~pstrip),
        ("a session process opening a thread of a process outside its session", (1001, "thread", 2000, tall),
         tall & ~tstrip),
        ("a session process opening a process of its own session", (1001, "process", 1000, pall), pall),
        ("a session process opening a thread of its own session", (1001, "thread", 1000, tall), tall),
        ("a session process opening itself", (1001, "process", 1001, pall), pall),
        ("a process outside every session opening a session process", (2000, "process", 1001, pall), pall),
        ("a session process asking only for VM read and query", (1001, "process", 2000,
                                                                 L["PROCESS_VM_READ"] | L["PROCESS_QUERY_LIMITED_INFORMATION"]),
         L["PROCESS_VM_READ"] | L["PROCESS_QUERY_LIMITED_INFORMATION"]),
    ]
    for label, args, want in cases:
        got = h.handle_op(*args)
        check(f"review 15: {label}: {args[3]:#x} -> {want:#x}", got == want, hex(got))
    got = h.handle_op(2000, "process", 3000, pall, duplicate_into=1001)
    check("review 15: a process handle duplicated into a session process from outside loses the injection rights",
          got == pall & ~pstrip, hex(got))
    got = h.handle_op(1001, "thread", 2000, tall, duplicate_into=2004)
    check("review 15: a session process duplicating a thread handle into an outside process keeps the rights "
          "(the recipient is not in a session)", got == tall, hex(got))
    got = h.handle_op(1001, "process", 2000, pall, kernel_handle=True)
    check("review 15: a kernel handle is left alone", got == pall, hex(got))
    _, delta, _ = h.measure(lambda: h.handle_op(3000, "process", 2000, pall))
    check("review 15: a handle opened outside every session costs no lock, allocation or message",
          not any(delta.get(c, 0) for c in ("exclusive_locks", "pool_allocs", "port_messages")), delta)


def broker_scenarios(h):
    """A broker (pid 5000, outside every session) whose thread impersonates a token: with the
    session's AppContainer SID, or the fallback session's SID among the token's restricting SIDs,
    at impersonation (or delegation) level, its registry and file operations are that session's; at
    identification level, or with another container's, another session's or no such SID, they stay
    its own. Every token and process reference the driver took is dropped and every
    SeQueryInformationToken buffer freed before the callback returns (check_released)."""
    k = h.k
    broker = 5000
    same, other, plain = k.token(CONTAINER_SID), k.token(OTHER_CONTAINER_SID), k.token(None)
    impersonation, identification = L["SecurityImpersonation"], L["SecurityIdentification"]

    def as_broker(tok, level, fn):
        k.impersonation[broker + 1] = (tok, level)
        try:
            return fn()
        finally:
            k.impersonation.pop(broker + 1, None)

    n = len(h.service_log())
    s = as_broker(same, impersonation, lambda: h.set_value(broker, RUN_KEY, h.unique("Broker")))
    q = h.queries(n)
    check("review 15: a broker thread impersonating the session's AppContainer token -> its Run-key write is "
          "decided as the session's (asked with the session root's id, denied)",
          s == K.STATUS_ACCESS_DENIED and q and q[0]["pid"] == 1000 and q[0]["tid"] == broker + 1, (hex(s), q))
    n = len(h.service_log())
    st, io = as_broker(same, impersonation, lambda: h.file_op(broker, IRP_MJ_CREATE, VOLUME + "\\protected\\b.txt",
                                                              desired=FILE_WRITE_DATA))
    check("review 15: ... and its write open of a protected file is denied",
          st == COMPLETE and io == K.STATUS_ACCESS_DENIED and h.queries(n), (st, io))
    for label, tok, level in (("at identification level", same, identification),
                              ("with another AppContainer's token", other, impersonation),
                              ("with a token outside every AppContainer", plain, impersonation)):
        n = len(h.service_log())
        s = as_broker(tok, level, lambda: h.set_value(broker, RUN_KEY, h.unique("Broker")))
        st, io = as_broker(tok, level, lambda: h.file_op(broker, IRP_MJ_CREATE, VOLUME + "\\protected\\b.txt",
                                                         desired=FILE_WRITE_DATA))
        check(f"review 15: a broker thread impersonating {label} acts as itself (allowed, not asked)",
              s == 0 and st == ALLOW and not h.queries(n), (hex(s), st, h.queries(n)))

    # The restricted-token fallback (session root 1100): the broker impersonates a copy of the
    # session's token (what an RPC server gets from its client), recognised by the session SID
    # among its restricting SIDs.
    fallback = k.token(None, [USER_SID, USERS_SID, SESSION_SID])
    delegation = L["SecurityDelegation"]
    for label, level in (("impersonation", impersonation), ("delegation", delegation)):
        n = len(h.service_log())
        s = as_broker(fallback, level, lambda: h.set_value(broker, RUN_KEY, h.unique("Broker")))
        q = h.queries(n)
        check(f"item 2: a broker thread impersonating a fallback session's token at {label} level -> its Run-key "
              "write is decided as that session's (asked with the fallback root's id, denied)",
              s == K.STATUS_ACCESS_DENIED and q and q[0]["pid"] == 1100 and q[0]["tid"] == broker + 1,
              (hex(s), q))
        n = len(h.service_log())
        st, io = as_broker(fallback, level, lambda: h.file_op(broker, IRP_MJ_CREATE, VOLUME + "\\protected\\b.txt",
                                                              desired=FILE_WRITE_DATA))
        q = h.queries(n)
        check(f"item 2: ... and its write open of a protected file at {label} level is denied as the session's",
              st == COMPLETE and io == K.STATUS_ACCESS_DENIED and q and q[0].get("answer") == "deny", (st, io, q))
    cases = (
        ("a fallback session's token at identification level", fallback, identification),
        ("a token whose restricting SIDs lack the session SID", k.token(None, [USER_SID, USERS_SID]), impersonation),
        ("a token with another session's SID", k.token(None, [USER_SID, OTHER_SESSION_SID]), impersonation),
        ("a token with a SID of the session form under another sub-authority",
         k.token(None, [sid_bytes(9, [AGSH + 1, 0x9E3779B9, 0x7F4A7C15, 0xF39CC060, 0x5CEDC834])]), impersonation),
        ("an unrestricted token outside every AppContainer", k.token(None), impersonation),
    )
    for label, tok, level in cases:
        n = len(h.service_log())
        (s, (st, io)), delta, _ = h.measure(lambda: (
            as_broker(tok, level, lambda: h.set_value(broker, RUN_KEY, h.unique("Broker"))),
            as_broker(tok, level, lambda: h.file_op(broker, IRP_MJ_CREATE, VOLUME + "\\protected\\b.txt",
                                                    desired=FILE_WRITE_DATA))))
        check(f"item 2: a broker thread impersonating {label} acts as itself (allowed, not asked)",
              s == 0 and st == ALLOW and not h.queries(n), (hex(s), st, h.queries(n)))
        if not k.restricting[tok] or level == identification:
            check(f"item 2: ... without a restricted-SID query",
                  delta.get("restricted_sid_queries", 0) == 0, delta)
    # A failed TokenRestrictedSids query: the broker acts as itself, nothing leaks (check_released).
    k.call_faults["SeQueryInformationToken(TokenRestrictedSids)"] = K.STATUS_INSUFFICIENT_RESOURCES
    n = len(h.service_log())
    s = as_broker(fallback, impersonation, lambda: h.set_value(broker, RUN_KEY, h.unique("Broker")))
    check("item 2: with SeQueryInformationToken(TokenRestrictedSids) failing, a broker impersonating a fallback "
          "session's token acts as itself (allowed, not asked, nothing leaked)",
          s == 0 and not h.queries(n) and "SeQueryInformationToken(TokenRestrictedSids)" in k.failed_calls,
          (hex(s), h.queries(n), k.failed_calls[-2:]))
    k.call_faults.pop("SeQueryInformationToken(TokenRestrictedSids)", None)


def altitude_scenarios(driver):
    """The registry callback registers at the altitude `driver install --altitude` wrote under the
    service key DriverEntry was given (the Parameters layout first, then the legacy one); a value
    that is not a valid altitude string, or not REG_SZ, leaves the default. Every key handle the
    lookup opened is closed."""
    inst = "INSTANCES\\AGENTSH INSTANCE"
    params = "PARAMETERS\\" + inst
    sz = lambda text: (L["REG_SZ"], (text + "\0").encode("utf-16-le"))
    cases = [
        ("the Parameters layout's Altitude", {(params, "ALTITUDE"): sz("376300.25"),
                                              (inst, "ALTITUDE"): sz("371234")}, "376300.25"),
        ("the legacy layout's Altitude when Parameters has none", {(inst, "ALTITUDE"): sz("371234")}, "371234"),
        ("the default for a value that is not an altitude", {(params, "ALTITUDE"): sz("38x200")}, "376300"),
        ("the default for a value ending in a point", {(params, "ALTITUDE"): sz("376300.")}, "376300"),
        ("the default for a REG_DWORD Altitude", {(params, "ALTITUDE"): (L["REG_DWORD"], (376301).to_bytes(4, "little"))},
         "376300"),
        ("the default for an over-long value (no overflow)", {(params, "ALTITUDE"): sz("3" * 200)}, "376300"),
    ]
    # Two of these loads also fail a registration late in DriverEntry (review 15: the object
    # callbacks must be unwound with the rest): ObRegisterCallbacks with an altitude collision, and
    # FltStartFiltering after the object callbacks were registered.
    collision = 0xC01C0011  # STATUS_FLT_INSTANCE_ALTITUDE_COLLISION
    faults = {4: ("ObRegisterCallbacks", collision), 5: ("FltStartFiltering", K.STATUS_INSUFFICIENT_RESOURCES)}
    for i, (what, values, want) in enumerate(cases):
        k = K.Kernel(driver)
        k.service_values = values
        fault = faults.get(i)
        if fault:
            k.call_faults[fault[0]] = fault[1]
        status = k.driver_entry()
        got = getattr(k, "cm_altitude", None)
        check(f"item 4: registry callback altitude is {want}: {what}",
              status == (fault[1] if fault else 0) and got == want and not k.open_handles,
              (hex(status), got, k.open_handles))
        if fault:
            check(f"review 15: DriverEntry with {fault[0]} failing returns its status, leaves nothing registered "
                  "(object callbacks included) and leaks nothing",
                  not k.registrations and not k.pools and fault[0] in k.failed_calls
                  and (fault[0] == "ObRegisterCallbacks" or (k.ob and k.ob["altitude"] == want)),
                  (k.registrations, len(k.pools), k.failed_calls, k.ob))


def report(started):
    failed = [n for n, ok in results if not ok]
    print(f"\nkernel-emu: {len(results) - len(failed)}/{len(results)} scenarios passed (fake service) "
          f"in {time.monotonic() - started:.1f} s")
    return 1 if failed else 0


def registry_scenarios(h):
    k = h.k
    n = len(h.service_log())
    s = h.set_value(1001, RUN_KEY, "Updater")
    q = h.queries(n)
    check("session process sets a Run value -> STATUS_ACCESS_DENIED", s == K.STATUS_ACCESS_DENIED, hex(s))
    check("the query carried SetValue, the key and the value name",
          q and q[0]["op"] == "SetValue" and q[0]["key"] == RUN_KEY and q[0]["name"] == "Updater", q)

    s = h.set_value(1001, USER_APP, "config")
    check("session process writes HKCU\\SOFTWARE\\TestApp\\config -> success", s == 0, hex(s))
    sent_before = len(k.sent)
    s = h.set_value(1001, USER_APP, "config")
    check("the repeated write is answered from the cache without a message",
          s == 0 and len(k.sent) == sent_before, f"{len(k.sent) - sent_before} new messages")
    s = h.set_value(1001, USER_APP, "other")
    check("a different value name under the same key is not a cache hit",
          s == 0 and len(k.sent) == sent_before + 1)

    n = len(h.service_log())
    s = h.set_value(1002, RUN_KEY, "Forged")
    check("a child whose forged parent is in the session but whose creator is not -> not a session process",
          s == 0 and not h.queries(n))

    n = len(h.service_log())
    s = h.create_key(1001, "agentsh-approve", root=SERVICES)
    q = h.queries(n)
    check("service key create -> pending -> approved -> success", s == 0, hex(s))
    check("a relative CompleteName is joined to the root key's name, flagged as a new key",
          q and q[0]["op"] == "CreateKey" and q[0]["key"] == SERVICES + "\\agentsh-approve"
          and q[0]["flags"] & 4 and q[0]["answer"] == "pending", q)

    n = len(h.service_log())
    s = h.create_key(1001, SERVICES + "\\agentsh-timeout", root=SERVICES)
    q = h.queries(n)
    check("approval timeout -> denied", s == K.STATUS_ACCESS_DENIED, hex(s))
    check("an absolute CompleteName is used as is", q and q[0]["key"] == SERVICES + "\\agentsh-timeout", q)

    k.existing_keys.add((SERVICES + "\\Existing").upper())
    n = len(h.service_log())
    s = h.create_key(1001, SERVICES + "\\Existing", access=0x20019)
    check("RegCreateKeyEx opening an existing key is not a create (no CreateKey query)",
          s == 0 and not [e for e in h.queries(n) if e["op"] == "CreateKey"], h.queries(n))

    n = len(h.service_log())
    s = h.object_op(1001, L["RegNtPreDeleteKey"], RUN_KEY + "\\Sub")
    q = h.queries(n)
    check("RegNtPreDeleteKey (class 0) is intercepted and denied under a Run key",
          s == K.STATUS_ACCESS_DENIED and q and q[0]["op"] == "DeleteKey", q)
    n = len(h.service_log())
    s = h.object_op(1001, L["RegNtPreSaveKey"], HKLM + "\\SAM", "REG_SAVE_KEY_INFORMATION")
    q = h.queries(n)
    check("hive save of HKLM\\SAM is intercepted (SaveKey) and denied",
          s == K.STATUS_ACCESS_DENIED and q and q[0]["op"] == "SaveKey", q)

    # Review 13: classes that were not handled.
    for klass, ctype, key, op in (
            (L["RegNtPreSetInformationKey"], "REG_SET_INFORMATION_KEY_INFORMATION", RUN_KEY, "SetValue"),
            (L["RegNtPreUnLoadKey"], "REG_UNLOAD_KEY_INFORMATION", RUN_KEY, "LoadKey"),
            (L["RegNtPreSaveMergedKey"], "REG_DELETE_KEY_INFORMATION", HKLM + "\\SAM\\Merged", "SaveKey")):
        n = len(h.service_log())
        s = h.object_op(1001, klass, key, ctype)
        q = h.queries(n)
        check(f"review 13: registry class {klass} is decided ({op} on {key.rsplit(chr(92), 1)[-1]}) and denied",
              s == K.STATUS_ACCESS_DENIED and q and q[0]["op"] == op, (hex(s), q))
    for klass, ctype in ((L["RegNtPreQueryKey"], "REG_QUERY_KEY_INFORMATION"),
                         (L["RegNtPreQueryMultipleValueKey"], "REG_DELETE_KEY_INFORMATION")):
        _, delta, _ = h.measure(lambda: h.object_op(1001, klass, RUN_KEY, ctype))
        check(f"review 13: registry read class {klass} is looked at for session processes (its key is named)",
              delta.get("name_queries", 0) == 1, delta)


def file_scenarios(h):
    k = h.k
    prot = VOLUME + "\\protected\\secrets.txt"
    n = len(h.service_log())
    st, io = h.file_op(1001, IRP_MJ_SET_INFORMATION, prot, info_class=L["FileDispositionInformation"], info=b"\x01")
    q = h.queries(n)
    check("review 2: delete disposition (class @8, InfoBuffer @32) in a protected folder -> STATUS_ACCESS_DENIED",
          st == COMPLETE and io == K.STATUS_ACCESS_DENIED and q and q[0]["file_op"] == 4, (st, io, q))
    n = len(h.service_log())
    st, io = h.file_op(1001, IRP_MJ_SET_INFORMATION, prot, info_class=L["FileRenameInformation"],
                       info=rename_info(VOLUME + "\\work\\stolen.txt"))
    q = h.queries(n)
    check("review 2: rename out of a protected folder -> denied, sent with both names",
          st == COMPLETE and q and q[0]["file_op"] == 5 and q[0]["target"] == VOLUME + "\\work\\stolen.txt", (st, q))
    n = len(h.service_log())
    st, io = h.file_op(1001, IRP_MJ_SET_INFORMATION, VOLUME + "\\work\\a.txt", info_class=L["FileLinkInformation"],
                       info=rename_info(VOLUME + "\\protected\\link.txt"))
    q = h.queries(n)
    check("review 2: hard link decided as HardLink with its target",
          q and q[0]["file_op"] == 6 and q[0]["target"] == VOLUME + "\\protected\\link.txt", q)

    n = len(h.service_log())
    st, io = h.file_op(1001, IRP_MJ_CREATE, VOLUME + "\\work\\new.txt", desired=FILE_WRITE_DATA,
                       options=FILE_CREATE << 24)
    q = h.queries(n)
    check("file create in the workspace -> allowed, sent as a create", st == ALLOW and q and q[0]["file_op"] == 3, (st, q))

    for access, label in ((MAXIMUM_ALLOWED, "MAXIMUM_ALLOWED"), (GENERIC_WRITE, "GENERIC_WRITE"),
                          (GENERIC_ALL, "GENERIC_ALL"), (FILE_DELETE_CHILD, "FILE_DELETE_CHILD")):
        st, io = h.file_op(1001, IRP_MJ_CREATE, prot, desired=access)
        check(f"review 7/17: an open of a protected file with {label} is write intent -> denied",
              st == COMPLETE and io == K.STATUS_ACCESS_DENIED, (st, io))
    (st, io), delta, _ = h.measure(lambda: h.file_op(1001, IRP_MJ_CREATE, prot, desired=GENERIC_READ))
    check("review 17: a session's GENERIC_READ open is a read kcore does not ask about -> allowed without a "
          "name query", st == ALLOW and delta.get("name_queries", 0) == 0, (st, io, delta))

    st, io = h.file_op(1001, IRP_MJ_SET_SECURITY, prot)
    check("review 7: set-security on a protected file -> denied", st == COMPLETE and io == K.STATUS_ACCESS_DENIED,
          (st, io))
    for klass in ("FileEndOfFileInformation", "FileAllocationInformation", "FileBasicInformation"):
        st, io = h.file_op(1001, IRP_MJ_SET_INFORMATION, prot, info_class=L[klass], info=b"\0" * 40)
        check(f"review 7: {klass} on a protected file -> denied", st == COMPLETE and io == K.STATUS_ACCESS_DENIED,
              (st, io))
    st, io = h.file_op(1001, IRP_MJ_SECTION, prot, sync=(L["SyncTypeCreateSection"], PAGE_READWRITE))
    check("review 7: a writable section of a protected file -> failed with STATUS_INSUFFICIENT_RESOURCES "
          "(the one status the contract allows)", st == COMPLETE and io == K.STATUS_INSUFFICIENT_RESOURCES, (st, io))
    _, delta, _ = h.measure(lambda: h.file_op(1001, IRP_MJ_SECTION, prot,
                                              sync=(L["SyncTypeCreateSection"], PAGE_READONLY)))
    check("a read-only section is not looked at (no name query)", delta.get("name_queries", 0) == 0, delta)

    n = len(h.service_log())
    (st, io), delta, _ = h.measure(lambda: h.file_op(1001, IRP_MJ_CREATE, VOLUME + "\\protected",
                                                     desired=FILE_WRITE_DATA, op_flags=SL_OPEN_TARGET_DIRECTORY))
    check("review 16: an SL_OPEN_TARGET_DIRECTORY open is not judged as a directory write",
          st == ALLOW and not h.queries(n) and delta.get("name_queries", 0) == 0, (st, h.queries(n), delta))

    n = len(h.service_log())
    st, io = h.file_op(1001, IRP_MJ_CREATE, VOLUME + "\\nowrite\\log.txt", desired=FILE_WRITE_DATA,
                       options=FILE_OPEN_IF << 24)
    q = h.queries(n)
    check("review 17: FILE_OPEN_IF with write access is judged as create and as write -> denied where writes are",
          st == COMPLETE and [e["file_op"] for e in q] == [3, 2], (st, q))
    st, io = h.file_op(1001, IRP_MJ_CREATE, VOLUME + "\\nowrite\\fresh.txt", desired=FILE_WRITE_DATA,
                       options=FILE_CREATE << 24)
    check("... while FILE_CREATE there is a create only -> allowed", st == ALLOW, (st, io))


def unsandboxed_scenarios(h):
    """Processes outside every session: what they cost the machine."""
    k = h.k
    pid = 3000
    zero = ("name_queries", "pool_allocs", "port_messages", "exclusive_locks")
    for label, op in (
            ("read open", lambda: h.file_op(pid, IRP_MJ_CREATE, VOLUME + "\\protected\\a.txt", desired=GENERIC_READ)),
            ("write open", lambda: h.file_op(pid, IRP_MJ_CREATE, VOLUME + "\\protected\\a.txt",
                                             desired=FILE_WRITE_DATA)),
            ("create", lambda: h.file_op(pid, IRP_MJ_CREATE, VOLUME + "\\x\\n.txt", options=FILE_CREATE << 24)),
            ("write", lambda: h.file_op(pid, IRP_MJ_WRITE, VOLUME + "\\protected\\a.txt")),
            ("delete", lambda: h.file_op(pid, IRP_MJ_SET_INFORMATION, VOLUME + "\\protected\\a.txt",
                                         info_class=L["FileDispositionInformation"], info=b"\x01")),
            ("rename", lambda: h.file_op(pid, IRP_MJ_SET_INFORMATION, VOLUME + "\\protected\\a.txt",
                                         info_class=L["FileRenameInformation"], info=rename_info("\\x"))),
            ("set-security", lambda: h.file_op(pid, IRP_MJ_SET_SECURITY, VOLUME + "\\protected\\a.txt")),
            ("registry value read", lambda: h.object_op(pid, L["RegNtPreQueryValueKey"], RUN_KEY,
                                                        "REG_QUERY_VALUE_KEY_INFORMATION")),
            ("registry open (relative)", lambda: h.create_key(pid, "Software\\Policies", root=HKLM,
                                                              klass=L["RegNtPreOpenKeyEx"], access=0x20019))):
        (r, delta, msgs) = h.measure(op)
        allowed = r == 0 or (isinstance(r, tuple) and r[0] == ALLOW)
        costs = {c: delta.get(c, 0) for c in zero}
        check(f"outside every session: {label} -> allowed with 0 name queries, pool allocations, port messages "
              f"and exclusive locks", allowed and not any(costs.values()) and msgs == 0, (r, costs, msgs))
    r, delta, msgs = h.measure(lambda: h.set_value(pid, "\\REGISTRY\\MACHINE\\SOFTWARE\\Vendor", "x"))
    check("outside every session: an ordinary registry write -> at most one name query, no message",
          r == 0 and delta.get("name_queries", 0) <= 1 and delta.get("port_messages", 0) == 0, delta)
    n = len(h.service_log())
    r, delta, msgs = h.measure(lambda: h.set_value(pid, RUN_KEY, "Outside"))
    time.sleep(0.3)
    notes = [e for e in h.service_log()[n:] if "notify" in e]
    check("outside every session: a Run key write -> allowed, one name query, one one-way message",
          r == 0 and delta.get("name_queries", 0) == 1 and delta.get("port_messages", 0) == 1, delta)
    check("... and the service receives a one-way high-risk notification",
          notes and notes[0]["notify"] == 1 and notes[0]["key"] == RUN_KEY, notes)
    n = len(h.service_log())
    r, delta, msgs = h.measure(lambda: h.create_key(pid, "SAM\\SAM\\Domains", root=HKLM,
                                                    klass=L["RegNtPreOpenKeyEx"], access=0x20019))
    time.sleep(0.3)
    notes = [e for e in h.service_log()[n:] if "notify" in e]
    check("outside every session: opening HKLM\\SAM is reported (one name query, one message)",
          r == 0 and delta.get("name_queries", 0) == 1 and notes and notes[0]["key"].startswith(HKLM + "\\SAM"),
          (delta, notes))


def probe_scenarios(h):
    k = h.k
    k.nested.clear()
    k.existing_keys.add((SERVICES + "\\Probed").upper())
    s = h.create_key(1001, SERVICES + "\\Probed", access=0x20019)
    check("review 9: the existence probe re-entered the registry callback (as on Windows)", len(k.nested) == 1,
          k.nested)
    if k.nested:
        status, delta = k.nested[0]
        busy = {c: delta.get(c, 0) for c in ("exclusive_locks", "pool_allocs", "name_queries", "messages")}
        check("review 9: the driver's own probe passes its nested callback without work (no lock, allocation, "
              "name or message)", status == 0 and not any(busy.values()), (hex(status), busy))


def notification_scenarios(h):
    k = h.k
    k.service_stalled = True
    k.oneway_timeouts_ms.clear()
    for i in range(20):
        h.set_value(3100 + 4 * i, RUN_KEY, f"Stalled{i}")
    k.service_stalled = False
    waits = k.oneway_timeouts_ms
    check("review 21: a service that does not read costs the notification worker one short timeout per drain, "
          "not the query timeout per notification",
          waits and max(waits) <= 100 and sum(waits) <= 20 * 100, (len(waits), sum(waits or [0])))


def hold_scenarios(h):
    k = h.k
    k.terminating = True
    k.unreleased_holds = 0
    clock = k.clock_ms
    try:
        s = h.create_key(1001, SERVICES + "\\agentsh-timeout-term", root=SERVICES)
        reg_ok = s == K.STATUS_ACCESS_DENIED and k.unreleased_holds == 0 and k.clock_ms - clock < 1000
        check("review 12: a registry operation held for approval is released at once and denied when its "
              "thread terminates", reg_ok, (hex(s), k.unreleased_holds, k.clock_ms - clock))
        clock, k.unreleased_holds = k.clock_ms, 0
        st, io = h.file_op(1001, IRP_MJ_CREATE, VOLUME + "\\hold\\x.txt", desired=FILE_WRITE_DATA)
        check("review 12: a held file operation is released at once and denied when its thread terminates",
              st == COMPLETE and k.unreleased_holds == 0 and k.clock_ms - clock < 1000,
              (st, k.unreleased_holds, k.clock_ms - clock))
    finally:
        k.terminating = False


def allocation_faults(h):
    """Driver Verifier's low-resources simulation, systematically: in each scenario, pool allocation
    i fails (for every i the scenario reaches). No bug-check, nothing left held, and never more
    permissive than the same scenario without the fault."""
    k = h.k

    def scenarios():
        return [
            ("session registry write (allowed)", lambda: h.set_value(1001, USER_APP, h.unique("v")), 0),
            ("session Run key write (denied)", lambda: h.set_value(1001, RUN_KEY, h.unique("r")),
             K.STATUS_ACCESS_DENIED),
            ("session key create (relative name, probe)",
             lambda: h.create_key(1001, h.unique("k"), root=USER_APP), 0),
            ("session file create (allowed)",
             lambda: h.file_op(1001, IRP_MJ_CREATE, VOLUME + "\\work\\" + h.unique("f"), desired=FILE_WRITE_DATA,
                               options=FILE_CREATE << 24)[0], ALLOW),
            ("session file rename (denied)",
             lambda: h.file_op(1001, IRP_MJ_SET_INFORMATION, VOLUME + "\\protected\\" + h.unique("p"),
                               info_class=L["FileRenameInformation"], info=rename_info("\\t"))[0], COMPLETE),
            ("session child process", lambda: h.process_created(h.serial * 4 + 50_000, 1001, 1001), 0),
        ]
    total = 0
    for name, run, clean_expected in scenarios():
        r, delta, _ = h.measure(run)
        n = delta.get("pool_allocs", 0)
        ok = r == clean_expected
        bad = []
        for i in range(1, n + 1):
            k.fail_alloc_at = i
            try:
                r = run()
            except (K.BugCheck, K.Hang) as e:
                bad.append(f"allocation {i}: {e}")
                continue
            finally:
                k.fail_alloc_at = None
            total += 1
            if clean_expected in (K.STATUS_ACCESS_DENIED, COMPLETE) and r != clean_expected:
                bad.append(f"allocation {i}: allowed ({r:#x}) what is denied without the fault")
            if name == "session child process" and r not in (0, K.STATUS_INSUFFICIENT_RESOURCES):
                bad.append(f"allocation {i}: creation status {r:#x}")
        check(f"review 4: {name}: each of its {n} pool allocations fails once -> no bug-check, never more "
              "permissive", ok and n > 0 and not bad, (r, clean_expected, bad[:3]))
    # A session write whose request buffer cannot be allocated is denied (the fail mode for a
    # local resource failure), not sent and not allowed.
    r, delta, msgs = h.measure(lambda: (setattr(k, "fail_alloc_at", 1), h.set_value(1001, USER_APP, h.unique("d")))[1])
    k.fail_alloc_at = None
    check("review 4: a session write whose first allocation fails is denied, not allowed",
          r == K.STATUS_ACCESS_DENIED, (hex(r), delta))
    print(f"      ({total} fault-injected runs)")


def send_faults(h, mode):
    k = h.k
    for status in ("STATUS_TIMEOUT", "STATUS_PORT_DISCONNECTED", "STATUS_THREAD_IS_TERMINATING",
                   "STATUS_INSUFFICIENT_RESOURCES", "STATUS_INVALID_PARAMETER", "STATUS_NO_MEMORY"):
        k.send_faults = [L[status]]
        k.clock_ms += 5_000  # past the breaker's probe interval: the query goes out
        s = h.set_value(1001, USER_APP, h.unique("s"))
        k.send_faults = []
        expect_deny = mode == "closed" or status == "STATUS_THREAD_IS_TERMINATING"
        check(f"FltSendMessage returns {status} ({mode} mode) -> {'denied' if expect_deny else 'fail-open allow'}, "
              "no bug-check", (s == K.STATUS_ACCESS_DENIED) == expect_deny, hex(s))
    k.clock_ms += 5_000
    h.set_value(1001, USER_APP, h.unique("recover"))


def name_faults(h, mode):
    k = h.k
    k.clock_ms += 5_000
    for status in ("STATUS_INSUFFICIENT_RESOURCES", "STATUS_OBJECT_NAME_NOT_FOUND"):
        k.name_faults = [L[status]]
        s = h.set_value(1001, USER_APP, h.unique("n"))
        k.name_faults = []
        check(f"review 10: a key-name failure ({status}) for a session write is denied in fail-{mode} mode",
              s == K.STATUS_ACCESS_DENIED, hex(s))
    for status in ("STATUS_FLT_INVALID_NAME_REQUEST", "STATUS_ACCESS_DENIED", "STATUS_INSUFFICIENT_RESOURCES"):
        k.name_faults = [L[status]]
        st, io = h.file_op(1001, IRP_MJ_CREATE, VOLUME + "\\work\\" + h.unique("n"), desired=FILE_WRITE_DATA)
        k.name_faults = []
        check(f"review 10: a file-name failure ({status}) for a session write is denied in fail-{mode} mode",
              st == COMPLETE and io == K.STATUS_ACCESS_DENIED, (st, io))


def terminating_requester(h):
    """A sandboxed process kills its own thread while the driver waits in FltSendMessage."""
    k = h.k
    trips = sum(1 for code, _, _ in k.event_log if code == FAILS_TRIPPED)
    k.terminating = True
    k.send_faults = [K.STATUS_THREAD_IS_TERMINATING]
    try:
        s = h.set_value(1001, USER_APP, h.unique("t"))
    finally:
        k.terminating = False
        k.send_faults = []
    check("review 3: STATUS_THREAD_IS_TERMINATING during a query -> denied (fail-open mode)",
          s == K.STATUS_ACCESS_DENIED, hex(s))
    sent = len(k.sent)
    s = h.set_value(1001, USER_APP, h.unique("t"))
    check("review 3: ... and the machine-wide breaker did not trip (the next operation is still asked, "
          "no fail-mode event)", s == 0 and len(k.sent) > sent
          and sum(1 for code, _, _ in k.event_log if code == FAILS_TRIPPED) == trips, (hex(s), len(k.sent) - sent))


if __name__ == "__main__":
    main()
