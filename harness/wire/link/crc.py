"""The link's CRCs, and the catalogue that names the CRC a misbehaving firmware really computes.

raw-can-v1 carries CRC-16/MODBUS (sent high byte first), dtg-link-v2 CRC-32/ISO-HDLC (the zlib one). The other
variants in `CRC_VARIANTS` are used by no codec: the conformance checks use them to *name* what a broken firmware
sends (`identify_crc`, `describe_crc_mismatch`). Pure functions; no I/O.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass, field

__all__ = [
    "CRC_VARIANTS",
    "CrcVariant",
    "crc16_ccitt_false",
    "crc16_modbus",
    "crc32_iso_hdlc",
    "describe_crc_mismatch",
    "identify_crc",
]


@dataclass(frozen=True)
class CrcVariant:
    """One CRC algorithm in the Rocksoft/reveng parameter model (poly in normal, non-reflected form).

    >>> CRC_VARIANTS["crc16-modbus"].compute(b"123456789") == 0x4B37
    True
    """

    name: str
    title: str  # the reveng catalogue name, e.g. "CRC-16/MODBUS"
    width: int
    poly: int
    init: int
    reflected: bool  # refin = refout in every variant listed here
    xorout: int
    check: int  # the CRC of b"123456789", from the reveng catalogue
    _table: tuple[int, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_table", _crc_table(self.width, self.poly, self.reflected))

    def compute(self, data: bytes | bytearray | memoryview) -> int:
        """The CRC of `data`."""
        table, crc = self._table, self.init
        if self.reflected:
            for byte in data:
                crc = (crc >> 8) ^ table[(crc ^ byte) & 0xFF]
        else:
            shift, mask = self.width - 8, (1 << self.width) - 1
            for byte in data:
                crc = ((crc << 8) & mask) ^ table[((crc >> shift) ^ byte) & 0xFF]
        return crc ^ self.xorout


def _reflect(value: int, bits: int) -> int:
    return int(format(value, f"0{bits}b")[::-1], 2)


def _crc_table(width: int, poly: int, reflected: bool) -> tuple[int, ...]:
    table = []
    if reflected:
        rpoly = _reflect(poly, width)  # 0x8005 -> 0xA001, the form the MODBUS spec and the firmware quote
        for byte in range(256):
            crc = byte
            for _ in range(8):
                crc = (crc >> 1) ^ rpoly if crc & 1 else crc >> 1
            table.append(crc)
    else:
        top, mask = 1 << (width - 1), (1 << width) - 1
        for byte in range(256):
            crc = byte << (width - 8)
            for _ in range(8):
                crc = ((crc << 1) ^ poly) & mask if crc & top else (crc << 1) & mask
            table.append(crc)
    return tuple(table)


#: CRC variants a firmware might plausibly use. The conformance checks use the registry to *name* what a
#: broken firmware computes; the codecs use only crc16-modbus (raw-can-v1) and crc32-iso-hdlc (dtg-link-v2).
CRC_VARIANTS: dict[str, CrcVariant] = {
    v.name: v
    for v in (
        CrcVariant("crc16-modbus", "CRC-16/MODBUS", 16, 0x8005, 0xFFFF, True, 0x0000, 0x4B37),
        CrcVariant("crc16-arc", "CRC-16/ARC", 16, 0x8005, 0x0000, True, 0x0000, 0xBB3D),
        CrcVariant("crc16-ccitt-false", "CRC-16/CCITT-FALSE", 16, 0x1021, 0xFFFF, False, 0x0000, 0x29B1),
        CrcVariant("crc16-xmodem", "CRC-16/XMODEM", 16, 0x1021, 0x0000, False, 0x0000, 0x31C3),
        CrcVariant("crc16-kermit", "CRC-16/KERMIT", 16, 0x1021, 0x0000, True, 0x0000, 0x2189),
        CrcVariant("crc32-iso-hdlc", "CRC-32/ISO-HDLC", 32, 0x04C11DB7, 0xFFFFFFFF, True, 0xFFFFFFFF, 0xCBF43926),
        # the STM32 CRC peripheral's reset configuration: a firmware feeding it bytes unconfigured gets this one
        CrcVariant("crc32-mpeg2", "CRC-32/MPEG-2", 32, 0x04C11DB7, 0xFFFFFFFF, False, 0x00000000, 0x0376E6E7),
    )
}

_MODBUS = CRC_VARIANTS["crc16-modbus"]
_CCITT_FALSE = CRC_VARIANTS["crc16-ccitt-false"]


def crc16_modbus(data: bytes | bytearray | memoryview) -> int:
    """CRC-16/MODBUS: reflected poly 0xA001 (0x8005 normal), init 0xFFFF, no final xor. raw-can-v1's CRC.

    >>> hex(crc16_modbus(b"123456789"))
    '0x4b37'
    """
    return _MODBUS.compute(data)


def crc16_ccitt_false(data: bytes | bytearray | memoryview) -> int:
    """CRC-16/CCITT-FALSE: poly 0x1021, init 0xFFFF, not reflected, no final xor. Used by no codec here:
    it exists so a conformance check can say "this firmware sends CCITT-FALSE, not MODBUS".

    >>> hex(crc16_ccitt_false(b"123456789"))
    '0x29b1'
    """
    return _CCITT_FALSE.compute(data)


def crc32_iso_hdlc(data: bytes | bytearray | memoryview) -> int:
    """CRC-32/ISO-HDLC (zlib, java.util.zip.CRC32, Ethernet): dtg-link-v2's CRC.

    >>> hex(crc32_iso_hdlc(b"123456789"))
    '0xcbf43926'
    """
    return zlib.crc32(data)  # C speed; the registry's table version is checked against it in the tests


def _matching_variants(
    data: bytes | bytearray | memoryview, carried: int, width: int
) -> list[tuple[CrcVariant, bool]]:
    """(variant, byte_swapped) for every registered variant of `width` bits that yields `carried`."""
    n_bytes = width // 8
    swapped = int.from_bytes(carried.to_bytes(n_bytes, "big"), "little")
    matches = []
    for variant in CRC_VARIANTS.values():
        if variant.width == width:
            value = variant.compute(data)
            if value == carried:
                matches.append((variant, False))
            elif value == swapped:
                matches.append((variant, True))
    return matches


def identify_crc(data: bytes | bytearray | memoryview, carried: int, width: int = 16) -> list[str]:
    """Which registered variants of `width` bits, in which byte order, turn `data` into `carried`.

    Returns names like ``"crc16-modbus"`` or ``"crc16-modbus (byte-swapped)"``; empty if none matches.

    >>> identify_crc(b"123456789", 0x29B1)
    ['crc16-ccitt-false']
    >>> identify_crc(b"123456789", 0x374B)
    ['crc16-modbus (byte-swapped)']
    """
    matches = _matching_variants(data, carried, width)
    return [variant.name + (" (byte-swapped)" if swapped else "") for variant, swapped in matches]


def describe_crc_mismatch(data: bytes | bytearray | memoryview, carried: int, expected_variant: str) -> str:
    """A one-line diagnosis: what the frame carries, what it should carry, and which variant it matches."""
    variant = CRC_VARIANTS[expected_variant]
    digits = variant.width // 4
    text = (
        f"CRC mismatch: frame carries 0x{carried:0{digits}X}, "
        f"{variant.title} is 0x{variant.compute(data):0{digits}X}"
    )
    matches = _matching_variants(data, carried, variant.width)
    if matches:
        text += "; the carried value is " + " or ".join(
            m.title + (" sent byte-swapped" if swapped else "") for m, swapped in matches
        )
    else:
        text += "; no registered CRC variant gives the carried value (corruption?)"
    return text

