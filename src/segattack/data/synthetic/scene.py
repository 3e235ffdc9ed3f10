"""One street scene from one random generator: the composition of camera, layout, light, sky, ground, background,
street sides, objects and image effects, in the fixed order that defines the scene's random stream.

Image and label are painted with the very same masks, back to front (painter's order), so the label is exactly what
is drawn; ``render_scene`` is the public entry point.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from .geometry import Camera
from .ground import paint_ground
from .image_effects import finish_image
from .layout import StreetLayout
from .lighting import Lighting
from .population import populate
from .scenery import paint_background, paint_street_sides
from .sky import paint_sky
from .street_view import StreetView

__all__ = ["check_size", "paint_scene", "render_scene"]


def check_size(size: Sequence[int]) -> tuple[int, int]:
    """``size`` as (height, width) ints, or ValueError unless it is two positive ints."""
    if len(size) != 2 or not all(isinstance(s, int | np.integer) and not isinstance(s, bool) for s in size):
        raise ValueError(f"size must be (height, width) as two ints, got {size!r}")
    h, w = int(size[0]), int(size[1])
    if h <= 0 or w <= 0:
        raise ValueError(f"size must be positive (height, width), got {size!r}")
    return h, w


def paint_scene(rng: np.random.Generator, height: int, width: int) -> tuple[NDArray[np.uint8], NDArray[np.int64]]:
    """One random street scene (image (H, W, 3) uint8, label (H, W) int64), drawing from ``rng`` in a fixed order."""
    camera = Camera.sample(rng, height, width)
    layout = StreetLayout.sample(rng)
    lighting = Lighting.sample(rng, layout)
    canvas, haze = paint_sky(rng, camera)
    view = StreetView(rng, camera, layout, lighting, canvas, haze)
    paint_ground(view)
    paint_background(view)
    paint_street_sides(view)
    populate(view)
    view.paint_objects()
    return finish_image(view)


def render_scene(
    rng: np.random.Generator | int, size: tuple[int, int] = (256, 512)
) -> tuple[NDArray[np.uint8], NDArray[np.int64]]:
    """Render one random street scene.

    Args:
        rng: a numpy Generator (consumed) or an int seed.
        size: (height, width) in pixels; the scene's geometry scales with the height.

    Returns:
        image (H, W, 3) uint8 RGB and label (H, W) int64 Cityscapes train ids 0..18 (no ignore pixels).

    >>> image, label = render_scene(0, (32, 64))
    >>> image.shape, image.dtype, label.shape, label.dtype
    ((32, 64, 3), dtype('uint8'), (32, 64), dtype('int64'))
    """
    h, w = check_size(size)
    gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    return paint_scene(gen, h, w)
