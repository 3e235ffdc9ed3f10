"""One street scene from one random generator: the composition of camera, layout, light, sky, ground, background,
street sides, objects and image effects, in the fixed order that defines the scene's random stream.

Image and label are painted with the very same masks, back to front (painter's order), so the label is exactly what
is drawn; ``render_scene`` is the public entry point, ``render_scene_instances`` adds the person and rider instances.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from ...errors import ConfigError
from .geometry import Camera
from .ground import paint_ground
from .image_effects import finish_image
from .layout import StreetLayout
from .lighting import Lighting
from .population import populate
from .poster import PosterInfo, PosterPlan, check_placement, check_poster, placement_rng
from .scenery import paint_background, paint_street_sides
from .sky import paint_sky
from .street_view import StreetView

__all__ = ["check_size", "paint_scene", "render_scene", "render_scene_instances", "render_scene_with_poster"]


def check_size(size: Sequence[int]) -> tuple[int, int]:
    """``size`` as (height, width) ints, or ``ConfigError`` (a ValueError) unless it is two positive ints."""
    if len(size) != 2 or not all(isinstance(s, int | np.integer) and not isinstance(s, bool) for s in size):
        raise ConfigError(f"size must be (height, width) as two ints, got {size!r}")
    h, w = int(size[0]), int(size[1])
    if h <= 0 or w <= 0:
        raise ConfigError(f"size must be positive (height, width), got {size!r}")
    return h, w


def _paint(
    rng: np.random.Generator, height: int, width: int, instances: bool, poster: PosterPlan | None = None
) -> tuple[NDArray[np.uint8], NDArray[np.int64], StreetView]:
    """Image, label and view (its canvas) of one random scene, drawing from ``rng`` in a fixed order; a canvas that
    keeps instances (``instances``) draws nothing more, so image and label are the same either way. A ``poster``
    draws from its own stream only, so the scene around it is the scene without it."""
    camera = Camera.sample(rng, height, width)
    layout = StreetLayout.sample(rng)
    lighting = Lighting.sample(rng, layout)
    canvas, haze = paint_sky(rng, camera, instances=instances)
    view = StreetView(rng, camera, layout, lighting, canvas, haze, poster)
    if poster is not None:
        poster.prepare(view)
    paint_ground(view)
    paint_background(view)
    paint_street_sides(view)
    populate(view)
    if poster is not None:
        poster.defer_billboard(view)
    view.paint_objects()
    image, label = finish_image(view)
    return image, label, view


def paint_scene(rng: np.random.Generator, height: int, width: int) -> tuple[NDArray[np.uint8], NDArray[np.int64]]:
    """One random street scene (image (H, W, 3) uint8, label (H, W) int64), drawing from ``rng`` in a fixed order."""
    image, label, _ = _paint(rng, height, width, False)
    return image, label


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
    return paint_scene(_generator(rng), h, w)


def render_scene_instances(
    rng: np.random.Generator | int, size: tuple[int, int] = (256, 512)
) -> tuple[NDArray[np.uint8], NDArray[np.int64], NDArray[np.int64]]:
    """``render_scene`` plus the scene's ground-truth instances: image and label are exactly those of
    ``render_scene`` (the same random draws), and instance ids (H, W) int64 are ``train_id * 1000 + k`` on the
    pixels of the k-th person (or rider) painted, -1 elsewhere (``segattack.instances``' convention). Occlusion is
    exact: ids are painted with the label's masks in the label's order, so an id's pixels are labelled with its class.

    >>> image, label, ids = render_scene_instances(0, (32, 64))
    >>> ids.dtype, bool(((ids == -1) | (ids // 1000 == label)).all())
    (dtype('int64'), True)
    """
    h, w = check_size(size)
    image, label, view = _paint(_generator(rng), h, w, True)
    return image, label, view.canvas.instance_ids()


def render_scene_with_poster(
    rng: np.random.Generator | int,
    poster: object,
    size: tuple[int, int] = (256, 512),
    *,
    placement: str = "building",
    instances: bool = False,
) -> tuple[NDArray[np.uint8], NDArray[np.int64], PosterInfo, NDArray[np.int64] | None]:
    """``render_scene`` with a poster drawn into the scene: the same scene (the same random draws: the poster's
    place comes from a stream of its own, ``poster.placement_rng``) with ``poster`` painted on a facade or a
    billboard, in perspective, lit, fogged and occluded like the surfaces around it.

    Args:
        rng: a numpy Generator (consumed as by ``render_scene``) or an int seed.
        poster: the texture, (3, h, w) float tensor or array with values in [0, 1] (a patch); its aspect ratio is
            kept, its size in the scene is drawn (metres).
        size: (height, width) in pixels.
        placement: "building" (flat on a facade along the street; a billboard where the street has no building
            row, or no facade the poster fits on) or "billboard" (a free-standing panel on a sidewalk).
        instances: also return the person and rider instances (``render_scene_instances``), else None.

    Returns:
        image (H, W, 3) uint8, label (H, W) int64 (poster pixels are building, ``poster.POSTER_CLASS``), the
        ``PosterInfo`` (corners, visible mask, distance in metres, viewing angle in degrees) and the instance ids
        or None.

    >>> import numpy as np
    >>> red = np.zeros((3, 8, 8), np.float32); red[0] = 1.0
    >>> image, label, info, _ = render_scene_with_poster(0, red, (64, 128), placement="billboard")
    >>> info.placement, info.visible.shape, bool((label[info.visible] == 2).all())
    ('billboard', (64, 128), True)
    """
    h, w = check_size(size)
    texture = check_poster(poster)
    generator = _generator(rng)
    plan = PosterPlan(texture, check_placement(placement), placement_rng(generator))
    image, label, view = _paint(generator, h, w, instances, plan)
    ids = view.canvas.instance_ids() if instances else None
    return image, label, plan.info(view), ids


def _generator(rng: np.random.Generator | int) -> np.random.Generator:
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
