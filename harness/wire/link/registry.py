"""The link codecs by name: what a rig file's ``stm32.codec`` and the ``--codec`` options choose from."""
from __future__ import annotations

from collections.abc import Callable

from harness.wire.link.base import V1_NAME, V2_NAME, LinkCodec
from harness.wire.link.dtg_link_v2 import DtgLinkV2Codec
from harness.wire.link.raw_can_v1 import RawCanV1Codec

__all__ = ["codec_names", "get_codec"]

_CODECS: dict[str, Callable[[], LinkCodec]] = {V1_NAME: RawCanV1Codec, V2_NAME: DtgLinkV2Codec}


def codec_names() -> list[str]:
    """The valid codec names, sorted."""
    return sorted(_CODECS)


def get_codec(name: str) -> LinkCodec:
    """The codec called `name`.

    >>> get_codec("raw-can-v1").capabilities.max_id_bits
    11
    >>> get_codec("x")
    Traceback (most recent call last):
    ...
    ValueError: unknown link codec 'x'; expected one of: dtg-link-v2, raw-can-v1
    """
    try:
        return _CODECS[name]()
    except (KeyError, TypeError):
        raise ValueError(f"unknown link codec {name!r}; expected one of: {', '.join(codec_names())}") from None
