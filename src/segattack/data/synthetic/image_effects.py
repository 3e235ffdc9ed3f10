"""What turns the painted canvas into a camera image: optical blur, exposure and white balance, cast shadows on the
ground, per-class texture and sensor noise. They change the image only; the label stays exactly what was painted.

Texture and noise come from fixed noise fields (one pair per image size, from a fixed seed) of which each scene takes
a random window, so every scene stays a pure function of its own generator and no scene pays for fresh noise.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageFilter

from .classes import (
    BICYCLE,
    BUILDING,
    BUS,
    CAR,
    FENCE,
    LIGHT,
    MOTORCYCLE,
    PERSON,
    POLE,
    RIDER,
    ROAD,
    SIDEWALK,
    SIGN,
    SKY,
    TERRAIN,
    TRAIN,
    TRUCK,
    VEG,
    WALL,
)
from .street_view import StreetView

__all__ = ["finish_image", "noise_bank"]

# Cast shadows darken these classes only (objects in shadow are darkened when drawn).
GROUND_SHADE = np.zeros(256, np.float32)
GROUND_SHADE[[ROAD, SIDEWALK, TERRAIN]] = 1.0 / 255.0

# Texture strength per class (relative change per noise unit): leaves and grass rough, sky and cars smooth.
TEXTURE_FINE = np.zeros(256, np.float32)
TEXTURE_MID = np.zeros(256, np.float32)
for _cls, (_fine, _mid) in {
    ROAD: (0.07, 0.05), SIDEWALK: (0.08, 0.05), BUILDING: (0.05, 0.06), WALL: (0.07, 0.07), FENCE: (0.06, 0.04),
    POLE: (0.03, 0.02), LIGHT: (0.03, 0.02), SIGN: (0.02, 0.02), VEG: (0.2, 0.3), TERRAIN: (0.14, 0.2),
    SKY: (0.005, 0.01), PERSON: (0.04, 0.04), RIDER: (0.04, 0.04), CAR: (0.02, 0.02), TRUCK: (0.03, 0.03),
    BUS: (0.02, 0.02), TRAIN: (0.02, 0.02), MOTORCYCLE: (0.03, 0.02), BICYCLE: (0.03, 0.02),
}.items():  # fmt: skip
    TEXTURE_FINE[_cls], TEXTURE_MID[_cls] = _fine / 127.5, _mid / 127.5

_NOISE_CACHE: dict[tuple[int, int], tuple[NDArray[np.float32], NDArray[np.float32]]] = {}


def noise_bank(h: int, w: int) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
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


def finish_image(view: StreetView) -> tuple[NDArray[np.uint8], NDArray[np.int64]]:
    """Optical blur, exposure and white balance, shading and shadows, texture, sensor noise (image only).

    Returns image (H, W, 3) uint8 and label (H, W) int64.
    """
    rng, canvas, camera = view.rng, view.canvas, view.camera
    h, w = camera.height, camera.width
    radius = 0.55 * camera.pixel_scale
    blurred = canvas.image.filter(ImageFilter.BoxBlur(radius)) if radius >= 0.3 else canvas.image
    gain = rng.uniform(0.75, 1.2) * (1.0 + rng.normal(0.0, 0.05, 3))  # exposure and white balance
    lut = np.minimum(np.arange(256)[None, :] * gain[:, None], 255).astype(np.uint8).ravel().tolist()
    img = np.asarray(blurred.point(lut))
    lab = np.asarray(canvas.label)
    fine, mid = noise_bank(h, w)  # fixed noise fields; a random window of each
    ph, pw = fine.shape[0] - h + 1, fine.shape[1] - w + 1
    fine_y, fine_x, mid_y, mid_x = (int(v) for v in rng.integers(0, [ph, pw, ph, pw]))
    grain = np.float32(rng.uniform(0.004, 0.02) / 127.5)  # sensor noise, relative amplitude
    amp_fine = TEXTURE_FINE * np.float32(rng.uniform(0.6, 1.4)) + grain
    amp_mid = TEXTURE_MID * np.float32(rng.uniform(0.6, 1.4))
    idx = lab.astype(np.intp)
    mult = np.take(amp_fine, idx) * fine[fine_y : fine_y + h, fine_x : fine_x + w]
    mult += np.take(amp_mid, idx) * mid[mid_y : mid_y + h, mid_x : mid_x + w]
    mult += 1.0
    ground_row = min(max(int(camera.horizon_row), 0), h)  # the ground lies below the horizon row
    lit = np.asarray(canvas.light.crop((0, ground_row, w, h)), np.float32) - 255.0
    mult[ground_row:] *= np.take(GROUND_SHADE, idx[ground_row:]) * lit + 1.0  # cast shadows, on the ground only
    out = img * mult[..., None]
    np.clip(out, 0.0, 255.0, out=out)
    return out.astype(np.uint8), lab.astype(np.int64)
