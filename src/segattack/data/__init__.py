"""Data sets: synthetic street scenes (the embedded default), Cityscapes, image folders; the Cityscapes label space.

Every data set follows the contract in ``segattack.data.base``: items ``(uint8 image (3, H, W), int64 label (H, W))``,
``image_id(i)``, ``has_labels``.
"""

from __future__ import annotations

import importlib
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
    "SegDataset",
    "UnreadableImageError",
    "SyntheticStreets",
    "Cityscapes",
    "ImageFolder",
]

_LAZY = {"SyntheticStreets": ".synthetic", "Cityscapes": ".cityscapes", "ImageFolder": ".folder"}


def __getattr__(name: str) -> Any:  # data set classes load on first use
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module 'segattack.data' has no attribute {name!r}")
