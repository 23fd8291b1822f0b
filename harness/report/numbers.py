"""How the reports print a figure: fixed-point, or ``-`` for a figure that was not measured."""
from __future__ import annotations


def fixed_or_dash(value: float | None, digits: int = 2) -> str:
    """``-`` for None, else `value` with `digits` decimals.

    >>> fixed_or_dash(0.8512), fixed_or_dash(41.6, 0), fixed_or_dash(None)
    ('0.85', '42', '-')
    """
    return "-" if value is None else f"{value:.{digits}f}"
