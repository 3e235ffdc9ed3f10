"""Colours of the scenes: the palette shared by all classes, skin tones, hair, facades and foliage, and helpers.

No colour belongs to one class only: clothing, cars, facades, signs and bags draw from the same shared palette, so a
segmentation network cannot tell a pedestrian by one colour cue. Colours are ``(r, g, b)`` int tuples in 0..255, as
Pillow's ImageDraw wants them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "Color",
    "FACADE_COLOURS",
    "FOLIAGE_GREENS",
    "HAIR_COLOURS",
    "SHARED_COLOURS",
    "SKIN_TONES",
    "clip_colour",
    "mix_colours",
    "scale_colour",
    "shared_colour",
]

Color = tuple[int, int, int]

# Colours shared by clothing, cars, facades, signs, bags: no colour belongs to one class only.
SHARED_COLOURS: tuple[Color, ...] = (
    (235, 235, 230), (28, 28, 32), (150, 152, 156), (92, 94, 100), (38, 52, 96), (165, 32, 36), (42, 74, 48),
    (205, 188, 152), (122, 82, 52), (88, 110, 142), (205, 160, 40), (112, 52, 112), (128, 64, 128), (70, 70, 70),
    (107, 142, 35), (190, 153, 153), (220, 20, 60), (60, 120, 170), (230, 120, 40), (250, 200, 190), (20, 90, 90),
    (150, 100, 80), (180, 190, 120), (245, 225, 80),
)  # fmt: skip
#: Skin tones from light to dark; a person's skin is interpolated between two neighbours.
SKIN_TONES: tuple[Color, ...] = (
    (255, 224, 196),
    (234, 192, 160),
    (214, 160, 120),
    (176, 120, 84),
    (128, 84, 56),
    (84, 54, 38),
)
HAIR_COLOURS: tuple[Color, ...] = (
    (20, 16, 14), (60, 40, 28), (110, 72, 40), (196, 160, 96), (150, 150, 150), (140, 60, 30),
)  # fmt: skip
FACADE_COLOURS: tuple[Color, ...] = (
    (200, 190, 170), (170, 160, 150), (220, 210, 190), (150, 90, 70), (180, 120, 90), (120, 120, 125), (90, 90, 95),
    (225, 215, 160), (190, 200, 205), (205, 170, 140), (160, 170, 150), (235, 230, 225), (110, 100, 95),
)  # fmt: skip
#: Greens of trees, bushes, hedges and tree lines.
FOLIAGE_GREENS: tuple[Color, ...] = (
    (70, 110, 40), (50, 85, 35), (95, 125, 50), (60, 95, 60), (110, 130, 60), (40, 70, 45),
)  # fmt: skip


def clip_colour(rgb: Sequence[float] | NDArray[np.floating]) -> Color:
    """Clip to 0..255 and round to an int RGB tuple (what ImageDraw wants)."""
    return (
        int(min(255.0, max(0.0, float(rgb[0])))),
        int(min(255.0, max(0.0, float(rgb[1])))),
        int(min(255.0, max(0.0, float(rgb[2])))),
    )


def scale_colour(rgb: Color, factor: float) -> Color:
    """Brighten or darken by ``factor`` (truncated, capped at 255)."""
    return (min(255, int(rgb[0] * factor)), min(255, int(rgb[1] * factor)), min(255, int(rgb[2] * factor)))


def mix_colours(a: Color, b: Color, t: float) -> Color:
    """Convex combination of two valid colours (0 <= t <= 1), so no clipping is needed."""
    return (int(a[0] + (b[0] - a[0]) * t), int(a[1] + (b[1] - a[1]) * t), int(a[2] + (b[2] - a[2]) * t))


def shared_colour(rng: np.random.Generator, jitter: float = 18.0) -> Color:
    """A colour from the palette shared by all classes (or any colour), jittered."""
    if rng.random() < 0.6:
        base = SHARED_COLOURS[int(rng.integers(len(SHARED_COLOURS)))]
        return clip_colour(np.asarray(base) + rng.normal(0.0, jitter, 3))
    if rng.random() < 0.5:  # grey-ish
        g = rng.uniform(20, 240)
        return clip_colour(np.asarray([g, g, g]) + rng.normal(0.0, 8.0, 3))
    return clip_colour(rng.uniform(15, 245, 3))
