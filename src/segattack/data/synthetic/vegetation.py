"""Vegetation: tree lines on the horizon, trees (broadleaf crowns of a few blobs, conifers, autumn colours) and bushes.

Tree lines are painted at once (background); trees and bushes are deferred objects, painted in painter's order, each
from its own seed so that its look does not depend on when it is painted.
"""

from __future__ import annotations

import math
from functools import partial

import numpy as np

from .classes import VEG
from .geometry import Point
from .palette import FOLIAGE_GREENS, Color, clip_colour, scale_colour
from .street_view import StreetView

__all__ = ["add_bush", "add_tree", "draw_bush", "draw_tree", "paint_treeline"]


def paint_treeline(view: StreetView, x1: float, x2: float, z: float) -> None:
    """A ragged band of trees standing at depth ``z`` from ``x1`` to ``x2`` (clipped to the view), painted now."""
    rng, camera = view.rng, view.camera
    col = view.fog(FOLIAGE_GREENS[int(rng.integers(len(FOLIAGE_GREENS)))], z)
    lo, hi = camera.visible_x(z, 10.0)
    x1, x2 = max(min(x1, x2), lo), min(max(x1, x2), hi)
    if x2 <= x1:
        return
    n = max(3, int((x2 - x1) / max(3.0, z / 30)))
    xs = np.linspace(x1, x2, n)
    tops = rng.uniform(4.0, 14.0, n)
    pts: list[Point] = [camera.project(x1, 0.0, z)]
    pts += [camera.project(float(a), float(b), z) for a, b in zip(xs, tops, strict=True)]
    pts.append(camera.project(x2, 0.0, z))
    view.canvas.poly(pts, col, VEG)


def add_tree(view: StreetView, x: float, z: float) -> None:
    """Defer a tree standing at (x, z)."""
    view.defer(math.hypot(x, z) - 0.5, partial(draw_tree, view, x, z, int(view.rng.integers(2**31))))


def draw_tree(view: StreetView, x: float, z: float, seed: int) -> None:
    """A tree at (x, z): trunk and a crown of a few shaded blobs (one when small), or a conifer; with its shadow."""
    camera = view.camera
    if z < 0.8 or not camera.in_view(x, 4.0, z):
        return
    rng, canvas = np.random.default_rng(seed), view.canvas
    px_per_m = camera.focal / z
    trunk_height = rng.uniform(1.8, 3.5)
    crown = rng.uniform(1.3, 3.2)  # crown radius, metres
    lit = view.light_object_at(x)
    u, v = camera.project(x, 0, z)
    if view.lighting.sunny:
        shadow_light = min(lit, view.lighting.contact_shadow_light + 50)
        canvas.shadow_ellipse(u, v, crown * px_per_m, crown * px_per_m * camera.mount_height / z, shadow_light)
    bark = view.fog(clip_colour(np.array([80, 62, 48]) + rng.normal(0, 12, 3)), z)
    top = camera.project(x, trunk_height + crown * 0.6, z)
    canvas.line([(u, v), top], max(1.0, rng.uniform(0.2, 0.4) * px_per_m), bark, VEG)
    green = np.asarray(FOLIAGE_GREENS[int(rng.integers(len(FOLIAGE_GREENS)))], np.float64)
    if rng.random() < 0.12:  # autumn
        green = np.array([180, 110, 40], np.float64)
    crown_y = trunk_height + crown
    if rng.random() < 0.15:  # conifer
        pts = [
            camera.project(x - crown * 0.8, trunk_height * 0.5, z),
            camera.project(x + crown * 0.8, trunk_height * 0.5, z),
            camera.project(x, trunk_height + crown * 2.8, z),
        ]
        canvas.poly(pts, view.fog(clip_colour(green * 0.75), z), VEG)
        return
    n_blobs = int(rng.integers(3, 7)) if crown * px_per_m > 4 * camera.pixel_scale else 1
    for _ in range(n_blobs):
        dx, dy = rng.normal(0, crown * 0.35), rng.normal(0, crown * 0.25)
        rad = crown * rng.uniform(0.5, 0.8)
        shade = 0.75 + 0.35 * (dy / crown + 0.5) + rng.normal(0, 0.06)
        blob_u, blob_v = camera.project(x + dx, crown_y + dy, z)
        blob_col = view.fog(clip_colour(green * shade), z)
        canvas.ellipse(blob_u, blob_v, rad * px_per_m, rad * px_per_m * rng.uniform(0.8, 1.0), blob_col, VEG)


def add_bush(view: StreetView, x: float, z: float, size: float, col: Color) -> None:
    """Defer a bush ``size`` metres across at (x, z)."""
    view.defer(math.hypot(x, z), partial(draw_bush, view, x, z, size, col))


def draw_bush(view: StreetView, x: float, z: float, size: float, col: Color) -> None:
    """A bush: one flat ellipse."""
    px_per_m = view.camera.focal / z
    u, v = view.camera.project(x, size * 0.45, z)
    view.light_object_at(x)
    view.canvas.ellipse(u, v, size * px_per_m, size * 0.5 * px_per_m, view.fog(scale_colour(col, 0.9), z), VEG)
