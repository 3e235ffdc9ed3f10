"""Expectation over Transformation for patches (Athalye et al. 2018; Nesti et al., WACV 2022): random draws over the
placement (position, scale, rotation, perspective jitter of the patch's quad) and the appearance (brightness,
contrast and noise of the patch; blur and JPEG of the whole image, through ``segattack.transforms``).

Each draw is a ``Draw`` (plain numbers) made from one ``torch.Generator`` (``PatchEOT.draw``); the fit seeds one
generator per (seed, step, image) with ``patch_generator``, so that a resumed fit makes the same draws as one that
was never interrupted, and an image's draws do not depend on its batch.

Order of a draw: the patch's appearance (contrast, then brightness, then Gaussian noise, each clipped to [0, 1]),
then its quad (scaled about its centre, rotated, shifted, corners jittered), the paste (``placement.paste``: pixels
outside the patch untouched), and last the image-wide transform (blur or JPEG: these change every pixel, the point
of them). Everything is differentiable in the patch; JPEG by BPDA (``segattack.transforms``).

Nesti et al.'s EOT (``patch_utils.py`` and ``untargeted_patch_attack.py`` of retis-ai/SemSegAdvPatch): scale uniform
in [0.8, 1.2], a shift of up to half the patch's width and height around its position, Gaussian noise of standard
deviation 0.1 of the value range; with their "real-world" option also brightness (a shift of standard deviation 0.1
of the range) and contrast (a factor 1 + 0.1 N(0, 1)); rotation in their code is commented out. ``NESTI_EOT`` holds
those numbers; ``PatchEOT()``'s defaults are the same without the real-world option.

>>> eot = PatchEOT(rotation=10.0)
>>> d = eot.draw(patch_generator(0, 0, 0))
>>> d == eot.draw(patch_generator(0, 0, 0)), 0.8 <= d.scale <= 1.2
(True, True)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from ..attacks._core import mix_seed
from ..errors import InputError
from ..transforms import Transform, parse_transforms

__all__ = ["PatchEOT", "Draw", "NESTI_EOT", "patch_generator", "transform_quad", "transform_patch", "image_transform"]


def patch_generator(seed: int, step: int, image: int | str) -> torch.Generator:
    """A CPU generator for the draws of one image at one step of a fit seeded with ``seed``."""
    return torch.Generator().manual_seed(mix_seed(seed, "patch-eot", step, image))


@dataclass(frozen=True)
class Draw:
    """One EOT draw: shift (dy, dx) as a share of the patch's box height and width; scale; rotation in degrees
    (clockwise on screen); corner jitter (4, 2) as shares of the box's width (x) and height (y); brightness (added)
    and contrast (factor) of the patch; the noise seed; the index of the image-wide transform (-1: none)."""

    dy: float = 0.0
    dx: float = 0.0
    scale: float = 1.0
    angle: float = 0.0
    jitter: tuple[tuple[float, float], ...] = ((0.0, 0.0),) * 4
    brightness: float = 0.0
    contrast: float = 1.0
    noise_seed: int = 0
    transform: int = -1


def _nonneg(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise InputError(f"{name} must be a number >= 0, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class PatchEOT:
    """The ranges of the EOT draws (checked at construction, ``InputError`` naming the field):

    shift: uniform shift of up to this share of the box's height and width, each way (Nesti et al.: 0.5).
    scale: (low, high): uniform scale factor of the box about its centre (Nesti et al.: (0.8, 1.2)).
    rotation: uniform rotation in [-rotation, rotation] degrees about the box's centre (Nesti et al.: off).
    perspective: each corner moved uniformly by up to this share of the box's width and height (0: off).
    brightness: standard deviation of a Gaussian shift of the patch's values ([0, 1] units; Nesti et al.'s real-world
        option: 0.1).
    contrast: standard deviation of a Gaussian factor 1 + contrast N(0, 1) on the patch (their option: 0.1).
    noise: standard deviation of per-value Gaussian noise on the patch, [0, 1] units (Nesti et al.: 0.1).
    transforms: image-wide survival transforms (``segattack.transforms``, e.g. "blur:1,jpeg:75"), one drawn per
        image and step, or none with probability 1 / (len + 1); empty: none.
    """

    shift: float = 0.5
    scale: tuple[float, float] = (0.8, 1.2)
    rotation: float = 0.0
    perspective: float = 0.0
    brightness: float = 0.0
    contrast: float = 0.0
    noise: float = 0.1
    transforms: tuple[Transform, ...] = field(default=())

    def __post_init__(self) -> None:
        for name in ("shift", "rotation", "perspective", "brightness", "contrast", "noise"):
            object.__setattr__(self, name, _nonneg(name, getattr(self, name)))
        if self.rotation > 180:
            raise InputError(f"rotation is at most 180 degrees each way, got {self.rotation:g}")
        if self.perspective >= 0.5:
            raise InputError(f"perspective jitter must be below 0.5 of the box (or corners cross), got "
                             f"{self.perspective:g}")  # fmt: skip
        sc = self.scale
        if not (isinstance(sc, Sequence) and len(sc) == 2):
            raise InputError(f"scale takes (low, high), e.g. (0.8, 1.2), got {sc!r}")
        lo, hi = (_nonneg("scale", v) for v in sc)
        if not 0 < lo <= hi:
            raise InputError(f"scale takes (low, high) with 0 < low <= high, e.g. (0.8, 1.2), got {tuple(sc)}")
        object.__setattr__(self, "scale", (lo, hi))
        tr = self.transforms
        if isinstance(tr, str):
            tr = tuple(parse_transforms(tr)) if tr.strip() else ()
        if not all(isinstance(t, Transform) for t in tr):
            raise InputError("transforms takes a spec such as 'blur:1,jpeg:75' or segattack.transforms.Transform's")
        object.__setattr__(self, "transforms", tuple(tr))

    def draw(self, generator: torch.Generator) -> Draw:
        """One draw from ``generator`` (always the same number of values, whatever is switched off)."""
        u = torch.rand(14, generator=generator, dtype=torch.float64).tolist()
        n = torch.randn(2, generator=generator, dtype=torch.float64).tolist()
        noise_seed = int(torch.randint(2**62, (1,), generator=generator))
        k = int(torch.randint(len(self.transforms) + 1, (1,), generator=generator)) - 1
        lo, hi = self.scale
        jit = tuple(
            ((2 * u[4 + 2 * i] - 1) * self.perspective, (2 * u[5 + 2 * i] - 1) * self.perspective) for i in range(4)
        )
        return Draw(
            dy=(2 * u[0] - 1) * self.shift,
            dx=(2 * u[1] - 1) * self.shift,
            scale=lo + (hi - lo) * u[2],
            angle=(2 * u[3] - 1) * self.rotation,
            jitter=jit,
            brightness=self.brightness * n[0],
            contrast=1 + self.contrast * n[1],
            noise_seed=noise_seed,
            transform=k,
        )

    def describe(self) -> dict[str, object]:
        """The ranges as plain values (for a run's configuration file)."""
        return {
            "shift": self.shift, "scale": list(self.scale), "rotation": self.rotation,
            "perspective": self.perspective, "brightness": self.brightness, "contrast": self.contrast,
            "noise": self.noise, "transforms": ",".join(t.name for t in self.transforms),
        }  # fmt: skip


#: Nesti et al.'s EOT with their real-world option (see the module docstring).
NESTI_EOT = PatchEOT(shift=0.5, scale=(0.8, 1.2), noise=0.1, brightness=0.1, contrast=0.1)


def transform_quad(quad: Tensor, draw: Draw) -> Tensor:
    """A quad (4, 2) (x, y) moved by a draw: scaled and rotated about its centre, shifted by (dx, dy) shares of its
    bounding box, and each corner jittered. float64.

    >>> from segattack.patches.placement import quad_of
    >>> transform_quad(quad_of((0, 0, 2, 4)), Draw(dx=0.5, scale=2.0)).tolist()
    [[0.0, -1.0], [8.0, -1.0], [8.0, 3.0], [0.0, 3.0]]
    """
    q = quad.to(torch.float64)
    lo, hi = q.min(0).values, q.max(0).values
    size = hi - lo  # (w, h)
    centre = (lo + hi) / 2
    a = math.radians(draw.angle)
    rot = torch.tensor([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]], dtype=torch.float64)
    out = (q - centre) * draw.scale @ rot.T + centre
    out = out + torch.tensor([draw.dx, draw.dy], dtype=torch.float64) * size
    return out + torch.tensor(draw.jitter, dtype=torch.float64) * size


def transform_patch(patch: Tensor, draw: Draw, eot: PatchEOT) -> Tensor:
    """The patch's appearance under a draw: ``clip(contrast * p)``, ``clip(+ brightness)``, ``clip(+ noise)`` (noise
    of std ``eot.noise`` from the draw's seed); differentiable in the patch (zero gradient where a clip acts)."""
    out = patch
    if draw.contrast != 1.0:
        out = (out * draw.contrast).clamp(0, 1)
    if draw.brightness != 0.0:
        out = (out + draw.brightness).clamp(0, 1)
    if eot.noise > 0:
        g = torch.Generator().manual_seed(draw.noise_seed)
        noise = torch.randn(patch.shape, generator=g, dtype=torch.float64).to(patch.device, patch.dtype)
        out = (out + eot.noise * noise).clamp(0, 1)
    return out


def image_transform(images: Tensor, draw: Draw, eot: PatchEOT) -> Tensor:
    """The draw's image-wide transform (``Transform.differentiable``: blur exact, JPEG by BPDA) or the images
    themselves (index -1)."""
    if draw.transform < 0:
        return images
    t = eot.transforms[draw.transform]
    g = torch.Generator().manual_seed(draw.noise_seed + 1) if t.random else None
    return t.differentiable(images, generator=g)
