"""`check_link`: the firmware's frames on the UART tap decode with the rig's declared codec (CRC variant and byte
order, zero padding, ID width), and the app's own decoder (its `status` counters) accepts them too.

A CRC mismatch names the registered variant that does match (`harness.wire.link.identify_crc`), if any, and the
codec the bytes really are when it is another one.
"""
from __future__ import annotations

from harness.judge.contract.reference import ContractRun, lost_samples, sample_value_mismatches
from harness.judge.contract.verdict import FAIL, PASS, Verdict, blocked_by_tap, last_status
from harness.wire.link import CRC_VARIANTS, codec_names, crc16_modbus, get_codec, identify_crc

__all__ = ["check_link"]


def _crc_candidates(uart: bytes, codec: str) -> list[tuple[bytes, int, int]]:
    """(covered bytes, carried CRC, width) of every frame-shaped candidate in `uart`, whatever its CRC."""
    out = []
    if codec == "raw-can-v1":
        pos = uart.find(0xAA)
        while 0 <= pos <= len(uart) - 15:
            if uart[pos + 14] == 0x55 and uart[pos + 3] <= 8:
                out.append((uart[pos + 1:pos + 12], (uart[pos + 12] << 8) | uart[pos + 13], 16))
                pos = uart.find(0xAA, pos + 15)
            else:
                pos = uart.find(0xAA, pos + 1)
    else:
        pos = uart.find(b"\xd7\x47\x02")
        while 0 <= pos <= len(uart) - 17:
            end = pos + 13 + uart[pos + 4]
            if end + 4 > len(uart):
                break
            out.append((uart[pos + 2:end], int.from_bytes(uart[end:end + 4], "big"), 32))
            pos = uart.find(b"\xd7\x47\x02", end + 4)
    return out


def _expected_crc(codec: str) -> str:
    """The key in CRC_VARIANTS of the CRC `codec` carries."""
    return get_codec(codec).crc_variant


def _name_crc(uart: bytes, codec: str) -> str:
    candidates = _crc_candidates(uart, codec)
    if not candidates:
        return "no frame-shaped data at all"
    counts: dict[str, int] = {}
    for data, carried, width in candidates[:2000]:
        for name in identify_crc(data, carried, width) or ["none"]:
            counts[name] = counts.get(name, 0) + 1
    best, n = max(counts.items(), key=lambda kv: kv[1])
    tried = min(len(candidates), 2000)
    if best == "none":
        return f"no registered CRC variant matches ({n}/{tried} frame-shaped candidates: corruption or framing?)"
    variant = CRC_VARIANTS[best.split(" ")[0]]
    order = " sent low byte first (byte-swapped)" if "byte-swapped" in best else ""
    return f"{n}/{tried} frames carry {variant.title}{order}"


def _v1_padding_and_ids(uart: bytes) -> tuple[int, int, int]:
    """(frames with DLC < 8, of which non-zero padding, frames whose ID field exceeds 11 bits) of raw-can-v1."""
    short = padded_wrong = wide = 0
    pos = uart.find(0xAA)
    while 0 <= pos <= len(uart) - 15:
        if uart[pos + 14] == 0x55 and crc16_modbus(uart[pos + 1:pos + 12]) == (uart[pos + 12] << 8) | uart[pos + 13]:
            dlc = uart[pos + 3]
            if ((uart[pos + 1] << 8) | uart[pos + 2]) > 0x7FF:
                wide += 1
            if dlc < 8:
                short += 1
                if any(uart[pos + 4 + dlc:pos + 12]):
                    padded_wrong += 1
            pos = uart.find(0xAA, pos + 15)
        else:
            pos = uart.find(0xAA, pos + 1)
    return short, padded_wrong, wide


def _altered(report) -> str:
    """An example of a frame that reached the UART altered: a sent and an unexpected frame of the same ID."""
    unexpected = {}
    for item in report.unexpected:
        record = item.received.record
        unexpected.setdefault(getattr(record, "can_id", None), record)
    for sent in report.missing:
        got = unexpected.get(sent.can_id)
        if got is not None and len(got.data) == len(sent.data):
            differ = [i for i in range(len(sent.data)) if sent.data[i] != got.data[i]]
            swapped = (len(differ) == 2 and sent.data[differ[0]] == got.data[differ[1]]
                       and sent.data[differ[1]] == got.data[differ[0]])
            how = f"data bytes {differ[0]} and {differ[1]} swapped" if swapped else \
                f"data byte(s) {', '.join(map(str, differ))} changed"
            return (f"; altered in the firmware: e.g. ID 0x{sent.can_id:X} sent [{sent.data.hex(' ')}], on the UART "
                    f"[{got.data.hex(' ')}] ({how})")
    return ""


def _forwarding(run: ContractRun) -> str | None:
    """The UART tap's cross-check against the CAN log (the run's `TapReport`), when it found frames missing,
    unexpected or altered: what the firmware forwarded is not what the bus carried."""
    report = getattr(run.result, "tap", None) if run.result is not None else None
    if report is None or not (report.missing or report.unexpected):
        return None
    return (f"the firmware's UART output does not match the CAN log: {'; '.join(report.problems())}"
            + _altered(report))


def check_link(run: ContractRun) -> Verdict:
    """The firmware's frames decode with the declared codec, and the app's decoder accepts them as well."""
    check, codec = "link", run.codec
    expected = CRC_VARIANTS[_expected_crc(codec)].title
    notes: list[str] = []
    tap_frames = None
    if run.uart is None:
        notes.append("no UART tap on this rig: the firmware's side is not checked")
    else:
        blocked = blocked_by_tap(check, run)
        if blocked:
            return blocked
        decoder = get_codec(codec).decoder()
        decoder.feed(run.uart)
        decoder.finish()
        stats = decoder.stats
        tap_frames = stats.frames_decoded
        if stats.frames_decoded == 0 or stats.crc_errors > max(2, 0.001 * stats.frames_decoded):
            found = _name_crc(run.uart, codec)
            others = []
            for other in codec_names():
                if other != codec:
                    alt = get_codec(other).decoder()
                    alt.feed(run.uart)
                    alt.finish()
                    if alt.stats.frames_decoded > 10 * max(alt.stats.crc_errors, 1):
                        others.append(other)
            where = f"; the bytes decode as {' / '.join(others)}: the rig file's stm32.codec is wrong" if others else ""
            return Verdict(check, FAIL, f"the firmware's frames on the UART tap fail the declared {codec} "
                                        f"({expected}): {stats.frames_decoded} decoded, {stats.crc_errors} CRC "
                                        f"errors; {found}{where}", "firmware-crc")
        if stats.bytes_skipped > max(64, 0.01 * stats.frames_decoded):
            return Verdict(check, FAIL, f"{stats.bytes_skipped} of the {len(run.uart)} bytes on the UART tap belong to "
                                        f"no valid {codec} frame ({stats.crc_errors} CRC errors) while "
                                        f"{stats.frames_decoded} frames pass the link's {expected}: the firmware's "
                                        f"frames are corrupted on the line (noise, a baud-rate or framing error), "
                                        f"not sent with another CRC", "link-corruption")
        if stats.malformed_frames:
            return Verdict(check, FAIL, f"{stats.malformed_frames} of the firmware's frames pass the CRC but are "
                                        f"malformed for {codec} (e.g. an ID wider than the codec's ID field, "
                                        f"DLC > 8)", "id-width")
        if codec == "raw-can-v1":
            short, padded_wrong, wide = _v1_padding_and_ids(run.uart)
            if padded_wrong:
                return Verdict(check, FAIL, f"{padded_wrong} of {short} raw-can-v1 frames with DLC < 8 are padded "
                                            f"with non-zero bytes (the contract pads with 0x00)", "padding")
        notes.append(f"{stats.frames_decoded} firmware frames on the tap pass {codec} ({expected}), "
                     f"{stats.crc_errors} CRC errors")
    status = last_status(run.events)
    if status is None:
        return Verdict(check, FAIL, "the app logged no status line: its decoder's counters (samples_received, link) "
                                    "cannot be compared with the firmware's frames (docs/events.md, kind status); "
                                    + "; ".join(notes), "no-status")
    link = dict(status.link)
    decoded, crc_errors = link.get("frames_decoded"), link.get("crc_errors", 0)
    # The app's last status line may predate the run's end (a phone's last lines can miss the collection), so
    # its counters are judged by their own ratio, not against the tap's total.
    if tap_frames and decoded is not None and (decoded == 0 or crc_errors > max(2, 0.001 * (decoded + crc_errors))):
        return Verdict(check, FAIL, f"the app's decoder counted {crc_errors} CRC errors and decoded {decoded} "
                                    f"frames, while all {tap_frames} of the firmware's frames on the tap pass the "
                                    f"declared {expected}: the app checks a different CRC variant (or byte order) "
                                    f"than the firmware sends ({codec} specifies {expected})", "app-crc")
    if status.samples_received == 0:
        return Verdict(check, FAIL, f"the app rebuilt no samples from the link (its status: {status.samples_received} "
                                    f"samples, link counters {link or 'not reported'}); " + "; ".join(notes),
                       "app-no-samples")
    forwarding = _forwarding(run)
    if forwarding:
        return Verdict(check, FAIL, forwarding, "firmware-forwarding")
    sampling = sample_value_mismatches(run.uart, codec, run.profile) if run.uart is not None else {}
    if sampling:
        what = "; ".join(f"{name}: {bad} of {n} samples differ from the CAN answer they were taken from (median "
                         f"ratio {ratio:.4g}{', a scale factor' if abs(ratio - 1) > 1e-3 else ''})"
                         for name, (bad, n, ratio) in sampling.items())
        return Verdict(check, FAIL, f"the firmware's sample records do not carry what the bus said: {what}",
                       "firmware-sampling")
    lost = lost_samples(run)
    if lost:
        return Verdict(check, FAIL, lost, "lost-samples")
    if decoded is None:
        notes.append("the app's status lines carry no link counters (frames_decoded, crc_errors): its decoder is "
                     "judged by its samples only")
    else:
        notes.append(f"the app decoded {decoded} frames with {crc_errors} CRC errors")
    return Verdict(check, PASS, "; ".join(notes) + f"; {status.samples_received} samples rebuilt")
