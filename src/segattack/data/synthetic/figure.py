"""Figures: how pedestrians, riders and bikes are described (a 14-joint skeleton, a ``Look``, bike parts) and painted
as weak-perspective sprites standing on the ground.

A figure's own frame is (lateral, up, forward) metres with the feet at the origin; ``draw_figure`` turns it by the
figure's yaw, scales it by the camera's pixels per metre at its depth, and paints legs, torso, coat or skirt,
backpack, arms, bag and head (with hair, face, hat or helmet) in their order of depth, plus any bike parts. A person or
rider is one instance (``Canvas.instance``); a bike is none.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

import numpy as np

from .classes import BICYCLE, MOTORCYCLE
from .geometry import FloatArray, Point, Point3, convex_hull
from .palette import Color
from .street_view import StreetView

__all__ = [
    "ELBOW_L", "ELBOW_R", "FOOT_L", "FOOT_R", "HAND_L", "HAND_R", "HEAD", "HIP_L", "HIP_R", "KNEE_L", "KNEE_R",
    "Look", "NECK", "N_JOINTS", "Part", "SHOULDER_L", "SHOULDER_R", "draw_figure",
]  # fmt: skip

# Joint indices of the figure skeleton; joints are (lateral, up, forward) metres in the figure's own frame.
(HEAD, NECK, SHOULDER_L, SHOULDER_R, ELBOW_L, ELBOW_R, HAND_L, HAND_R, HIP_L, HIP_R, KNEE_L, KNEE_R, FOOT_L,
 FOOT_R) = range(14)  # fmt: skip
N_JOINTS = 14

#: A bike part: kind ("wheel", "body", "line"), points in the figure frame, width (metres), colour. A wheel's one
#: point is its hub; a body is the convex hull of its points; a line is a polyline.
Part = tuple[str, list[Point3], float, Color]


@dataclass
class Look:
    """A pedestrian's or rider's appearance: colours are RGB before shading; ``width`` scales the body's girth."""

    skin: Color
    top: Color
    bottom: Color
    hair: Color
    shoes: Color
    short_sleeves: bool
    shorts: bool
    coat: bool
    skirt: bool
    hat: Color | None
    long_hair: bool
    backpack: Color | None
    bag: Color | None
    child: bool
    width: float
    helmet: Color | None = None


def draw_figure(
    view: StreetView,
    x: float,
    z: float,
    yaw: float,
    joints: FloatArray,
    look: Look,
    scale: float,
    cls: int,
    parts: list[Part],
    figure: bool = True,
) -> None:
    """A person, a rider on a bike, or a bike alone, as a weak-perspective sprite on the ground at (x, z).

    ``joints`` is the (14, 3) skeleton in metres (lateral, up, forward) of the figure's own frame, turned by ``yaw``
    (0: walking away from the camera); ``scale`` is body height / 1.75 m (limb widths); ``parts`` the bike's;
    ``figure`` False paints the bike alone.
    """
    if z < 0.8:
        return
    camera, canvas = view.camera, view.canvas
    px_per_m = camera.focal / z
    foot_u, foot_v = camera.project(x, 0.0, z)
    if foot_u < -3 * px_per_m or foot_u > camera.width + 3 * px_per_m:
        return
    lit = view.light_object_at(x)
    cos_yaw, sin_yaw = math.cos(yaw), math.sin(yaw)
    fog = partial(view.fog, z=z)

    def to_image(p: FloatArray | Sequence[float]) -> Point:
        """Image position of a point of the figure frame."""
        return (foot_u + (p[0] * cos_yaw + p[2] * sin_yaw) * px_per_m, foot_v - p[1] * px_per_m)

    def depth(p: FloatArray | Sequence[float]) -> float:
        """Depth of a point of the figure frame relative to the feet (metres away from the camera)."""
        return -p[0] * sin_yaw + p[2] * cos_yaw

    half_extent = 0.35 if not parts else 0.3 + 0.5 * abs(sin_yaw)  # half the footprint across the view
    # contact shadow: an ellipse on the ground, foreshortened with depth
    shadow_light = min(lit, view.lighting.contact_shadow_light + 20)
    ry_shadow = half_extent * px_per_m * camera.mount_height / z
    canvas.shadow_ellipse(foot_u, foot_v, half_extent * px_per_m, ry_shadow, shadow_light)
    strokes: list[tuple[float, int, Callable[[], None]]] = []  # (depth, order added, paint)

    def add(d: float, paint: Callable[[], None]) -> None:
        strokes.append((d, len(strokes), paint))

    def paint_strokes() -> None:  # farthest first; ties in the order added
        for _, _, paint in sorted(strokes, key=lambda o: (-o[0], o[1])):
            paint()

    bike_cls = MOTORCYCLE if any(p[0] == "body" for p in parts) else BICYCLE
    for kind, pts, w, col in parts:
        if kind == "wheel":
            hub_u, hub_v = to_image(pts[0])
            rad = pts[0][1]  # the hub is one radius above the ground
            ring = partial(
                canvas.ring,
                hub_u,
                hub_v,
                rad * abs(sin_yaw) * px_per_m,
                rad * px_per_m,
                w * px_per_m,
                fog(col),
                bike_cls,
            )
            add(depth(pts[0]) + 0.02, ring)
        elif kind == "body":
            hull = convex_hull([to_image(p) for p in pts])
            if len(hull) >= 3:
                add(sum(depth(p) for p in pts) / len(pts) + 0.01, partial(canvas.poly, hull, fog(col), bike_cls))
        else:
            add(
                sum(depth(p) for p in pts) / len(pts) + 0.02,
                partial(canvas.line, [to_image(p) for p in pts], w * px_per_m, fog(col), bike_cls),
            )
    if not figure:
        paint_strokes()
        return
    s, girth = scale, look.width  # body scale (height / 1.75 m) and girth
    skin, top, bottom = fog(look.skin), fog(look.top), fog(look.bottom)
    hair, shoes = fog(look.hair), fog(look.shoes)
    shin_col = skin if look.shorts or look.skirt else bottom
    # legs
    leg_depths = []
    for hip, knee, foot in ((HIP_L, KNEE_L, FOOT_L), (HIP_R, KNEE_R, FOOT_R)):
        d = (depth(joints[hip]) + depth(joints[knee]) + depth(joints[foot])) / 3 + 0.05
        leg_depths.append(d)
        add(
            d,
            partial(
                canvas.line, [to_image(joints[hip]), to_image(joints[knee])], 0.15 * s * girth * px_per_m, bottom, cls
            ),
        )
        add(
            d,
            partial(
                canvas.line,
                [to_image(joints[knee]), to_image(joints[foot])],
                0.11 * s * girth * px_per_m,
                shin_col,
                cls,
            ),
        )
        heel, toe = (
            joints[foot] + np.array([0, -0.03 * s, -0.05 * s]),
            joints[foot] + np.array([0, -0.03 * s, 0.14 * s]),
        )
        add(d, partial(canvas.line, [to_image(heel), to_image(toe)], 0.08 * s * px_per_m, shoes, cls))
    # torso (a polygon across the shoulder and hip lines)
    shoulder_mid, hip_mid = (joints[SHOULDER_L] + joints[SHOULDER_R]) / 2, (joints[HIP_L] + joints[HIP_R]) / 2
    shoulder_px, hip_px = np.array(to_image(shoulder_mid)), np.array(to_image(hip_mid))
    axis = shoulder_px - hip_px
    axis = axis / (np.hypot(*axis) + 1e-9)  # up the torso, in the image
    across = np.array([-axis[1], axis[0]])
    half_shoulders = (0.2 * abs(cos_yaw) + 0.12 * abs(sin_yaw)) * s * girth * px_per_m
    half_hips = (0.16 * abs(cos_yaw) + 0.11 * abs(sin_yaw)) * s * girth * px_per_m
    half_neck = 0.07 * s * px_per_m
    neck_px = shoulder_px + axis * 0.1 * s * px_per_m  # neck: overlaps the head
    shoulder_line = shoulder_px - axis * 0.04 * s * px_per_m
    torso = [
        neck_px + across * half_neck,
        shoulder_line + across * half_shoulders,
        hip_px + across * half_hips,
        hip_px - across * half_hips,
        shoulder_line - across * half_shoulders,
        neck_px - across * half_neck,
    ]
    add(0.0, partial(canvas.poly, [(float(p[0]), float(p[1])) for p in torso], top, cls))
    if look.coat or look.skirt:
        hem = hip_px - axis * (0.45 if look.coat else 0.38) * s * px_per_m
        half_hem = half_hips * (1.35 if look.skirt else 1.15)
        col = top if look.coat else bottom
        skirt = [
            hip_px + across * half_hips,
            hip_px - across * half_hips,
            hem - across * half_hem,
            hem + across * half_hem,
        ]
        add(min(leg_depths) - 0.001, partial(canvas.poly, [(float(p[0]), float(p[1])) for p in skirt], col, cls))
    if look.backpack is not None:
        pack = shoulder_mid + np.array([0.0, -0.25 * s, -0.16 * s])
        pack_top, pack_bottom = to_image(pack + np.array([0, 0.18 * s, 0])), to_image(pack - np.array([0, 0.2 * s, 0]))
        half_pack = (0.15 * abs(cos_yaw) + 0.1 * abs(sin_yaw)) * s * px_per_m
        outline = [
            (pack_top[0] - half_pack, pack_top[1]),
            (pack_top[0] + half_pack, pack_top[1]),
            (pack_bottom[0] + half_pack, pack_bottom[1]),
            (pack_bottom[0] - half_pack, pack_bottom[1]),
        ]
        add(depth(pack) - 0.01, partial(canvas.poly, outline, fog(look.backpack), cls))
    # arms
    forearm_col = skin if look.short_sleeves else top
    for shoulder, elbow, hand in ((SHOULDER_L, ELBOW_L, HAND_L), (SHOULDER_R, ELBOW_R, HAND_R)):
        d = (depth(joints[shoulder]) + depth(joints[elbow]) + depth(joints[hand])) / 3 - 0.01
        add(
            d,
            partial(
                canvas.line,
                [to_image(joints[shoulder]), to_image(joints[elbow])],
                0.095 * s * girth * px_per_m,
                top,
                cls,
            ),
        )
        add(
            d,
            partial(
                canvas.line, [to_image(joints[elbow]), to_image(joints[hand])], 0.075 * s * px_per_m, forearm_col, cls
            ),
        )
        hand_u, hand_v = to_image(joints[hand])
        add(d, partial(canvas.ellipse, hand_u, hand_v, 0.045 * s * px_per_m, 0.05 * s * px_per_m, skin, cls))
        if look.bag is not None and shoulder == SHOULDER_R and not parts:
            bag = [
                (hand_u - 0.12 * s * px_per_m, hand_v),
                (hand_u + 0.12 * s * px_per_m, hand_v),
                (hand_u + 0.14 * s * px_per_m, hand_v + 0.3 * s * px_per_m),
                (hand_u - 0.14 * s * px_per_m, hand_v + 0.3 * s * px_per_m),
            ]
            add(d - 0.001, partial(canvas.poly, bag, fog(look.bag), cls))
    # head
    head_scale = s * (1.15 if look.child else 1.0)
    head_u, head_v = to_image(joints[HEAD])
    rx = (0.078 * abs(cos_yaw) + 0.095 * abs(sin_yaw)) * head_scale * px_per_m
    ry = 0.115 * head_scale * px_per_m
    face_dir = sin_yaw  # +1 looks right on screen
    facing = cos_yaw < -0.3  # face towards the camera
    helmet = look.helmet

    def head() -> None:
        if look.long_hair and helmet is None:
            canvas.ellipse(
                head_u - face_dir * 0.02 * head_scale * px_per_m,
                head_v + 0.09 * head_scale * px_per_m,
                rx * 1.05,
                ry * 1.05,
                hair,
                cls,
            )
        canvas.ellipse(head_u, head_v, rx, ry, hair if not facing else skin, cls)
        if ry > 2.0 * camera.pixel_scale:  # big enough for a face
            if facing:
                canvas.chord(head_u, head_v - ry * 0.05, rx * 1.02, ry * 0.95, hair)
                canvas.ellipse(head_u, head_v + ry * 0.15, rx * 0.88, ry * 0.8, skin)
            elif abs(sin_yaw) > 0.5:  # profile
                canvas.ellipse(head_u + face_dir * rx * 0.25, head_v + ry * 0.12, rx * 0.72, ry * 0.8, skin)
        covering = helmet if helmet is not None else look.hat
        if covering is not None:
            canvas.chord(
                head_u, head_v - ry * 0.1, rx * 1.12, ry * (1.05 if helmet is not None else 0.98), fog(covering), cls
            )

    add(depth(joints[HEAD]) - 0.3, head)
    with canvas.instance(cls):  # one person or rider: its strokes paint its instance id, the bike's none
        paint_strokes()
