#!/usr/bin/env python3
"""The issue's end-to-end scenarios against the real `agentsh service run`: the service runs
natively, connects to the harness's loopback socket, registers a session through its local API,
and a person's approval is given with `agentsh approvals approve`. The driver is the real
agentsh.sys running in the emulated kernel."""
import argparse
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
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kernel as K  # noqa: E402
from run import Harness, check, results  # noqa: E402

SID = "S-1-5-21-1000"
RUN_KEY = f"\\REGISTRY\\USER\\{SID}\\Software\\Microsoft\\Windows\\CurrentVersion\\Run"
HKLM_RUN = "\\REGISTRY\\MACHINE\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Run"
APP_KEY = f"\\REGISTRY\\USER\\{SID}\\SOFTWARE\\TestApp\\config"
SERVICES = "\\REGISTRY\\MACHINE\\SYSTEM\\ControlSet001\\Services"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class RealService:
    def __init__(self, h, agentsh, policy, fail_mode):
        self.h, self.k = h, h.k
        self.agentsh = agentsh
        self.port = free_port()
        self.token_file = os.path.join(h.workdir, f"token-{fail_mode}")
        self.events = os.path.join(h.workdir, f"events-{fail_mode}.jsonl")
        self.proc = subprocess.Popen(
            [agentsh, "service", "run", "--driver-socket", h.sock, "--policy", policy,
             "--api", f"127.0.0.1:{self.port}", "--api-token-file", self.token_file,
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
        token = open(self.token_file).read().strip()
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", method=method,
                                     data=json.dumps(body).encode() if body is not None else None,
                                     headers={"Authorization": f"Bearer {token}",
                                              "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=20) as r:
            return json.loads(r.read() or b"null")

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
            subprocess.run([agentsh, "approvals", "approve", str(ident), "--api", f"127.0.0.1:{svc.port}",
                            "--api-token-file", svc.token_file], check=True, stdout=subprocess.DEVNULL)
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
