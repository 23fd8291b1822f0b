"""The driving-behaviour class names, in the order the behaviour model's output indexes them."""
from __future__ import annotations

#: Driving styles, in the behaviour model's class order.
STYLES: tuple[str, ...] = ("normal", "eco", "aggressive")
