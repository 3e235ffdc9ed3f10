"""Street furniture on the sidewalks: street lamps, traffic signs (round, rectangular, triangular, diamond, or seen
from the back), traffic lights and bollards.

Each is a deferred object painted from its own seed. Poles, lamp heads and bollards are labelled pole; sign plates
and traffic-light housings sign and traffic light; the symbols on them and the lamps are image only.
"""

from __future__ import annotations

import math
from functools import partial

import numpy as np

from .classes import LIGHT, POLE, SIGN
from .geometry import Point
from .palette import Color, scale_colour
from .street_view import StreetView

__all__ = ["add_pole", "draw_pole"]


def add_pole(view: StreetView, x: float, z: float, kind: str, side: int, col: Color) -> None:
    """Defer a pole of ``kind`` "lamp", "sign", "light" or "bollard" at (x, z) on ``side`` of the street."""
    seed = int(view.rng.integers(2**31))
    view.defer(math.hypot(x, z) - 0.1, partial(draw_pole, view, x, z, kind, side, col, seed))


def _rect(u: float, v: float, half_width: float, half_height: float) -> list[Point]:
    """Corners of an axis-aligned rectangle centred at (u, v) in the image."""
    return [
        (u - half_width, v - half_height),
        (u + half_width, v - half_height),
        (u + half_width, v + half_height),
        (u - half_width, v + half_height),
    ]


def draw_pole(view: StreetView, x: float, z: float, kind: str, side: int, col: Color, seed: int) -> None:
    """A pole and what it carries; lamp arms reach over the road (away from ``side``)."""
    camera = view.camera
    if z < 0.8 or not camera.in_view(x, 2.5, z):
        return
    rng, canvas = np.random.default_rng(seed), view.canvas
    px_per_m = camera.focal / z
    view.light_object_at(x)
    col = view.fog(col, z)
    if kind == "bollard":
        canvas.line([camera.project(x, 0, z), camera.project(x, 0.9, z)], max(1.0, 0.15 * px_per_m), col, POLE)
        return
    # the three heights are drawn whatever the kind, which keeps the random stream
    heights = {"lamp": rng.uniform(6.0, 9.0), "sign": rng.uniform(2.2, 3.0), "light": rng.uniform(2.8, 3.6)}
    height = heights[kind]
    width = max(1.0, (0.16 if kind == "lamp" else 0.1) * px_per_m)
    base = camera.project(x, 0, z)
    canvas.line([base, camera.project(x, height, z)], width, col, POLE)
    if kind == "lamp":
        arm = rng.uniform(0.8, 2.2)
        tip = camera.project(x - side * arm, height + 0.2, z)
        canvas.line([camera.project(x, height - 0.3, z), tip], max(1.0, 0.1 * px_per_m), col, POLE)
        canvas.ellipse(tip[0], tip[1] + 0.1 * px_per_m, 0.35 * px_per_m, 0.12 * px_per_m, scale_colour(col, 1.2), POLE)
    elif kind == "sign":
        sign_u, sign_v = camera.project(x, height + 0.35, z)
        _draw_sign(view, rng, sign_u, sign_v, 0.33 * px_per_m, z)
    else:
        box_u, box_v = camera.project(x, height + 0.5, z)
        _draw_traffic_light(view, rng, box_u, box_v, px_per_m, z)


def _draw_sign(view: StreetView, rng: np.random.Generator, u: float, v: float, rad: float, z: float) -> None:
    """A sign plate of radius ``rad`` pixels centred at (u, v): one of five shapes, or its grey back."""
    canvas = view.canvas
    shape = int(rng.integers(5))
    back = rng.random() < 0.15
    red, white, blue, yellow = (200, 30, 35), (235, 235, 235), (30, 80, 170), (240, 200, 30)
    rim = [red, red, blue, white, yellow][shape]
    inner = [white, red, blue, blue, yellow][shape]
    if back:
        rim = inner = (150, 150, 150)
    rim, inner = view.fog(rim, z), view.fog(inner, z)
    if shape <= 2:  # round: prohibition, no entry, mandatory
        canvas.ellipse(u, v, rad, rad, rim, SIGN)
        canvas.ellipse(u, v, rad * 0.75, rad * 0.75, inner)
        if shape == 1 and not back:
            canvas.poly(_rect(u, v, rad * 0.6, rad * 0.15), white)
    elif shape == 3:  # rectangular information sign
        canvas.poly(_rect(u, v, rad, rad * 0.8), rim if back else blue, SIGN)
        if not back:
            canvas.poly(_rect(u, v, rad * 0.8, rad * 0.6), white)
    elif rng.random() < 0.5:  # warning triangle
        outer = [(u, v - rad * 1.1), (u + rad * 1.1, v + rad * 0.8), (u - rad * 1.1, v + rad * 0.8)]
        canvas.poly(outer, red if not back else rim, SIGN)
        centre = [(u, v - rad * 0.5), (u + rad * 0.6, v + rad * 0.55), (u - rad * 0.6, v + rad * 0.55)]
        canvas.poly(centre, white if not back else rim)
    else:  # priority diamond
        outer = [(u, v - rad), (u + rad, v), (u, v + rad), (u - rad, v)]
        canvas.poly(outer, white if not back else rim, SIGN)
        centre = [(u, v - rad * 0.6), (u + rad * 0.6, v), (u, v + rad * 0.6), (u - rad * 0.6, v)]
        canvas.poly(centre, yellow if not back else rim)


def _draw_traffic_light(
    view: StreetView, rng: np.random.Generator, u: float, v: float, px_per_m: float, z: float
) -> None:
    """A traffic-light housing centred at (u, v) with three lamps, one of them on."""
    canvas = view.canvas
    housing = view.fog((40, 42, 40) if rng.random() < 0.7 else (200, 170, 40), z)
    half_width, half_height = 0.17 * px_per_m, 0.5 * px_per_m
    canvas.poly(_rect(u, v, half_width, half_height), housing, LIGHT)
    on = int(rng.integers(3))
    for i, lamp in enumerate(((230, 40, 30), (240, 180, 20), (40, 220, 90))):
        c = lamp if i == on else scale_colour(lamp, 0.3)
        canvas.ellipse(u, v + (i - 1) * 0.32 * px_per_m, half_width * 0.7, half_width * 0.7, view.fog(c, z))
