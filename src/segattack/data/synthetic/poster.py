"""Posters: a given texture (an adversarial patch) drawn into the scene as a poster on a facade or as a free-standing
billboard beside the road, in exact perspective, lit and occluded like the surfaces around it, with the metadata a
measurement needs (where it is in the image, what of it is visible, how far and at what angle it is seen).

Where the poster goes is drawn from its own random stream, ``placement_rng``: a generator jumped far ahead of the
scene's (``bit_generator.jumped()``), which draws nothing from the scene's own stream. So a scene with a poster is
the very same scene as without one (same street, light, objects, noise), with the poster painted in; only the
texture's aspect ratio (not its content) enters the placement, so two textures of one shape land on the same quad.

Painting follows the scene's painter's order. A facade poster is painted right after its facade (over its windows),
so nearer facades, hedges and every object on the street paint over it; a billboard is a deferred object like a tree
or a car, painted in its turn by its distance from the camera. The canvas' poster layer (``Canvas.paint_pixels``)
records which poster pixels nothing painted later covers: that is the visible mask.

Light: the texture's colours (values in [0, 1], scaled to 0..255) are multiplied by the light of a vertical face with
the poster's normal (``Lighting.face_light``, as the facade walls), faded towards the horizon colour with each
pixel's own depth (``StreetView.fog``'s aerial perspective), and, for a billboard, darkened inside the buildings'
shade like any object on the sidewalk. The image effects of ``finish_image`` (blur, exposure, texture of the
poster's class, sensor noise) then apply to it as to everything else.

Pixel coordinates are those of ``Camera.project`` and of Pillow's ImageDraw: the pixel in row ``r``, column ``c`` is
centred at (u, v) = (c, r). The texture's pixels are sampled at the poster point each image pixel's centre sees
(bilinear, after an area reduction of the texture to about the size it appears, against aliasing).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import partial

import numpy as np
import torch
from numpy.typing import NDArray
from PIL import Image

from ...errors import ConfigError, InputError, InputTypeError
from .classes import BUILDING, POLE
from .geometry import FloatArray, Point
from .palette import scale_colour
from .street_view import StreetView

__all__ = ["PLACEMENTS", "POSTER_CLASS", "PosterInfo", "PosterPlan", "check_poster", "paint_texture", "placement_rng"]

#: Where a poster may go: "building" (flat on a facade along the street) or "billboard" (a free-standing panel on
#: two legs on a sidewalk, turned towards the road).
PLACEMENTS = ("building", "billboard")

#: The label of poster pixels. A facade poster is part of its building. A free-standing billboard is labelled
#: building too: Cityscapes has no billboard class, and its traffic sign class is meant for official signs (its
#: definitions exclude advertisements), which in this generator are small plates on poles; a 2-4 m panel labelled
#: traffic sign would be a kind of sign no model trained on these scenes has seen, and one class for both placements
#: keeps the label from changing the measurement when the placement does. Its frame is building, its legs pole.
POSTER_CLASS = BUILDING

_FACADE_WIDTH = (1.5, 4.0)  # metres; the poster's width on a facade
_FACADE_BOTTOM = (0.4, 2.0)  # metres above the ground
_FACADE_MAX_HEIGHT = 3.5
_FACADE_MAX_DEPTH = 45.0  # metres; no facade poster's near edge farther than this (it would be a few pixels wide)
_BILLBOARD_WIDTH = (1.6, 3.6)
_BILLBOARD_BOTTOM = (0.5, 2.0)
_BILLBOARD_MAX_HEIGHT = 3.0
_BILLBOARD_YAW = (15.0, 75.0)  # degrees from facing down the street (0) towards facing the road (90)
_BILLBOARD_MAX_DEPTH = 50.0
_BILLBOARD_FRAME = (55, 58, 62)  # the frame's colour before light


def check_poster(poster: object) -> NDArray[np.float32]:
    """A poster texture as (h, w, 3) float32 in [0, 1], from a (3, h, w) float tensor or array with values in [0, 1]
    (a patch as ``segattack.patches`` makes it), or ``InputError`` / ``InputTypeError`` saying what is wrong."""
    if isinstance(poster, torch.Tensor):
        array = poster.detach().to("cpu", torch.float64).numpy() if poster.is_floating_point() else None
    elif isinstance(poster, np.ndarray):
        array = poster.astype(np.float64) if np.issubdtype(poster.dtype, np.floating) else None
    else:
        raise InputTypeError(f"poster must be a torch.Tensor or numpy array of shape (3, h, w), got {type(poster)}")
    if array is None:
        raise InputTypeError(f"poster must hold floats in [0, 1] (a patch), got dtype {poster.dtype}")
    if array.ndim != 3 or array.shape[0] != 3 or array.shape[1] < 1 or array.shape[2] < 1:
        raise InputError(f"poster must have shape (3, h, w) (RGB, channels first), got {tuple(array.shape)}")
    if not np.isfinite(array).all() or array.min() < 0.0 or array.max() > 1.0:
        raise InputError("poster values must be finite and in [0, 1]")
    return np.ascontiguousarray(array.transpose(1, 2, 0), np.float32)


def check_placement(placement: object) -> str:
    """``placement`` if it is one of ``PLACEMENTS``, else ``ConfigError``."""
    if placement not in PLACEMENTS:
        raise ConfigError(f"unknown poster placement {placement!r}; valid placements: {', '.join(PLACEMENTS)}")
    return str(placement)


def placement_rng(rng: np.random.Generator) -> np.random.Generator:
    """The random stream of a scene's poster placement: ``rng``'s bit generator jumped ahead (``jumped()``), so it
    is a pure function of ``rng``'s state and draws nothing from it. Bit generators without ``jumped`` (SFC64)
    seed it from a copy of theirs instead, which also leaves ``rng`` untouched."""
    bit_generator = rng.bit_generator
    if hasattr(bit_generator, "jumped"):
        return np.random.Generator(bit_generator.jumped())
    copy = np.random.Generator(type(bit_generator)())
    copy.bit_generator.state = bit_generator.state
    return np.random.default_rng(copy.integers(2**63))


@dataclass(eq=False)
class PosterInfo:
    """Where a scene's poster is and how it is seen.

    Attributes:
        placement: "building" or "billboard" (a "building" poster goes on a billboard when the scene has no
            building row, or no facade it fits on).
        corners: (4, 2) float64 image positions (u, v) in pixels of the texture's top-left, top-right,
            bottom-right and bottom-left corners (pixel row r, column c is centred at (c, r)); they may lie outside
            the image.
        corners_world: (4, 3) float64 the same corners in the scene, metres (x right, y up, z forward from the
            camera's foot).
        centre: (3,) float64 the poster's centre, metres.
        normal: (3,) float64 the poster's unit normal, pointing out of its printed face.
        size: (width, height) of the poster, metres.
        distance: metres from the camera's centre to the poster's centre.
        angle: degrees between the normal and the ray from the poster's centre to the camera: 0 seen head-on,
            towards 90 seen edge-on.
        area: the quad's area in the image, pixels (before clipping to the image and before occlusion).
        painted: (H, W) bool, the pixels the poster was painted on (inside the image, before occlusion).
        visible: (H, W) bool, the poster pixels the image shows: painted and not covered by anything painted later
            (persons, vehicles, poles, trees, nearer facades, hedges). Inside it the label is ``POSTER_CLASS``.
    """

    placement: str
    corners: FloatArray
    corners_world: FloatArray
    centre: FloatArray
    normal: FloatArray
    size: tuple[float, float]
    distance: float
    angle: float
    area: float
    painted: NDArray[np.bool_] = field(repr=False)
    visible: NDArray[np.bool_] = field(repr=False)

    @property
    def visible_fraction(self) -> float:
        """Share of the painted pixels the image shows (0 when nothing was painted)."""
        painted = int(self.painted.sum())
        return float(self.visible.sum()) / painted if painted else 0.0


@dataclass
class _Placed:
    """A poster as painted: placement, world corners (TL, TR, BR, BL), normal, size and painted mask."""

    placement: str
    corners_world: FloatArray
    normal: FloatArray
    size: tuple[float, float]
    painted: NDArray[np.bool_]


class PosterPlan:
    """One scene's poster: its texture, where it should go, its own random stream, and (once painted) where it is.

    ``prepare`` picks the side (and whether a "building" poster must become a billboard) once the layout is known;
    ``facade_spot`` is asked by the building row of each side; ``defer_billboard`` adds the billboard to the
    deferred objects when no facade took the poster; ``info`` gives the metadata after the scene is finished.
    """

    def __init__(self, texture: NDArray[np.float32], placement: str, rng: np.random.Generator) -> None:
        self.texture = texture
        self.placement = placement
        self.rng = rng
        self.aspect = texture.shape[0] / texture.shape[1]  # height / width
        self.side = 1
        self.placed: _Placed | None = None

    def prepare(self, view: StreetView) -> None:
        """Choose the side; a "building" poster on a street without buildings becomes a billboard."""
        if self.placement == "building":
            sides = [s for s in (-1, 1) if view.layout.kind(s) == "buildings"]
            if not sides:
                self.placement = "billboard"
            else:
                self.side = sides[min(int(self.rng.random() * len(sides)), len(sides) - 1)]
                return
        self.side = -1 if self.rng.random() < 0.5 else 1

    def _size(self, widths: tuple[float, float], max_height: float) -> tuple[float, float]:
        width = self.rng.uniform(*widths)
        height = width * self.aspect
        if height > max_height:
            width, height = max_height / self.aspect, max_height
        return width, height

    def facade_spot(
        self, view: StreetView, side: int, facade: float, segments: list[tuple[float, float, float]]
    ) -> tuple[int, float, float, float, float] | None:
        """Where on the building row of ``side`` (``segments``: (near, far, height) metres, along the facade plane
        ``facade``) the poster goes: (segment index, near edge z, width, height, bottom), or None when it goes
        elsewhere (another side, or a billboard when it fits on no facade of this side)."""
        if self.placement != "building" or self.placed is not None or side != self.side:
            return None
        camera = view.camera
        width, height = self._size(_FACADE_WIDTH, _FACADE_MAX_HEIGHT)
        bottom = self.rng.uniform(*_FACADE_BOTTOM)
        top = bottom + height
        # nearest depth at which the poster's near edge is inside the image (a setback of 0.6 m included)
        lateral = abs(facade) + 0.6
        room = camera.width - 1 - camera.centre_column if side > 0 else camera.centre_column
        z_min = camera.focal * lateral / max(room, 1e-6)
        z_min = max(z_min, camera.focal * (top - camera.mount_height) / max(camera.horizon_row, 1e-6))
        if bottom < camera.mount_height:
            z_min = max(z_min, camera.focal * (camera.mount_height - bottom) / (camera.height - 1 - camera.horizon_row))
        spans = []
        for k, (near, far, building_height) in enumerate(segments):
            lo, hi = max(near + 0.4, z_min * 1.02, 1.0), min(far - 0.4, _FACADE_MAX_DEPTH) - width
            if top <= building_height - 0.6 and hi > lo:
                spans.append((k, lo, hi))
        if not spans:
            self.placement = "billboard"  # no facade of this side takes it
            return None
        lengths = np.array([hi - lo for _, lo, hi in spans])
        ends = np.cumsum(lengths)
        u = self.rng.random() * float(ends[-1])  # uniform over all the depths where it fits
        j = min(int(np.searchsorted(ends, u, side="right")), len(spans) - 1)
        k, lo, hi = spans[j]
        return k, lo + min(max(u - float(ends[j] - lengths[j]), 0.0), hi - lo), width, height, bottom

    def paint_on_facade(
        self, view: StreetView, side: int, x: float, spot: tuple[int, float, float, float, float]
    ) -> None:
        """Paint the poster on the facade plane ``x`` of ``side`` at ``spot`` (from ``facade_spot``)."""
        _, z0, width, height, bottom = spot
        right = np.array([0.0, 0.0, -float(side)])  # the texture's left-to-right direction, seen from the street
        normal = np.array([-float(side), 0.0, 0.0])
        centre = np.array([x, bottom + height / 2, z0 + width / 2])
        self._paint(view, "building", centre, right, normal, width, height)

    def defer_billboard(self, view: StreetView) -> None:
        """When no facade took the poster: defer a billboard on the sidewalk of the chosen side."""
        if self.placed is not None:
            return
        self.placement = "billboard"
        rng, layout, side = self.rng, view.layout, self.side
        width, height = self._size(_BILLBOARD_WIDTH, _BILLBOARD_MAX_HEIGHT)
        bottom = rng.uniform(*_BILLBOARD_BOTTOM)
        yaw = math.radians(rng.uniform(*_BILLBOARD_YAW))
        right = np.array([math.cos(yaw), 0.0, -side * math.sin(yaw)])
        normal = np.array([-side * math.sin(yaw), 0.0, -math.cos(yaw)])
        reach = width / 2 * math.cos(yaw) + 0.3  # lateral half extent, and a margin
        inner = layout.kerb(side) + side * (layout.grass(side) + reach)
        outer = layout.facade(side) - side * reach
        x = rng.uniform(min(inner, outer), max(inner, outer)) if side * (outer - inner) > 0 else (inner + outer) / 2
        y = bottom + height / 2

        def corners_at(z: float) -> FloatArray:
            return _corners(np.array([x, y, z]), right, width, height)

        z_lo = _BILLBOARD_MAX_DEPTH
        for z in np.geomspace(2.0, _BILLBOARD_MAX_DEPTH, 80):  # nearest depth at which it is all inside the image
            if _inside(view, corners_at(float(z))):
                z_lo = float(z)
                break
        crossing = layout.crossing
        for _ in range(8):  # log-uniform in depth, off the cross street (there is no sidewalk there)
            z = float(np.exp(rng.uniform(math.log(z_lo), math.log(max(z_lo, _BILLBOARD_MAX_DEPTH)))))
            if crossing is None or not crossing[0] - 1.5 < z < crossing[1] + 1.5:
                break
        centre = np.array([x, y, z])
        ends = (centre - right * width / 2, centre + right * width / 2)
        distance = _segment_distance(ends[0][[0, 2]], ends[1][[0, 2]])
        view.defer(distance, partial(self._draw_billboard, view, centre, right, normal, width, height))

    def _draw_billboard(
        self, view: StreetView, centre: FloatArray, right: FloatArray, normal: FloatArray, width: float, height: float
    ) -> None:
        """Legs (pole), frame (building) and the poster, in the light at the billboard's place."""
        camera, canvas = view.camera, view.canvas
        view.light_object_at(float(centre[0]))
        z = float(centre[2])
        px_per_m = camera.focal / z
        bottom = float(centre[1]) - height / 2
        leg_col = view.fog((120, 122, 126), z)
        for along in (-0.35 * width, 0.35 * width):
            foot = centre + right * along
            line = [
                camera.project(float(foot[0]), 0.0, float(foot[2])),
                camera.project(float(foot[0]), bottom + height / 2, float(foot[2])),
            ]
            canvas.line(line, max(1.0, 0.1 * px_per_m), leg_col, POLE)
        border = 0.06 * max(width, height)
        frame = _corners(centre, right, width + 2 * border, height + 2 * border)
        frame_col = view.fog(scale_colour(_BILLBOARD_FRAME, view.lighting.face_light(normal[0], normal[2])), z)
        canvas.poly([camera.project(*(float(c) for c in p)) for p in frame], frame_col, POSTER_CLASS)
        self._paint(view, "billboard", centre, right, normal, width, height)

    def _paint(
        self,
        view: StreetView,
        placement: str,
        centre: FloatArray,
        right: FloatArray,
        normal: FloatArray,
        width: float,
        height: float,
    ) -> None:
        """Paint the texture on the rectangle ``width`` x ``height`` metres around ``centre`` spanned by ``right``
        and up, facing ``normal``, and remember it."""
        corners = _corners(centre, right, width, height)
        painted = paint_texture(view, self.texture, corners, right, normal, width, height)
        self.placed = _Placed(placement, corners, normal, (width, height), painted)

    def info(self, view: StreetView) -> PosterInfo:
        """The metadata of the painted poster, once the scene is finished."""
        placed = self.placed
        assert placed is not None, "every plan paints: on a facade, or else on a billboard"
        camera = view.camera
        corners = np.array([camera.project(*(float(c) for c in p)) for p in placed.corners_world])
        centre = placed.corners_world.mean(axis=0)
        to_camera = np.array([0.0, camera.mount_height, 0.0]) - centre
        distance = float(np.linalg.norm(to_camera))
        cos_angle = float(np.dot(placed.normal, to_camera)) / distance
        u, v = corners[:, 0], corners[:, 1]
        area = 0.5 * abs(float(np.dot(u, np.roll(v, -1)) - np.dot(v, np.roll(u, -1))))
        return PosterInfo(
            placement=placed.placement,
            corners=corners,
            corners_world=placed.corners_world.copy(),
            centre=centre,
            normal=placed.normal.copy(),
            size=placed.size,
            distance=distance,
            angle=math.degrees(math.acos(max(-1.0, min(1.0, cos_angle)))),
            area=area,
            painted=placed.painted,
            visible=view.canvas.poster_visible() & placed.painted,
        )


def _corners(centre: FloatArray, right: FloatArray, width: float, height: float) -> FloatArray:
    """(4, 3) corners top-left, top-right, bottom-right, bottom-left of an upright rectangle."""
    up = np.array([0.0, 1.0, 0.0])
    half_r, half_u = right * width / 2, up * height / 2
    return np.stack(
        [centre - half_r + half_u, centre + half_r + half_u, centre + half_r - half_u, centre - half_r - half_u]
    )


def _inside(view: StreetView, corners: FloatArray) -> bool:
    """Whether every corner is in front of the camera and projects inside the image."""
    camera = view.camera
    if (corners[:, 2] < 1.0).any():
        return False
    pts: list[Point] = [camera.project(*(float(c) for c in p)) for p in corners]
    return all(0 <= u <= camera.width - 1 and 0 <= v <= camera.height - 1 for u, v in pts)


def _segment_distance(a: FloatArray, b: FloatArray) -> float:
    """Distance from the origin to the segment a-b (2-D)."""
    d = b - a
    t = float(np.clip(-np.dot(a, d) / max(float(np.dot(d, d)), 1e-12), 0.0, 1.0))
    return float(np.linalg.norm(a + t * d))


def paint_texture(
    view: StreetView,
    texture: NDArray[np.float32],
    corners: FloatArray,
    right: FloatArray,
    normal: FloatArray,
    width: float,
    height: float,
) -> NDArray[np.bool_]:
    """Paint ``texture`` (h, w, 3) in [0, 1] on the world rectangle ``corners`` (TL, TR, BR, BL; ``right`` along
    its top edge, ``width`` x ``height`` metres, facing ``normal``) in exact perspective, lit and fogged; returns the
    (H, W) bool mask of the pixels painted. Every pixel whose centre's ray meets the rectangle is painted with the
    texture at that point."""
    camera, canvas, lighting = view.camera, view.canvas, view.lighting
    h_img, w_img = camera.height, camera.width
    painted = np.zeros((h_img, w_img), bool)
    pts = np.array([camera.project(*(float(c) for c in p)) for p in corners])
    u_lo, v_lo = max(int(math.floor(pts[:, 0].min())), 0), max(int(math.floor(pts[:, 1].min())), 0)
    u_hi, v_hi = min(int(math.ceil(pts[:, 0].max())), w_img - 1), min(int(math.ceil(pts[:, 1].max())), h_img - 1)
    if u_hi < u_lo or v_hi < v_lo:
        return painted
    # the ray of each pixel centre from the camera's centre, and where it meets the poster's plane
    uu, vv = np.meshgrid(np.arange(u_lo, u_hi + 1, dtype=np.float64), np.arange(v_lo, v_hi + 1, dtype=np.float64))
    dx, dy = (uu - camera.centre_column) / camera.focal, -(vv - camera.horizon_row) / camera.focal
    eye = np.array([0.0, camera.mount_height, 0.0])
    top_left = corners[0]
    plane = float(np.dot(normal, top_left - eye))
    denom = normal[0] * dx + normal[1] * dy + normal[2]
    with np.errstate(divide="ignore", invalid="ignore"):
        depth = plane / denom  # the ray's parameter is its depth z, as the ray's z component is 1
    px, py, pz = eye[0] + depth * dx, eye[1] + depth * dy, depth
    s = ((px - top_left[0]) * right[0] + (py - top_left[1]) * right[1] + (pz - top_left[2]) * right[2]) / width
    t = (top_left[1] - py) / height
    mask = np.isfinite(depth) & (depth > 0) & (s >= 0) & (s < 1) & (t >= 0) & (t < 1)
    if not mask.any():
        return painted
    # the texture, reduced (area average) to about the size the poster appears, then sampled bilinearly
    edge = np.linalg.norm(pts - np.roll(pts, -1, axis=0), axis=1)  # top, right, bottom, left edges, pixels
    tex = _reduce(texture, int(math.ceil(max(edge[0], edge[2]))), int(math.ceil(max(edge[1], edge[3]))))
    colour = _bilinear(tex, s[mask], t[mask]) * 255.0
    colour *= lighting.face_light(float(normal[0]), float(normal[2]))
    fade = 1.0 - np.exp(-depth[mask] / lighting.fog_distance)  # aerial perspective, per pixel
    colour += (np.asarray(view.haze, np.float64) - colour) * fade[:, None]
    colour *= view.object_light
    block = np.zeros((*mask.shape, 3), np.uint8)
    block[mask] = np.clip(np.rint(colour), 0, 255).astype(np.uint8)
    canvas.paint_pixels(u_lo, v_lo, block, mask, POSTER_CLASS, poster=True)
    painted[v_lo : v_hi + 1, u_lo : u_hi + 1] = mask
    return painted


def _reduce(texture: NDArray[np.float32], width: int, height: int) -> NDArray[np.float32]:
    """``texture`` (h, w, 3) area-averaged down to at most ``width`` x ``height`` (never enlarged)."""
    h, w = texture.shape[:2]
    new_w, new_h = min(w, max(1, width)), min(h, max(1, height))
    if (new_w, new_h) == (w, h):
        return texture
    channels = [
        np.asarray(Image.fromarray(texture[:, :, c], "F").resize((new_w, new_h), Image.Resampling.BOX), np.float32)
        for c in range(3)
    ]
    return np.stack(channels, axis=-1)


def _bilinear(texture: NDArray[np.float32], s: FloatArray, t: FloatArray) -> FloatArray:
    """Bilinear samples (N, 3) of ``texture`` (h, w, 3) at texture coordinates ``s``, ``t`` in [0, 1)."""
    h, w = texture.shape[:2]
    x = np.clip(s * w - 0.5, 0.0, w - 1.0)
    y = np.clip(t * h - 0.5, 0.0, h - 1.0)
    x0, y0 = np.floor(x).astype(np.intp), np.floor(y).astype(np.intp)
    x1, y1 = np.minimum(x0 + 1, w - 1), np.minimum(y0 + 1, h - 1)
    fx, fy = (x - x0)[:, None], (y - y0)[:, None]
    tex = texture.astype(np.float64)
    top = tex[y0, x0] * (1 - fx) + tex[y0, x1] * fx
    bottom = tex[y1, x0] * (1 - fx) + tex[y1, x1] * fx
    return top * (1 - fy) + bottom * fy
