"""The simulated Android device's file system, sandboxed in a host directory (`DeviceFileSystem`).

Every device path is normalised before it is mapped, so ``..`` never leaves the sandbox, and a link inside the
sandbox that points out of it is refused. The shell user may write below /data/local/tmp and /sdcard only
(`WRITABLE_DIRS`); elsewhere a write gets "Read-only file system", or "Permission denied" under /data.

What it does NOT model: Android permissions beyond those two writable directories, file ownership, symbolic
links made on the device, mounts.
"""
from __future__ import annotations

import errno
import os
import posixpath
from pathlib import Path

__all__ = ["WRITABLE_DIRS", "DeviceFileSystem", "os_error"]


#: Where the shell user (and adb push) may write, as on a production phone.
WRITABLE_DIRS: tuple[str, ...] = ("/data/local/tmp", "/sdcard")
_SKELETON_DIRS = ("/data/local/tmp", "/data/app", "/sdcard", "/system/bin", "/vendor")


def os_error(code: int, path: str) -> OSError:
    return OSError(code, os.strerror(code), path)


class DeviceFileSystem:
    """Device paths mapped into a host directory. Paths are normalised first (``..`` stops at ``/``), and the
    mapped host path is checked to be inside the root after resolving links, so no device path leaves it."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root).resolve()

    def create_skeleton(self) -> None:
        for directory in _SKELETON_DIRS:
            self.host_path(directory).mkdir(parents=True, exist_ok=True)

    @staticmethod
    def normalize(path: str, cwd: str = "/") -> str:
        """The absolute device path `path` names from `cwd`.

        >>> DeviceFileSystem.normalize("../../../../etc/passwd", "/data/local/tmp")
        '/etc/passwd'
        >>> DeviceFileSystem.normalize("//sdcard/./x/")
        '/sdcard/x'
        """
        joined = posixpath.join(cwd or "/", path)
        return "/" + posixpath.normpath(joined).lstrip("/")

    def host_path(self, path: str, cwd: str = "/") -> Path:
        device_path = self.normalize(path, cwd)
        if "\0" in device_path:
            raise os_error(errno.EINVAL, path.replace("\0", "\\0"))
        host = self.root.joinpath(*[part for part in device_path.split("/") if part])
        resolved = os.path.realpath(host)
        if resolved != str(self.root) and not resolved.startswith(str(self.root) + os.sep):
            raise os_error(errno.EACCES, path)  # a link inside the sandbox pointing out of it
        return host

    def check_writable(self, path: str, cwd: str = "/") -> None:
        """Raise the OSError a phone's shell user gets when writing `path` outside /data/local/tmp and /sdcard."""
        device_path = self.normalize(path, cwd)
        if any(device_path.startswith(directory + "/") for directory in WRITABLE_DIRS):
            return
        top = device_path.split("/")[1]
        raise os_error(errno.EACCES if top == "data" else errno.EROFS, path)
