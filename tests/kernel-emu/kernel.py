"""An emulated Windows kernel for agentsh.sys on top of speakeasy: every import the driver uses is
implemented here (speakeasy has no Filter Manager and stubs the registry callback APIs), the
registered callbacks are captured, and FltSendMessage is bridged to a user-mode service over the
loopback framing (this side listens, the service connects)."""
import logging
import select
import socket
import struct

import pefile
import speakeasy

import wire

STATUS_SUCCESS = 0
STATUS_TIMEOUT = 0x102
STATUS_PORT_DISCONNECTED = 0xC000037E
STATUS_OBJECT_NAME_NOT_FOUND = 0xC0000034
STATUS_ACCESS_DENIED = 0xC0000022

USER_BUFFERS = 0x10000000  # user-mode range for port message buffers (below MM_USER_PROBE_ADDRESS)


class BugCheck(Exception):
    pass


class Kernel:
    def __init__(self, driver_path):
        self.se = speakeasy.Speakeasy(logger=logging.getLogger("speakeasy"))
        self.driver_path = driver_path
        self.clock_ms = 1_000_000
        self.pid, self.tid = 4, 8
        self.debug = []           # DbgPrint lines
        self.event_log = []       # (code, final_status, text)
        self.filter = None        # FLT_REGISTRATION fields
        self.port = None          # connect/disconnect/message callbacks
        self.client_port_var = 0  # address of the driver's client-port variable (from FltSendMessage)
        self.cm = None            # (callback, cookie)
        self.process_notify = None
        self.started = False
        self.registrations = set()
        self.key_objects = {}     # key object address -> name
        self.existing_keys = set()
        self.mutexes, self.events = set(), {}
        self.work_items = []
        self.pools = {}
        self.rundown_waited = False
        self.sent = []            # (header, message) sent to the service
        self.conn = None
        self.listener = None
        self.inbox = []           # USER_SEND bodies waiting for delivery
        self.msg_id = 0
        self.connected_pid = None
        self._install_hooks()
        self.module = self.se.load_module(driver_path)
        self._check_hooks_cover_imports()

    # ---- memory helpers ----
    def alloc(self, size, data=b""):
        addr = self.se.mem_alloc(max(size, len(data), 16), tag="agentsh.harness")
        self.se.mem_write(addr, bytes(data).ljust(max(size, len(data)), b"\0"))
        return addr

    def user_alloc(self, size):
        if not hasattr(self, "_user_next"):
            base = self.se.mem_alloc(0x100000, base=USER_BUFFERS, tag="agentsh.user")
            if base >= 0x7FFFFFFF0000:
                raise SystemExit(f"kernel-emu: user buffers landed at {base:#x}, not in user space")
            self._user_next = base
        addr = self._user_next
        self._user_next += (size + 0xF) & ~0xF
        self.se.mem_write(addr, b"\0" * size)
        return addr

    def r64(self, a):
        return struct.unpack("<Q", self.se.mem_read(a, 8))[0]

    def r32(self, a):
        return struct.unpack("<I", self.se.mem_read(a, 4))[0]

    def w64(self, a, v):
        self.se.mem_write(a, struct.pack("<Q", v & 0xFFFFFFFFFFFFFFFF))

    def w32(self, a, v):
        self.se.mem_write(a, struct.pack("<I", v & 0xFFFFFFFF))

    def unicode_string(self, text):
        data = text.encode("utf-16-le")
        buf = self.alloc(len(data) + 2, data)
        us = self.alloc(16, struct.pack("<HHIQ", len(data), len(data) + 2, 0, buf))
        return us

    def read_unicode_string(self, us):
        length, _max, _pad, buf = struct.unpack("<HHIQ", self.se.mem_read(us, 16))
        return self.se.mem_read(buf, length).decode("utf-16-le") if buf else ""

    def call(self, addr, args):
        # speakeasy puts stack arguments right above the return address; the x64 convention has
        # them after the 32-byte home space, which four padding slots provide.
        if len(args) > 4:
            args = list(args[:4]) + [0] * 4 + list(args[4:])
        self.se.call(addr, args)
        return self.se.reg_read("rax")

    # ---- hooks ----
    def _hook(self, module, name, argc, fn):
        self.hooked.add(name.lower())

        def cb(emu, api_name, func, argv):
            return fn(*argv[:argc]) or 0
        self.se.add_api_hook(cb, module, name, argc=argc)

    def _check_hooks_cover_imports(self):
        pe = pefile.PE(self.driver_path)
        missing = [
            imp.name.decode()
            for entry in pe.DIRECTORY_ENTRY_IMPORT
            for imp in entry.imports
            if imp.name.decode().lower() not in self.hooked
        ]
        if missing:
            raise SystemExit(f"kernel-emu: driver imports not modelled by the harness: {missing}")

    def _install_hooks(self):
        self.hooked = set()
        h = self._hook
        nt, flt = "ntoskrnl", "fltmgr"
        # pool, memory, strings
        h(nt, "ExAllocatePool2", 3, lambda flags, size, tag: self._pool_alloc(size, tag))
        h(nt, "ExFreePoolWithTag", 2, lambda p, tag: self._pool_free(p, tag))
        h(nt, "memcpy", 3, self._memmove)
        h(nt, "memmove", 3, self._memmove)
        h(nt, "memset", 3, lambda d, c, n: (self.se.mem_write(d, bytes([c & 0xFF]) * n), d)[1])
        h(nt, "memcmp", 3, self._memcmp)
        h(nt, "strlen", 1, lambda s: len(self.se.read_mem_string(s, 1)))
        h(nt, "__C_specific_handler", 4, lambda *a: 1)
        # diagnostics
        h(nt, "DbgPrint", 2, self._dbgprint)
        h(nt, "KeBugCheckEx", 5, self._bugcheck)
        h(nt, "IoAllocateErrorLogEntry", 2, lambda obj, size: self.alloc(size))
        h(nt, "IoWriteErrorLogEntry", 1, self._write_error_log)
        # time, identity
        h(nt, "KeQueryInterruptTimePrecise", 1, lambda qpc: self.clock_ms * 10_000)
        h(nt, "KeQueryPerformanceCounter", 1, lambda f: 123456789)
        h(nt, "PsGetCurrentProcessId", 0, lambda: self.pid)
        h(nt, "PsGetCurrentThreadId", 0, lambda: self.tid)
        # synchronisation
        h(nt, "KeInitializeMutex", 2, lambda m, lvl: self.mutexes.add(m))
        h(nt, "KeReleaseMutex", 2, lambda m, w: 0)
        h(nt, "KeInitializeEvent", 3, lambda e, kind, state: self.events.__setitem__(e, bool(state)))
        h(nt, "KeSetEvent", 3, lambda e, inc, w: self.events.__setitem__(e, True))
        h(nt, "KeWaitForSingleObject", 5, self._wait)
        h(nt, "ExInitializeRundownProtection", 1, lambda r: self.w64(r, 0))
        h(nt, "ExAcquireRundownProtection", 1, self._rundown_acquire)
        h(nt, "ExReleaseRundownProtection", 1, lambda r: self.w64(r, self.r64(r) - 2))
        h(nt, "ExWaitForRundownProtectionRelease", 1, self._rundown_wait)
        # registrations
        h(nt, "CmRegisterCallbackEx", 6, self._cm_register)
        h(nt, "CmUnRegisterCallback", 1, self._cm_unregister)
        h(nt, "CmCallbackGetKeyObjectIDEx", 5, self._cm_key_name)
        h(nt, "CmCallbackReleaseKeyObjectIDEx", 1, lambda name: 0)
        h(nt, "PsSetCreateProcessNotifyRoutineEx", 2, self._ps_notify)
        h(nt, "ZwOpenKey", 3, self._zw_open_key)
        h(nt, "ZwClose", 1, lambda handle: 0)
        h(flt, "FltRegisterFilter", 3, self._flt_register)
        h(flt, "FltStartFiltering", 1, lambda f: self._mark("filtering") or 0)
        h(flt, "FltUnregisterFilter", 1, lambda f: self.registrations.discard("filter"))
        h(flt, "FltBuildDefaultSecurityDescriptor", 2, self._build_sd)
        h(flt, "FltFreeSecurityDescriptor", 1, lambda sd: self.registrations.discard("sd"))
        h(flt, "FltCreateCommunicationPort", 8, self._create_port)
        h(flt, "FltCloseCommunicationPort", 1, lambda p: self.registrations.discard("port"))
        h(flt, "FltCloseClientPort", 2, self._close_client_port)
        h(flt, "FltSendMessage", 7, self._send_message)
        h(flt, "FltGetRequestorProcessId", 1, lambda data: self.pid)
        h(flt, "FltGetFileNameInformation", 3, self._file_name)
        h(flt, "FltGetDestinationFileNameInformation", 7, self._destination_name)
        h(flt, "FltReleaseFileNameInformation", 1, lambda info: 0)
        h(flt, "FltAllocateGenericWorkItem", 0, lambda: self.alloc(16))
        h(flt, "FltQueueGenericWorkItem", 5, self._queue_work_item)
        h(flt, "FltFreeGenericWorkItem", 1, lambda item: 0)

    def _mark(self, what):
        self.registrations.add(what)
        if what == "filtering":
            self.started = True

    def _pool_alloc(self, size, tag):
        addr = self.alloc(size)
        self.pools[addr] = tag
        return addr

    def _pool_free(self, p, tag):
        if self.pools.pop(p, None) != tag:
            raise BugCheck(f"ExFreePoolWithTag({p:#x}, {tag:#x}): not an allocation with that tag")

    def _memmove(self, d, s, n):
        if n:
            self.se.mem_write(d, self.se.mem_read(s, n))
        return d

    def _memcmp(self, a, b, n):
        x, y = self.se.mem_read(a, n), self.se.mem_read(b, n)
        for i in range(n):
            if x[i] != y[i]:
                return (x[i] - y[i]) & 0xFFFFFFFFFFFFFFFF
        return 0

    def _dbgprint(self, fmt, arg):
        line = self.se.read_mem_string(arg, 1)
        self.debug.append(line)
        logging.getLogger("agentsh.sys").info("DbgPrint: %s", line)
        return 0

    def _bugcheck(self, code, p1, p2, p3, p4):
        raise BugCheck(f"KeBugCheckEx({code:#x}, {p1}, {p2})")

    def _write_error_log(self, entry):
        data = self.se.mem_read(entry, 48)
        code, final = struct.unpack_from("<iI", data, 12)[0] & 0xFFFFFFFF, struct.unpack_from("<i", data, 20)[0]
        off = struct.unpack_from("<H", data, 6)[0]
        text = self.se.read_mem_string(entry + off, 2)
        self.event_log.append((code, final & 0xFFFFFFFF, text))

    def _rundown_acquire(self, r):
        v = self.r64(r)
        if v & 1:
            return 0
        self.w64(r, v + 2)
        return 1

    def _rundown_wait(self, r):
        if self.r64(r) != 0:
            raise BugCheck("unload waited for callbacks still in flight (single-threaded harness)")
        self.w64(r, 1)
        self.rundown_waited = True

    def _cm_register(self, cb, altitude, driver, ctx, cookie_ptr, reserved):
        self.cm_altitude = self.read_unicode_string(altitude)
        self.w64(cookie_ptr, 0x1234)
        self.cm = (cb, 0x1234)
        self.registrations.add("registry")
        return 0

    def _cm_unregister(self, cookie):
        assert self.cm and cookie == self.cm[1], "CmUnRegisterCallback with a foreign cookie"
        self.registrations.discard("registry")
        return 0

    def _cm_key_name(self, cookie_ptr, obj, id_ptr, name_ptr, flags):
        if obj not in self.key_objects:
            return STATUS_OBJECT_NAME_NOT_FOUND
        self.w64(name_ptr, self.unicode_string(self.key_objects[obj]))
        return 0

    def _ps_notify(self, cb, remove):
        if remove:
            self.registrations.discard("process")
        else:
            self.process_notify = cb
            self.registrations.add("process")
        return 0

    def _zw_open_key(self, handle_ptr, access, attrs):
        name = self.read_unicode_string(self.r64(attrs + 16))
        if name.upper() in self.existing_keys:
            self.w64(handle_ptr, 0x7770)
            return 0
        return STATUS_OBJECT_NAME_NOT_FOUND

    def _flt_register(self, driver, reg, filter_ptr):
        raw = self.se.mem_read(reg, 0x68)
        size, version = struct.unpack_from("<HH", raw)
        ops_ptr, unload, setup = struct.unpack_from("<QQQ", raw, 16)
        ops = []
        while True:
            major, flags, pre = struct.unpack("<B3xIQ", self.se.mem_read(ops_ptr, 16))
            if major == 0x80:
                break
            ops.append((major, flags, pre))
            ops_ptr += 32
        self.filter = {"size": size, "version": version, "ops": ops, "unload": unload, "setup": setup}
        self.w64(filter_ptr, 0xF117E400)
        self.registrations.add("filter")
        return 0

    def _build_sd(self, sd_ptr, access):
        self.sd_access = access
        self.w64(sd_ptr, self.alloc(64))
        self.registrations.add("sd")
        return 0

    def _create_port(self, flt, port_ptr, attrs, cookie, connect, disconnect, message, max_conn):
        name = self.read_unicode_string(self.r64(attrs + 16))
        self.port = {"name": name, "connect": connect, "disconnect": disconnect,
                     "message": message, "max": max_conn, "sd": self.r64(attrs + 32)}
        self.w64(port_ptr, 0x9047)
        self.registrations.add("port")
        return 0

    def _close_client_port(self, flt, client_port_ptr):
        self.w64(client_port_ptr, 0)

    def _file_name(self, data, options, info_ptr):
        info = self.alloc(24 + 16)
        us = self.unicode_string(self.file_path)
        self.se.mem_write(info + 8, self.se.mem_read(us, 16))
        self.w64(info_ptr, info)
        return 0

    def _destination_name(self, inst, fo, root, name, length, options, info_ptr):
        target = self.se.mem_read(name, length).decode("utf-16-le")
        info = self.alloc(24 + 16)
        self.se.mem_write(info + 8, self.se.mem_read(self.unicode_string(target), 16))
        self.w64(info_ptr, info)
        return 0

    def _queue_work_item(self, item, flt, routine, queue, ctx):
        self.work_items.append((routine, item, flt, ctx))
        return 0

    def _wait(self, obj, reason, mode, alertable, timeout_ptr):
        if obj in self.mutexes:
            return 0
        if obj not in self.events:
            raise BugCheck(f"KeWaitForSingleObject on an unknown object {obj:#x}")
        if self.events[obj]:
            return 0
        timeout_ms = (-struct.unpack("<q", self.se.mem_read(timeout_ptr, 8))[0]) // 10_000 if timeout_ptr else None
        return self.hold_wait(obj, timeout_ms)

    # ---- the service bridge ----
    def listen(self, path):
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(path)
        self.listener.listen(2)

    def accept(self, service_pid, timeout=30):
        """Waits for the service to connect and runs the port's connect callback in its context."""
        r, _, _ = select.select([self.listener], [], [], timeout)
        if not r:
            raise SystemExit("kernel-emu: the service did not connect")
        self.conn, _ = self.listener.accept()
        self.reader = wire.FrameReader(self.conn)
        self.pid, self.tid = service_pid, service_pid + 1
        cookie = self.alloc(8)
        status = self.call(self.port["connect"], [0xC11E47, 0, 0, 0, cookie]) & 0xFFFFFFFF
        if status != STATUS_SUCCESS:
            raise SystemExit(f"kernel-emu: connect callback refused the service: {status:#x}")
        self.connected_pid = service_pid

    def disconnect(self):
        self.call(self.port["disconnect"], [0])
        if self.conn:
            self.conn.close()
        self.conn = None
        self.connected_pid = None

    def pump(self, timeout=0.0):
        """Reads frames the service sent; USER_SEND bodies are queued for delivery."""
        while self.conn:
            r, _, _ = select.select([self.conn], [], [], timeout)
            if not r:
                return
            frame = self.reader.read()
            if frame is None:
                self.disconnect()
                return
            kind, body = frame
            if kind == wire.USER_SEND:
                self.inbox.append(body)
            else:
                self.late_replies = getattr(self, "late_replies", 0) + 1
            timeout = 0.0

    def deliver(self):
        """Runs the port's message callback for every queued USER_SEND (in the service's context)."""
        while self.inbox:
            body = self.inbox.pop(0)
            saved = (self.pid, self.tid)
            self.pid, self.tid = self.connected_pid or self.pid, (self.connected_pid or self.pid) + 1
            inp, out, ret = self.user_alloc(len(body)), self.user_alloc(4096), self.user_alloc(8)
            self.se.mem_write(inp, body)
            status = self.call(self.port["message"], [0, inp, len(body), out, 4096, ret]) & 0xFFFFFFFF
            n = self.r32(ret) if status == 0 else 0
            self.pid, self.tid = saved
            if self.conn:
                wire.write_frame(self.conn, wire.SEND_RESULT, struct.pack("<i", status if status < 0x80000000 else status - (1 << 32)) + self.se.mem_read(out, n))

    def _send_message(self, flt, client_port_ptr, send, send_len, reply, reply_len_ptr, timeout_ptr):
        if self.r64(client_port_ptr) == 0 or not self.conn:
            return STATUS_PORT_DISCONNECTED
        message = self.se.mem_read(send, send_len)
        reply_cap = self.r32(reply_len_ptr) if reply and reply_len_ptr else 0
        self.msg_id += 1
        header = struct.pack("<IIQ", reply_cap, 0, self.msg_id)
        self.sent.append((reply_cap, message))
        try:
            wire.write_frame(self.conn, wire.KERNEL_MESSAGE, header + message)
        except OSError:
            return STATUS_PORT_DISCONNECTED
        if reply_cap == 0:
            return STATUS_SUCCESS
        timeout_ms = (-struct.unpack("<q", self.se.mem_read(timeout_ptr, 8))[0]) // 10_000
        answer = self._await_reply(self.msg_id, timeout_ms)
        if answer is None:
            self.clock_ms += timeout_ms
            return STATUS_TIMEOUT if self.conn else STATUS_PORT_DISCONNECTED
        status, body = answer
        n = min(len(body), reply_cap)
        self.se.mem_write(reply, body[:n])
        self.w32(reply_len_ptr, n)
        return STATUS_SUCCESS

    def _await_reply(self, msg_id, timeout_ms):
        """Real time: the service runs natively and answers over the socket."""
        import time
        deadline = time.monotonic() + timeout_ms / 1000
        while self.conn:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            r, _, _ = select.select([self.conn], [], [], left)
            if not r:
                return None
            frame = self.reader.read()
            if frame is None:
                self.disconnect_pending = True
                self.conn.close()
                self.conn = None
                return None
            kind, body = frame
            if kind == wire.USER_REPLY:
                status, _pad, mid = struct.unpack_from("<iIQ", body)
                if mid == msg_id:
                    return status, body[16:]
            elif kind == wire.USER_SEND:
                self.inbox.append(body)
        return None

    def hold_wait(self, event, timeout_ms):
        """A held thread waits: the service runs (real time, up to the timeout, at most 20 s) and any
        message it sends is delivered by running the message callback before the wait returns —
        the emulation's stand-in for another thread. The emulated clock advances by the wait."""
        import time
        limit = time.monotonic() + min(timeout_ms or 0, 20_000) / 1000
        while not self.inbox and time.monotonic() < limit and self.conn:
            self.pump(max(0.0, min(0.05, limit - time.monotonic())))
        if self.inbox:
            self.pending_delivery = list(self.inbox)
            self.inbox.clear()
            return self._deliver_in_wait(event)
        self.clock_ms += timeout_ms or 0
        return STATUS_TIMEOUT

    def _deliver_in_wait(self, event):
        """Delivers queued messages from inside the wait: the wait "returns" into a trampoline that
        calls the message callback for each, then returns from KeWaitForSingleObject."""
        body = self.pending_delivery.pop(0)
        self.inbox.extend(self.pending_delivery)
        inp, out, ret = self.user_alloc(len(body)), self.user_alloc(4096), self.user_alloc(8)
        self.se.mem_write(inp, body)
        rsp = self.se.reg_read("rsp")
        orig_ret = self.r64(rsp)
        code = b"".join([
            b"\x48\x83\xec\x40",                                   # sub rsp, 0x40
            b"\x48\xb9" + struct.pack("<Q", 0),                    # mov rcx, cookie
            b"\x48\xba" + struct.pack("<Q", inp),                  # mov rdx, input
            b"\x49\xb8" + struct.pack("<Q", len(body)),            # mov r8, len
            b"\x49\xb9" + struct.pack("<Q", out),                  # mov r9, output
            b"\x48\xb8" + struct.pack("<Q", 4096),                 # mov rax, 4096
            b"\x48\x89\x44\x24\x20",                               # mov [rsp+0x20], rax
            b"\x48\xb8" + struct.pack("<Q", ret),                  # mov rax, returned
            b"\x48\x89\x44\x24\x28",                               # mov [rsp+0x28], rax
            b"\x48\xb8" + struct.pack("<Q", self.port["message"]),  # mov rax, on_message
            b"\xff\xd0",                                           # call rax
        ])
        after = len(code)
        code += b"".join([
            b"\x48\x83\xc4\x40",                                   # add rsp, 0x40
            b"\x49\xbb" + struct.pack("<Q", orig_ret),             # mov r11, original return
            b"\x31\xc0",                                           # xor eax, eax
            b"\x41\xff\xe3",                                       # jmp r11
        ])
        tramp = self.alloc(len(code), code)
        saved = (self.pid, self.tid)

        def finished(emu, addr, size, ctx):
            n = self.r32(ret)
            status = self.se.reg_read("rax") & 0xFFFFFFFF
            if self.conn:
                wire.write_frame(self.conn, wire.SEND_RESULT, struct.pack("<I", status) + self.se.mem_read(out, n if status == 0 else 0))
            self.pid, self.tid = saved
        self.se.add_code_hook(finished, begin=tramp + after, end=tramp + after)
        self.pid, self.tid = self.connected_pid, self.connected_pid + 1
        # Return from KeWaitForSingleObject into the trampoline (speakeasy leaves a moved pc alone).
        self.se.reg_write("rsp", rsp + 8)
        self.se.set_pc(tramp)
        return 0

    def run_work_items(self):
        while self.work_items:
            routine, item, flt, ctx = self.work_items.pop(0)
            self.call(routine, [item, flt, ctx])

    # ---- driving ----
    def driver_entry(self):
        self.se.run_module(self.module)
        return self.se.reg_read("rax") & 0xFFFFFFFF
