"""The ground plane: road, kerbs, sidewalks, grass strips and park ground, the cross street, road markings (lane lines,
edge lines, zebra crossings; paint is labelled road), repaired patches, and the buildings' shade over the street.

Ground polygons run from below the image (``Camera.ground_start_z``) to ``Z_FAR``, on the horizon to within a pixel.
"""

from __future__ import annotations

import numpy as np

from .classes import ROAD, SIDEWALK, TERRAIN
from .geometry import X_FAR, Z_FAR
from .palette import Color, clip_colour, mix_colours, scale_colour, shared_colour
from .street_view import StreetView

__all__ = ["paint_ground"]


def paint_ground(view: StreetView) -> None:
    """Paint the ground bands across the street, then the markings, then the shade (light layer)."""
    rng, canvas, camera, layout = view.rng, view.canvas, view.camera, view.layout
    z_near, z_far, x_far = camera.ground_start_z, Z_FAR, X_FAR
    if rng.random() < 0.25:
        sidewalk = shared_colour(rng, 10)
    else:
        sidewalk = clip_colour(np.array([150, 148, 142]) + rng.normal(0, 22, 3))
    terrain = clip_colour(np.array([110, 140, 70]) + rng.normal(0, 20, 3)) if rng.random() < 0.8 else (150, 135, 95)
    road = clip_colour(np.array([88, 86, 90]) + rng.normal(0, 5, 3) + rng.normal(0, 22))
    for side, x_out in ((-1, -x_far), (1, x_far)):
        facade, kerb, grass = layout.facade(side), layout.kerb(side), layout.grass(side)
        outer_cls, outer_col = (TERRAIN, terrain) if layout.kind(side) != "buildings" else (SIDEWALK, sidewalk)
        canvas.poly(camera.ground_quad(x_out, facade, z_near, z_far), outer_col, outer_cls)
        canvas.poly(camera.ground_quad(facade, kerb + side * grass, z_near, z_far), sidewalk, SIDEWALK)
        if grass > 0:
            canvas.poly(camera.ground_quad(kerb + side * grass, kerb, z_near, z_far), terrain, TERRAIN)
        kerb_stone = scale_colour(sidewalk, 1.15)
        canvas.poly(camera.ground_quad(kerb, kerb + side * 0.25, z_near, z_far), kerb_stone, SIDEWALK)
    canvas.poly(camera.ground_quad(layout.kerb_left, layout.kerb_right, z_near, z_far), road, ROAD)
    if layout.crossing is not None:
        z1, z2 = layout.crossing
        canvas.poly(camera.ground_quad(-x_far, x_far, z1, z2), road, ROAD)
    _paint_markings(view, road)
    if view.lighting.shaded_side != 0:  # the sun side of the street lies in the buildings' shadow
        x_in = layout.facade_left - 1 if view.lighting.shaded_side < 0 else layout.facade_right + 1
        shade = camera.ground_quad(x_in, view.lighting.shade_edge, camera.ground_start_z, Z_FAR)
        canvas.shadow(shade, view.lighting.shade_light)


def _paint_markings(view: StreetView, road: Color) -> None:
    """Road markings (paint is road, image only), repaired patches, lane lines, edge lines, the zebra crossing."""
    rng, canvas, camera, layout = view.rng, view.canvas, view.camera, view.layout
    z_near = camera.ground_start_z
    paint = clip_colour((230, 230, 225)) if rng.random() < 0.85 else clip_colour((220, 190, 80))
    paint = mix_colours(paint, road, rng.uniform(0.0, 0.45))
    for _ in range(int(rng.integers(0, 4))):  # repaired patches
        x0, z0 = rng.uniform(layout.kerb_left, layout.kerb_right), rng.uniform(camera.nearest_ground_z, 60)
        canvas.poly(
            camera.ground_quad(x0, x0 + rng.uniform(0.5, 3), z0, z0 + rng.uniform(1, 8)),
            scale_colour(road, rng.uniform(0.8, 1.15)),
        )
    dash, gap = rng.uniform(2.0, 4.0), rng.uniform(4.0, 9.0)
    offset = rng.uniform(0, dash + gap)
    lane_lines = [layout.lane_centres[i] + layout.lane_width / 2 for i in range(layout.n_lanes - 1)]
    for i, x_line in enumerate(lane_lines):
        solid = layout.n_lanes == 2 and i == 0 and rng.random() < 0.3
        if solid:
            spans = [(z_near, 200.0)]
        else:
            spans = [(z, z + dash) for z in np.arange(z_near - offset, 200.0, dash + gap) if z + dash > z_near]
        for z1, z2 in spans:
            if layout.crossing is not None and z2 > layout.crossing[0] and z1 < layout.crossing[1]:
                continue
            canvas.poly(camera.ground_quad(x_line - 0.08, x_line + 0.08, max(z1, z_near), z2), paint)
    edges = (layout.kerb_left + layout.parking_left, layout.kerb_right - layout.parking_right)
    for x_edge in edges:  # edge lines next to parking lanes
        if rng.random() < 0.5:
            canvas.poly(camera.ground_quad(x_edge - 0.06, x_edge + 0.06, z_near, 200.0), paint)
    if layout.zebra is not None:
        z1, z2 = layout.zebra
        x = layout.kerb_left + 0.3
        while x < layout.kerb_right - 0.5:
            canvas.poly(camera.ground_quad(x, x + 0.5, z1, z2), paint)
            x += 1.0
