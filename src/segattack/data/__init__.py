"""Data sets: synthetic street scenes (the embedded default), Cityscapes, image folders; the Cityscapes label space."""

from __future__ import annotations

from typing import Any

from .base import SegDataset, UnreadableImageError
from .labels import CLASS_COLORS, CLASS_NAMES, IGNORE_INDEX, NUM_CLASSES, class_ids, colorize

__all__ = [
    "CLASS_COLORS",
    "CLASS_NAMES",
    "IGNORE_INDEX",
    "NUM_CLASSES",
    "class_ids",
    "colorize",
    "SyntheticStreets",
]


def __getattr__(name: str) -> Any:  # lazy: data sets import their own dependencies only when used
    if name == "SyntheticStreets":
        from .synthetic import SyntheticStreets

        return SyntheticStreets
    raise AttributeError(f"module 'segattack.data' has no attribute {name!r}")
