"""The canvas a scene is painted on: an RGB image and a label image drawn with the very same masks, a light layer, and
(when asked for) an instance layer and a poster layer.

Because every labelled primitive is drawn on image and label with one call each, the label is exactly what is drawn.
The instance layer follows the label the same way: inside ``with canvas.instance(cls):`` (one person or rider) the
primitives of class ``cls`` paint that instance's id, every other labelled primitive paints "no instance", so
occlusion is exactly the painter's order of the label. It draws nothing at random and is never read by the image.

The poster layer follows the image the same way: ``paint_pixels(..., poster=True)`` marks the pixels of a poster, and
every primitive painted afterwards (labelled or image-only) clears the pixels it covers, so what is left marked at the
end is exactly the part of the poster the image shows. It exists only once a poster is painted, so a scene without
one paints exactly what it painted before posters existed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageDraw

from ...errors import InputError
from .classes import SKY
from .geometry import Point
from .palette import Color

__all__ = ["Canvas", "INSTANCE_ID_FACTOR", "NO_INSTANCE"]

#: Instance ids are ``train_id * INSTANCE_ID_FACTOR + k`` (k = 0, 1, ... per class), as Cityscapes' in train ids.
INSTANCE_ID_FACTOR = 1000
#: The instance id of a pixel that belongs to no instance.
NO_INSTANCE = -1


class Canvas:
    """Two layers painted with the same masks (RGB ``image``, ``label`` of train ids), plus a ``light`` layer for
    shadows.

    Primitives with a class id go to the image and the label; without one (details: windows, lights, faces) they
    go to the image only. The light layer (255 = fully lit) holds cast shadows; it darkens ground classes only.
    ``paint_pixels`` pastes a block of per-pixel colours (a poster's texture) through a mask; with ``poster=True``
    it also marks those pixels on the poster layer, which every later primitive clears where it paints
    (``poster_visible``).

    With ``instances=True`` labelled primitives also go to an instance layer (``instance_ids``): the id of the
    instance open in ``instance(cls)`` for primitives of its class, no instance for all others. The layer is made
    when the first instance opens (until then it would hold no instance everywhere), so a scene pays only for what
    is painted after its first person.
    """

    def __init__(self, h: int, w: int, fill: Color, *, instances: bool = False) -> None:
        self.image = Image.new("RGB", (w, h), fill)
        self.label = Image.new("L", (w, h), SKY)
        self.light = Image.new("L", (w, h), 255)
        self.image_draw = ImageDraw.Draw(self.image)
        self.label_draw = ImageDraw.Draw(self.label)
        self.light_draw = ImageDraw.Draw(self.light)
        self.instances = instances
        # the instance layer ("I": int32) holds id + 1, 0 for no instance; made by the first ``instance``
        self._instance_layer: Image.Image | None = None
        self._instance_draw: ImageDraw.ImageDraw | None = None
        self._instance_cls: int | None = None  # the class of the open instance
        self._instance_ink = 0  # what the open instance's primitives paint: its id + 1
        self._counts: dict[int, int] = {}  # class -> instances opened so far
        # the poster layer ("L": 255 on the poster's visible pixels); made by the first ``paint_pixels(poster=True)``
        self._poster_layer: Image.Image | None = None
        self._poster_draw: ImageDraw.ImageDraw | None = None

    @contextlib.contextmanager
    def instance(self, cls: int) -> Iterator[int]:
        """Open the next instance of class ``cls`` for the ``with`` block; yields its id (``NO_INSTANCE`` when the
        canvas keeps no instances). Primitives of class ``cls`` painted inside paint that id."""
        if not self.instances:
            yield NO_INSTANCE
            return
        if self._instance_cls is not None:
            raise RuntimeError("instances do not nest: one instance at a time")
        k = self._counts.get(cls, 0)
        if k >= INSTANCE_ID_FACTOR:
            raise InputError(f"more than {INSTANCE_ID_FACTOR} instances of class {cls} in one scene")
        self._counts[cls] = k + 1
        if self._instance_layer is None:
            self._instance_layer = Image.new("I", self.image.size, 0)
            self._instance_draw = ImageDraw.Draw(self._instance_layer)
        ident = cls * INSTANCE_ID_FACTOR + k
        self._instance_cls, self._instance_ink = cls, ident + 1
        try:
            yield ident
        finally:
            self._instance_cls, self._instance_ink = None, 0

    def _labelled(self, cls: int) -> list[tuple[ImageDraw.ImageDraw, int]]:
        """The layers a primitive of class ``cls`` is painted on besides the image, each with its ink: the label,
        and the instance layer once it exists (the open instance's id for its class, no instance for any other)."""
        if self._instance_draw is None:
            return [(self.label_draw, cls)]
        ink = self._instance_ink if cls == self._instance_cls else 0
        return [(self.label_draw, cls), (self._instance_draw, ink)]

    def _layers(self, cls: int | None) -> list[tuple[ImageDraw.ImageDraw, int]]:
        """Every layer a primitive of class ``cls`` (None: image only) is painted on besides the image, each with
        its ink: the labelled layers (``_labelled``) and, once a poster is painted, the poster layer, cleared."""
        layers = [] if cls is None else self._labelled(cls)
        if self._poster_draw is not None:
            layers.append((self._poster_draw, 0))
        return layers

    def paint_pixels(
        self, left: int, top: int, rgb: NDArray[np.uint8], mask: NDArray[np.bool_], cls: int, *, poster: bool = False
    ) -> None:
        """Paste ``rgb`` (h, w, 3) uint8 through ``mask`` (h, w) bool with its top-left pixel at (``left``, ``top``):
        the image takes the colours, the label ``cls`` (the instance layer: no instance). The block must lie inside
        the canvas. ``poster``: mark the pixels on the poster layer (``poster_visible``); any other pasted block
        clears them like a primitive."""
        h, w = mask.shape
        width, height = self.image.size
        if rgb.shape != (h, w, 3) or left < 0 or top < 0 or left + w > width or top + h > height:
            raise InputError(f"a block of {rgb.shape} at ({left}, {top}) does not fit a {width}x{height} canvas")
        stencil = Image.fromarray(mask.astype(np.uint8) * 255)
        box = (left, top, left + w, top + h)
        self.image.paste(Image.fromarray(np.ascontiguousarray(rgb), "RGB"), box, stencil)
        self.label.paste(cls, box, stencil)
        if self._instance_layer is not None:
            self._instance_layer.paste(0, box, stencil)
        if poster and self._poster_layer is None:
            self._poster_layer = Image.new("L", self.image.size, 0)
            self._poster_draw = ImageDraw.Draw(self._poster_layer)
        if self._poster_layer is not None:
            self._poster_layer.paste(255 if poster else 0, box, stencil)

    def poster_visible(self) -> NDArray[np.bool_]:
        """(H, W) bool: the poster pixels that nothing painted after them covers (all False before any poster)."""
        w, h = self.image.size
        if self._poster_layer is None:
            return np.zeros((h, w), bool)
        return np.asarray(self._poster_layer) > 0

    def instance_ids(self) -> NDArray[np.int64]:
        """(H, W) int64: ``train_id * 1000 + k`` on the pixels of instance k of a class, ``NO_INSTANCE`` elsewhere."""
        w, h = self.image.size
        if self._instance_layer is None:
            return np.full((h, w), NO_INSTANCE, np.int64)
        return np.asarray(self._instance_layer, np.int64) - 1

    def poly(self, pts: Sequence[Point], color: Color, cls: int | None = None) -> None:
        self.image_draw.polygon(pts, fill=color)
        for draw, ink in self._layers(cls):
            draw.polygon(pts, fill=ink)

    def ellipse(self, cx: float, cy: float, rx: float, ry: float, color: Color, cls: int | None = None) -> None:
        box = (cx - abs(rx), cy - abs(ry), cx + abs(rx), cy + abs(ry))
        self.image_draw.ellipse(box, fill=color)
        for draw, ink in self._layers(cls):
            draw.ellipse(box, fill=ink)

    def chord(self, cx: float, cy: float, rx: float, ry: float, color: Color, cls: int | None = None) -> None:
        """Upper half of an ellipse (hair, hats, helmets)."""
        box = (cx - abs(rx), cy - abs(ry), cx + abs(rx), cy + abs(ry))
        self.image_draw.chord(box, 180, 360, fill=color)
        for draw, ink in self._layers(cls):
            draw.chord(box, 180, 360, fill=ink)

    def ring(
        self, cx: float, cy: float, rx: float, ry: float, width: float, color: Color, cls: int | None = None
    ) -> None:
        """Outline of an ellipse ``width`` pixels wide (wheels)."""
        w = max(1, int(round(width)))
        rx, ry = max(abs(rx), 0.5 * w), max(abs(ry), 0.5 * w)
        box = (cx - rx, cy - ry, cx + rx, cy + ry)
        self.image_draw.ellipse(box, outline=color, width=w)
        for draw, ink in self._layers(cls):
            draw.ellipse(box, outline=ink, width=w)

    def line(self, pts: Sequence[Point], width: float, color: Color, cls: int | None = None) -> None:
        """A polyline ``width`` pixels wide, with round joints when it is thick."""
        w = max(1, int(round(width)))
        joint = "curve" if w > 2 and len(pts) > 2 else None
        self.image_draw.line(pts, fill=color, width=w, joint=joint)
        for draw, ink in self._layers(cls):
            draw.line(pts, fill=ink, width=w, joint=joint)

    def shadow(self, pts: Sequence[Point], lit: int) -> None:
        """Cast shadow on the ground (light layer only)."""
        self.light_draw.polygon(pts, fill=lit)

    def shadow_ellipse(self, cx: float, cy: float, rx: float, ry: float, lit: int) -> None:
        """Elliptic cast shadow (light layer only); skipped when under half a pixel across."""
        rx, ry = abs(rx), abs(ry)
        if rx >= 0.5 and ry >= 0.5:
            self.light_draw.ellipse((cx - rx, cy - ry, cx + rx, cy + ry), fill=lit)
