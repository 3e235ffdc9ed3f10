"""Procedural street scenes in the Cityscapes label space: the embedded default data set.

Each scene is a view down a street from a car-mounted camera (pinhole, horizon inside the image): sky with clouds,
road in perspective with lane markings and crossings, sidewalks, building rows with windows, parks (terrain, trees),
walls and fences, poles, street lamps, traffic lights and signs, parked and moving cars, trucks, buses, trams,
bicycles and motorcycles with their riders, and pedestrians at every scale from about 10 px to most of the image
height, alone and in groups, partly hidden behind cars and poles. Objects are placed on the ground plane in metres
and projected, so farther objects are smaller and closer to the horizon, and everything scales with the image height:
the same scene looks the same at any resolution.

Pedestrians cannot be told apart by one trivial cue: clothing, hair and hat colours are drawn from a palette shared
with cars, buildings and vegetation, skin tones vary widely, sizes and poses (walking, standing, waving, phoning,
carrying bags and backpacks, coats and skirts, children) vary, and the view angle goes from front to back to side.

Image and label are painted with the very same masks, back to front (painter's order), so the label is exactly what
is drawn. Shading, shadows, texture, optical blur and sensor noise change only the image. No pixel is ignore (255).

A scene is a pure function of ``(seed, split, index)``: item ``i`` of split ``s`` draws from
``numpy.random.SeedSequence([seed, code(s), i])``, so ``train`` and ``val`` are disjoint random streams.
The geometry is in metres and the camera scales with the image height, so item ``i`` is the same scene at every
resolution of one aspect ratio (labels agree on about 98% of pixels between 128x256 and 256x512); different aspect
ratios see different slices of the street. Rendering takes about 15 ms per 256x512 image on one CPU core (Pillow's
ImageDraw for the shapes, numpy for shading and noise).

>>> ds = SyntheticStreets("val", size=(64, 128), length=3)
>>> image, label = ds[0]
>>> image.dtype, tuple(image.shape), label.dtype, tuple(label.shape)
(torch.uint8, (3, 64, 128), torch.int64, (64, 128))
>>> ds.image_id(2)
'val_000002'
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

import numpy as np
import torch
from numpy.typing import NDArray
from PIL import Image, ImageDraw, ImageFilter
from torch import Tensor
from torch.utils.data import Dataset

from .labels import NUM_CLASSES

__all__ = ["SPLITS", "SyntheticStreets", "render_scene", "scene_rng"]

#: Split name -> code mixed into the seed sequence; different codes give disjoint random streams.
SPLITS: dict[str, int] = {"train": 1, "val": 2}

(ROAD, SIDEWALK, BUILDING, WALL, FENCE, POLE, LIGHT, SIGN, VEG, TERRAIN, SKY, PERSON, RIDER, CAR, TRUCK, BUS, TRAIN,
 MOTORCYCLE, BICYCLE) = range(NUM_CLASSES)  # fmt: skip

T = TypeVar("T")
Color = tuple[int, int, int]
Point = tuple[float, float]
FloatArray = NDArray[np.float64]
P3 = tuple[float, float, float]
Quad = tuple[P3, P3, P3, P3]
Part = tuple[str, list[P3], float, Color]  # bike part: kind ("wheel", "body", "line"), points, width, colour

_CIRCLE = tuple((math.cos(t), math.sin(t)) for t in np.linspace(0.0, 2 * math.pi, 12, endpoint=False))
_Z_FAR = 3000.0  # metres; ground polygons end here (on the horizon to within a pixel)
_X_FAR = 300.0  # metres; lateral extent of ground and skyline polygons

# Colours shared by clothing, cars, facades, signs, bags: no colour belongs to one class only.
_SHARED: tuple[Color, ...] = (
    (235, 235, 230), (28, 28, 32), (150, 152, 156), (92, 94, 100), (38, 52, 96), (165, 32, 36), (42, 74, 48),
    (205, 188, 152), (122, 82, 52), (88, 110, 142), (205, 160, 40), (112, 52, 112), (128, 64, 128), (70, 70, 70),
    (107, 142, 35), (190, 153, 153), (220, 20, 60), (60, 120, 170), (230, 120, 40), (250, 200, 190), (20, 90, 90),
    (150, 100, 80), (180, 190, 120), (245, 225, 80),
)  # fmt: skip
_SKIN: tuple[Color, ...] = (
    (255, 224, 196),
    (234, 192, 160),
    (214, 160, 120),
    (176, 120, 84),
    (128, 84, 56),
    (84, 54, 38),
)
_HAIR: tuple[Color, ...] = ((20, 16, 14), (60, 40, 28), (110, 72, 40), (196, 160, 96), (150, 150, 150), (140, 60, 30))
_FACADE: tuple[Color, ...] = (
    (200, 190, 170), (170, 160, 150), (220, 210, 190), (150, 90, 70), (180, 120, 90), (120, 120, 125), (90, 90, 95),
    (225, 215, 160), (190, 200, 205), (205, 170, 140), (160, 170, 150), (235, 230, 225), (110, 100, 95),
)  # fmt: skip
_GREEN: tuple[Color, ...] = ((70, 110, 40), (50, 85, 35), (95, 125, 50), (60, 95, 60), (110, 130, 60), (40, 70, 45))


def _c(rgb: Sequence[float] | NDArray[np.floating]) -> Color:
    """Clip to 0..255 and round to an int RGB tuple (what ImageDraw wants)."""
    return (
        int(min(255.0, max(0.0, float(rgb[0])))),
        int(min(255.0, max(0.0, float(rgb[1])))),
        int(min(255.0, max(0.0, float(rgb[2])))),
    )


def _scale(rgb: Color, f: float) -> Color:
    return (min(255, int(rgb[0] * f)), min(255, int(rgb[1] * f)), min(255, int(rgb[2] * f)))


def _mix(a: Color, b: Color, t: float) -> Color:
    """Convex combination of two valid colours (0 <= t <= 1), so no clipping is needed."""
    return (int(a[0] + (b[0] - a[0]) * t), int(a[1] + (b[1] - a[1]) * t), int(a[2] + (b[2] - a[2]) * t))


def _pick(r: np.random.Generator, items: Sequence[T], p: Sequence[float] | None = None) -> T:
    """One of a few ``items``, uniformly or with probabilities ``p`` (much cheaper than ``Generator.choice``)."""
    u = r.random()
    if p is None:
        return items[min(int(u * len(items)), len(items) - 1)]
    acc = 0.0
    for item, q in zip(items, p, strict=True):
        acc += q
        if u < acc:
            return item
    return items[-1]


def _ik(root: FloatArray, target: FloatArray, l1: float, l2: float, bend: float) -> FloatArray:
    """Middle joint of a two-link limb from ``root`` to ``target`` in the (up, forward) plane.

    Points are (lateral, up, forward) metres; ``bend`` +1 puts the joint forward (knees), -1 backward (elbows).
    The lateral coordinate is interpolated.
    """
    d_up, d_fw = target[1] - root[1], target[2] - root[2]
    dist = min(max(math.hypot(d_up, d_fw), abs(l1 - l2) + 1e-3), l1 + l2 - 1e-3)
    a = math.acos(max(-1.0, min(1.0, (l1 * l1 + dist * dist - l2 * l2) / (2 * l1 * dist))))
    ang = math.atan2(d_fw, d_up) - bend * a  # angle from "up" towards "forward"
    t = l1 / (l1 + l2)
    return np.array([root[0] + (target[0] - root[0]) * t, root[1] + l1 * math.cos(ang), root[2] + l1 * math.sin(ang)])


def _hull(points: list[Point]) -> list[Point]:
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


class _Canvas:
    """Two layers painted with the same masks (RGB image, label of train ids), plus a light layer for shadows.

    Primitives with a class id go to the image and the label; without one (details: windows, lights, faces) they
    go to the image only. The light layer (255 = fully lit) holds cast shadows; it darkens ground classes only.
    """

    def __init__(self, h: int, w: int, fill: Color) -> None:
        self.img = Image.new("RGB", (w, h), fill)
        self.lab = Image.new("L", (w, h), SKY)
        self.lit = Image.new("L", (w, h), 255)
        self.di = ImageDraw.Draw(self.img)
        self.dl = ImageDraw.Draw(self.lab)
        self.ds = ImageDraw.Draw(self.lit)

    def poly(self, pts: Sequence[Point], color: Color, cls: int | None = None) -> None:
        self.di.polygon(pts, fill=color)
        if cls is not None:
            self.dl.polygon(pts, fill=cls)

    def ellipse(self, cx: float, cy: float, rx: float, ry: float, color: Color, cls: int | None = None) -> None:
        box = (cx - abs(rx), cy - abs(ry), cx + abs(rx), cy + abs(ry))
        self.di.ellipse(box, fill=color)
        if cls is not None:
            self.dl.ellipse(box, fill=cls)

    def chord(self, cx: float, cy: float, rx: float, ry: float, color: Color, cls: int | None = None) -> None:
        """Upper half of an ellipse (hair, hats, helmets)."""
        box = (cx - abs(rx), cy - abs(ry), cx + abs(rx), cy + abs(ry))
        self.di.chord(box, 180, 360, fill=color)
        if cls is not None:
            self.dl.chord(box, 180, 360, fill=cls)

    def ring(
        self, cx: float, cy: float, rx: float, ry: float, width: float, color: Color, cls: int | None = None
    ) -> None:
        w = max(1, int(round(width)))
        rx, ry = max(abs(rx), 0.5 * w), max(abs(ry), 0.5 * w)
        box = (cx - rx, cy - ry, cx + rx, cy + ry)
        self.di.ellipse(box, outline=color, width=w)
        if cls is not None:
            self.dl.ellipse(box, outline=cls, width=w)

    def line(self, pts: Sequence[Point], width: float, color: Color, cls: int | None = None) -> None:
        w = max(1, int(round(width)))
        joint = "curve" if w > 2 and len(pts) > 2 else None
        self.di.line(pts, fill=color, width=w, joint=joint)
        if cls is not None:
            self.dl.line(pts, fill=cls, width=w, joint=joint)

    def shadow(self, pts: Sequence[Point], lit: int) -> None:
        """Cast shadow on the ground (light layer only)."""
        self.ds.polygon(pts, fill=lit)

    def shadow_ellipse(self, cx: float, cy: float, rx: float, ry: float, lit: int) -> None:
        rx, ry = abs(rx), abs(ry)
        if rx >= 0.5 and ry >= 0.5:
            self.ds.ellipse((cx - rx, cy - ry, cx + rx, cy + ry), fill=lit)


@dataclass
class _Look:
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


# Joint indices of the figure skeleton; joints are (lateral, up, forward) metres in the figure's own frame.
HEAD, NECK, SH_L, SH_R, EL_L, EL_R, HA_L, HA_R, HIP_L, HIP_R, KN_L, KN_R, FT_L, FT_R = range(14)


class _Scene:
    """One random street scene; ``render()`` returns (image (H, W, 3) uint8, label (H, W) int64)."""

    def __init__(self, rng: np.random.Generator, height: int, width: int) -> None:
        self.rng = rng
        self.H, self.W = height, width
        r = rng
        # camera: focal length and horizon scale with the image height; the street runs straight ahead
        self.f = height * r.uniform(1.45, 2.2)
        self.hc = r.uniform(1.2, 1.75)
        self.v0 = height * r.uniform(0.34, 0.5)
        self.u0 = width * r.uniform(0.38, 0.62)
        self.z_vis = self.f * self.hc / (height - self.v0)  # nearest visible ground distance, metres
        self.z_clip = self.f * self.hc / (2.5 * height)  # ground polygons start below the image
        self.px = height / 256.0  # pixels per "reference pixel"
        self.objects: list[tuple[float, Callable[[], None]]] = []
        self.tone = 1.0  # light on the object being drawn: < 1 inside the buildings' shadow

    # ----------------------------------------------------------------- geometry
    def proj(self, x: float, y: float, z: float) -> Point:
        return (self.u0 + self.f * x / z, self.v0 + self.f * (self.hc - y) / z)

    def ground_quad(self, x1: float, x2: float, z1: float, z2: float) -> list[Point]:
        return [self.proj(x1, 0.0, z1), self.proj(x2, 0.0, z1), self.proj(x2, 0.0, z2), self.proj(x1, 0.0, z2)]

    def fog(self, col: Color, z: float) -> Color:
        """Aerial perspective (towards the horizon colour with distance), then the current object's light."""
        out = _mix(col, self.haze, 1.0 - math.exp(-z / self.fog_dist))
        return out if self.tone == 1.0 else _scale(out, self.tone)

    def lit_at(self, x: float) -> int:
        if self.shadow_side == 0:
            return 255
        inside = x < self.shadow_edge if self.shadow_side < 0 else x > self.shadow_edge
        return self.shadow_lit if inside else 255

    def shared(self, jitter: float = 18.0, rng: np.random.Generator | None = None) -> Color:
        """A colour from the palette shared by all classes (or any colour), jittered."""
        r = self.rng if rng is None else rng
        if r.random() < 0.6:
            base = _SHARED[int(r.integers(len(_SHARED)))]
            return _c(np.asarray(base) + r.normal(0.0, jitter, 3))
        if r.random() < 0.5:  # grey-ish
            g = r.uniform(20, 240)
            return _c(np.asarray([g, g, g]) + r.normal(0.0, 8.0, 3))
        return _c(r.uniform(15, 245, 3))

    # ----------------------------------------------------------------- render
    def render(self) -> tuple[NDArray[np.uint8], NDArray[np.int64]]:
        r = self.rng
        self._layout()
        self.cv = self._sky()
        self._ground()
        self._background()
        self._facades()
        self._populate()
        for _, draw in sorted(self.objects, key=lambda o: -o[0]):
            draw()
        return self._finish(r)

    def _layout(self) -> None:
        r = self.rng
        lane = r.uniform(2.8, 3.6)
        n_lanes = int(_pick(r, [1, 2, 2, 2, 3, 4]))
        ego = int(r.integers(n_lanes))
        shift = r.uniform(-0.5, 0.5)
        self.lane_w, self.n_lanes = lane, n_lanes
        self.park_l = 2.2 if r.random() < 0.6 else 0.0
        self.park_r = 2.2 if r.random() < 0.6 else 0.0
        self.road_l = -(ego + 0.5) * lane + shift - self.park_l  # road edges (kerbs), metres
        self.road_r = (n_lanes - ego - 0.5) * lane + shift + self.park_r
        self.lane_x = [-(ego + 0.5) * lane + shift + (i + 0.5) * lane for i in range(n_lanes)]
        self.strip_l = r.uniform(1.0, 2.5) if r.random() < 0.25 else 0.0  # grass strip between road and sidewalk
        self.strip_r = r.uniform(1.0, 2.5) if r.random() < 0.25 else 0.0
        self.walk_l = r.uniform(2.0, 5.5)
        self.walk_r = r.uniform(2.0, 5.5)
        self.face_l = self.road_l - self.strip_l - self.walk_l  # facade planes
        self.face_r = self.road_r + self.strip_r + self.walk_r
        self.side_l = str(_pick(r, ["buildings", "park", "wall"], p=[0.72, 0.16, 0.12]))
        self.side_r = str(_pick(r, ["buildings", "park", "wall"], p=[0.72, 0.16, 0.12]))
        self.z_end = r.uniform(70.0, 260.0)
        self.cross: tuple[float, float] | None = None
        if r.random() < 0.45:
            za = r.uniform(12.0, 45.0)
            self.cross = (za, za + r.uniform(9.0, 16.0))
        self.zebra: tuple[float, float] | None = None
        if self.cross is not None and r.random() < 0.7:
            self.zebra = (self.cross[0] - 4.5, self.cross[0] - 0.5)
        elif r.random() < 0.25:
            z0 = r.uniform(8.0, 35.0)
            self.zebra = (z0, z0 + 4.0)
        # light: sun (hard shadows, one side of the street in shade) or overcast
        self.sunny = r.random() < 0.55
        self.sun = r.uniform(0, 2 * math.pi)
        self.shadow_lit = int(r.uniform(110, 170)) if self.sunny else 255
        self.shadow_side = int(_pick(r, [-1, 1])) if self.sunny and r.random() < 0.7 else 0
        if self.shadow_side < 0:
            self.shadow_edge = self.face_l + r.uniform(1.5, 14.0)
        else:
            self.shadow_edge = self.face_r - r.uniform(1.5, 14.0)
        self.blob_lit = int(r.uniform(120, 175)) if self.sunny else int(r.uniform(170, 215))
        self.fog_dist = r.uniform(150.0, 700.0)

    def face_light(self, nx: float, nz: float) -> float:
        """Brightness factor of a vertical face with outward normal (nx, nz)."""
        d = nx * math.cos(self.sun) + nz * math.sin(self.sun)
        return (0.62 + 0.38 * max(0.0, d)) if self.sunny else (0.82 + 0.12 * d)

    # ----------------------------------------------------------------- sky
    def _sky(self) -> _Canvas:
        """A new canvas with the sky painted: a vertical gradient towards the horizon colour, and soft clouds."""
        r, h, w = self.rng, self.H, self.W
        kind = _pick(r, (0, 1, 2, 3), p=(0.45, 0.3, 0.15, 0.1))
        if kind == 0:  # clear blue
            top, hor = np.array([50, 105, 190]), np.array([175, 205, 235])
        elif kind == 1:  # overcast
            g = r.uniform(150, 215)
            top, hor = np.array([g - 20, g - 12, g]), np.array([g + 25, g + 25, g + 28])
        elif kind == 2:  # hazy warm
            top, hor = np.array([90, 120, 170]), np.array([235, 200, 160])
        else:  # dusk
            top, hor = np.array([40, 50, 95]), np.array([230, 150, 110])
        top = top + r.normal(0, 12, 3)
        hor = hor + r.normal(0, 12, 3)
        self.haze = _c(hor)
        cv = _Canvas(h, w, self.haze)
        rows = min(h, int(math.ceil(self.v0)) + 2)
        if rows == 0:
            return cv
        t = (np.arange(rows, dtype=np.float32) / max(self.v0, 1.0)).clip(0, 1) ** r.uniform(0.6, 1.6)
        grad = top[None, :] * (1 - t[:, None]) + hor[None, :] * t[:, None]  # (rows, 3)
        column = Image.fromarray(grad.clip(0, 255).astype(np.uint8)[:, None, :], "RGB")
        cv.img.paste(column.resize((w, rows), Image.Resampling.NEAREST), (0, 0))
        cover = r.uniform(0.0, 1.0) if kind != 1 else r.uniform(0.0, 0.5)
        if cover > 0.15:  # soft clouds: smooth noise through a ramp, as the alpha of the cloud colour
            # two octaves of smooth noise on a fixed 40x96 grid (resolution-free), through a soft threshold
            field = np.zeros((40, 96), np.float32)
            for (gh, gw), weight in (((5, 12), 0.65), ((10, 24), 0.35)):
                cells = Image.fromarray((r.random((gh, gw)) * 255).astype(np.uint8))
                field += weight * np.asarray(cells.resize((96, 40), Image.Resampling.BICUBIC), np.float32)
            alpha = np.clip((field / 255.0 - (1.0 - 0.5 * cover)) * 2.5, 0.0, 1.0) * 255
            alpha_img = Image.fromarray(alpha.astype(np.uint8)).resize((w, rows), Image.Resampling.BILINEAR)
            cv.img.paste(_c(np.maximum(top, hor) * r.uniform(0.9, 1.1) + 25), (0, 0, w, rows), alpha_img)
        return cv

    # ----------------------------------------------------------------- ground
    def _ground(self) -> None:
        r, cv = self.rng, self.cv
        zc, zf, xf = self.z_clip, _Z_FAR, _X_FAR
        walk = self.shared(10) if r.random() < 0.25 else _c(np.array([150, 148, 142]) + r.normal(0, 22, 3))
        terr = _c(np.array([110, 140, 70]) + r.normal(0, 20, 3)) if r.random() < 0.8 else _c((150, 135, 95))
        road = _c(np.array([88, 86, 90]) + r.normal(0, 5, 3) + r.normal(0, 22))
        for side, x_out in ((-1, -xf), (1, xf)):
            kind = self.side_l if side < 0 else self.side_r
            face = self.face_l if side < 0 else self.face_r
            edge = self.road_l if side < 0 else self.road_r
            strip = self.strip_l if side < 0 else self.strip_r
            outer_cls, outer_col = (TERRAIN, terr) if kind != "buildings" else (SIDEWALK, walk)
            cv.poly(self.ground_quad(x_out, face, zc, zf), outer_col, outer_cls)
            cv.poly(self.ground_quad(face, edge + side * strip, zc, zf), walk, SIDEWALK)
            if strip > 0:
                cv.poly(self.ground_quad(edge + side * strip, edge, zc, zf), terr, TERRAIN)
            cv.poly(self.ground_quad(edge, edge + side * 0.25, zc, zf), _scale(walk, 1.15), SIDEWALK)  # kerb
        cv.poly(self.ground_quad(self.road_l, self.road_r, zc, zf), road, ROAD)
        if self.cross is not None:
            za, zb = self.cross
            cv.poly(self.ground_quad(-xf, xf, za, zb), road, ROAD)
        # road markings (paint is road), patches
        paint = _c((230, 230, 225)) if r.random() < 0.85 else _c((220, 190, 80))
        paint = _mix(paint, road, r.uniform(0.0, 0.45))
        for _ in range(int(r.integers(0, 4))):  # repaired patches
            x0, z0 = r.uniform(self.road_l, self.road_r), r.uniform(self.z_vis, 60)
            cv.poly(
                self.ground_quad(x0, x0 + r.uniform(0.5, 3), z0, z0 + r.uniform(1, 8)),
                _scale(road, r.uniform(0.8, 1.15)),
            )
        dash, gap = r.uniform(2.0, 4.0), r.uniform(4.0, 9.0)
        offset = r.uniform(0, dash + gap)
        bounds = [self.lane_x[i] + self.lane_w / 2 for i in range(self.n_lanes - 1)]
        for i, xb in enumerate(bounds):
            solid = self.n_lanes == 2 and i == 0 and r.random() < 0.3
            zs = (
                [(self.z_clip, 200.0)]
                if solid
                else [
                    (z, z + dash) for z in np.arange(self.z_clip - offset, 200.0, dash + gap) if z + dash > self.z_clip
                ]
            )
            for z1, z2 in zs:
                if self.cross is not None and z2 > self.cross[0] and z1 < self.cross[1]:
                    continue
                cv.poly(self.ground_quad(xb - 0.08, xb + 0.08, max(z1, self.z_clip), z2), paint)
        for xe in (self.road_l + self.park_l, self.road_r - self.park_r):  # edge lines next to parking lanes
            if r.random() < 0.5:
                cv.poly(self.ground_quad(xe - 0.06, xe + 0.06, self.z_clip, 200.0), paint)
        if self.zebra is not None:
            z1, z2 = self.zebra
            x = self.road_l + 0.3
            while x < self.road_r - 0.5:
                cv.poly(self.ground_quad(x, x + 0.5, z1, z2), paint)
                x += 1.0
        if self.shadow_side != 0:  # the sun side of the street lies in the buildings' shadow
            x_in = self.face_l - 1 if self.shadow_side < 0 else self.face_r + 1
            cv.shadow(self.ground_quad(x_in, self.shadow_edge, self.z_clip, _Z_FAR), self.shadow_lit)

    # ----------------------------------------------------------------- far background
    def visible_x(self, z: float, margin: float = 2.0) -> tuple[float, float]:
        """Lateral range (metres) that the image covers at depth ``z``, widened by ``margin`` metres."""
        return (-self.u0 * z / self.f - margin, (self.W - self.u0) * z / self.f + margin)

    def in_view(self, x: float, half_width: float, z: float) -> bool:
        """Whether something ``half_width`` metres either side of lateral ``x`` can show at depth ``z`` or nearer."""
        lo, hi = self.visible_x(z, half_width)
        return lo < x < hi

    def _background(self) -> None:
        r = self.rng
        z = self.z_end
        lo, hi = self.visible_x(z + 30.0, 10.0)
        if r.random() < 0.75:  # skyline of frontal facades closing the street
            x = lo - r.uniform(0, 20)
            while x < hi:
                wd = r.uniform(8.0, 30.0)
                if r.random() < 0.2:
                    self._treeline(x, x + wd, z + r.uniform(-5, 30))
                else:
                    self._front_facade(x, x + wd, z + r.uniform(0, 20), r.uniform(6.0, 35.0))
                x += wd
        else:
            self._treeline(lo, hi, z)
        if self.cross is not None:  # facades across the cross street, seen through its gap
            zb = self.cross[1] + r.uniform(1.0, 3.0)
            vl, vr = self.visible_x(zb + 4.0, 10.0)
            for a, b in ((max(vl, -_X_FAR), self.face_l), (self.face_r, min(vr, _X_FAR))):
                x = a
                while x < b:
                    wd = r.uniform(10.0, 30.0)
                    self._front_facade(x, min(b, x + wd), zb + r.uniform(0, 4), r.uniform(8.0, 28.0))
                    x += wd

    def _treeline(self, x1: float, x2: float, z: float) -> None:
        r, cv = self.rng, self.cv
        col = self.fog(_GREEN[int(r.integers(len(_GREEN)))], z)
        lo, hi = self.visible_x(z, 10.0)
        x1, x2 = max(min(x1, x2), lo), min(max(x1, x2), hi)
        if x2 <= x1:
            return
        n = max(3, int((x2 - x1) / max(3.0, z / 30)))
        xs = np.linspace(x1, x2, n)
        ys = r.uniform(4.0, 14.0, n)
        pts = [self.proj(x1, 0.0, z)] + [self.proj(float(a), float(b), z) for a, b in zip(xs, ys, strict=True)]
        pts.append(self.proj(x2, 0.0, z))
        cv.poly(pts, col, VEG)

    def _window_grid(
        self,
        plane: Callable[[Any, float], tuple[Any, Any, Any]],
        cols: FloatArray,
        ww: float,
        rows: FloatArray,
        wh: float,
        wall: Color,
        depth: float,
        shop: bool,
        seed: int,
    ) -> None:
        """Windows on a facade, image only (windows are building).

        ``plane(along, up)`` maps facade coordinates (metres) to a 3-D point; ``cols`` are the windows' starts along
        the facade, ``rows`` their sill heights. Each floor is one glass band, cut into windows by wall pillars, so a
        facade costs floors + columns polygons; a few windows get their own colour (lit rooms, curtains).
        """
        r, cv = np.random.default_rng(seed), self.cv

        def quad(a1: float, a2: float, y1: float, y2: float) -> list[Point]:
            return [
                self.proj(*plane(a1, y1)),
                self.proj(*plane(a2, y1)),
                self.proj(*plane(a2, y2)),
                self.proj(*plane(a1, y2)),
            ]

        glass = np.array([60, 72, 88]) + r.normal(0, 15, 3)
        n_odd = int(r.binomial(len(cols) * len(rows), 0.1))
        odd = [
            (
                float(cols[int(r.integers(len(cols)))]),
                float(rows[int(r.integers(len(rows)))]),
                r.random(),
                _c(glass + r.normal(0, 40, 3)),
            )
            for _ in range(n_odd)
        ]
        y_mid = float(rows[len(rows) // 2]) if len(rows) else 2.0
        px, _, pz = plane(cols, y_mid)  # facade planes broadcast over arrays
        u1 = self.u0 + self.f * px / pz
        px, _, pz = plane(cols + ww, y_mid)
        u2 = self.u0 + self.f * px / pz
        keep = (np.abs(u2 - u1) > 1.6 * self.px) & (np.maximum(u1, u2) > 0) & (np.minimum(u1, u2) < self.W)
        cols = cols[keep]
        if len(cols) == 0:
            return
        bands = glass + r.normal(0, 6, (len(rows), 3))
        a_lo, a_hi = float(cols[0]), float(cols[-1])
        for y, band in zip(rows.tolist(), bands, strict=True):
            cv.poly(quad(a_lo, a_hi + ww, y, y + wh), self.fog(_c(band), depth))
        if len(rows):
            y_lo, y_hi = float(rows[0]), float(rows[-1]) + wh
            for a, b in zip(cols[:-1].tolist(), cols[1:].tolist(), strict=True):
                cv.poly(quad(a + ww, b, y_lo, y_hi), wall)
        if shop:  # shop windows at street level, with narrow pillars
            cv.poly(quad(a_lo, a_hi + ww, 0.5, 3.0), self.fog(_c(glass * 0.8 + 10), depth))
            for a, b in zip(cols[:-1].tolist(), cols[1:].tolist(), strict=True):
                cv.poly(quad(a + 0.8 * ww, b - 0.2 * ww, 0.5, 3.0), wall)
        for a, y, u, other in odd:  # lit rooms and curtains
            if a_lo <= a <= a_hi:
                cv.poly(quad(a, a + ww, y, y + wh), self.fog((230, 210, 150) if u < 0.5 else other, depth))

    def _front_facade(self, x1: float, x2: float, z: float, height: float) -> None:
        r, cv = self.rng, self.cv
        base = self._facade_color()
        sp, y0, floor, wh, shop = (
            r.uniform(2.2, 3.5),
            r.uniform(3.5, 4.5),
            r.uniform(2.9, 3.5),
            r.uniform(1.2, 1.7),
            r.random(),
        )
        seed = int(r.integers(2**31))
        col = self.fog(_scale(base, self.face_light(0.0, -1.0)), z)
        p1, p2 = self.proj(x1, 0.0, z), self.proj(x2, height, z)
        if p2[0] < 0 or p1[0] > self.W:
            return
        cv.poly([p1, (p2[0], p1[1]), p2, (p1[0], p2[1])], col, BUILDING)
        xs = np.arange(x1 + 1.0, x2 - 1.6, sp)
        ys = np.arange(y0, height - 1.8, floor)
        if len(xs) and len(ys):
            self._window_grid(lambda a, y: (a, y, z), xs, 0.55 * sp, ys, wh, col, z, shop < 0.3, seed)

    def _facade_color(self) -> Color:
        r = self.rng
        if r.random() < 0.2:
            return self.shared(12)
        return _c(np.asarray(_FACADE[int(r.integers(len(_FACADE)))]) + r.normal(0, 12, 3))

    # ----------------------------------------------------------------- side facades
    def _facades(self) -> None:
        for side in (-1, 1):
            kind = self.side_l if side < 0 else self.side_r
            face = self.face_l if side < 0 else self.face_r
            if kind == "buildings":
                self._building_row(side, face)
            elif kind == "park":
                self._park(side, face)
            else:
                self._wall_row(side, face)

    def _building_row(self, side: int, face: float) -> None:
        r = self.rng
        z = r.uniform(0.5, 6.0)
        segs: list[tuple[float, float, float]] = []
        while z < self.z_end:
            if self.cross is not None and self.cross[0] - 1 < z < self.cross[1] + 1:
                z = self.cross[1] + 1.0
                continue
            length = r.uniform(8.0, 32.0)
            z2 = min(z + length, self.z_end)
            if self.cross is not None and z < self.cross[0] - 1 < z2:
                z2 = self.cross[0] - 1.0
            if r.random() < 0.08:  # alley
                z = z2 + r.uniform(2, 6)
                continue
            segs.append((z, z2, float(r.uniform(6.0, 28.0))))
            z = z2
        for za, zb, hb in reversed(segs):
            self._side_facade(side, face + side * _pick(r, [0.0, 0.0, 0.0, 0.6]), za, zb, hb)

    def _side_facade(self, side: int, x: float, za: float, zb: float, hb: float) -> None:
        r, cv = self.rng, self.cv
        zmid = 0.5 * (za + zb)
        base = self._facade_color()
        col = self.fog(_scale(base, self.face_light(-side, 0.0)), zmid)
        za_c = max(za, 0.4)
        if za > 1.0:  # end wall facing the camera (hidden when the nearer building is taller)
            wall = self.fog(_scale(base, self.face_light(0.0, -1.0)), za)
            cv.poly(
                [
                    self.proj(x, 0, za),
                    self.proj(x + side * 20, 0, za),
                    self.proj(x + side * 20, hb, za),
                    self.proj(x, hb, za),
                ],
                wall,
                BUILDING,
            )
        cv.poly(
            [self.proj(x, 0, za_c), self.proj(x, 0, zb), self.proj(x, hb, zb), self.proj(x, hb, za_c)], col, BUILDING
        )
        # ground-floor band (shops) and cornice
        if r.random() < 0.45:
            band = self.fog(_scale(self.shared(10), self.face_light(-side, 0.0)), zmid)
            cv.poly([self.proj(x, 0, za_c), self.proj(x, 0, zb), self.proj(x, 3.6, zb), self.proj(x, 3.6, za_c)], band)
        cornice = _scale(col, 0.8)
        cv.poly(
            [self.proj(x, hb - 0.5, za_c), self.proj(x, hb - 0.5, zb), self.proj(x, hb, zb), self.proj(x, hb, za_c)],
            cornice,
        )
        # windows: a grid along the facade, projected exactly
        sp = r.uniform(2.2, 3.6)
        zs = np.arange(max(za, 0.8) + 0.9, zb - 1.5, sp)
        ys = np.arange(r.uniform(3.9, 4.6), hb - 1.9, r.uniform(2.9, 3.6))
        if len(zs):
            self._window_grid(
                lambda a, y: (x, y, a),
                zs,
                r.uniform(0.4, 0.6) * sp,
                ys,
                r.uniform(1.2, 1.8),
                col,
                zmid,
                r.random() < 0.5,
                int(r.integers(2**31)),
            )

    def _park(self, side: int, face: float) -> None:
        r = self.rng
        self._treeline(face + side * 400, face + side * r.uniform(15, 60), r.uniform(60, 200))
        if r.random() < 0.5:  # hedge or low wall/fence along the sidewalk
            kind = int(_pick(r, [VEG, WALL, FENCE]))
            self._low_band(side, face, kind, r.uniform(0.6, 1.8))
        for _ in range(int(r.integers(4, 14))):
            x = face + side * r.uniform(1.0, 35.0)
            z = float(np.exp(r.uniform(np.log(6.0), np.log(120.0))))
            self.add_tree(x, z)
        for _ in range(int(r.integers(0, 6))):  # bushes
            x = face + side * r.uniform(0.5, 20.0)
            z = r.uniform(5.0, 80.0)
            col = _GREEN[int(r.integers(len(_GREEN)))]
            self.objects.append((math.hypot(x, z), partial(self.draw_bush, x, z, r.uniform(0.5, 1.5), col)))

    def _wall_row(self, side: int, face: float) -> None:
        r = self.rng
        kind = int(_pick(r, [WALL, FENCE]))
        if r.random() < 0.5:
            segs = r.uniform(20, 60)
            self._side_facade(side, face + side * segs, r.uniform(10, 30), self.z_end, r.uniform(8, 25))
        else:
            self._treeline(face + side * 400, face + side * 5, r.uniform(40, 120))
        self._low_band(side, face, kind, r.uniform(1.0, 2.6))

    def _low_band(self, side: int, x: float, cls: int, height: float) -> None:
        """A wall, fence or hedge along the plane ``x``, from near the camera to the street end."""
        r, cv = self.rng, self.cv
        if cls == VEG:
            col = _GREEN[int(r.integers(len(_GREEN)))]
        elif cls == WALL:
            col = _c(np.array([160, 155, 145]) + r.normal(0, 25, 3))
        else:
            col = self.shared(15) if r.random() < 0.4 else _c(np.array([120, 90, 60]) + r.normal(0, 20, 3))
        col = _scale(col, self.face_light(-side, 0.0))
        z1, z2 = 0.4, self.z_end
        if self.cross is not None:
            spans = [(z1, self.cross[0] - 1), (self.cross[1] + 1, z2)]
        else:
            spans = [(z1, z2)]
        for a, b in spans:
            cv.poly(
                [self.proj(x, 0, a), self.proj(x, 0, b), self.proj(x, height, b), self.proj(x, height, a)], col, cls
            )
            if cls == FENCE:  # boards or posts, image only
                post = _scale(col, 0.7)
                step = r.uniform(0.15, 2.5)
                for zp in np.arange(a, min(b, 60.0), step):
                    if self.f * step / zp < 2.5 * self.px:
                        break
                    cv.line([self.proj(x, 0, zp), self.proj(x, height, zp)], max(1.0, self.f * 0.05 / zp), post)
            if cls == WALL:
                cv.poly(
                    [
                        self.proj(x, height - 0.12, a),
                        self.proj(x, height - 0.12, b),
                        self.proj(x, height, b),
                        self.proj(x, height, a),
                    ],
                    _scale(col, 1.15),
                )

    # ----------------------------------------------------------------- populate
    def _populate(self) -> None:
        r = self.rng
        # trees and grass strips
        for side in (-1, 1):
            strip = self.strip_l if side < 0 else self.strip_r
            edge = self.road_l if side < 0 else self.road_r
            face = self.face_l if side < 0 else self.face_r
            kind = self.side_l if side < 0 else self.side_r
            if strip > 0 or r.random() < 0.4:
                x = edge + side * (strip / 2 if strip > 0 else 0.8)
                z = r.uniform(2.0, 14.0)
                step = r.uniform(8.0, 18.0)
                while z < min(self.z_end, 120):
                    if self.cross is None or not (self.cross[0] - 2 < z < self.cross[1] + 2):
                        self.add_tree(x + r.normal(0, 0.2), z)
                    z += step * r.uniform(0.8, 1.2)
            # street lamps along the kerb
            if r.random() < 0.7:
                z = r.uniform(3.0, 20.0)
                step = r.uniform(18.0, 35.0)
                lamp_col = _c(np.array([90, 95, 100]) + r.normal(0, 25, 3))
                while z < min(self.z_end, 150):
                    self.add_pole(edge + side * 0.5, z, "lamp", side, lamp_col)
                    z += step
            for _ in range(int(r.integers(0, 3))):  # signs
                self.add_pole(edge + side * 0.4, r.uniform(self.z_vis, 60.0), "sign", side, (120, 120, 125))
            if r.random() < 0.15:  # bollards
                z = r.uniform(self.z_vis * 0.8, 15)
                for _ in range(int(r.integers(3, 10))):
                    self.add_pole(edge + side * 0.3, z, "bollard", side, _c((70 + r.uniform(0, 120),) * 3))
                    z += r.uniform(1.2, 2.5)
            if kind == "buildings" and r.random() < 0.3:  # a hedge in front of the facade
                self._low_band(side, face + side * -0.4, VEG, r.uniform(0.6, 1.4))
        if self.cross is not None:  # traffic lights at the corners
            za = self.cross[0]
            for side in (-1, 1):
                if r.random() < 0.8:
                    edge = self.road_l if side < 0 else self.road_r
                    self.add_pole(edge + side * 0.5, za - r.uniform(0.5, 2.5), "light", side, (70, 72, 75))
            if r.random() < 0.4:
                self.add_pole(self.road_r + 0.5, self.cross[1] + 1.0, "light", 1, (70, 72, 75))
        self._vehicles()
        self._people()

    def _people(self) -> None:
        r = self.rng
        zmax = 60.0
        lo, hi = np.log(max(self.z_vis * 0.8, 2.5)), np.log(zmax)
        n = int(
            _pick(r, [1, 2, 3, 4, 6, 8, 10, 12, 15, 20], p=[0.04, 0.06, 0.08, 0.1, 0.14, 0.15, 0.14, 0.12, 0.1, 0.07])
        )
        placed = 0
        while placed < n:
            z = float(np.exp(r.uniform(lo, hi)))
            where = r.random()
            side = -1 if r.random() < 0.5 else 1
            edge = self.road_l if side < 0 else self.road_r
            face = self.face_l if side < 0 else self.face_r
            kind = self.side_l if side < 0 else self.side_r
            if where < 0.62:  # sidewalk (or park beyond it)
                if kind == "park" and r.random() < 0.4:
                    x = face + side * r.uniform(0.5, 15.0)
                else:
                    x = r.uniform(min(edge, face) + 0.4, max(edge, face) - 0.4)
                yaw = float(_pick(r, [0.0, math.pi])) + r.normal(0, 0.35) if r.random() < 0.7 else r.uniform(0, 6.3)
            elif where < 0.77:  # crossing the road, at the zebra or the crossing when there is one
                if self.zebra is not None and r.random() < 0.7:
                    z = r.uniform(*self.zebra)
                elif self.cross is not None and r.random() < 0.5:
                    z = r.uniform(self.cross[0] - 2, self.cross[0] + 1)
                x = r.uniform(self.road_l + 0.5, self.road_r - 0.5)
                yaw = float(_pick(r, [-1.0, 1.0])) * math.pi / 2 + r.normal(0, 0.3)
            elif where < 0.9:  # by the kerb, next to parked cars and poles
                x = edge - side * r.uniform(-0.6, 1.6)
                yaw = r.uniform(0, 2 * math.pi)
            else:  # walking on the road side, near the edge
                x = edge - side * r.uniform(0.3, 1.0)
                yaw = float(_pick(r, [0.0, math.pi])) + r.normal(0, 0.2)
            # off-screen at this depth (sidewalks leave the view near the camera): walk it away until it shows
            vis_l, vis_r = self.visible_x(z, -0.3)
            if not vis_l < x < vis_r:
                z = max(z, 1.03 * (x * self.f / (self.W - self.u0) if x > 0 else -x * self.f / self.u0))
            size = min(int(_pick(r, [1, 1, 1, 2, 2, 3, 4])), n - placed)
            for i in range(size):
                dx, dz = (0.0, 0.0) if i == 0 else (r.normal(0, 0.6), r.normal(0, 0.8))
                gyaw = yaw + (r.normal(0, 0.3) if i else 0.0)
                self.add_person(x + dx, max(z + dz, 1.0), gyaw)
            placed += size
        for _ in range(int(_pick(r, [0, 0, 1, 1, 2, 3]))):  # cyclists and motorcyclists
            moto = r.random() < 0.25
            if r.random() < 0.7:
                side = -1 if r.random() < 0.5 else 1
                x = (self.road_l + 0.9 + self.park_l) if side < 0 else (self.road_r - 0.9 - self.park_r)
                if moto:
                    x = float(_pick(r, self.lane_x))
                yaw = float(_pick(r, [0.0, math.pi])) + r.normal(0, 0.15)
            else:
                x = r.uniform(self.road_l, self.road_r)
                yaw = float(_pick(r, [-1.0, 1.0])) * math.pi / 2 + r.normal(0, 0.3)
            z = float(np.exp(r.uniform(np.log(max(self.z_vis, 3.0)), np.log(60.0))))
            self.add_bike(x, z, yaw, rider=True, moto=moto)
        for _ in range(int(_pick(r, [0, 0, 0, 1, 2, 3]))):  # parked bicycles, sometimes with their owner
            side = -1 if r.random() < 0.5 else 1
            edge = self.road_l if side < 0 else self.road_r
            x = edge + side * r.uniform(0.4, 1.5)
            z = r.uniform(self.z_vis * 0.9, 40.0)
            yaw = r.uniform(0, 2 * math.pi)
            self.add_bike(x, z, yaw, rider=False, moto=r.random() < 0.2)
            if r.random() < 0.3:
                self.add_person(x + side * 0.6, z + r.normal(0, 0.3), yaw + r.normal(0, 0.4))

    def _vehicles(self) -> None:
        r = self.rng
        for side in (-1, 1):  # parked cars
            park = self.park_l if side < 0 else self.park_r
            if park == 0:
                continue
            x = (self.road_l + 1.1) if side < 0 else (self.road_r - 1.1)
            z = r.uniform(self.z_vis * 0.5, 12.0)
            while z < 75:
                if r.random() < 0.75 and (self.cross is None or not (self.cross[0] - 8 < z < self.cross[1] + 3)):
                    if self.zebra is None or not (self.zebra[0] - 6 < z < self.zebra[1] + 2):
                        kind = "car" if r.random() < 0.92 else "van"
                        self.add_vehicle(
                            x + r.normal(0, 0.1), z, float(_pick(r, [0.0, math.pi])) + r.normal(0, 0.03), kind
                        )
                z += r.uniform(5.0, 8.0)
        for lane_x in self.lane_x:  # traffic
            oncoming = lane_x < -0.5 and r.random() < 0.7
            z = r.uniform(6.0, 25.0)
            while z < 100:
                if r.random() < 0.55 and (self.zebra is None or not (self.zebra[0] - 4 < z < self.zebra[1] + 6)):
                    u = r.random()
                    kind = "car" if u < 0.8 else ("truck" if u < 0.88 else ("bus" if u < 0.96 else "van"))
                    yaw = (math.pi if oncoming else 0.0) + r.normal(0, 0.02)
                    self.add_vehicle(lane_x + r.normal(0, 0.25), z, yaw, kind)
                    z += 15.0 if kind in ("truck", "bus") else 0.0
                z += r.uniform(7.0, 25.0)
        if r.random() < 0.06:  # tram on the middle lane
            self.add_vehicle(
                self.lane_x[len(self.lane_x) // 2], r.uniform(15.0, 60.0), float(_pick(r, [0.0, math.pi])), "tram"
            )
        if self.cross is not None and r.random() < 0.5:  # traffic across the crossing
            za, zb = self.cross
            for _ in range(int(r.integers(1, 3))):
                z = r.uniform(za + 2, zb - 2)
                self.add_vehicle(r.uniform(-25.0, 25.0), z, float(_pick(r, [-1.0, 1.0])) * math.pi / 2, "car")

    # ----------------------------------------------------------------- objects
    def add_tree(self, x: float, z: float) -> None:
        self.objects.append((math.hypot(x, z) - 0.5, partial(self.draw_tree, x, z, int(self.rng.integers(2**31)))))

    def draw_tree(self, x: float, z: float, seed: int) -> None:
        if z < 0.8 or not self.in_view(x, 4.0, z):
            return
        r, cv = np.random.default_rng(seed), self.cv
        k = self.f / z
        trunk_h = r.uniform(1.8, 3.5)
        crown = r.uniform(1.3, 3.2)
        lit = self.lit_at(x)
        self.tone = lit / 255.0
        u, v = self.proj(x, 0, z)
        if self.sunny:
            cv.shadow_ellipse(u, v, crown * k, crown * k * self.hc / z, min(lit, self.blob_lit + 50))
        bark = self.fog(_c(np.array([80, 62, 48]) + r.normal(0, 12, 3)), z)
        top = self.proj(x, trunk_h + crown * 0.6, z)
        cv.line([(u, v), top], max(1.0, r.uniform(0.2, 0.4) * k), bark, VEG)
        green = np.asarray(_GREEN[int(r.integers(len(_GREEN)))], np.float64)
        if r.random() < 0.12:  # autumn
            green = np.array([180, 110, 40], np.float64)
        cy = trunk_h + crown
        if r.random() < 0.15:  # conifer
            pts = [
                self.proj(x - crown * 0.8, trunk_h * 0.5, z),
                self.proj(x + crown * 0.8, trunk_h * 0.5, z),
                self.proj(x, trunk_h + crown * 2.8, z),
            ]
            cv.poly(pts, self.fog(_c(green * 0.75), z), VEG)
            return
        for _ in range(int(r.integers(3, 7)) if crown * k > 4 * self.px else 1):
            dx, dy = r.normal(0, crown * 0.35), r.normal(0, crown * 0.25)
            rad = crown * r.uniform(0.5, 0.8)
            shade = 0.75 + 0.35 * (dy / crown + 0.5) + r.normal(0, 0.06)
            cu, cvv = self.proj(x + dx, cy + dy, z)
            cv.ellipse(cu, cvv, rad * k, rad * k * r.uniform(0.8, 1.0), self.fog(_c(green * shade), z), VEG)

    def draw_bush(self, x: float, z: float, size: float, col: Color) -> None:
        k = self.f / z
        u, v = self.proj(x, size * 0.45, z)
        self.tone = self.lit_at(x) / 255.0
        self.cv.ellipse(u, v, size * k, size * 0.5 * k, self.fog(_scale(col, 0.9), z), VEG)

    def add_pole(self, x: float, z: float, kind: str, side: int, col: Color) -> None:
        seed = int(self.rng.integers(2**31))
        self.objects.append((math.hypot(x, z) - 0.1, partial(self.draw_pole, x, z, kind, side, col, seed)))

    def draw_pole(self, x: float, z: float, kind: str, side: int, col: Color, seed: int) -> None:
        if z < 0.8 or not self.in_view(x, 2.5, z):
            return
        r, cv = np.random.default_rng(seed), self.cv
        k = self.f / z
        lit = self.lit_at(x)
        self.tone = lit / 255.0
        col = self.fog(col, z)
        if kind == "bollard":
            cv.line([self.proj(x, 0, z), self.proj(x, 0.9, z)], max(1.0, 0.15 * k), col, POLE)
            return
        height = {"lamp": r.uniform(6.0, 9.0), "sign": r.uniform(2.2, 3.0), "light": r.uniform(2.8, 3.6)}[kind]
        width = max(1.0, (0.16 if kind == "lamp" else 0.1) * k)
        base = self.proj(x, 0, z)
        cv.line([base, self.proj(x, height, z)], width, col, POLE)
        if kind == "lamp":
            arm = r.uniform(0.8, 2.2)
            tip = self.proj(x - side * arm, height + 0.2, z)
            cv.line([self.proj(x, height - 0.3, z), tip], max(1.0, 0.1 * k), col, POLE)
            cv.ellipse(tip[0], tip[1] + 0.1 * k, 0.35 * k, 0.12 * k, _scale(col, 1.2), POLE)
        elif kind == "sign":
            cu, cvv = self.proj(x, height + 0.35, z)
            rad = 0.33 * k
            shape = int(r.integers(5))
            back = r.random() < 0.15
            red, white, blue, yellow = (200, 30, 35), (235, 235, 235), (30, 80, 170), (240, 200, 30)
            rim = [red, red, blue, white, yellow][shape]
            inner = [white, red, blue, blue, yellow][shape]
            if back:
                rim = inner = (150, 150, 150)
            rim, inner = self.fog(rim, z), self.fog(inner, z)
            if shape <= 2:  # round: prohibition, no entry, mandatory
                cv.ellipse(cu, cvv, rad, rad, rim, SIGN)
                cv.ellipse(cu, cvv, rad * 0.75, rad * 0.75, inner)
                if shape == 1 and not back:
                    cv.poly(
                        [
                            (cu - rad * 0.6, cvv - rad * 0.15),
                            (cu + rad * 0.6, cvv - rad * 0.15),
                            (cu + rad * 0.6, cvv + rad * 0.15),
                            (cu - rad * 0.6, cvv + rad * 0.15),
                        ],
                        white,
                    )
            elif shape == 3:  # rectangular information sign
                pts = [
                    (cu - rad, cvv - rad * 0.8),
                    (cu + rad, cvv - rad * 0.8),
                    (cu + rad, cvv + rad * 0.8),
                    (cu - rad, cvv + rad * 0.8),
                ]
                cv.poly(pts, rim if back else blue, SIGN)
                if not back:
                    cv.poly(
                        [
                            (cu - rad * 0.8, cvv - rad * 0.6),
                            (cu + rad * 0.8, cvv - rad * 0.6),
                            (cu + rad * 0.8, cvv + rad * 0.6),
                            (cu - rad * 0.8, cvv + rad * 0.6),
                        ],
                        white,
                    )
            else:  # warning triangle / priority diamond
                if r.random() < 0.5:
                    pts = [(cu, cvv - rad * 1.1), (cu + rad * 1.1, cvv + rad * 0.8), (cu - rad * 1.1, cvv + rad * 0.8)]
                    cv.poly(pts, red if not back else rim, SIGN)
                    c2 = [(cu, cvv - rad * 0.5), (cu + rad * 0.6, cvv + rad * 0.55), (cu - rad * 0.6, cvv + rad * 0.55)]
                    cv.poly(c2, white if not back else rim)
                else:
                    pts = [(cu, cvv - rad), (cu + rad, cvv), (cu, cvv + rad), (cu - rad, cvv)]
                    cv.poly(pts, white if not back else rim, SIGN)
                    cv.poly(
                        [(cu, cvv - rad * 0.6), (cu + rad * 0.6, cvv), (cu, cvv + rad * 0.6), (cu - rad * 0.6, cvv)],
                        yellow if not back else rim,
                    )
        else:  # traffic light box with three lamps
            housing = self.fog((40, 42, 40) if r.random() < 0.7 else (200, 170, 40), z)
            cu, cvv = self.proj(x, height + 0.5, z)
            bw, bh = 0.17 * k, 0.5 * k
            cv.poly(
                [(cu - bw, cvv - bh), (cu + bw, cvv - bh), (cu + bw, cvv + bh), (cu - bw, cvv + bh)], housing, LIGHT
            )
            on = int(r.integers(3))
            for i, lamp in enumerate(((230, 40, 30), (240, 180, 20), (40, 220, 90))):
                c = lamp if i == on else _scale(lamp, 0.3)
                cv.ellipse(cu, cvv + (i - 1) * 0.32 * k, bw * 0.7, bw * 0.7, self.fog(c, z))

    # vehicles ---------------------------------------------------------------
    def add_vehicle(self, x: float, z: float, yaw: float, kind: str) -> None:
        r = self.rng
        if kind == "car":
            dims = (r.uniform(3.8, 4.9), r.uniform(1.65, 1.9), r.uniform(1.35, 1.6))
        elif kind == "van":
            dims = (r.uniform(4.6, 5.4), r.uniform(1.9, 2.05), r.uniform(1.9, 2.3))
        elif kind == "truck":
            dims = (r.uniform(6.5, 10.0), r.uniform(2.3, 2.5), r.uniform(3.0, 3.8))
        elif kind == "bus":
            dims = (r.uniform(10.5, 12.5), 2.55, r.uniform(2.9, 3.2))
        else:
            dims = (r.uniform(20.0, 30.0), 2.4, 3.3)
        length, width, _ = dims
        c, s = math.cos(yaw), math.sin(yaw)
        z = z + abs(length / 2 * c) + abs(width / 2 * s)  # z was the near end; now the centre
        # nearest distance from the camera to the footprint, for painter's order
        ca, cc = -x * c + z * s, -x * s - z * c  # camera in the vehicle frame
        key = math.hypot(max(abs(ca) - width / 2, 0.0), max(abs(cc) - length / 2, 0.0))
        # keep every corner in front of the camera
        zmin = z - abs(length / 2 * c) - abs(width / 2 * s)
        if zmin < 1.0:
            return
        self.objects.append((key, partial(self.draw_vehicle, x, z, yaw, kind, dims, int(r.integers(2**31)))))

    def box(
        self,
        x: float,
        z: float,
        yaw: float,
        length: float,
        width: float,
        y0: float,
        y1: float,
        color: Color,
        cls: int,
        dc: float = 0.0,
        top_scale: float = 1.0,
    ) -> list[tuple[str, Quad]]:
        """Draw the visible faces of an oriented box (a frustum when ``top_scale`` < 1) centred at (x, z).

        Returns the visible faces as (name, corners in metres: bottom-left, bottom-right, top-right, top-left).
        """
        cy, sy = math.cos(yaw), math.sin(yaw)
        hl, hw = length / 2, width / 2
        tl, tw = top_scale, 1 - (1 - top_scale) * 0.3  # top shrink along and across

        def world(a: float, c: float, y: float) -> P3:
            c = c + dc
            return (x + a * cy + c * sy, y, z - a * sy + c * cy)

        out: list[tuple[str, Quad]] = []
        for name, a1, c1, a2, c2, nx, nz in (
            ("front", hw, hl, -hw, hl, sy, cy), ("back", -hw, -hl, hw, -hl, -sy, -cy),
            ("left", -hw, hl, -hw, -hl, -cy, sy), ("right", hw, -hl, hw, hl, cy, -sy),
        ):  # fmt: skip
            p1, p2 = world(a1, c1, y0), world(a2, c2, y0)
            cx, cz = (p1[0] + p2[0]) / 2, (p1[2] + p2[2]) / 2
            if nx * cx + nz * cz >= 0:  # faces away from the camera
                continue
            q = (p1, p2, world(a2 * tw, c2 * tl, y1), world(a1 * tw, c1 * tl, y1))
            self.cv.poly([self.proj(*p) for p in q], self.fog(_scale(color, self.face_light(nx, nz)), cz), cls)
            out.append((name, q))
        if y1 < self.hc:  # roof seen from above
            roof = [world(a * tw, c * tl, y1) for a, c in ((-hw, -hl), (hw, -hl), (hw, hl), (-hw, hl))]
            self.cv.poly([self.proj(*p) for p in roof], self.fog(_scale(color, 1.08), z), cls)
        return out

    def on_face(self, q: Quad, u1: float, u2: float, v1: float, v2: float) -> list[Point]:
        """Sub-quad of a face in its own (u across, v up) 0..1 coordinates, projected."""
        (x0, y0, z0), (x1, y1, z1), _, (x3, y3, z3) = q
        ax, ay, az, bx, by, bz = x1 - x0, y1 - y0, z1 - z0, x3 - x0, y3 - y0, z3 - z0
        proj = self.proj
        return [
            proj(x0 + ax * a + bx * b, y0 + ay * a + by * b, z0 + az * a + bz * b)
            for a, b in ((u1, v1), (u2, v1), (u2, v2), (u1, v2))
        ]

    def draw_vehicle(
        self, x: float, z: float, yaw: float, kind: str, dims: tuple[float, float, float], seed: int
    ) -> None:
        length, width, height = dims
        if not self.in_view(x, 0.5 * (length + width), z + 0.5 * length):
            return
        r, cv = np.random.default_rng(seed), self.cv
        lit = self.lit_at(x)
        self.tone = lit / 255.0
        cls = {"car": CAR, "van": CAR, "truck": TRUCK, "bus": BUS, "tram": TRAIN}[kind]
        cy, sy = math.cos(yaw), math.sin(yaw)
        # contact shadow: the footprint, a little larger
        fp = []
        for a, c in ((-1, -1), (1, -1), (1, 1), (-1, 1)):
            aa, ccc = a * (width / 2 + 0.25), c * (length / 2 + 0.2)
            fp.append(self.proj(x + aa * cy + ccc * sy, 0.0, z - aa * sy + ccc * cy))
        cv.shadow(fp, min(lit, self.blob_lit))
        if self.f * height / z < 8 * self.px:  # far away: one box is enough
            self.box(x, z, yaw, length, width, 0.15, height, self.shared(15, r), cls, top_scale=0.8)
        elif kind in ("car", "van"):
            paint = self.shared(15, r)
            glass = _c(np.array([45, 55, 65]) + r.normal(0, 10, 3))
            wr = 0.32
            body_top = 0.95 if kind == "car" else height * 0.55
            faces = self.box(x, z, yaw, length, width, 0.14, body_top, paint, cls)
            if kind == "car":
                cab = self.box(
                    x,
                    z,
                    yaw,
                    length * r.uniform(0.48, 0.58),
                    width * 0.9,
                    body_top,
                    height,
                    paint,
                    cls,
                    dc=-length * 0.05,
                    top_scale=r.uniform(0.55, 0.75),
                )
            else:
                cab = self.box(x, z, yaw, length * 0.98, width, body_top, height, paint, cls, dc=-0.05, top_scale=0.92)
            for name, q in cab:
                if name in ("left", "right"):
                    cv.poly(self.on_face(q, 0.08, 0.92, 0.1, 0.88), self.fog(glass, z))
                else:
                    cv.poly(self.on_face(q, 0.06, 0.94, 0.08, 0.9), self.fog(_scale(glass, 1.15), z))
            self._car_details(faces, wr, length, width, yaw, x, z, cls)
        elif kind == "truck":
            paint = self.shared(15, r)
            cargo = self.shared(10, r) if r.random() < 0.6 else (225, 225, 220)
            cab_l = 2.3
            cab_dc = length / 2 - cab_l / 2
            cargo_l = length - cab_l - 0.3
            self.box(x, z, yaw, length * 0.9, width * 0.8, 0.0, 1.0, (30, 30, 32), cls)
            self.box(x, z, yaw, cargo_l, width, 0.9, height, cargo, cls, dc=-length / 2 + cargo_l / 2)
            cab = self.box(x, z, yaw, cab_l, width, 0.5, min(height, 2.9), paint, cls, dc=cab_dc)
            for name, q in cab:
                if name == "front":
                    cv.poly(self.on_face(q, 0.08, 0.92, 0.55, 0.92), self.fog((50, 60, 70), z))
                elif name in ("left", "right"):
                    cv.poly(self.on_face(q, 0.15, 0.6, 0.55, 0.9), self.fog((50, 60, 70), z))
        else:  # bus / tram
            paint = (
                self.shared(10, r)
                if r.random() < 0.5
                else _pick(r, ((230, 200, 40), (200, 30, 40), (240, 240, 235), (40, 120, 60)))
            )
            y0 = 0.3 if kind == "bus" else 0.45
            self.box(x, z, yaw, length * 0.95, width * 0.85, 0.0, y0 + 0.1, (30, 30, 32), cls)
            faces = self.box(x, z, yaw, length, width, y0, height, paint, cls)
            glass = (45, 55, 70)
            for name, q in faces:
                if name in ("left", "right"):
                    n = int(length / 1.6)
                    for i in range(n):
                        cv.poly(self.on_face(q, (i + 0.1) / n, (i + 0.9) / n, 0.5, 0.88), self.fog(glass, z))
                else:
                    cv.poly(self.on_face(q, 0.06, 0.94, 0.45, 0.9), self.fog(glass, z))
                    cv.poly(self.on_face(q, 0.1, 0.25, 0.12, 0.22), self.fog((240, 230, 200), z))
                    cv.poly(self.on_face(q, 0.75, 0.9, 0.12, 0.22), self.fog((240, 230, 200), z))
            if kind == "tram":
                top = self.proj(x, height + 1.0, z)
                cv.line([self.proj(x, height, z), top], max(1.0, 0.06 * self.f / z), (40, 40, 40), cls)

    def _car_details(
        self,
        faces: list[tuple[str, Quad]],
        wr: float,
        length: float,
        width: float,
        yaw: float,
        x: float,
        z: float,
        cls: int,
    ) -> None:
        cv = self.cv
        cy, sy = math.cos(yaw), math.sin(yaw)
        for name, q in faces:
            zf = (q[0][2] + q[1][2]) / 2
            if name in ("back", "front"):  # tyres and the dark underside, seen from behind or ahead
                dark = self.fog((28, 28, 30), zf)
                cv.poly(self.on_face(q, 0.03, 0.97, 0.0, 0.12), dark)
                cv.poly(self.on_face(q, 0.04, 0.2, 0.0, 0.25), dark)
                cv.poly(self.on_face(q, 0.8, 0.96, 0.0, 0.25), dark)
            if name == "back":
                red = self.fog((190, 25, 30), zf)
                cv.poly(self.on_face(q, 0.04, 0.2, 0.55, 0.85), red)
                cv.poly(self.on_face(q, 0.8, 0.96, 0.55, 0.85), red)
                cv.poly(self.on_face(q, 0.38, 0.62, 0.15, 0.4), self.fog((235, 235, 225), zf))
            elif name == "front":
                head = self.fog((235, 235, 215), zf)
                cv.poly(self.on_face(q, 0.05, 0.22, 0.55, 0.8), head)
                cv.poly(self.on_face(q, 0.78, 0.95, 0.55, 0.8), head)
                cv.poly(self.on_face(q, 0.3, 0.7, 0.3, 0.6), self.fog((40, 40, 42), zf))
            else:  # wheel discs on the visible flank (car), exact perspective
                a = -width / 2 - 0.02 if name == "left" else width / 2 + 0.02
                tyre, hub = self.fog((25, 25, 27), zf), self.fog((150, 150, 155), zf)
                for c in (-length * 0.33, length * 0.33):
                    for rad, col, lab in ((wr, tyre, cls), (wr * 0.5, hub, None)):
                        pts = [
                            self.proj(x + a * cy + (c + rad * ct) * sy, wr + rad * st, z - a * sy + (c + rad * ct) * cy)
                            for ct, st in _CIRCLE
                        ]
                        cv.poly(pts, col, lab)

    # people -----------------------------------------------------------------
    def add_person(self, x: float, z: float, yaw: float) -> None:
        r = self.rng
        child = r.random() < 0.12
        height = r.uniform(1.0, 1.4) if child else r.normal(1.72, 0.09)
        look = self._look(r, child)
        pose = self._pose(r, height / 1.75)
        draw = partial(self.draw_figure, x, z, yaw, pose, look, height / 1.75, PERSON, [])
        self.objects.append((math.hypot(x, z) - 0.2, draw))

    def _look(self, r: np.random.Generator, child: bool) -> _Look:
        skin_i = r.uniform(0, len(_SKIN) - 1)
        lo = int(skin_i)
        skin = _mix(_SKIN[lo], _SKIN[min(lo + 1, len(_SKIN) - 1)], skin_i - lo)
        top = self.shared(22)
        bottom = (
            self.shared(15)
            if r.random() < 0.5
            else _c(
                np.asarray(
                    [(40, 55, 90), (25, 25, 30), (95, 95, 100), (150, 130, 95), (60, 80, 120)][int(r.integers(5))]
                )
                + r.normal(0, 10, 3)
            )
        )
        hair = _c(np.asarray(_HAIR[int(r.integers(len(_HAIR)))]) + r.normal(0, 8, 3))
        u = r.random()
        return _Look(
            skin=skin,
            top=top,
            bottom=bottom,
            hair=hair,
            shoes=self.shared(10) if r.random() < 0.4 else _c((30, 28, 26)),
            short_sleeves=r.random() < 0.25,
            shorts=r.random() < 0.12,
            coat=(not child) and u < 0.22,
            skirt=0.22 <= u < 0.34,
            hat=self.shared(15) if r.random() < 0.18 else None,
            long_hair=r.random() < 0.3,
            backpack=self.shared(12) if r.random() < 0.2 else None,
            bag=self.shared(12) if r.random() < 0.2 else None,
            child=child,
            width=r.uniform(0.9, 1.2),
        )

    def _pose(self, r: np.random.Generator, s: float) -> FloatArray:
        """Standing or walking skeleton, (14, 3) metres (lateral, up, forward), feet at the origin."""
        j = np.zeros((14, 3))
        walking = r.random() < 0.6
        lean = r.uniform(-0.02, 0.06)
        if walking:
            phase, stride = r.uniform(0, 2 * math.pi), r.uniform(0.1, 0.4)
            cl = stride * math.sin(phase)
            feet = ((-0.1, cl), (0.1, -cl))
        else:
            spread = r.uniform(0.05, 0.22)
            feet = ((-spread, r.normal(0, 0.05)), (spread, r.normal(0, 0.05)))
        j[HIP_L], j[HIP_R] = (-0.09, 0.93, 0.0), (0.09, 0.93, 0.0)
        j[FT_L], j[FT_R] = (feet[0][0], 0.06, feet[0][1]), (feet[1][0], 0.06, feet[1][1])
        j[KN_L] = _ik(j[HIP_L], j[FT_L], 0.45, 0.44, 1.0)
        j[KN_R] = _ik(j[HIP_R], j[FT_R], 0.45, 0.44, 1.0)
        j[SH_L], j[SH_R] = (-0.19, 1.44, lean), (0.19, 1.44, lean)
        j[NECK] = (0.0, 1.5, lean)
        j[HEAD] = (r.normal(0, 0.01), 1.63, lean + 0.02)
        for side, el, ha, ft in ((-1, EL_L, HA_L, FT_L), (1, EL_R, HA_R, FT_R)):
            style = "swing"
            if not walking or r.random() < 0.3:
                styles = ["swing", "down", "phone", "ear", "wave", "hips", "pocket"]
                style = str(_pick(r, styles, p=[0.35, 0.3, 0.1, 0.05, 0.05, 0.07, 0.08]))
            if style == "swing":
                hc = -0.7 * j[ft, 2]
                hand, elbow = (side * 0.23, 0.8, hc), (side * 0.22, 1.12, hc * 0.45 - 0.03)
            elif style == "down":
                hand, elbow = (side * 0.24, 0.78, 0.02), (side * 0.23, 1.1, -0.02)
            elif style == "phone":
                hand, elbow = (side * 0.06, 1.2, 0.25), (side * 0.2, 1.08, 0.08)
            elif style == "ear":
                hand, elbow = (side * 0.13, 1.6, 0.08), (side * 0.28, 1.3, 0.12)
            elif style == "wave":
                hand, elbow = (side * 0.42, 1.88, 0.05), (side * 0.36, 1.55, 0.0)
            elif style == "hips":
                hand, elbow = (side * 0.2, 0.97, 0.02), (side * 0.4, 1.15, -0.05)
            else:
                hand, elbow = (side * 0.18, 0.9, 0.06), (side * 0.24, 1.12, -0.03)
            j[ha], j[el] = hand, elbow
        return j * s

    def add_bike(self, x: float, z: float, yaw: float, rider: bool, moto: bool) -> None:
        r = self.rng
        s = r.normal(1.74, 0.07) / 1.75
        look = self._look(r, False)
        if moto:
            look.hat = None
            look.helmet = self.shared(10)
        elif r.random() < 0.4:
            look.helmet = self.shared(10)
        look.coat = look.skirt = False
        frame = self.shared(15)
        j, parts = self._bike(r, s, moto, frame, rider)
        draw = partial(self.draw_figure, x, z, yaw, j, look, s, RIDER, parts, rider)
        self.objects.append((math.hypot(x, z) - 0.6, draw))

    def _bike(
        self, r: np.random.Generator, s: float, moto: bool, frame: Color, rider: bool
    ) -> tuple[FloatArray, list[Part]]:
        """Bicycle/motorcycle parts in the figure frame and the seated rider's skeleton (metres)."""
        tyre = (25, 25, 25)
        parts: list[Part] = []
        if moto:
            wr, rear, front = 0.31, -0.7, 0.72
            seat, peg, bar = (-0.15, 0.8), (0.05, 0.35), (0.48, 1.02)
            parts.append(("wheel", [(0.0, wr, rear)], 0.11, tyre))
            parts.append(("wheel", [(0.0, wr, front)], 0.11, tyre))
            body = [(-0.55, 0.5), (0.3, 0.4), (0.55, 0.75), (0.35, 0.98), (-0.2, 0.88), (-0.65, 0.82)]
            parts.append(("body", [(a, b, c) for c, b in body for a in (-0.18, 0.18)], 0.0, frame))
            parts.append(("line", [(0.0, wr, front), (0.0, 1.0, 0.45)], 0.06, (60, 60, 60)))
            parts.append(("line", [(-0.32, bar[1], bar[0]), (0.32, bar[1], bar[0])], 0.04, (40, 40, 40)))
            hip_b, hip_c = seat[1] + 0.1, seat[0]
            pedals = [(-0.2, peg[1], peg[0]), (0.2, peg[1], peg[0])]
            lean = r.uniform(0.2, 0.55)
        else:
            wr, rear, front = 0.34, -0.5, 0.52
            bb, seat, bar = (-0.05, 0.3), (-0.24, 0.95), (0.38, 1.0)
            for c in (rear, front):
                parts.append(("wheel", [(0.0, wr, c)], 0.05, tyre))
            head = (0.36, 0.92)
            for (c1, b1), (c2, b2) in (
                ((rear, wr), bb),
                ((rear, wr), seat),
                (seat, bb),
                (bb, head),
                (seat, head),
                (head, (front, wr)),
            ):
                parts.append(("line", [(0.0, b1, c1), (0.0, b2, c2)], 0.04, frame))
            parts.append(
                ("line", [(0.0, seat[1], seat[0] - 0.1), (0.0, seat[1] + 0.02, seat[0] + 0.12)], 0.06, (30, 30, 30))
            )
            parts.append(("line", [(-0.25, bar[1], bar[0]), (0.25, bar[1], bar[0])], 0.035, (40, 40, 40)))
            parts.append(("line", [(0.0, head[1], head[0]), (0.0, bar[1], bar[0])], 0.04, frame))
            hip_b, hip_c = seat[1] + 0.07, seat[0]
            ph = r.uniform(0, 2 * math.pi)
            dc, db = 0.17 * math.cos(ph), 0.17 * math.sin(ph)
            pedals = [(-0.12, bb[1] + db, bb[0] + dc), (0.12, bb[1] - db, bb[0] - dc)]
            lean = r.uniform(0.25, 0.8)
        j = np.zeros((14, 3))
        if not rider:
            return j, parts
        j[HIP_L], j[HIP_R] = (-0.09, hip_b, hip_c), (0.09, hip_b, hip_c)
        j[FT_L], j[FT_R] = pedals[0], pedals[1]
        j[KN_L] = _ik(j[HIP_L], j[FT_L], 0.45 * s, 0.47 * s, 1.0)
        j[KN_R] = _ik(j[HIP_R], j[FT_R], 0.45 * s, 0.47 * s, 1.0)
        sc, sb = hip_c + 0.52 * s * math.sin(lean), hip_b + 0.52 * s * math.cos(lean)
        j[SH_L], j[SH_R] = (-0.19 * s, sb, sc), (0.19 * s, sb, sc)
        j[NECK] = (0.0, sb + 0.06 * s, sc + 0.03)
        j[HEAD] = (0.0, sb + 0.19 * s, sc + 0.19 * s * math.sin(lean * 0.6) + 0.03)
        for side, sh, el, ha in ((-1, SH_L, EL_L, HA_L), (1, SH_R, EL_R, HA_R)):
            hand = np.array([side * 0.24, bar[1] + 0.02, bar[0]])
            j[ha] = hand
            j[el] = (j[sh] + hand) / 2 + np.array([side * 0.05, -0.08, -0.02])
        return j, parts

    def draw_figure(
        self,
        x: float,
        z: float,
        yaw: float,
        j: FloatArray,
        look: _Look,
        scale: float,
        cls: int,
        parts: list[Part],
        figure: bool = True,
    ) -> None:
        """A person, a rider on a bike, or a bike alone, as a weak-perspective sprite on the ground at (x, z).

        ``j`` is the (14, 3) skeleton in metres (lateral, up, forward) of the figure's own frame, turned by ``yaw``
        (0: walking away from the camera); ``scale`` is body height / 1.75 m (limb widths); ``parts`` the bike's.
        """
        if z < 0.8:
            return
        cv = self.cv
        k = self.f / z
        u0, v0 = self.proj(x, 0.0, z)
        if u0 < -3 * k or u0 > self.W + 3 * k:
            return
        lit = self.lit_at(x)
        self.tone = lit / 255.0
        cyw, syw = math.cos(yaw), math.sin(yaw)
        fog = partial(self.fog, z=z)

        def P(p: FloatArray | Sequence[float]) -> Point:  # noqa: N802
            return (u0 + (p[0] * cyw + p[2] * syw) * k, v0 - p[1] * k)

        def D(p: FloatArray | Sequence[float]) -> float:  # noqa: N802
            return -p[0] * syw + p[2] * cyw

        ext = 0.35 if not parts else 0.3 + 0.5 * abs(syw)  # half the footprint across the view
        # contact shadow: an ellipse on the ground, foreshortened with depth
        cv.shadow_ellipse(u0, v0, ext * k, ext * k * self.hc / z, min(lit, self.blob_lit + 20))
        ops: list[tuple[float, int, Callable[[], None]]] = []
        n = 0

        def add(depth: float, fn: Callable[[], None]) -> None:
            nonlocal n
            ops.append((depth, n, fn))
            n += 1

        bike_cls = MOTORCYCLE if any(p[0] == "body" for p in parts) else BICYCLE
        for kind, pts, w, col in parts:
            if kind == "wheel":
                hx, hy = P(pts[0])
                rad = pts[0][1]  # the hub is one radius above the ground
                add(D(pts[0]) + 0.02, partial(cv.ring, hx, hy, rad * abs(syw) * k, rad * k, w * k, fog(col), bike_cls))
            elif kind == "body":
                hull = _hull([P(p) for p in pts])
                if len(hull) >= 3:
                    add(sum(D(p) for p in pts) / len(pts) + 0.01, partial(cv.poly, hull, fog(col), bike_cls))
            else:
                add(
                    sum(D(p) for p in pts) / len(pts) + 0.02,
                    partial(cv.line, [P(p) for p in pts], w * k, fog(col), bike_cls),
                )
        if not figure:
            for _, _, fn in sorted(ops, key=lambda o: (-o[0], o[1])):
                fn()
            return
        s, wd = scale, look.width
        skin, top, bottom = fog(look.skin), fog(look.top), fog(look.bottom)
        hair, shoes = fog(look.hair), fog(look.shoes)
        shin_col = skin if look.shorts or look.skirt else bottom
        # legs
        leg_depths = []
        for hip, knee, foot in ((HIP_L, KN_L, FT_L), (HIP_R, KN_R, FT_R)):
            d = (D(j[hip]) + D(j[knee]) + D(j[foot])) / 3 + 0.05
            leg_depths.append(d)
            add(d, partial(cv.line, [P(j[hip]), P(j[knee])], 0.15 * s * wd * k, bottom, cls))
            add(d, partial(cv.line, [P(j[knee]), P(j[foot])], 0.11 * s * wd * k, shin_col, cls))
            heel, toe = j[foot] + np.array([0, -0.03 * s, -0.05 * s]), j[foot] + np.array([0, -0.03 * s, 0.14 * s])
            add(d, partial(cv.line, [P(heel), P(toe)], 0.08 * s * k, shoes, cls))
        # torso (a polygon across the shoulder and hip lines)
        sh_c, hip_c = (j[SH_L] + j[SH_R]) / 2, (j[HIP_L] + j[HIP_R]) / 2
        ps, ph = np.array(P(sh_c)), np.array(P(hip_c))
        axis = ps - ph
        axis = axis / (np.hypot(*axis) + 1e-9)
        nrm = np.array([-axis[1], axis[0]])
        w_sh = (0.2 * abs(cyw) + 0.12 * abs(syw)) * s * wd * k
        w_hip = (0.16 * abs(cyw) + 0.11 * abs(syw)) * s * wd * k
        w_neck = 0.07 * s * k
        pn = ps + axis * 0.1 * s * k  # neck: overlaps the head
        ps2 = ps - axis * 0.04 * s * k
        torso = [
            pn + nrm * w_neck,
            ps2 + nrm * w_sh,
            ph + nrm * w_hip,
            ph - nrm * w_hip,
            ps2 - nrm * w_sh,
            pn - nrm * w_neck,
        ]
        add(0.0, partial(cv.poly, [(float(p[0]), float(p[1])) for p in torso], top, cls))
        if look.coat or look.skirt:
            lower = ph - axis * (0.45 if look.coat else 0.38) * s * k
            wl = w_hip * (1.35 if look.skirt else 1.15)
            col = top if look.coat else bottom
            skirt = [ph + nrm * w_hip, ph - nrm * w_hip, lower - nrm * wl, lower + nrm * wl]
            add(min(leg_depths) - 0.001, partial(cv.poly, [(float(p[0]), float(p[1])) for p in skirt], col, cls))
        if look.backpack is not None:
            bp = sh_c + np.array([0.0, -0.25 * s, -0.16 * s])
            c1, c2 = P(bp + np.array([0, 0.18 * s, 0])), P(bp - np.array([0, 0.2 * s, 0]))
            bw = (0.15 * abs(cyw) + 0.1 * abs(syw)) * s * k
            add(
                D(bp) - 0.01,
                partial(
                    cv.poly,
                    [(c1[0] - bw, c1[1]), (c1[0] + bw, c1[1]), (c2[0] + bw, c2[1]), (c2[0] - bw, c2[1])],
                    fog(look.backpack),
                    cls,
                ),
            )
        # arms
        sleeve_fore = skin if look.short_sleeves else top
        for sh, el, ha in ((SH_L, EL_L, HA_L), (SH_R, EL_R, HA_R)):
            d = (D(j[sh]) + D(j[el]) + D(j[ha])) / 3 - 0.01
            add(d, partial(cv.line, [P(j[sh]), P(j[el])], 0.095 * s * wd * k, top, cls))
            add(d, partial(cv.line, [P(j[el]), P(j[ha])], 0.075 * s * k, sleeve_fore, cls))
            hx, hy = P(j[ha])
            add(d, partial(cv.ellipse, hx, hy, 0.045 * s * k, 0.05 * s * k, skin, cls))
            if look.bag is not None and sh == SH_R and not parts:
                bag = [
                    (hx - 0.12 * s * k, hy),
                    (hx + 0.12 * s * k, hy),
                    (hx + 0.14 * s * k, hy + 0.3 * s * k),
                    (hx - 0.14 * s * k, hy + 0.3 * s * k),
                ]
                add(d - 0.001, partial(cv.poly, bag, fog(look.bag), cls))
        # head
        hs = s * (1.15 if look.child else 1.0)
        hx, hy = P(j[HEAD])
        rx = (0.078 * abs(cyw) + 0.095 * abs(syw)) * hs * k
        ry = 0.115 * hs * k
        face_dir = syw  # +1 looks right on screen
        facing = cyw < -0.3  # face towards the camera
        helmet = look.helmet

        def head() -> None:
            if look.long_hair and helmet is None:
                cv.ellipse(hx - face_dir * 0.02 * hs * k, hy + 0.09 * hs * k, rx * 1.05, ry * 1.05, hair, cls)
            cv.ellipse(hx, hy, rx, ry, hair if not facing else skin, cls)
            if ry > 2.0 * self.px:
                if facing:
                    cv.chord(hx, hy - ry * 0.05, rx * 1.02, ry * 0.95, hair)
                    cv.ellipse(hx, hy + ry * 0.15, rx * 0.88, ry * 0.8, skin)
                elif abs(syw) > 0.5:
                    cv.ellipse(hx + face_dir * rx * 0.25, hy + ry * 0.12, rx * 0.72, ry * 0.8, skin)
            cov = helmet if helmet is not None else look.hat
            if cov is not None:
                cv.chord(hx, hy - ry * 0.1, rx * 1.12, ry * (1.05 if helmet is not None else 0.98), fog(cov), cls)

        add(D(j[HEAD]) - 0.3, head)
        for _, _, fn in sorted(ops, key=lambda o: (-o[0], o[1])):
            fn()

    # ----------------------------------------------------------------- finish
    def _finish(self, r: np.random.Generator) -> tuple[NDArray[np.uint8], NDArray[np.int64]]:
        """Optical blur, exposure and white balance, shading and shadows, texture, sensor noise (image only)."""
        h, w = self.H, self.W
        cv = self.cv
        radius = 0.55 * self.px
        img_pil = cv.img.filter(ImageFilter.BoxBlur(radius)) if radius >= 0.3 else cv.img
        gain = r.uniform(0.75, 1.2) * (1.0 + r.normal(0.0, 0.05, 3))  # exposure and white balance
        lut = np.minimum(np.arange(256)[None, :] * gain[:, None], 255).astype(np.uint8).ravel().tolist()
        img = np.asarray(img_pil.point(lut))
        lab = np.asarray(cv.lab)
        fine, mid = _noise_bank(h, w)  # fixed noise fields; a random window of each
        ph, pw = fine.shape[0] - h + 1, fine.shape[1] - w + 1
        oy, ox, my, mx = (int(v) for v in r.integers(0, [ph, pw, ph, pw]))
        grain = np.float32(r.uniform(0.004, 0.02) / 127.5)  # sensor noise, relative amplitude
        amp_fine = _TEXTURE_FINE * np.float32(r.uniform(0.6, 1.4)) + grain
        amp_mid = _TEXTURE_MID * np.float32(r.uniform(0.6, 1.4))
        idx = lab.astype(np.intp)
        mult = np.take(amp_fine, idx) * fine[oy : oy + h, ox : ox + w]
        mult += np.take(amp_mid, idx) * mid[my : my + h, mx : mx + w]
        mult += 1.0
        g0 = min(max(int(self.v0), 0), h)  # the ground lies below the horizon row
        lit = np.asarray(cv.lit.crop((0, g0, w, h)), np.float32) - 255.0
        mult[g0:] *= np.take(_GROUND_SHADE, idx[g0:]) * lit + 1.0  # cast shadows, on the ground only
        out = img * mult[..., None]
        np.clip(out, 0.0, 255.0, out=out)
        return out.astype(np.uint8), lab.astype(np.int64)


# Cast shadows darken these classes only (objects in shadow are darkened when drawn).
_GROUND_SHADE = np.zeros(256, np.float32)
_GROUND_SHADE[[ROAD, SIDEWALK, TERRAIN]] = 1.0 / 255.0

# Texture strength per class (relative change per noise unit): leaves and grass rough, sky and cars smooth.
_TEXTURE_FINE = np.zeros(256, np.float32)
_TEXTURE_MID = np.zeros(256, np.float32)
for _cls, (_f, _m) in {
    ROAD: (0.07, 0.05), SIDEWALK: (0.08, 0.05), BUILDING: (0.05, 0.06), WALL: (0.07, 0.07), FENCE: (0.06, 0.04),
    POLE: (0.03, 0.02), LIGHT: (0.03, 0.02), SIGN: (0.02, 0.02), VEG: (0.2, 0.3), TERRAIN: (0.14, 0.2),
    SKY: (0.005, 0.01), PERSON: (0.04, 0.04), RIDER: (0.04, 0.04), CAR: (0.02, 0.02), TRUCK: (0.03, 0.03),
    BUS: (0.02, 0.02), TRAIN: (0.02, 0.02), MOTORCYCLE: (0.03, 0.02), BICYCLE: (0.03, 0.02),
}.items():  # fmt: skip
    _TEXTURE_FINE[_cls], _TEXTURE_MID[_cls] = _f / 127.5, _m / 127.5


_NOISE_CACHE: dict[tuple[int, int], tuple[NDArray[np.float32], NDArray[np.float32]]] = {}


def _noise_bank(h: int, w: int) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """Fine (per pixel) and mid-frequency (3 px) zero-mean noise fields, values in +-127.5, half as large again as
    the image in each direction; each scene takes a window at a random offset.

    Made once per image size from a fixed seed, so every scene stays a pure function of its own generator (which
    picks the windows) and no scene pays for fresh noise.
    """
    key = (h, w)
    if key not in _NOISE_CACHE:
        if len(_NOISE_CACHE) >= 4:
            _NOISE_CACHE.pop(next(iter(_NOISE_CACHE)))
        g = np.random.default_rng(20170101)
        bh, bw = h + h // 2, w + w // 2
        fine = g.integers(0, 256, (bh, bw), dtype=np.uint8).astype(np.float32) - 127.5
        small = Image.fromarray(g.integers(0, 256, (max(2, bh // 3), max(2, bw // 3)), dtype=np.uint8))
        mid = np.asarray(small.resize((bw, bh), Image.Resampling.BILINEAR), np.float32) - 127.5
        _NOISE_CACHE[key] = (fine, mid)
    return _NOISE_CACHE[key]


def _check_size(size: Sequence[int]) -> tuple[int, int]:
    if len(size) != 2 or not all(isinstance(s, int | np.integer) and not isinstance(s, bool) for s in size):
        raise ValueError(f"size must be (height, width) as two ints, got {size!r}")
    h, w = int(size[0]), int(size[1])
    if h <= 0 or w <= 0:
        raise ValueError(f"size must be positive (height, width), got {size!r}")
    return h, w


def scene_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """The random generator of item ``index`` of ``split``: ``SeedSequence([seed, SPLITS[split], index])``."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; valid splits: {', '.join(SPLITS)}")
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, SPLITS[split], index])))


def render_scene(
    rng: np.random.Generator | int, size: tuple[int, int] = (256, 512)
) -> tuple[NDArray[np.uint8], NDArray[np.int64]]:
    """Render one random street scene.

    Args:
        rng: a numpy Generator (consumed) or an int seed.
        size: (height, width) in pixels; the scene's geometry scales with the height.

    Returns:
        image (H, W, 3) uint8 RGB and label (H, W) int64 Cityscapes train ids 0..18 (no ignore pixels).

    >>> image, label = render_scene(0, (32, 64))
    >>> image.shape, image.dtype, label.shape, label.dtype
    ((32, 64, 3), dtype('uint8'), (32, 64), dtype('int64'))
    """
    h, w = _check_size(size)
    gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    return _Scene(gen, h, w).render()


class SyntheticStreets(Dataset[tuple[Tensor, Tensor]]):
    """Procedural street scenes with exact Cityscapes labels, generated on the fly (nothing on disk).

    Item ``i`` is ``(image, label)``: image uint8 (3, H, W) RGB, label int64 (H, W) train ids 0..18. Items are
    pure functions of ``(seed, split, i)``; ``train`` and ``val`` never share a scene. ``image_id(i)`` (and
    ``ids``, all of them) name items stably, e.g. ``"val_000012"``; ``render(i)`` gives the numpy arrays.

    Args:
        split: "train" or "val".
        size: (height, width) in pixels, default (256, 512).
        length: number of items.
        seed: non-negative int; a different seed gives a different data set.
    """

    has_labels = True

    def __init__(
        self, split: str = "val", size: tuple[int, int] = (256, 512), length: int = 500, seed: int = 0
    ) -> None:
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; valid splits: {', '.join(SPLITS)}")
        self.size = _check_size(size)
        if isinstance(length, bool) or not isinstance(length, int | np.integer) or length <= 0:
            raise ValueError(f"length must be a positive int, got {length!r}")
        if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
            raise ValueError(f"seed must be a non-negative int, got {seed!r}")
        self.split, self.length, self.seed = split, int(length), int(seed)

    def __len__(self) -> int:
        return self.length

    def _index(self, index: int) -> int:
        if isinstance(index, bool) or not isinstance(index, int | np.integer):
            raise TypeError(f"index must be an int, got {type(index).__name__}")
        i = int(index)
        if i < 0:
            i += self.length
        if not 0 <= i < self.length:
            raise IndexError(f"index {index} out of range for {self.length} items")
        return i

    def render(self, index: int) -> tuple[NDArray[np.uint8], NDArray[np.int64]]:
        """Item ``index`` as numpy arrays: image (H, W, 3) uint8, label (H, W) int64."""
        i = self._index(index)
        return render_scene(scene_rng(self.seed, self.split, i), self.size)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        image, label = self.render(index)
        return torch.from_numpy(image).permute(2, 0, 1).contiguous(), torch.from_numpy(label)

    def image_id(self, index: int) -> str:
        """Stable id of item ``index``, e.g. ``"val_000012"``."""
        return f"{self.split}_{self._index(index):06d}"

    @property
    def ids(self) -> list[str]:
        """Ids of all items, in order."""
        return [f"{self.split}_{i:06d}" for i in range(self.length)]

    def __repr__(self) -> str:
        return f"SyntheticStreets(split={self.split!r}, size={self.size}, length={self.length}, seed={self.seed})"
