"""Python encoders for the port messages the harness and the fake service use, written from the
tables in docs/protocol.md (not from the Rust encoder), and the loopback stream framing."""
import struct

KERNEL_MESSAGE, USER_REPLY, USER_SEND, SEND_RESULT = 1, 2, 3, 4
MAX_FRAME_LEN = 65536

OPS = {"QueryValue": 1, "SetValue": 2, "DeleteValue": 3, "CreateKey": 4, "DeleteKey": 5,
       "EnumKeys": 6, "EnumValues": 7, "OpenKey": 8, "RenameKey": 9, "SaveKey": 10,
       "RestoreKey": 11, "ReplaceKey": 12, "LoadKey": 13, "SetKeySecurity": 14}
OP_NAMES = {v: k for k, v in OPS.items()}
NEW_KEY, WRITE_ACCESS = 1 << 2, 1 << 3


def write_frame(sock, kind, body):
    sock.sendall(struct.pack("<IB", len(body) + 1, kind) + body)


class FrameReader:
    def __init__(self, sock):
        self.sock = sock

    def _exact(self, n):
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                return None
            buf += chunk
        return buf

    def read(self):
        head = self._exact(5)
        if head is None:
            return None
        length, kind = struct.unpack("<IB", head)
        if not 1 <= length <= MAX_FRAME_LEN:
            raise ValueError(f"frame length {length} out of range")
        body = self._exact(length - 1)
        return None if body is None else (kind, body)


def utf16_field(text, units):
    data = text.encode("utf-16-le")[: (units - 1) * 2]
    return data.ljust(units * 2, b"\0")


def read_utf16(buf):
    s = buf.decode("utf-16-le")
    return s.split("\0", 1)[0]


def parse_registry_request(msg):
    """PolicyCheckRegistry (1584 bytes)."""
    mtype, size, token, pid, tid, op, vtype, dsize = struct.unpack_from("<HHQIIIII", msg)
    return {"type": mtype, "size": size, "token": token, "pid": pid, "tid": tid,
            "op": OP_NAMES.get(op & 0xFFFF), "flags": op >> 16, "value_type": vtype,
            "data_size": dsize, "key": read_utf16(msg[32:1072]), "name": read_utf16(msg[1072:1584])}


def response(mtype, decision, ttl=0xFFFFFFFF, flags=0, approval_timeout=0, ticket=0):
    return struct.pack("<HHIIIII", mtype, 0, decision, ttl, flags, approval_timeout, ticket)


def hello(version=1):
    return struct.pack("<HHI8x", 0x10, 16, version)


def set_config(fail_mode, timeout_ms=1000, max_failures=1, cache_max=4096, ttl_ms=60000,
               grace_ms=0, flags=0):
    return struct.pack("<HHIIIIIII", 0x11, 32, fail_mode, timeout_ms, max_failures, cache_max,
                       ttl_ms, grace_ms, flags)


def get_metrics():
    return struct.pack("<HHI", 0x12, 8, 0)


def register_session(root_pid, token, session_id, workspace="C:\\work"):
    return struct.pack("<HHIQQII", 0x13, 552, root_pid, token, session_id, 0, 0) + utf16_field(workspace, 260)


def exclude_self():
    return struct.pack("<HHI", 0x15, 8, 0)


def query_session(pid):
    return struct.pack("<HHI", 0x1A, 8, pid)


def final_decision(ticket, decision):
    return struct.pack("<HHIIIII8x", 0x17, 32, 0, ticket, 0, decision, 0)
