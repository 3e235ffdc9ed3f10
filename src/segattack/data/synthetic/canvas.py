"""The canvas a scene is painted on: an RGB image and a label image drawn with the very same masks, and a light layer.

Because every labelled primitive is drawn on image and label with one call each, the label is exactly what is drawn.
"""

from __future__ import annotations

from collections.abc import Sequence

from PIL import Image, ImageDraw

from .classes import SKY
from .geometry import Point
from .palette import Color

__all__ = ["Canvas"]


class Canvas:
    """Two layers painted with the same masks (RGB ``image``, ``label`` of train ids), plus a ``light`` layer for
    shadows.

    Primitives with a class id go to the image and the label; without one (details: windows, lights, faces) they
    go to the image only. The light layer (255 = fully lit) holds cast shadows; it darkens ground classes only.
    """

    def __init__(self, h: int, w: int, fill: Color) -> None:
        self.image = Image.new("RGB", (w, h), fill)
        self.label = Image.new("L", (w, h), SKY)
        self.light = Image.new("L", (w, h), 255)
        self.image_draw = ImageDraw.Draw(self.image)
        self.label_draw = ImageDraw.Draw(self.label)
        self.light_draw = ImageDraw.Draw(self.light)

    def poly(self, pts: Sequence[Point], color: Color, cls: int | None = None) -> None:
        self.image_draw.polygon(pts, fill=color)
        if cls is not None:
            self.label_draw.polygon(pts, fill=cls)

    def ellipse(self, cx: float, cy: float, rx: float, ry: float, color: Color, cls: int | None = None) -> None:
        box = (cx - abs(rx), cy - abs(ry), cx + abs(rx), cy + abs(ry))
        self.image_draw.ellipse(box, fill=color)
        if cls is not None:
            self.label_draw.ellipse(box, fill=cls)

    def chord(self, cx: float, cy: float, rx: float, ry: float, color: Color, cls: int | None = None) -> None:
        """Upper half of an ellipse (hair, hats, helmets)."""
        box = (cx - abs(rx), cy - abs(ry), cx + abs(rx), cy + abs(ry))
        self.image_draw.chord(box, 180, 360, fill=color)
        if cls is not None:
            self.label_draw.chord(box, 180, 360, fill=cls)

    def ring(
        self, cx: float, cy: float, rx: float, ry: float, width: float, color: Color, cls: int | None = None
    ) -> None:
        """Outline of an ellipse ``width`` pixels wide (wheels)."""
        w = max(1, int(round(width)))
        rx, ry = max(abs(rx), 0.5 * w), max(abs(ry), 0.5 * w)
        box = (cx - rx, cy - ry, cx + rx, cy + ry)
        self.image_draw.ellipse(box, outline=color, width=w)
        if cls is not None:
            self.label_draw.ellipse(box, outline=cls, width=w)

    def line(self, pts: Sequence[Point], width: float, color: Color, cls: int | None = None) -> None:
        """A polyline ``width`` pixels wide, with round joints when it is thick."""
        w = max(1, int(round(width)))
        joint = "curve" if w > 2 and len(pts) > 2 else None
        self.image_draw.line(pts, fill=color, width=w, joint=joint)
        if cls is not None:
            self.label_draw.line(pts, fill=cls, width=w, joint=joint)

    def shadow(self, pts: Sequence[Point], lit: int) -> None:
        """Cast shadow on the ground (light layer only)."""
        self.light_draw.polygon(pts, fill=lit)

    def shadow_ellipse(self, cx: float, cy: float, rx: float, ry: float, lit: int) -> None:
        """Elliptic cast shadow (light layer only); skipped when under half a pixel across."""
        rx, ry = abs(rx), abs(ry)
        if rx >= 0.5 and ry >= 0.5:
            self.light_draw.ellipse((cx - rx, cy - ry, cx + rx, cy + ry), fill=lit)
