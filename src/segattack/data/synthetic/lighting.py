"""The scene's light: sun or overcast, the sun's direction, the buildings' shade over one side of the street, the
strength of contact shadows, and the distance of the aerial-perspective haze.

Light levels are 0..255 as stored in the canvas' light layer (255: fully lit).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .layout import StreetLayout
from .sampling import pick

__all__ = ["Lighting"]


@dataclass
class Lighting:
    """Light of one scene.

    ``sun_azimuth`` is the sun's direction in the ground plane (radians); with sun, ``shade_light`` is the light
    level inside the buildings' shade, which covers the street on ``shaded_side`` (-1 left, +1 right, 0 none) up to
    the lateral position ``shade_edge``; ``contact_shadow_light`` is the light level under cars, trees and people;
    colours fade towards the horizon colour over ``fog_distance`` metres.
    """

    sunny: bool
    sun_azimuth: float
    shade_light: int
    shaded_side: int
    shade_edge: float
    contact_shadow_light: int
    fog_distance: float

    @classmethod
    def sample(cls, rng: np.random.Generator, layout: StreetLayout) -> Lighting:
        """Sun (hard shadows, one side of the street in shade) or overcast."""
        sunny = rng.random() < 0.55
        sun_azimuth = rng.uniform(0, 2 * math.pi)
        shade_light = int(rng.uniform(110, 170)) if sunny else 255
        shaded_side = int(pick(rng, [-1, 1])) if sunny and rng.random() < 0.7 else 0
        if shaded_side < 0:
            shade_edge = layout.facade_left + rng.uniform(1.5, 14.0)
        else:  # also drawn without shade, to keep the random stream
            shade_edge = layout.facade_right - rng.uniform(1.5, 14.0)
        contact_shadow_light = int(rng.uniform(120, 175)) if sunny else int(rng.uniform(170, 215))
        fog_distance = rng.uniform(150.0, 700.0)
        return cls(sunny, sun_azimuth, shade_light, shaded_side, shade_edge, contact_shadow_light, fog_distance)

    def face_light(self, nx: float, nz: float) -> float:
        """Brightness factor of a vertical face with outward normal (nx, nz)."""
        d = nx * math.cos(self.sun_azimuth) + nz * math.sin(self.sun_azimuth)
        return (0.62 + 0.38 * max(0.0, d)) if self.sunny else (0.82 + 0.12 * d)

    def light_at(self, x: float) -> int:
        """Light level (0..255) on the ground at lateral position ``x``: darker inside the buildings' shade."""
        if self.shaded_side == 0:
            return 255
        inside = x < self.shade_edge if self.shaded_side < 0 else x > self.shade_edge
        return self.shade_light if inside else 255
