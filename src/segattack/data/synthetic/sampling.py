"""Cheap random choices among a few items, used wherever the scene draws a category (lane counts, sky kinds, poses).

``pick`` consumes exactly one ``Generator.random()`` draw, so the random streams of the scenes depend on it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

import numpy as np

__all__ = ["pick"]

T = TypeVar("T")


def pick(rng: np.random.Generator, items: Sequence[T], p: Sequence[float] | None = None) -> T:
    """One of a few ``items``, uniformly or with probabilities ``p`` (much cheaper than ``Generator.choice``)."""
    u = rng.random()
    if p is None:
        return items[min(int(u * len(items)), len(items) - 1)]
    acc = 0.0
    for item, q in zip(items, p, strict=True):
        acc += q
        if u < acc:
            return item
    return items[-1]
