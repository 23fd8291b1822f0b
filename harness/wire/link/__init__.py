"""UART link codecs between the STM32 and the Android app: the contract for the bytes on the UART (921600 8N1,
STM32 → Android).

Two codecs behind one interface (`get_codec(name)`), one module each over shared definitions, as python-can's
``can/io`` holds one module per log format over its base classes:

- `harness.wire.link.base` — codec names, errors, `Received`, `DecoderStats`, `LinkCapabilities`, the
  `LinkCodec`/`LinkDecoder` Protocols, `LinkEncoder`, and the resynchronising `StreamDecoder`;
- `harness.wire.link.records` — what the link carries: `CanFrame`, `SampleRecord`, `StatusRecord`;
- `harness.wire.link.crc` — CRC-16/MODBUS, CRC-32/ISO-HDLC and a catalogue of variants that names what a
  broken firmware sends;
- `harness.wire.link.raw_can_v1` — the reference firmware's 15-byte frame, byte-exact (11-bit IDs, no sequence
  number, no timestamp);
- `harness.wire.link.dtg_link_v2` — this project's frame (29-bit IDs, sequence numbers, timestamps, samples,
  status) and its fixed-point sample fields (`harness.wire.link.sample_fields`);
- `harness.wire.link.registry` — `get_codec`, `codec_names`.

This ``__init__`` deliberately presents the package's public API: import the names below from
``harness.wire.link``; the submodules are where each one is defined and documented.

What the package does not do: no I/O, no threads, no clocks (stamping arrival times is the rig's job). It does
not model RTR, error or CAN FD frames, UART framing/parity errors, or flow control.
"""
from __future__ import annotations

from harness.wire.link.base import (
    V1_NAME,
    V2_NAME,
    DecoderStats,
    LinkCapabilities,
    LinkCapabilityError,
    LinkCodec,
    LinkDecoder,
    LinkEncoder,
    LinkError,
    LinkFrameError,
    Received,
)
from harness.wire.link.crc import (
    CRC_VARIANTS,
    CrcVariant,
    crc16_ccitt_false,
    crc16_modbus,
    crc32_iso_hdlc,
    describe_crc_mismatch,
    identify_crc,
)
from harness.wire.link.dtg_link_v2 import DtgLinkV2Codec, DtgLinkV2Decoder, RecordType
from harness.wire.link.raw_can_v1 import RawCanV1Codec, RawCanV1Decoder
from harness.wire.link.records import CanFrame, Record, SampleRecord, StatusRecord
from harness.wire.link.registry import codec_names, get_codec
from harness.wire.link.sample_fields import SAMPLE_FIELDS, SampleField, as_sampled

__all__ = [
    "CRC_VARIANTS",
    "SAMPLE_FIELDS",
    "V1_NAME",
    "V2_NAME",
    "CanFrame",
    "CrcVariant",
    "DecoderStats",
    "DtgLinkV2Codec",
    "DtgLinkV2Decoder",
    "LinkCapabilities",
    "LinkCapabilityError",
    "LinkCodec",
    "LinkDecoder",
    "LinkEncoder",
    "LinkError",
    "LinkFrameError",
    "RawCanV1Codec",
    "RawCanV1Decoder",
    "Received",
    "Record",
    "RecordType",
    "SampleField",
    "SampleRecord",
    "StatusRecord",
    "as_sampled",
    "codec_names",
    "crc16_ccitt_false",
    "crc16_modbus",
    "crc32_iso_hdlc",
    "describe_crc_mismatch",
    "get_codec",
    "identify_crc",
]
