"""The simulated Android device's ADB transport: one `Connection` per adb server socket, `Stream` s on it.

A connection does the CNXN handshake without AUTH (a device with ``ro.adb.secure=0``), negotiates the version
and the maximum payload, and carries many OPEN/OKAY/WRTE/CLSE streams, each with one WRTE in flight until the
peer's OKAY. Each opened stream is served on a thread of its own by the handler the device gives for its
service (``shell:``, ``exec:``, ``sync:``, ``reboot:``; `firmware_sim.phone.device`); a service it has no
handler for is refused with CLSE.

What it does NOT model: AUTH, STLS, USB, delayed acks, compression; messages before CNXN are ignored.
"""
from __future__ import annotations

import itertools
import logging
import socket
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from firmware_sim.phone.adb_wire import (
    A_AUTH,
    A_CLSE,
    A_CNXN,
    A_OKAY,
    A_OPEN,
    A_STLS,
    A_SYNC,
    A_VERSION,
    A_VERSION_MIN,
    A_VERSION_SKIP_CHECKSUM,
    A_WRTE,
    COMMAND_NAMES,
    HEADER_SIZE,
    MAX_PAYLOAD,
    MAX_PAYLOAD_V1,
    AdbMessage,
    AdbProtocolError,
    decode_header,
    encode_message,
    payload_checksum,
)
from harness.core.errors import DtgHilError

if TYPE_CHECKING:
    from firmware_sim.phone.device import SimAndroidDevice

__all__ = ["Connection", "Stream", "StreamClosed"]

_log = logging.getLogger(__name__)


class StreamClosed(DtgHilError):
    """The stream was closed by the other side (or its connection dropped)."""


class Stream:
    """One OPEN-ed stream: bytes in (from WRTE), bytes out (as WRTE, one in flight until the peer's OKAY)."""

    def __init__(self, connection: Connection, local_id: int, remote_id: int, service: str) -> None:
        self.connection = connection
        self.local_id = local_id
        self.remote_id = remote_id
        self.service = service
        self._cond = threading.Condition()
        self._inbox = bytearray()
        self._can_send = True
        self._closed = False
        self._sent_close = False

    @property
    def closed(self) -> bool:
        return self._closed

    def feed(self, data: bytes) -> None:
        with self._cond:
            self._inbox += data
            self._cond.notify_all()

    def on_okay(self) -> None:
        with self._cond:
            self._can_send = True
            self._cond.notify_all()

    def on_remote_close(self) -> None:
        with self._cond:
            self._closed = True
            self._sent_close = True  # nothing to answer
            self._cond.notify_all()

    def read_exact(self, n_bytes: int) -> bytes:
        with self._cond:
            while len(self._inbox) < n_bytes and not self._closed:
                self._cond.wait()
            if len(self._inbox) < n_bytes:
                raise StreamClosed(self.service)
            data = bytes(self._inbox[:n_bytes])
            del self._inbox[:n_bytes]
            return data

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        chunk_size = self.connection.max_payload
        for start in range(0, len(view), chunk_size):
            with self._cond:
                while not self._can_send and not self._closed:
                    self._cond.wait()
                if self._closed:
                    raise StreamClosed(self.service)
                self._can_send = False
            if not self.connection.send(A_WRTE, self.local_id, self.remote_id, bytes(view[start:start + chunk_size])):
                self.on_remote_close()
                raise StreamClosed(self.service)

    def wait_closed(self, timeout_s: float | None) -> bool:
        with self._cond:
            if not self._closed:
                self._cond.wait(timeout_s)
            return self._closed

    def close(self) -> None:
        """Close from the device's side: CLSE to the peer, unless the peer closed first."""
        with self._cond:
            self._closed = True
            send_close, self._sent_close = not self._sent_close, True
            self._cond.notify_all()
        if send_close:
            self.connection.send(A_CLSE, self.local_id, self.remote_id)
        self.connection.forget(self)


class Connection:
    """One TCP connection from the adb server: the handshake, the streams on it, and its reader thread."""

    def __init__(self, device: SimAndroidDevice, sock: socket.socket, number: int) -> None:
        self._device = device
        self._sock = sock
        self.number = number
        self.version = A_VERSION_MIN
        self.max_payload = MAX_PAYLOAD_V1
        self.online = False
        self._send_lock = threading.Lock()
        self._streams: dict[int, Stream] = {}
        self._streams_lock = threading.Lock()
        self._local_ids = itertools.count(1)
        self._closed = False
        self.thread = threading.Thread(target=self._read_loop, name=f"sim-adbd-conn-{number}", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def send(self, command: int, arg0: int, arg1: int, payload: bytes = b"") -> bool:
        """Send one message; False if the connection is gone."""
        data = encode_message(AdbMessage(command, arg0, arg1, payload))
        with self._send_lock:
            if self._closed:
                return False
            try:
                self._sock.sendall(data)
                return True
            except OSError:
                pass
        self.close()
        return False

    def forget(self, stream: Stream) -> None:
        with self._streams_lock:
            if self._streams.get(stream.local_id) is stream:
                del self._streams[stream.local_id]

    def close(self) -> None:
        with self._send_lock:
            if self._closed:
                return
            self._closed = True
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._sock.close()
        with self._streams_lock:
            streams, self._streams = list(self._streams.values()), {}
        for stream in streams:
            stream.on_remote_close()
        self._device._connection_closed(self)

    def _recv_exact(self, n_bytes: int) -> bytes | None:
        buffer = bytearray(n_bytes)
        view = memoryview(buffer)
        got = 0
        while got < n_bytes:
            count = self._sock.recv_into(view[got:], n_bytes - got)
            if count == 0:
                return None
            got += count
        return bytes(buffer)

    def _read_loop(self) -> None:
        try:
            while True:
                header = self._recv_exact(HEADER_SIZE)
                if header is None:
                    return
                command, arg0, arg1, length, check = decode_header(header)
                if length > MAX_PAYLOAD:
                    raise AdbProtocolError(f"{COMMAND_NAMES.get(command, hex(command))} payload of {length} "
                                           f"bytes exceeds {MAX_PAYLOAD}")
                payload = self._recv_exact(length) if length else b""
                if payload is None:
                    return
                if self.version < A_VERSION_SKIP_CHECKSUM and check and payload_checksum(payload) != check:
                    raise AdbProtocolError(f"payload checksum mismatch on {COMMAND_NAMES.get(command)}")
                self._dispatch(AdbMessage(command, arg0, arg1, payload))
        except AdbProtocolError as error:
            _log.warning("connection %d: %s; closing it", self.number, error)
        except OSError:
            pass  # the socket was closed under us: stop() or drop_connections()
        finally:
            self.close()

    def _dispatch(self, message: AdbMessage) -> None:
        command = message.command
        if command == A_CNXN:
            self.version = min(A_VERSION, message.arg0)
            self.max_payload = max(MAX_PAYLOAD_V1, min(self._device.max_payload, message.arg1))
            self.send(A_CNXN, A_VERSION, self._device.max_payload, self._device.banner().encode())
            self.online = True
        elif not self.online:
            return  # nothing but CNXN counts before the handshake (AUTH, STLS are not offered)
        elif command == A_OPEN:
            self._open(message.arg0, message.payload.rstrip(b"\0").decode("utf-8", "replace"))
        elif command == A_OKAY:
            stream = self._streams.get(message.arg1)
            if stream is not None:
                stream.on_okay()
        elif command == A_WRTE:
            stream = self._streams.get(message.arg1)
            if stream is not None:
                stream.feed(message.payload)
                self.send(A_OKAY, stream.local_id, stream.remote_id)
        elif command == A_CLSE:
            with self._streams_lock:
                stream = self._streams.pop(message.arg1, None)
            if stream is not None:
                stream.on_remote_close()
        elif command in (A_AUTH, A_STLS, A_SYNC):
            pass
        else:
            raise AdbProtocolError(f"unknown command {command:#010x}")

    def _open(self, remote_id: int, service: str) -> None:
        handler = self._device._service_handler(service)
        if handler is None:
            self.send(A_CLSE, 0, remote_id)
            return
        stream = Stream(self, next(self._local_ids), remote_id, service)
        with self._streams_lock:
            self._streams[stream.local_id] = stream
        self.send(A_OKAY, stream.local_id, remote_id)
        self._device._start_thread(f"sim-adbd-{service.split(':')[0]}-{self.number}.{stream.local_id}",
                                   self._serve, stream, handler)

    @staticmethod
    def _serve(stream: Stream, handler: Callable[[Stream], None]) -> None:
        try:
            handler(stream)
        except StreamClosed:
            pass
        except Exception:  # noqa: BLE001 - one broken service must not take the device down; say so loudly
            _log.exception("service %r failed", stream.service)
        finally:
            stream.close()
