"""Vehicles: cars, vans, trucks, buses and trams as oriented boxes in exact perspective, with cabins, windows, lights,
wheels and contact shadows.

A vehicle is a deferred object: ``add_vehicle`` draws its size and puts it in painter's order by the nearest distance
from the camera to its footprint; ``draw_vehicle`` paints it from its own seed. Far vehicles are a single box.
"""

from __future__ import annotations

import math
from functools import partial

import numpy as np

from .classes import BUS, CAR, TRAIN, TRUCK
from .geometry import UNIT_CIRCLE, Point, Point3, Quad
from .palette import Color, clip_colour, scale_colour, shared_colour
from .sampling import pick
from .street_view import StreetView

__all__ = ["add_vehicle", "draw_vehicle", "face_subquad", "paint_box"]

#: Class of each vehicle kind.
VEHICLE_CLASSES = {"car": CAR, "van": CAR, "truck": TRUCK, "bus": BUS, "tram": TRAIN}


def add_vehicle(view: StreetView, x: float, z: float, yaw: float, kind: str) -> None:
    """Defer a vehicle of ``kind`` ("car", "van", "truck", "bus", "tram") whose near end is at depth ``z``.

    ``yaw`` 0 drives away from the camera. Vehicles reaching closer than 1 m to the camera are dropped.
    """
    rng = view.rng
    if kind == "car":
        dims = (rng.uniform(3.8, 4.9), rng.uniform(1.65, 1.9), rng.uniform(1.35, 1.6))
    elif kind == "van":
        dims = (rng.uniform(4.6, 5.4), rng.uniform(1.9, 2.05), rng.uniform(1.9, 2.3))
    elif kind == "truck":
        dims = (rng.uniform(6.5, 10.0), rng.uniform(2.3, 2.5), rng.uniform(3.0, 3.8))
    elif kind == "bus":
        dims = (rng.uniform(10.5, 12.5), 2.55, rng.uniform(2.9, 3.2))
    else:
        dims = (rng.uniform(20.0, 30.0), 2.4, 3.3)
    length, width, _ = dims
    cos_yaw, sin_yaw = math.cos(yaw), math.sin(yaw)
    z = z + abs(length / 2 * cos_yaw) + abs(width / 2 * sin_yaw)  # z was the near end; now the centre
    # nearest distance from the camera to the footprint, for painter's order
    cam_across, cam_along = -x * cos_yaw + z * sin_yaw, -x * sin_yaw - z * cos_yaw  # camera in the vehicle frame
    distance = math.hypot(max(abs(cam_across) - width / 2, 0.0), max(abs(cam_along) - length / 2, 0.0))
    # keep every corner in front of the camera
    z_min = z - abs(length / 2 * cos_yaw) - abs(width / 2 * sin_yaw)
    if z_min < 1.0:
        return
    view.defer(distance, partial(draw_vehicle, view, x, z, yaw, kind, dims, int(rng.integers(2**31))))


def paint_box(
    view: StreetView,
    x: float,
    z: float,
    yaw: float,
    length: float,
    width: float,
    bottom: float,
    top: float,
    color: Color,
    cls: int,
    offset: float = 0.0,
    top_scale: float = 1.0,
) -> list[tuple[str, Quad]]:
    """Draw the visible faces of an oriented box (a frustum when ``top_scale`` < 1) centred at (x, z), from height
    ``bottom`` to ``top``, shifted ``offset`` metres along its length.

    Returns the visible faces as (name, corners in metres: bottom-left, bottom-right, top-right, top-left).
    """
    camera, canvas = view.camera, view.canvas
    cos_yaw, sin_yaw = math.cos(yaw), math.sin(yaw)
    hl, hw = length / 2, width / 2  # half length and half width
    shrink_along, shrink_across = top_scale, 1 - (1 - top_scale) * 0.3  # top shrink along and across

    def world(across: float, along: float, y: float) -> Point3:  # box frame (across, along, up) to the world
        along = along + offset
        return (x + across * cos_yaw + along * sin_yaw, y, z - across * sin_yaw + along * cos_yaw)

    out: list[tuple[str, Quad]] = []
    for name, a1, c1, a2, c2, nx, nz in (
        ("front", hw, hl, -hw, hl, sin_yaw, cos_yaw), ("back", -hw, -hl, hw, -hl, -sin_yaw, -cos_yaw),
        ("left", -hw, hl, -hw, -hl, -cos_yaw, sin_yaw), ("right", hw, -hl, hw, hl, cos_yaw, -sin_yaw),
    ):  # fmt: skip
        p1, p2 = world(a1, c1, bottom), world(a2, c2, bottom)
        cx, cz = (p1[0] + p2[0]) / 2, (p1[2] + p2[2]) / 2
        if nx * cx + nz * cz >= 0:  # faces away from the camera
            continue
        q = (
            p1,
            p2,
            world(a2 * shrink_across, c2 * shrink_along, top),
            world(a1 * shrink_across, c1 * shrink_along, top),
        )
        face_col = view.fog(scale_colour(color, view.lighting.face_light(nx, nz)), cz)
        canvas.poly([camera.project(*p) for p in q], face_col, cls)
        out.append((name, q))
    if top < camera.mount_height:  # roof seen from above
        corners = ((-hw, -hl), (hw, -hl), (hw, hl), (-hw, hl))
        roof = [world(a * shrink_across, c * shrink_along, top) for a, c in corners]
        canvas.poly([camera.project(*p) for p in roof], view.fog(scale_colour(color, 1.08), z), cls)
    return out


def face_subquad(view: StreetView, q: Quad, u1: float, u2: float, v1: float, v2: float) -> list[Point]:
    """Sub-quad of a face in its own (u across, v up) 0..1 coordinates, projected."""
    (x0, y0, z0), (x1, y1, z1), _, (x3, y3, z3) = q
    ax, ay, az, bx, by, bz = x1 - x0, y1 - y0, z1 - z0, x3 - x0, y3 - y0, z3 - z0
    proj = view.camera.project
    return [
        proj(x0 + ax * a + bx * b, y0 + ay * a + by * b, z0 + az * a + bz * b)
        for a, b in ((u1, v1), (u2, v1), (u2, v2), (u1, v2))
    ]


def draw_vehicle(
    view: StreetView, x: float, z: float, yaw: float, kind: str, dims: tuple[float, float, float], seed: int
) -> None:
    """A vehicle centred at (x, z) with (length, width, height) ``dims``, and its contact shadow."""
    camera, canvas = view.camera, view.canvas
    length, width, height = dims
    if not camera.in_view(x, 0.5 * (length + width), z + 0.5 * length):
        return
    rng = np.random.default_rng(seed)
    lit = view.light_object_at(x)
    cls = VEHICLE_CLASSES[kind]
    cos_yaw, sin_yaw = math.cos(yaw), math.sin(yaw)
    # contact shadow: the footprint, a little larger
    footprint = []
    for a, c in ((-1, -1), (1, -1), (1, 1), (-1, 1)):
        across, along = a * (width / 2 + 0.25), c * (length / 2 + 0.2)
        footprint.append(
            camera.project(x + across * cos_yaw + along * sin_yaw, 0.0, z - across * sin_yaw + along * cos_yaw)
        )
    canvas.shadow(footprint, min(lit, view.lighting.contact_shadow_light))
    subquad = partial(face_subquad, view)
    if camera.focal * height / z < 8 * camera.pixel_scale:  # far away: one box is enough
        paint_box(view, x, z, yaw, length, width, 0.15, height, shared_colour(rng, 15), cls, top_scale=0.8)
    elif kind in ("car", "van"):
        paint = shared_colour(rng, 15)
        glass = clip_colour(np.array([45, 55, 65]) + rng.normal(0, 10, 3))
        wheel_radius = 0.32
        body_top = 0.95 if kind == "car" else height * 0.55
        faces = paint_box(view, x, z, yaw, length, width, 0.14, body_top, paint, cls)
        if kind == "car":
            cabin = paint_box(
                view,
                x,
                z,
                yaw,
                length * rng.uniform(0.48, 0.58),
                width * 0.9,
                body_top,
                height,
                paint,
                cls,
                offset=-length * 0.05,
                top_scale=rng.uniform(0.55, 0.75),
            )
        else:
            cabin = paint_box(
                view, x, z, yaw, length * 0.98, width, body_top, height, paint, cls, offset=-0.05, top_scale=0.92
            )
        for name, q in cabin:
            if name in ("left", "right"):
                canvas.poly(subquad(q, 0.08, 0.92, 0.1, 0.88), view.fog(glass, z))
            else:
                canvas.poly(subquad(q, 0.06, 0.94, 0.08, 0.9), view.fog(scale_colour(glass, 1.15), z))
        _paint_car_details(view, faces, wheel_radius, length, width, yaw, x, z, cls)
    elif kind == "truck":
        paint = shared_colour(rng, 15)
        cargo = shared_colour(rng, 10) if rng.random() < 0.6 else (225, 225, 220)
        cabin_length = 2.3
        cabin_offset = length / 2 - cabin_length / 2
        cargo_length = length - cabin_length - 0.3
        paint_box(view, x, z, yaw, length * 0.9, width * 0.8, 0.0, 1.0, (30, 30, 32), cls)  # chassis
        paint_box(view, x, z, yaw, cargo_length, width, 0.9, height, cargo, cls, offset=-length / 2 + cargo_length / 2)
        cabin = paint_box(view, x, z, yaw, cabin_length, width, 0.5, min(height, 2.9), paint, cls, offset=cabin_offset)
        for name, q in cabin:
            if name == "front":
                canvas.poly(subquad(q, 0.08, 0.92, 0.55, 0.92), view.fog((50, 60, 70), z))
            elif name in ("left", "right"):
                canvas.poly(subquad(q, 0.15, 0.6, 0.55, 0.9), view.fog((50, 60, 70), z))
    else:  # bus / tram
        if rng.random() < 0.5:
            paint = shared_colour(rng, 10)
        else:
            paint = pick(rng, ((230, 200, 40), (200, 30, 40), (240, 240, 235), (40, 120, 60)))
        floor = 0.3 if kind == "bus" else 0.45
        paint_box(view, x, z, yaw, length * 0.95, width * 0.85, 0.0, floor + 0.1, (30, 30, 32), cls)  # chassis
        faces = paint_box(view, x, z, yaw, length, width, floor, height, paint, cls)
        glass_col = (45, 55, 70)
        for name, q in faces:
            if name in ("left", "right"):
                n = int(length / 1.6)
                for i in range(n):
                    canvas.poly(subquad(q, (i + 0.1) / n, (i + 0.9) / n, 0.5, 0.88), view.fog(glass_col, z))
            else:
                canvas.poly(subquad(q, 0.06, 0.94, 0.45, 0.9), view.fog(glass_col, z))
                canvas.poly(subquad(q, 0.1, 0.25, 0.12, 0.22), view.fog((240, 230, 200), z))
                canvas.poly(subquad(q, 0.75, 0.9, 0.12, 0.22), view.fog((240, 230, 200), z))
        if kind == "tram":  # pantograph
            top = camera.project(x, height + 1.0, z)
            canvas.line([camera.project(x, height, z), top], max(1.0, 0.06 * camera.focal / z), (40, 40, 40), cls)


def _paint_car_details(
    view: StreetView,
    faces: list[tuple[str, Quad]],
    wheel_radius: float,
    length: float,
    width: float,
    yaw: float,
    x: float,
    z: float,
    cls: int,
) -> None:
    """Tyres, tail and head lights, number plate, grille, and wheel discs on the visible flank of a car or van."""
    canvas, proj = view.canvas, view.camera.project
    subquad = partial(face_subquad, view)
    cos_yaw, sin_yaw = math.cos(yaw), math.sin(yaw)
    for name, q in faces:
        z_face = (q[0][2] + q[1][2]) / 2
        if name in ("back", "front"):  # tyres and the dark underside, seen from behind or ahead
            dark = view.fog((28, 28, 30), z_face)
            canvas.poly(subquad(q, 0.03, 0.97, 0.0, 0.12), dark)
            canvas.poly(subquad(q, 0.04, 0.2, 0.0, 0.25), dark)
            canvas.poly(subquad(q, 0.8, 0.96, 0.0, 0.25), dark)
        if name == "back":
            red = view.fog((190, 25, 30), z_face)
            canvas.poly(subquad(q, 0.04, 0.2, 0.55, 0.85), red)
            canvas.poly(subquad(q, 0.8, 0.96, 0.55, 0.85), red)
            canvas.poly(subquad(q, 0.38, 0.62, 0.15, 0.4), view.fog((235, 235, 225), z_face))
        elif name == "front":
            headlight = view.fog((235, 235, 215), z_face)
            canvas.poly(subquad(q, 0.05, 0.22, 0.55, 0.8), headlight)
            canvas.poly(subquad(q, 0.78, 0.95, 0.55, 0.8), headlight)
            canvas.poly(subquad(q, 0.3, 0.7, 0.3, 0.6), view.fog((40, 40, 42), z_face))
        else:  # wheel discs on the visible flank (car), exact perspective
            across = -width / 2 - 0.02 if name == "left" else width / 2 + 0.02
            tyre, hub = view.fog((25, 25, 27), z_face), view.fog((150, 150, 155), z_face)
            for along in (-length * 0.33, length * 0.33):
                for rad, col, label in ((wheel_radius, tyre, cls), (wheel_radius * 0.5, hub, None)):
                    pts = [
                        proj(
                            x + across * cos_yaw + (along + rad * ct) * sin_yaw,
                            wheel_radius + rad * st,
                            z - across * sin_yaw + (along + rad * ct) * cos_yaw,
                        )
                        for ct, st in UNIT_CIRCLE
                    ]
                    canvas.poly(pts, col, label)
