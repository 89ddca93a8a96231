#!/usr/bin/env python3
"""Loads the real agentsh.sys into an emulated kernel, runs DriverEntry, and drives the captured
callbacks with fabricated registry, process and file operations against a service over the
loopback socket. Exit status 0 only when every scenario passes."""
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

HERE = os.path.dirname(os.path.abspath(__file__))
RUN_KEY = "\\REGISTRY\\MACHINE\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Run"
USER_APP = "\\REGISTRY\\USER\\S-1-5-21-1000\\SOFTWARE\\TestApp"
SERVICES = "\\REGISTRY\\MACHINE\\SYSTEM\\ControlSet001\\Services"
FLT_PREOP_COMPLETE = 4

results = []


def check(name, ok, detail=""):
    results.append((name, bool(ok)))
    print(f"{'PASS' if ok else 'FAIL'}  {name}" + (f"  ({detail})" if detail and not ok else ""))


class Harness:
    def __init__(self, driver, workdir):
        self.k = K.Kernel(driver)
        self.workdir = workdir
        self.sock = os.path.join(workdir, "agentsh.sock")
        self.log = os.path.join(workdir, "service.jsonl")
        self.service = None

    def service_log(self):
        if not os.path.exists(self.log):
            return []
        return [json.loads(line) for line in open(self.log)]

    def start_fake_service(self, fail_mode):
        self.service = subprocess.Popen([sys.executable, os.path.join(HERE, "fake_service.py"),
                                         "--socket", self.sock, "--log", self.log, "--fail-mode", fail_mode])
        self.k.accept(self.service.pid)
        deadline = time.monotonic() + 10
        while len(self.k.inbox) < 4 and time.monotonic() < deadline:
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

    def registry(self, pid, klass, info):
        self.k.pid, self.k.tid = pid, pid + 1
        status = self.k.call(self.k.cm[0], [0, klass, info]) & 0xFFFFFFFF
        self.k.run_work_items()
        return status

    def set_value(self, pid, key, value, data=b"x\0"):
        k = self.k
        info = k.alloc(64, struct.pack("<QQIIQI", self.key_object(key), k.unicode_string(value), 0, 1,
                                       k.alloc(len(data), data), len(data)))
        return self.registry(pid, 1, info)

    def create_key(self, pid, complete, root=None, access=0xF003F):
        k = self.k
        info = bytearray(112)
        struct.pack_into("<QQ", info, 0, k.unicode_string(complete), self.key_object(root) if root else 0)
        struct.pack_into("<I", info, 56, access)
        return self.registry(pid, 26, k.alloc(112, bytes(info)))

    def object_op(self, pid, klass, key):
        return self.registry(pid, klass, self.k.alloc(32, struct.pack("<Q", self.key_object(key))))

    def process_created(self, pid, creating_pid, parent_pid):
        k = self.k
        info = struct.pack("<QI4xQQQQQQi4x", 72, 0, parent_pid, creating_pid, creating_pid + 1, 0,
                           k.unicode_string("C:\\agent\\tool.exe"), 0, 0)
        k.call(k.process_notify, [0, pid, k.alloc(72, info)])
        k.run_work_items()

    def file_op(self, pid, major, path, desired=0, options=1 << 24, info_class=0, info=b""):
        k = self.k
        k.pid, k.tid, k.file_path = pid, pid + 1, path
        sec = k.alloc(24, struct.pack("<QQII", 0, 0, desired, 0))
        iopb = bytearray(64)
        struct.pack_into("<IB", iopb, 0, 0, major)
        if major == 0:
            struct.pack_into("<QI", iopb, 24, sec, options)
        elif major == 6:
            struct.pack_into("<IIQQQ", iopb, 24, len(info), info_class, 0, 0, k.alloc(len(info), info))
        data = k.alloc(88, struct.pack("<IIQQ", 0, 0, 0, k.alloc(64, bytes(iopb))))
        objects = k.alloc(48, struct.pack("<HHIQQQQQ", 48, 0, 0, 0xF117E400, 0x701, 0x1A57, 0xF0, 0))
        pre = k.filter["ops"][0][2]
        status = k.call(pre, [data, objects, k.alloc(8)]) & 0xFFFFFFFF
        io_status = k.r64(data + 24) & 0xFFFFFFFF
        return status, io_status

    def queries(self, since):
        return [e for e in self.service_log()[since:] if "answer" in e]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--driver", required=True)
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO if args.verbose else logging.ERROR)
    logging.getLogger("speakeasy").setLevel(logging.ERROR)
    work = tempfile.mkdtemp(prefix="agentsh-kemu-")
    h = Harness(args.driver, work)
    k = h.k

    status = k.driver_entry()
    check("DriverEntry returns STATUS_SUCCESS", status == 0, hex(status))
    check("filter, port, registry callback and process notify registered; filtering started",
          k.registrations == {"filter", "port", "registry", "process", "filtering"}, k.registrations)
    check("registry callback altitude is 385200", getattr(k, "cm_altitude", None) == "385200")
    check("port is \\AgentshPort, one connection, default (admins/SYSTEM) descriptor",
          k.port["name"] == "\\AgentshPort" and k.port["max"] == 1 and k.sd_access == 0x1F0001 and k.port["sd"])
    check("minifilter pre-operations: create, write, set-information",
          [op[0] for op in k.filter["ops"]] == [0, 4, 6] and k.filter["version"] == 0x0202)
    setup = k.filter["setup"]
    check("instances attach to NTFS and ReFS only",
          [k.call(setup, [0, 0, 0, fs]) & 0xFFFFFFFF for fs in (2, 28, 3)] == [0, 0, 0xC01C000F])

    k.listen(h.sock)
    h.start_fake_service("closed")
    setup_results = [e for e in h.service_log() if "send_result" in e]
    check("handshake, config, session and exclusion accepted by the driver",
          len(setup_results) == 4 and all(e["send_result"] == 0 and e["status"] == 0 for e in setup_results), setup_results)

    n = len(h.service_log())
    h.process_created(1001, creating_pid=1000, parent_pid=4)
    h.process_created(1002, creating_pid=4, parent_pid=1000)
    time.sleep(0.3)
    announced = [e for e in h.service_log()[n:] if "process_event" in e]
    check("the session's new process is announced to the service with its image (one-way)",
          [(e["process_event"], e["pid"], e["creating_pid"], e["image"]) for e in announced]
          == [(1, 1001, 1000, "C:\\agent\\tool.exe")], announced)

    n = len(h.service_log())
    s = h.set_value(1001, RUN_KEY, "Updater")
    q = h.queries(n)
    check("session process sets a Run value -> STATUS_ACCESS_DENIED", s == K.STATUS_ACCESS_DENIED, hex(s))
    check("the query carried SetValue, the key and the value name",
          q and q[0]["op"] == "SetValue" and q[0]["key"] == RUN_KEY and q[0]["name"] == "Updater", q)

    n = len(h.service_log())
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
    check("an absolute CompleteName is used as is",
          q and q[0]["key"] == SERVICES + "\\agentsh-timeout", q)

    k.existing_keys.add((SERVICES + "\\Existing").upper())
    n = len(h.service_log())
    s = h.create_key(1001, SERVICES + "\\Existing", access=0x20019)
    check("RegCreateKeyEx opening an existing key is not a create (no CreateKey query)",
          s == 0 and not [e for e in h.queries(n) if e["op"] == "CreateKey"], h.queries(n))

    n = len(h.service_log())
    s = h.object_op(1001, 0, RUN_KEY + "\\Sub")
    q = h.queries(n)
    check("RegNtPreDeleteKey (class 0) is intercepted and denied under a Run key",
          s == K.STATUS_ACCESS_DENIED and q and q[0]["op"] == "DeleteKey", q)
    n = len(h.service_log())
    s = h.object_op(1001, 43, "\\REGISTRY\\MACHINE\\SAM")
    q = h.queries(n)
    check("hive save of HKLM\\SAM is intercepted (SaveKey) and denied",
          s == K.STATUS_ACCESS_DENIED and q and q[0]["op"] == "SaveKey", q)

    n = len(h.service_log())
    s = h.set_value(2000, RUN_KEY, "Outside")
    time.sleep(0.3)
    notes = [e for e in h.service_log()[n:] if "notify" in e]
    check("a non-session process writing a Run key is allowed", s == 0, hex(s))
    check("... and the service receives a one-way high-risk notification",
          notes and notes[0]["notify"] == 1 and notes[0]["key"] == RUN_KEY, notes)

    n = len(h.service_log())
    st, io = h.file_op(1001, 6, "\\Device\\HarddiskVolume2\\protected\\secrets.txt",
                       info_class=13, info=b"\x01")
    q = h.queries(n)
    check("file delete disposition in a protected folder -> completed with STATUS_ACCESS_DENIED",
          st == FLT_PREOP_COMPLETE and io == K.STATUS_ACCESS_DENIED and q and q[0]["file_op"] == 4, (st, io, q))
    n = len(h.service_log())
    st, io = h.file_op(1001, 0, "\\Device\\HarddiskVolume2\\work\\new.txt", desired=0x2, options=2 << 24)
    q = h.queries(n)
    check("file create in the workspace -> allowed, sent as a create",
          st == 1 and q and q[0]["file_op"] == 3, (st, q))

    h.stop_service()
    s = h.set_value(1001, USER_APP, "config")
    check("service stopped, fail-closed -> denied", s == K.STATUS_ACCESS_DENIED, hex(s))
    check("fail-mode transition written to the Event Log",
          any(code == 0xA0000002 for code, _, _ in k.event_log), k.event_log)
    h.start_fake_service("open")
    h.stop_service()
    s = h.set_value(1001, USER_APP, "config")
    check("service stopped, fail-open -> allowed", s == 0, hex(s))
    s = h.set_value(1001, RUN_KEY, "WhileDown")
    check("... but a critical key stays denied while the service is unavailable",
          s == K.STATUS_ACCESS_DENIED, hex(s))

    unload = k.filter["unload"]
    s = k.call(unload, [0]) & 0xFFFFFFFF
    check("unload returns STATUS_SUCCESS and leaves nothing registered",
          s == 0 and not (k.registrations - {"filtering"}), k.registrations)
    check("unload waited for callbacks in flight (rundown)", k.rundown_waited)
    check("every pool allocation was freed by unload", not k.pools, f"{len(k.pools)} left")

    failed = [n for n, ok in results if not ok]
    print(f"\nkernel-emu: {len(results) - len(failed)}/{len(results)} scenarios passed (fake service)")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
