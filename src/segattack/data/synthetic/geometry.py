"""Perspective geometry: the pinhole camera on the car, the point types, and small geometric helpers.

The world is in metres: ``x`` lateral (right positive), ``y`` up from the ground, ``z`` forward along the street.
The camera looks straight down the street from ``mount_height`` metres above the ground; its focal length and
horizon row scale with the image height, so one scene looks the same at every resolution of one aspect ratio.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "Camera",
    "FloatArray",
    "Point",
    "Point3",
    "Quad",
    "UNIT_CIRCLE",
    "X_FAR",
    "Z_FAR",
    "convex_hull",
    "limb_joint",
]

Point = tuple[float, float]  # image (u, v) pixels
Point3 = tuple[float, float, float]  # world (x, y, z) metres
Quad = tuple[Point3, Point3, Point3, Point3]  # a face: bottom-left, bottom-right, top-right, top-left
FloatArray = NDArray[np.float64]

#: Twelve points on the unit circle, (cos t, sin t), for wheels drawn in exact perspective.
UNIT_CIRCLE = tuple((math.cos(t), math.sin(t)) for t in np.linspace(0.0, 2 * math.pi, 12, endpoint=False))
Z_FAR = 3000.0  # metres; ground polygons end here (on the horizon to within a pixel)
X_FAR = 300.0  # metres; lateral extent of ground and skyline polygons


class Camera:
    """A pinhole camera ``mount_height`` metres above the ground looking along +z, for an image of ``height`` x
    ``width`` pixels; ``horizon_row`` and ``centre_column`` are the principal point (pixels).

    Derived: ``nearest_ground_z``, the nearest ground distance the image shows (metres); ``ground_start_z``, where
    ground polygons start (below the image); ``pixel_scale``, image pixels per pixel of a 256-row reference image.
    """

    def __init__(
        self, height: int, width: int, focal: float, mount_height: float, horizon_row: float, centre_column: float
    ) -> None:
        self.height, self.width = height, width
        self.focal = focal
        self.mount_height = mount_height
        self.horizon_row = horizon_row
        self.centre_column = centre_column
        self.nearest_ground_z = focal * mount_height / (height - horizon_row)
        self.ground_start_z = focal * mount_height / (2.5 * height)
        self.pixel_scale = height / 256.0

    @classmethod
    def sample(cls, rng: np.random.Generator, height: int, width: int) -> Camera:
        """A random camera: focal length and horizon scale with the image height; the street runs straight ahead."""
        focal = height * rng.uniform(1.45, 2.2)
        mount_height = rng.uniform(1.2, 1.75)
        horizon_row = height * rng.uniform(0.34, 0.5)
        centre_column = width * rng.uniform(0.38, 0.62)
        return cls(height, width, focal, mount_height, horizon_row, centre_column)

    def project(self, x: float, y: float, z: float) -> Point:
        """Image position (u, v) of the world point (x, y, z)."""
        return (self.centre_column + self.focal * x / z, self.horizon_row + self.focal * (self.mount_height - y) / z)

    def ground_quad(self, x1: float, x2: float, z1: float, z2: float) -> list[Point]:
        """The ground rectangle ``x1..x2`` by ``z1..z2`` (metres), projected."""
        return [
            self.project(x1, 0.0, z1),
            self.project(x2, 0.0, z1),
            self.project(x2, 0.0, z2),
            self.project(x1, 0.0, z2),
        ]

    def visible_x(self, z: float, margin: float = 2.0) -> tuple[float, float]:
        """Lateral range (metres) that the image covers at depth ``z``, widened by ``margin`` metres."""
        return (
            -self.centre_column * z / self.focal - margin,
            (self.width - self.centre_column) * z / self.focal + margin,
        )

    def in_view(self, x: float, half_width: float, z: float) -> bool:
        """Whether something ``half_width`` metres either side of lateral ``x`` can show at depth ``z`` or nearer."""
        lo, hi = self.visible_x(z, half_width)
        return lo < x < hi


def limb_joint(root: FloatArray, target: FloatArray, upper: float, lower: float, bend: float) -> FloatArray:
    """Middle joint of a two-link limb (lengths ``upper``, ``lower``) from ``root`` to ``target``, solved in the
    (up, forward) plane (two-link inverse kinematics).

    Points are (lateral, up, forward) metres; ``bend`` +1 puts the joint forward (knees), -1 backward (elbows).
    The lateral coordinate is interpolated.
    """
    d_up, d_fw = target[1] - root[1], target[2] - root[2]
    dist = min(max(math.hypot(d_up, d_fw), abs(upper - lower) + 1e-3), upper + lower - 1e-3)
    cos_root = (upper * upper + dist * dist - lower * lower) / (2 * upper * dist)
    root_angle = math.acos(max(-1.0, min(1.0, cos_root)))
    angle = math.atan2(d_fw, d_up) - bend * root_angle  # angle from "up" towards "forward"
    t = upper / (upper + lower)
    return np.array(
        [root[0] + (target[0] - root[0]) * t, root[1] + upper * math.cos(angle), root[2] + upper * math.sin(angle)]
    )


def convex_hull(points: list[Point]) -> list[Point]:
    """Convex hull (Andrew's monotone chain) of a few 2-D points."""
    pts = sorted(set(points))
    if len(pts) <= 2:
        return pts

    def cross(o: Point, a: Point, b: Point) -> float:
        return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])

    lower: list[Point] = []
    for p in pts:
        while len(lower) >= 2 and cross(lower[-2], lower[-1], p) <= 0:
            lower.pop()
        lower.append(p)
    upper: list[Point] = []
    for p in reversed(pts):
        while len(upper) >= 2 and cross(upper[-2], upper[-1], p) <= 0:
            upper.pop()
        upper.append(p)
    return lower[:-1] + upper[:-1]
