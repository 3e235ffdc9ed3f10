"""Numbers as people read them: one definition of each, shared by the reports, the experiment's log and the
command line. Pure Python (no torch, no numpy), so the command line may import it at start-up."""

from __future__ import annotations

import math
from typing import Any

__all__ = ["num", "pct", "duration"]


def num(v: Any) -> float:
    """A value read from a result file as a float: NaN for None or anything that is not a number."""
    try:
        return math.nan if v is None else float(v)
    except (TypeError, ValueError):
        return math.nan


def pct(value: Any, std: Any = None, *, missing: str = "n/a") -> str:
    """A share in [0, 1] as a percentage: ``0.979`` -> ``"97.9%"``; with ``std``, ``"97.9% ± 4.8"``; ``missing``
    where the value is None, NaN or not a number.

    >>> pct(0.979), pct(0.979, 0.048), pct(None), pct(float("nan"), missing="–")
    ('97.9%', '97.9% ± 4.8', 'n/a', '–')
    """
    v = num(value)
    if math.isnan(v):
        return missing
    return f"{100 * v:.1f}%" if std is None else f"{100 * v:.1f}% ± {100 * num(std):.1f}"


def duration(seconds: float) -> str:
    """Seconds as a duration: ``83.2`` -> ``"1 min 23 s"``, ``7500`` -> ``"2 h 05 min"``.

    >>> duration(3.14), duration(83.2), duration(7500)
    ('3.1 s', '1 min 23 s', '2 h 05 min')
    """
    if seconds < 60:
        return f"{seconds:.1f} s"
    m, s = divmod(int(round(seconds)), 60)
    return f"{m} min {s:02d} s" if m < 60 else f"{m // 60} h {m % 60:02d} min"
