"""The argument checks every zoo architecture shares (one message for one mistake)."""

from __future__ import annotations

import math


def check_common(num_classes: object, width: object, dropout: object, *, example: str = "1.0 or 0.5") -> None:
    """``num_classes`` a positive integer, ``width`` a positive finite channel multiplier, ``dropout`` in [0, 1);
    ValueError naming the argument otherwise."""
    if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
    if not (isinstance(width, int | float) and not isinstance(width, bool) and math.isfinite(width) and width > 0):
        raise ValueError(f"width must be a positive channel multiplier such as {example}, got {width!r}")
    if not (isinstance(dropout, int | float) and 0.0 <= dropout < 1.0):
        raise ValueError(f"dropout must be a probability in [0, 1), got {dropout}")
