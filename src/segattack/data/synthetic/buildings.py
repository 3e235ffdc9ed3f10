"""Buildings: rows of side facades along the street (with end walls, shop bands, cornices, alleys), frontal facades
closing the street's end, and their window grids.

Windows, shop fronts and cornices are painted on the image only: in the label they are building.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .classes import BUILDING
from .geometry import FloatArray, Point
from .palette import FACADE_COLOURS, Color, clip_colour, scale_colour, shared_colour
from .sampling import pick
from .street_view import StreetView

__all__ = ["facade_colour", "paint_building_row", "paint_front_facade", "paint_side_facade", "paint_window_grid"]

#: ``plane(along, up)``: facade coordinates (metres; arrays broadcast) to the world point (x, y, z).
FacadePlane = Callable[[Any, float], tuple[Any, Any, Any]]


def facade_colour(rng: np.random.Generator) -> Color:
    """A facade's wall colour: mostly a facade tone, sometimes any shared colour."""
    if rng.random() < 0.2:
        return shared_colour(rng, 12)
    return clip_colour(np.asarray(FACADE_COLOURS[int(rng.integers(len(FACADE_COLOURS)))]) + rng.normal(0, 12, 3))


def paint_window_grid(
    view: StreetView,
    plane: FacadePlane,
    starts: FloatArray,
    window_width: float,
    sills: FloatArray,
    window_height: float,
    wall: Color,
    depth: float,
    shop: bool,
    seed: int,
) -> None:
    """Windows on a facade, image only (windows are building).

    ``plane(along, up)`` maps facade coordinates (metres) to a 3-D point; ``starts`` are the windows' starts along
    the facade, ``sills`` their sill heights. Each floor is one glass band, cut into windows by wall pillars, so a
    facade costs floors + columns polygons; a few windows get their own colour (lit rooms, curtains).
    """
    rng, canvas, camera = np.random.default_rng(seed), view.canvas, view.camera

    def quad(a1: float, a2: float, y1: float, y2: float) -> list[Point]:
        return [
            camera.project(*plane(a1, y1)),
            camera.project(*plane(a2, y1)),
            camera.project(*plane(a2, y2)),
            camera.project(*plane(a1, y2)),
        ]

    glass = np.array([60, 72, 88]) + rng.normal(0, 15, 3)
    n_odd = int(rng.binomial(len(starts) * len(sills), 0.1))
    odd_windows = [
        (
            float(starts[int(rng.integers(len(starts)))]),
            float(sills[int(rng.integers(len(sills)))]),
            rng.random(),
            clip_colour(glass + rng.normal(0, 40, 3)),
        )
        for _ in range(n_odd)
    ]
    y_mid = float(sills[len(sills) // 2]) if len(sills) else 2.0
    px, _, pz = plane(starts, y_mid)  # facade planes broadcast over arrays
    u1 = camera.centre_column + camera.focal * px / pz
    px, _, pz = plane(starts + window_width, y_mid)
    u2 = camera.centre_column + camera.focal * px / pz
    keep = (np.abs(u2 - u1) > 1.6 * camera.pixel_scale) & (np.maximum(u1, u2) > 0) & (np.minimum(u1, u2) < camera.width)
    starts = starts[keep]
    if len(starts) == 0:
        return
    bands = glass + rng.normal(0, 6, (len(sills), 3))
    a_lo, a_hi = float(starts[0]), float(starts[-1])
    for y, band in zip(sills.tolist(), bands, strict=True):
        canvas.poly(quad(a_lo, a_hi + window_width, y, y + window_height), view.fog(clip_colour(band), depth))
    if len(sills):
        y_lo, y_hi = float(sills[0]), float(sills[-1]) + window_height
        for a, b in zip(starts[:-1].tolist(), starts[1:].tolist(), strict=True):
            canvas.poly(quad(a + window_width, b, y_lo, y_hi), wall)
    if shop:  # shop windows at street level, with narrow pillars
        canvas.poly(quad(a_lo, a_hi + window_width, 0.5, 3.0), view.fog(clip_colour(glass * 0.8 + 10), depth))
        for a, b in zip(starts[:-1].tolist(), starts[1:].tolist(), strict=True):
            canvas.poly(quad(a + 0.8 * window_width, b - 0.2 * window_width, 0.5, 3.0), wall)
    for a, y, u, other in odd_windows:  # lit rooms and curtains
        if a_lo <= a <= a_hi:
            lit_room = (230, 210, 150)
            canvas.poly(
                quad(a, a + window_width, y, y + window_height), view.fog(lit_room if u < 0.5 else other, depth)
            )


def paint_front_facade(view: StreetView, x1: float, x2: float, z: float, height: float) -> None:
    """A facade facing the camera at depth ``z`` from ``x1`` to ``x2``, ``height`` metres tall, with windows."""
    rng, camera = view.rng, view.camera
    base = facade_colour(rng)
    spacing, first_sill, floor_height, window_height, shop = (
        rng.uniform(2.2, 3.5),
        rng.uniform(3.5, 4.5),
        rng.uniform(2.9, 3.5),
        rng.uniform(1.2, 1.7),
        rng.random(),
    )
    seed = int(rng.integers(2**31))
    col = view.fog(scale_colour(base, view.lighting.face_light(0.0, -1.0)), z)
    p1, p2 = camera.project(x1, 0.0, z), camera.project(x2, height, z)
    if p2[0] < 0 or p1[0] > camera.width:
        return
    view.canvas.poly([p1, (p2[0], p1[1]), p2, (p1[0], p2[1])], col, BUILDING)
    starts = np.arange(x1 + 1.0, x2 - 1.6, spacing)
    sills = np.arange(first_sill, height - 1.8, floor_height)
    if len(starts) and len(sills):
        paint_window_grid(
            view, lambda a, y: (a, y, z), starts, 0.55 * spacing, sills, window_height, col, z, shop < 0.3, seed
        )


def paint_building_row(view: StreetView, side: int, facade: float) -> None:
    """Buildings of random lengths and heights along the facade plane ``facade`` of ``side``, from near the camera to
    the street's end, leaving the cross street and a few alleys open; painted farthest first. A scene's poster
    (``view.poster``) that goes on this row is painted right after its facade."""
    rng, layout = view.rng, view.layout
    crossing = layout.crossing
    z = rng.uniform(0.5, 6.0)
    segments: list[tuple[float, float, float]] = []
    while z < layout.street_end:
        if crossing is not None and crossing[0] - 1 < z < crossing[1] + 1:
            z = crossing[1] + 1.0
            continue
        length = rng.uniform(8.0, 32.0)
        z2 = min(z + length, layout.street_end)
        if crossing is not None and z < crossing[0] - 1 < z2:
            z2 = crossing[0] - 1.0
        if rng.random() < 0.08:  # alley
            z = z2 + rng.uniform(2, 6)
            continue
        segments.append((z, z2, float(rng.uniform(6.0, 28.0))))
        z = z2
    poster = view.poster
    spot = poster.facade_spot(view, side, facade, segments) if poster is not None else None  # its own stream
    for k in range(len(segments) - 1, -1, -1):
        near, far, height = segments[k]
        x = facade + side * pick(rng, [0.0, 0.0, 0.0, 0.6])
        paint_side_facade(view, side, x, near, far, height)
        if poster is not None and spot is not None and spot[0] == k:  # over the facade, under all that is nearer
            poster.paint_on_facade(view, side, x, spot)


def paint_side_facade(view: StreetView, side: int, x: float, near: float, far: float, height: float) -> None:
    """A facade along the street in the plane ``x`` from depth ``near`` to ``far``, ``height`` metres tall: its end
    wall, wall, shop band, cornice and windows."""
    rng, canvas, camera, lighting = view.rng, view.canvas, view.camera, view.lighting
    proj = camera.project
    z_mid = 0.5 * (near + far)
    base = facade_colour(rng)
    col = view.fog(scale_colour(base, lighting.face_light(-side, 0.0)), z_mid)
    near_c = max(near, 0.4)  # clipped in front of the camera
    if near > 1.0:  # end wall facing the camera (hidden when the nearer building is taller)
        wall = view.fog(scale_colour(base, lighting.face_light(0.0, -1.0)), near)
        canvas.poly(
            [proj(x, 0, near), proj(x + side * 20, 0, near), proj(x + side * 20, height, near), proj(x, height, near)],
            wall,
            BUILDING,
        )
    canvas.poly([proj(x, 0, near_c), proj(x, 0, far), proj(x, height, far), proj(x, height, near_c)], col, BUILDING)
    # ground-floor band (shops) and cornice
    if rng.random() < 0.45:
        band = view.fog(scale_colour(shared_colour(rng, 10), lighting.face_light(-side, 0.0)), z_mid)
        canvas.poly([proj(x, 0, near_c), proj(x, 0, far), proj(x, 3.6, far), proj(x, 3.6, near_c)], band)
    cornice = scale_colour(col, 0.8)
    canvas.poly(
        [proj(x, height - 0.5, near_c), proj(x, height - 0.5, far), proj(x, height, far), proj(x, height, near_c)],
        cornice,
    )
    # windows: a grid along the facade, projected exactly
    spacing = rng.uniform(2.2, 3.6)
    starts = np.arange(max(near, 0.8) + 0.9, far - 1.5, spacing)
    sills = np.arange(rng.uniform(3.9, 4.6), height - 1.9, rng.uniform(2.9, 3.6))
    if len(starts):
        paint_window_grid(
            view,
            lambda a, y: (x, y, a),
            starts,
            rng.uniform(0.4, 0.6) * spacing,
            sills,
            rng.uniform(1.2, 1.8),
            col,
            z_mid,
            rng.random() < 0.5,
            int(rng.integers(2**31)),
        )
