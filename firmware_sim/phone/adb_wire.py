"""The ADB wire format of the simulated Android device: message headers, their codec, and the device's errors.

A message is a 24-byte little-endian header (command, arg0, arg1, data length, data checksum, magic = command ^
0xffffffff) and its payload (AOSP ``packages/modules/adb/protocol.txt``). Version 0x01000001 is spoken, with a
negotiated maximum payload (256 KiB offered by default, the server's 1 MiB being the ceiling). The banner
advertises only ``fixed_push_mkdir`` (`DEVICE_FEATURES`), so the adb server uses the legacy shell (no
``shell_v2``), sync v1 and no delayed acks: everything `firmware_sim.phone.transport` implements.

`AdbdError`, the root of the simulated device's errors, lives here because the wire is the lowest section that
raises one (`AdbProtocolError`).

What it does NOT model: AUTH (RSA keys), STLS (TLS pairing), compression, delayed acks: their commands are
named, never answered.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

from harness.core.worker import WorkerError

__all__ = [
    "A_AUTH",
    "A_CLSE",
    "A_CNXN",
    "A_OKAY",
    "A_OPEN",
    "A_STLS",
    "A_SYNC",
    "A_VERSION",
    "A_VERSION_MIN",
    "A_VERSION_SKIP_CHECKSUM",
    "A_WRTE",
    "COMMAND_NAMES",
    "DEFAULT_MAX_PAYLOAD",
    "DEVICE_FEATURES",
    "HEADER_SIZE",
    "MAX_PAYLOAD",
    "MAX_PAYLOAD_V1",
    "AdbMessage",
    "AdbProtocolError",
    "AdbdError",
    "decode_header",
    "decode_message",
    "encode_message",
    "payload_checksum",
]


class AdbdError(WorkerError):
    """The simulated device was misused (used after stop, unknown package), failed, or did not stop in time."""


class AdbProtocolError(AdbdError):
    """A message on the wire broke the ADB protocol (bad magic, checksum, oversized payload)."""


A_SYNC = 0x434E5953
A_CNXN = 0x4E584E43
A_AUTH = 0x48545541
A_OPEN = 0x4E45504F
A_OKAY = 0x59414B4F
A_CLSE = 0x45534C43
A_WRTE = 0x45545257
A_STLS = 0x534C5453
COMMAND_NAMES = {A_SYNC: "SYNC", A_CNXN: "CNXN", A_AUTH: "AUTH", A_OPEN: "OPEN", A_OKAY: "OKAY",
                 A_CLSE: "CLSE", A_WRTE: "WRTE", A_STLS: "STLS"}

A_VERSION_MIN = 0x01000000
#: From this version on (Android 9 / adb 1.0.40) neither side computes nor checks data checksums.
A_VERSION_SKIP_CHECKSUM = 0x01000001
A_VERSION = 0x01000001
MAX_PAYLOAD_V1 = 4 * 1024
#: The adb server offers 1 MiB; adbd offers 256 KiB (1 MiB on newer releases). The smaller one is used.
MAX_PAYLOAD = 1024 * 1024
DEFAULT_MAX_PAYLOAD = 256 * 1024
_HEADER = struct.Struct("<6I")
HEADER_SIZE = _HEADER.size

#: Banner features. Only what is implemented: no shell_v2, stat_v2, ls_v2, sendrecv_v2, cmd, abb or
#: delayed_ack, so the server and adb client fall back to the legacy protocols this device speaks.
#: fixed_push_mkdir: SEND creates missing parent directories (the adb client would mkdir them otherwise).
DEVICE_FEATURES: tuple[str, ...] = ("fixed_push_mkdir",)


@dataclass(frozen=True)
class AdbMessage:
    """One transport message: a command with two arguments and a payload."""

    command: int
    arg0: int
    arg1: int
    payload: bytes = b""

    @property
    def name(self) -> str:
        return COMMAND_NAMES.get(self.command, f"{self.command:#010x}")


def payload_checksum(payload: bytes) -> int:
    """The protocol's "crc32", which is in fact the byte sum of the payload modulo 2**32.

    >>> payload_checksum(b"host::\\x00")
    562
    """
    return sum(payload) & 0xFFFFFFFF


def encode_message(message: AdbMessage) -> bytes:
    """Header and payload as sent on the wire (the checksum is always filled in: correct is never wrong)."""
    return _HEADER.pack(message.command, message.arg0, message.arg1, len(message.payload),
                        payload_checksum(message.payload), message.command ^ 0xFFFFFFFF) + message.payload


def decode_header(header: bytes) -> tuple[int, int, int, int, int]:
    command, arg0, arg1, length, check, magic = _HEADER.unpack(header)
    if magic != command ^ 0xFFFFFFFF:
        raise AdbProtocolError(f"bad magic {magic:#010x} for command {command:#010x} "
                               f"(expected {command ^ 0xFFFFFFFF:#010x})")
    return command, arg0, arg1, length, check


def decode_message(data: bytes, *, verify_checksum: bool = True) -> AdbMessage:
    """Read one whole message (header and payload); `AdbProtocolError` if it is malformed.

    >>> decode_message(encode_message(AdbMessage(A_OKAY, 1, 2)))
    AdbMessage(command=1497451343, arg0=1, arg1=2, payload=b'')
    """
    if len(data) < HEADER_SIZE:
        raise AdbProtocolError(f"message of {len(data)} bytes is shorter than the {HEADER_SIZE}-byte header")
    command, arg0, arg1, length, check = decode_header(data[:HEADER_SIZE])
    payload = bytes(data[HEADER_SIZE:])
    if len(payload) != length:
        raise AdbProtocolError(f"header says {length} payload bytes, got {len(payload)}")
    if verify_checksum and payload_checksum(payload) != check:
        raise AdbProtocolError(f"payload checksum {payload_checksum(payload):#x} != header's {check:#x}")
    return AdbMessage(command, arg0, arg1, payload)
