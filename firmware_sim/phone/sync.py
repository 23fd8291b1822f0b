"""The ``sync:`` service of the simulated Android device: file sync protocol v1 (AOSP ``SYNC.TXT``).

STAT, LIST, SEND (DATA … DONE, with the file mode and mtime; missing parent directories are created, as
``fixed_push_mkdir`` promises), RECV and QUIT, one request after another on one stream, against the device's
sandboxed file system (`firmware_sim.phone.filesystem`).

What it does NOT model: sync v2 (``stat_v2``, ``ls_v2``, ``sendrecv_v2``: not advertised), compression,
symbolic links (a pushed symlink is refused), file ownership.
"""
from __future__ import annotations

import os
import stat
import struct

from firmware_sim.phone.filesystem import DeviceFileSystem
from firmware_sim.phone.transport import Stream, StreamClosed

__all__ = ["SYNC_DATA_MAX", "SyncService"]


SYNC_DATA_MAX = 64 * 1024
_SYNC_PATH_MAX = 1024


class SyncService:
    """The file sync protocol v1 (SYNC.TXT): one request after another until QUIT or the stream closes."""

    def __init__(self, fs: DeviceFileSystem, stream: Stream) -> None:
        self._fs = fs
        self._stream = stream

    def _fail(self, message: str) -> None:
        data = message.encode()
        self._stream.write(b"FAIL" + struct.pack("<I", len(data)) + data)

    def run(self) -> None:
        while True:
            try:
                request = self._stream.read_exact(8)
            except StreamClosed:
                return
            ident, length = request[:4], struct.unpack("<I", request[4:])[0]
            if length > _SYNC_PATH_MAX:
                self._fail(f"path too long: {length}")
                return
            path = self._stream.read_exact(length).decode("utf-8", "replace")
            if ident == b"STAT":
                self._stat(path)
            elif ident == b"LIST":
                self._list(path)
            elif ident == b"SEND":
                self._send(path)
            elif ident == b"RECV":
                self._recv(path)
            elif ident == b"QUIT":
                return
            else:
                self._fail(f"unknown sync command {ident!r} (this device speaks sync v1: "
                           f"STAT, LIST, SEND, RECV, QUIT)")
                return

    def _stat(self, path: str) -> None:
        try:
            st = os.lstat(self._fs.host_path(path))
            reply = (st.st_mode, st.st_size & 0xFFFFFFFF, int(st.st_mtime))
        except OSError:
            reply = (0, 0, 0)  # v1 has no error code: all zero means "does not exist"
        self._stream.write(b"STAT" + struct.pack("<3I", *reply))

    def _list(self, path: str) -> None:
        out = bytearray()
        try:
            directory = self._fs.host_path(path)
            names = [".", ".."] + sorted(os.listdir(directory))
        except OSError:
            names, directory = [], None
        for name in names:
            try:
                st = os.lstat(directory / name)
            except OSError:
                continue
            encoded = name.encode()
            out += b"DENT" + struct.pack("<4I", st.st_mode, st.st_size & 0xFFFFFFFF, int(st.st_mtime),
                                         len(encoded)) + encoded
            if len(out) >= SYNC_DATA_MAX:
                self._stream.write(bytes(out))
                out.clear()
        out += b"DONE" + bytes(16)
        self._stream.write(bytes(out))

    def _send(self, spec: str) -> None:
        path, _, mode_text = spec.rpartition(",")
        if not path:
            path, mode_text = spec, "33188"  # 0o100644
        try:
            mode = int(mode_text)
        except ValueError:
            mode = 0o100644
        error = None
        host = None
        handle = None
        try:
            if stat.S_ISLNK(mode):
                error = "symlinks are not supported by the simulated device"
            elif not stat.S_ISREG(mode) and stat.S_IFMT(mode):
                error = f"cannot push file of mode {mode:o}"
            else:
                self._fs.check_writable(path)
                host = self._fs.host_path(path)
                host.parent.mkdir(parents=True, exist_ok=True)
                handle = open(host, "wb")
        except OSError as exc:
            error = f"couldn't create file: {exc.strerror}"
        mtime = None
        try:
            while True:
                header = self._stream.read_exact(8)
                ident, size = header[:4], struct.unpack("<I", header[4:])[0]
                if ident == b"DONE":
                    mtime = size
                    break
                if ident != b"DATA":
                    error = error or f"unexpected {ident!r} in SEND (expected DATA or DONE)"
                    break
                if size > SYNC_DATA_MAX:
                    error = error or f"DATA of {size} bytes exceeds {SYNC_DATA_MAX}"
                    break
                data = self._stream.read_exact(size)
                if handle is not None:
                    handle.write(data)
        finally:
            if handle is not None:
                handle.close()
                if mtime is None or error:
                    host.unlink(missing_ok=True)
        if error:
            self._fail(error)
            return
        os.chmod(host, (mode & 0o777) | 0o600)  # the sandbox stays readable to the device itself
        os.utime(host, (mtime, mtime))
        self._stream.write(b"OKAY" + bytes(4))

    def _recv(self, path: str) -> None:
        try:
            with open(self._fs.host_path(path), "rb") as handle:
                while True:
                    chunk = handle.read(SYNC_DATA_MAX)
                    if not chunk:
                        break
                    self._stream.write(b"DATA" + struct.pack("<I", len(chunk)) + chunk)
        except OSError as exc:
            self._fail(exc.strerror or str(exc))
            return
        self._stream.write(b"DONE" + bytes(4))
