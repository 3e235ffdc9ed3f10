"""The scenery around the street: the skyline closing the street's end and the facades across a cross street, what
lines each side of the street (a row of buildings, a park, or a wall with buildings or trees behind it), and low bands
along the sidewalk (walls, fences with their boards, hedges).

Everything here is painted at once, before the deferred objects on the street; the trees and bushes of parks are
deferred (see ``vegetation``).
"""

from __future__ import annotations

import numpy as np

from .buildings import paint_building_row, paint_front_facade, paint_side_facade
from .classes import FENCE, VEG, WALL
from .geometry import X_FAR
from .palette import FOLIAGE_GREENS, clip_colour, scale_colour, shared_colour
from .sampling import pick
from .street_view import StreetView
from .vegetation import add_bush, add_tree, paint_treeline

__all__ = ["paint_background", "paint_low_band", "paint_park", "paint_street_sides", "paint_wall_row"]


def paint_background(view: StreetView) -> None:
    """The far background: a skyline of frontal facades (or a tree line) at the street's end, and the facades
    across the cross street seen through its gap."""
    rng, camera, layout = view.rng, view.camera, view.layout
    z = layout.street_end
    lo, hi = camera.visible_x(z + 30.0, 10.0)
    if rng.random() < 0.75:  # skyline of frontal facades closing the street
        x = lo - rng.uniform(0, 20)
        while x < hi:
            width = rng.uniform(8.0, 30.0)
            if rng.random() < 0.2:
                paint_treeline(view, x, x + width, z + rng.uniform(-5, 30))
            else:
                paint_front_facade(view, x, x + width, z + rng.uniform(0, 20), rng.uniform(6.0, 35.0))
            x += width
    else:
        paint_treeline(view, lo, hi, z)
    if layout.crossing is not None:  # facades across the cross street, seen through its gap
        z_across = layout.crossing[1] + rng.uniform(1.0, 3.0)
        vis_l, vis_r = camera.visible_x(z_across + 4.0, 10.0)
        for a, b in ((max(vis_l, -X_FAR), layout.facade_left), (layout.facade_right, min(vis_r, X_FAR))):
            x = a
            while x < b:
                width = rng.uniform(10.0, 30.0)
                paint_front_facade(view, x, min(b, x + width), z_across + rng.uniform(0, 4), rng.uniform(8.0, 28.0))
                x += width


def paint_street_sides(view: StreetView) -> None:
    """Both sides of the street, each as its layout says: buildings, a park or a wall."""
    for side in (-1, 1):
        kind, facade = view.layout.kind(side), view.layout.facade(side)
        if kind == "buildings":
            paint_building_row(view, side, facade)
        elif kind == "park":
            paint_park(view, side, facade)
        else:
            paint_wall_row(view, side, facade)


def paint_park(view: StreetView, side: int, facade: float) -> None:
    """A park beyond the sidewalk: a tree line behind, maybe a hedge, wall or fence, and (deferred) trees and bushes."""
    rng = view.rng
    paint_treeline(view, facade + side * 400, facade + side * rng.uniform(15, 60), rng.uniform(60, 200))
    if rng.random() < 0.5:  # hedge or low wall/fence along the sidewalk
        cls = int(pick(rng, [VEG, WALL, FENCE]))
        paint_low_band(view, side, facade, cls, rng.uniform(0.6, 1.8))
    for _ in range(int(rng.integers(4, 14))):
        x = facade + side * rng.uniform(1.0, 35.0)
        z = float(np.exp(rng.uniform(np.log(6.0), np.log(120.0))))
        add_tree(view, x, z)
    for _ in range(int(rng.integers(0, 6))):  # bushes
        x = facade + side * rng.uniform(0.5, 20.0)
        z = rng.uniform(5.0, 80.0)
        col = FOLIAGE_GREENS[int(rng.integers(len(FOLIAGE_GREENS)))]
        add_bush(view, x, z, rng.uniform(0.5, 1.5), col)


def paint_wall_row(view: StreetView, side: int, facade: float) -> None:
    """A wall or fence along the sidewalk, with set-back buildings or a tree line behind it."""
    rng = view.rng
    cls = int(pick(rng, [WALL, FENCE]))
    if rng.random() < 0.5:
        setback = rng.uniform(20, 60)
        paint_side_facade(
            view, side, facade + side * setback, rng.uniform(10, 30), view.layout.street_end, rng.uniform(8, 25)
        )
    else:
        paint_treeline(view, facade + side * 400, facade + side * 5, rng.uniform(40, 120))
    paint_low_band(view, side, facade, cls, rng.uniform(1.0, 2.6))


def paint_low_band(view: StreetView, side: int, x: float, cls: int, height: float) -> None:
    """A wall, fence or hedge along the plane ``x``, from near the camera to the street end."""
    rng, canvas, camera, layout = view.rng, view.canvas, view.camera, view.layout
    proj = camera.project
    if cls == VEG:
        col = FOLIAGE_GREENS[int(rng.integers(len(FOLIAGE_GREENS)))]
    elif cls == WALL:
        col = clip_colour(np.array([160, 155, 145]) + rng.normal(0, 25, 3))
    elif rng.random() < 0.4:
        col = shared_colour(rng, 15)
    else:
        col = clip_colour(np.array([120, 90, 60]) + rng.normal(0, 20, 3))
    col = scale_colour(col, view.lighting.face_light(-side, 0.0))
    z1, z2 = 0.4, layout.street_end
    if layout.crossing is not None:
        spans = [(z1, layout.crossing[0] - 1), (layout.crossing[1] + 1, z2)]
    else:
        spans = [(z1, z2)]
    for a, b in spans:
        canvas.poly([proj(x, 0, a), proj(x, 0, b), proj(x, height, b), proj(x, height, a)], col, cls)
        if cls == FENCE:  # boards or posts, image only
            post = scale_colour(col, 0.7)
            step = rng.uniform(0.15, 2.5)
            for z_post in np.arange(a, min(b, 60.0), step):
                if camera.focal * step / z_post < 2.5 * camera.pixel_scale:
                    break
                line = [proj(x, 0, z_post), proj(x, height, z_post)]
                canvas.line(line, max(1.0, camera.focal * 0.05 / z_post), post)
        if cls == WALL:  # coping stones
            coping = [proj(x, height - 0.12, a), proj(x, height - 0.12, b), proj(x, height, b), proj(x, height, a)]
            canvas.poly(coping, scale_colour(col, 1.15))
