"""The state shared while one scene is painted: generator, camera, street layout, light, canvas, haze colour, and the
objects waiting to be painted back to front.

The painting modules (ground, buildings, scenery, vegetation, street furniture, vehicles, figures) are functions of a
``StreetView``. Objects on the street (trees, poles, vehicles, people) are not painted at once: they are deferred with
their distance from the camera and painted farthest first (painter's order) once the background is done.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from .canvas import Canvas
from .geometry import Camera
from .layout import StreetLayout
from .lighting import Lighting
from .palette import Color, mix_colours, scale_colour

if TYPE_CHECKING:
    from .poster import PosterPlan

__all__ = ["StreetView"]


class StreetView:
    """One scene being painted; ``rng`` is the scene's generator, ``haze`` the horizon colour of its sky.

    ``object_light`` is the light (0..1) on the object being drawn: below 1 inside the buildings' shade; ``fog``
    applies it. ``objects`` holds (distance, draw) pairs for ``paint_objects``. ``poster`` is the scene's poster
    (``poster.PosterPlan``), or None for a scene without one.
    """

    def __init__(
        self,
        rng: np.random.Generator,
        camera: Camera,
        layout: StreetLayout,
        lighting: Lighting,
        canvas: Canvas,
        haze: Color,
        poster: PosterPlan | None = None,
    ) -> None:
        self.rng = rng
        self.camera = camera
        self.layout = layout
        self.lighting = lighting
        self.canvas = canvas
        self.haze = haze
        self.objects: list[tuple[float, Callable[[], None]]] = []
        self.object_light = 1.0
        self.poster = poster

    def fog(self, col: Color, z: float) -> Color:
        """Aerial perspective (towards the horizon colour with distance), then the current object's light."""
        out = mix_colours(col, self.haze, 1.0 - math.exp(-z / self.lighting.fog_distance))
        return out if self.object_light == 1.0 else scale_colour(out, self.object_light)

    def light_object_at(self, x: float) -> int:
        """Light level (0..255) at lateral position ``x``; it also becomes the light of the object being drawn."""
        lit = self.lighting.light_at(x)
        self.object_light = lit / 255.0
        return lit

    def defer(self, distance: float, draw: Callable[[], None]) -> None:
        """Paint ``draw`` later, in painter's order by ``distance`` from the camera."""
        self.objects.append((distance, draw))

    def paint_objects(self) -> None:
        """Paint the deferred objects, farthest first (ties in the order they were deferred)."""
        for _, draw in sorted(self.objects, key=lambda o: -o[0]):
            draw()
