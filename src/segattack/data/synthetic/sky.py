"""The sky: a vertical gradient from the zenith to the horizon colour (clear, overcast, hazy or dusk), with soft clouds.

Painting the sky creates the scene's canvas, filled with the horizon colour (the haze that distant objects fade into).
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image

from .canvas import Canvas
from .geometry import Camera
from .palette import Color, clip_colour
from .sampling import pick

__all__ = ["paint_sky"]


def paint_sky(rng: np.random.Generator, camera: Camera, *, instances: bool = False) -> tuple[Canvas, Color]:
    """A new canvas with the sky painted, and the horizon (haze) colour; ``instances``: the canvas keeps instance
    ids (``Canvas``)."""
    h, w = camera.height, camera.width
    kind = pick(rng, ("clear", "overcast", "hazy", "dusk"), p=(0.45, 0.3, 0.15, 0.1))
    if kind == "clear":  # clear blue
        zenith, horizon = np.array([50, 105, 190]), np.array([175, 205, 235])
    elif kind == "overcast":
        g = rng.uniform(150, 215)
        zenith, horizon = np.array([g - 20, g - 12, g]), np.array([g + 25, g + 25, g + 28])
    elif kind == "hazy":  # hazy warm
        zenith, horizon = np.array([90, 120, 170]), np.array([235, 200, 160])
    else:  # dusk
        zenith, horizon = np.array([40, 50, 95]), np.array([230, 150, 110])
    zenith = zenith + rng.normal(0, 12, 3)
    horizon = horizon + rng.normal(0, 12, 3)
    haze = clip_colour(horizon)
    canvas = Canvas(h, w, haze, instances=instances)
    rows = min(h, int(math.ceil(camera.horizon_row)) + 2)
    if rows == 0:
        return canvas, haze
    t = (np.arange(rows, dtype=np.float32) / max(camera.horizon_row, 1.0)).clip(0, 1) ** rng.uniform(0.6, 1.6)
    grad = zenith[None, :] * (1 - t[:, None]) + horizon[None, :] * t[:, None]  # (rows, 3)
    column = Image.fromarray(grad.clip(0, 255).astype(np.uint8)[:, None, :], "RGB")
    canvas.image.paste(column.resize((w, rows), Image.Resampling.NEAREST), (0, 0))
    cover = rng.uniform(0.0, 1.0) if kind != "overcast" else rng.uniform(0.0, 0.5)
    if cover > 0.15:  # soft clouds: smooth noise through a ramp, as the alpha of the cloud colour
        # two octaves of smooth noise on a fixed 40x96 grid (resolution-free), through a soft threshold
        field = np.zeros((40, 96), np.float32)
        for (gh, gw), weight in (((5, 12), 0.65), ((10, 24), 0.35)):
            cells = Image.fromarray((rng.random((gh, gw)) * 255).astype(np.uint8))
            field += weight * np.asarray(cells.resize((96, 40), Image.Resampling.BICUBIC), np.float32)
        alpha = np.clip((field / 255.0 - (1.0 - 0.5 * cover)) * 2.5, 0.0, 1.0) * 255
        alpha_img = Image.fromarray(alpha.astype(np.uint8)).resize((w, rows), Image.Resampling.BILINEAR)
        cloud = clip_colour(np.maximum(zenith, horizon) * rng.uniform(0.9, 1.1) + 25)
        canvas.image.paste(cloud, (0, 0, w, rows), alpha_img)
    return canvas, haze
