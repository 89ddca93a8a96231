#!/usr/bin/env python3
"""A small stand-in for the agentsh service, speaking the loopback framing as the user side: it
handshakes, configures the fail mode, registers two sessions (an AppContainer one and a
restricted-token fallback one: the kernel model gives their roots such tokens), excludes itself, asks the kernel
(QuerySession) about an unknown process and about the first announced new process, and answers queries
with a fixed policy (Run keys and SAM denied, service-key creation held for approval, the rest
allowed; files under \\protected\\ denied, writes under \\nowrite\\ denied, files under \\hold\\ held).
Every message it receives is appended to a JSON-lines log the harness checks."""
import argparse
import json
import socket
import struct
import threading
import time

import wire


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--socket", required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--fail-mode", choices=["open", "closed"], default="closed")
    ap.add_argument("--session-root", type=int, default=1000)
    ap.add_argument("--fallback-root", type=int, default=1100)
    args = ap.parse_args()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(args.socket)
    reader = wire.FrameReader(sock)
    log = open(args.log, "a", buffering=1)
    lock = threading.Lock()

    def send(kind, body):
        with lock:
            wire.write_frame(sock, kind, body)

    fail_mode = 1 if args.fail_mode == "closed" else 0
    for body in (wire.hello(), wire.set_config(fail_mode), wire.register_session(args.session_root, 0xA11CE, 7),
                 wire.register_session(args.fallback_root, 0xB0B, 8), wire.exclude_self(),
                 wire.query_session(args.session_root + 999)):
        send(wire.USER_SEND, body)
    tickets = iter(range(100, 1000))
    queried = []
    while True:
        frame = reader.read()
        if frame is None:
            return
        kind, body = frame
        if kind == wire.SEND_RESULT:
            status = struct.unpack_from("<i", body)[0]
            mtype, size, result = struct.unpack_from("<HHI", body, 4) if len(body) >= 12 else (0, 0, 0)
            entry = {"send_result": status, "type": mtype, "status": result}
            if mtype == 0x1A:
                entry["size"] = size
                if size == 16 and len(body) >= 20:
                    entry["session_id"] = struct.unpack_from("<Q", body, 12)[0]
            log.write(json.dumps(entry) + "\n")
            continue
        reply_len, _pad, msg_id = struct.unpack_from("<IIQ", body)
        msg = body[16:]
        mtype = struct.unpack_from("<H", msg)[0]
        if reply_len == 0 and mtype == 4:
            pid, creating, _parent, kind = struct.unpack_from("<IIII", msg, 12)
            log.write(json.dumps({"process_event": kind, "pid": pid, "creating_pid": creating,
                                  "image": wire.read_utf16(msg[32:552])}) + "\n")
            if kind == 1 and not queried:
                # As the service's API does for a caller it does not know: ask the kernel (about
                # the first announced process only, so later scenarios see no extra messages).
                queried.append(pid)
                send(wire.USER_SEND, wire.query_session(pid))
            continue
        if reply_len == 0:
            reason = struct.unpack_from("<H", msg, 4)[0]
            decision = struct.unpack_from("<I", msg, 8)[0]
            inner = wire.parse_registry_request(msg[16:]) if struct.unpack_from("<H", msg, 16)[0] == 2 else {}
            log.write(json.dumps({"notify": reason, "decision": decision, **inner}) + "\n")
            continue
        if mtype == 2:
            req = wire.parse_registry_request(msg)
            key = req["key"].upper()
            if "\\CURRENTVERSION\\RUN" in key or key.startswith("\\REGISTRY\\MACHINE\\SAM"):
                reply = wire.response(2, 0, flags=1)
                req["answer"] = "deny"
            elif req["op"] == "CreateKey" and "\\SERVICES\\" in key:
                ticket = next(tickets)
                reply = wire.response(2, 2, approval_timeout=2, ticket=ticket)
                req["answer"] = "pending"
                if key.endswith("APPROVE"):
                    threading.Timer(0.2, send, (wire.USER_SEND, wire.final_decision(ticket, 1))).start()
            else:
                reply = wire.response(2, 1, ttl=60)
                req["answer"] = "allow"
        else:
            path = wire.read_utf16(msg[32:1072])
            op = struct.unpack_from("<I", msg, 20)[0] & 0xFFFF
            req = {"type": 1, "file_op": op, "path": path, "target": wire.read_utf16(msg[1072:2112])}
            upper = path.upper()
            if "\\HOLD\\" in upper:
                # Held for an approval that never comes (the harness terminates the thread).
                reply = wire.response(1, 2, approval_timeout=30, ticket=next(tickets))
                req["answer"] = "pending"
            else:
                # \protected\ denies everything; \nowrite\ allows creating files but not writing.
                deny = "\\PROTECTED\\" in upper or ("\\NOWRITE\\" in upper and op == 2)
                reply = wire.response(1, 0 if deny else 1, ttl=0)
                req["answer"] = "deny" if deny else "allow"
        log.write(json.dumps(req) + "\n")
        send(wire.USER_REPLY, struct.pack("<iIQ", 0, 0, msg_id) + reply)


if __name__ == "__main__":
    main()
