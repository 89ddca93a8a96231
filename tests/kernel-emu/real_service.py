#!/usr/bin/env python3
"""The issue's end-to-end scenarios against the real `agentsh service run`: the service runs
natively, connects to the harness's loopback socket, registers a session through its local API,
and a person's approval is given with `agentsh approvals approve`. The driver is the real
agentsh.sys running in the emulated kernel."""
import argparse
import http.client
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kernel as K  # noqa: E402
from run import Harness, check, results  # noqa: E402

SID = "S-1-5-21-1000"
RUN_KEY = f"\\REGISTRY\\USER\\{SID}\\Software\\Microsoft\\Windows\\CurrentVersion\\Run"
HKLM_RUN = "\\REGISTRY\\MACHINE\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Run"
APP_KEY = f"\\REGISTRY\\USER\\{SID}\\SOFTWARE\\TestApp\\config"
SERVICES = "\\REGISTRY\\MACHINE\\SYSTEM\\ControlSet001\\Services"


class UnixHTTPConnection(http.client.HTTPConnection):
    """HTTP over the service's local API socket."""

    def __init__(self, path, timeout):
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.path)


class RealService:
    def __init__(self, h, agentsh, policy, fail_mode):
        self.h, self.k = h, h.k
        self.agentsh = agentsh
        self.api_socket = os.path.join(h.workdir, f"api-{fail_mode}", "api.sock")
        self.events = os.path.join(h.workdir, f"events-{fail_mode}.jsonl")
        self.proc = subprocess.Popen(
            [agentsh, "service", "run", "--driver-socket", h.sock, "--policy", policy,
             "--api-socket", self.api_socket,
             "--fail-mode", fail_mode, "--policy-query-timeout-ms", "2000",
             "--max-consecutive-failures", "1", "--events", self.events],
            stdout=subprocess.DEVNULL, stderr=open(os.path.join(h.workdir, f"service-{fail_mode}.log"), "w"))
        self.k.accept(self.proc.pid)
        self.settle()

    def settle(self, quiet=0.7, limit=15):
        """Delivers the service's messages until it has been quiet for `quiet` seconds."""
        end = time.monotonic() + limit
        last = time.monotonic()
        while time.monotonic() < end and time.monotonic() - last < quiet:
            self.k.pump(0.1)
            if self.k.inbox:
                self.k.deliver()
                last = time.monotonic()

    def api(self, method, path, body=None):
        deadline = time.monotonic() + 10
        while not os.path.exists(self.api_socket) and time.monotonic() < deadline:
            time.sleep(0.05)  # the service starts its API just after the handshake
        conn = UnixHTTPConnection(self.api_socket, timeout=20)
        try:
            conn.request(method, path, body=json.dumps(body) if body is not None else None,
                         headers={"Content-Type": "application/json"})
            r = conn.getresponse()
            data = r.read()
            if r.status >= 400:
                raise RuntimeError(f"{method} {path}: {r.status} {data!r}")
            return json.loads(data or b"null")
        finally:
            conn.close()

    def register_session(self, root_pid):
        out = {}
        t = threading.Thread(target=lambda: out.update(r=self.api(
            "POST", "/v1/sessions", {"root_pid": root_pid, "app": "TestApp", "workspace": "C:\\work",
                                     "user_sid": SID})))
        t.start()
        while t.is_alive():
            self.k.pump(0.05)
            self.k.deliver()
        return out.get("r")

    def stop(self):
        self.proc.kill()
        self.proc.wait()
        self.k.pump(0.5)
        if self.k.connected_pid is not None:
            self.k.disconnect()


def approve_when_held(svc, agentsh, ticket_holder):
    """A person answers: waits for the held operation, then runs `agentsh approvals approve`."""
    for _ in range(200):
        pending = svc.api("GET", "/v1/approvals")
        if pending:
            ident = pending[0]["id"]
            ticket_holder.append(ident)
            subprocess.run([agentsh, "approvals", "approve", str(ident), "--api-socket", svc.api_socket],
                           check=True, stdout=subprocess.DEVNULL)
            return
        time.sleep(0.05)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--driver", required=True)
    ap.add_argument("--agentsh", required=True)
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="agentsh-kemu-real-")
    policy = os.path.join(work, "agentsh.yaml")
    shutil.copy(os.path.join(os.path.dirname(os.path.abspath(__file__)), "policy.yaml"), policy)
    h = Harness(args.driver, work)
    k = h.k
    check("DriverEntry returns STATUS_SUCCESS", k.driver_entry() == 0)
    k.listen(h.sock)

    svc = RealService(h, args.agentsh, policy, "closed")
    check("the real service connected and completed the handshake", k.connected_pid == svc.proc.pid)
    reg = svc.register_session(1000)
    check("session registered through the service's API", reg and reg.get("session_id"), reg)
    h.process_created(1001, creating_pid=1000, parent_pid=4)

    s = h.set_value(1001, RUN_KEY, "Updater")
    check("real service: session process sets a Run value -> STATUS_ACCESS_DENIED",
          s == K.STATUS_ACCESS_DENIED, hex(s))
    s = h.set_value(1001, APP_KEY, "setting")
    check("real service: HKCU\\SOFTWARE\\TestApp\\config -> success", s == 0, hex(s))
    before = len(k.sent)
    s = h.set_value(1001, APP_KEY, "setting")
    check("real service: the repeated write is answered from the cache without a message",
          s == 0 and len(k.sent) == before, f"{len(k.sent) - before} messages")

    held = []
    approver = threading.Thread(target=approve_when_held, args=(svc, args.agentsh, held))
    approver.start()
    s = h.create_key(1001, "agentsh-test-svc", root=SERVICES)
    approver.join()
    check("real service: service key create -> pending -> `agentsh approvals approve` -> success",
          s == 0 and held, f"{s:#x} held={held}")

    s = h.create_key(1001, SERVICES + "\\agentsh-timeout-svc", root=SERVICES)
    check("real service: approval timeout -> denied", s == K.STATUS_ACCESS_DENIED, hex(s))

    before = len(k.sent)
    s = h.set_value(2000, HKLM_RUN, "Outside")
    notes = [m for cap, m in k.sent[before:] if cap == 0 and struct.unpack_from("<H", m)[0] == 3]
    check("real service: non-session process writes a Run key -> allowed, notification sent",
          s == 0 and notes, f"{s:#x} {len(notes)}")
    time.sleep(0.3)
    svc.settle(quiet=0.3)
    events = [json.loads(line) for line in open(svc.events) if line.strip()]
    check("real service: ... and the service recorded the notification as an event",
          any("Outside" in json.dumps(e) for e in events), f"{len(events)} events")
    blocked = [e for e in events if e.get("type") == "registry_blocked" and e.get("process_id") == 1001]
    check("real service: events name the session process by the image the driver announced",
          blocked and blocked[0].get("process_image") == "C:\\agent\\tool.exe"
          and blocked[0].get("process_name") == "tool.exe", blocked[:1])

    svc.stop()
    s = h.set_value(1001, APP_KEY, "other")
    check("real service stopped, fail-closed -> denied", s == K.STATUS_ACCESS_DENIED, hex(s))
    svc = RealService(h, args.agentsh, policy, "open")
    svc.stop()
    s = h.set_value(1001, APP_KEY, "third")
    check("real service stopped, fail-open -> allowed", s == 0, hex(s))

    check("unload leaves nothing registered",
          k.call(k.filter["unload"], [0]) == 0 and not (k.registrations - {"filtering"}), k.registrations)
    failed = [n for n, ok in results if not ok]
    print(f"\nkernel-emu: {len(results) - len(failed)}/{len(results)} scenarios passed (real agentsh service)")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
