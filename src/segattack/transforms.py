"""Survival transforms: what an image may go through between the attacker and the model (a proxy for the physical
world: re-encoding, rescaling, defocus, sensor noise), for measuring whether an attack survives it and for attacks
that optimise over it (Expectation over Transformation, Athalye et al. 2018, "Synthesizing Robust Adversarial
Examples").

Every transform maps (B, C, H, W) float images in [0, 1] to the same shape, dtype and device, in [0, 1] and on the
8-bit grid (values k/255), like an image saved and loaded again:

- ``identity``: the images unchanged (an exact copy: not re-quantised).
- ``jpeg:Q``: a real JPEG encode and decode with Pillow at quality Q (1..100), per image.
- ``resize:F``: bilinear resampling with antialiasing down by the factor F in (0, 1] and back up to the input size.
- ``blur:S``: Gaussian blur of standard deviation S pixels (0 < S <= 100), kernel radius ceil(3 S), reflect padding.
- ``noise:N``: additive Gaussian noise of standard deviation N 8-bit levels (0 < N <= 255), drawn from a
  ``torch.Generator``
  (the same generator state gives the same noise), clipped to [0, 1].

``Transform.differentiable`` gives the same values with a gradient, for attacks: resize, blur and noise are
differentiable as they are (the 8-bit rounding by straight-through), JPEG by BPDA (Athalye, Carlini and Wagner 2018,
"Obfuscated Gradients Give a False Sense of Security"): forward the real JPEG, backward the identity.

Examples:
    >>> import torch
    >>> [t.name for t in parse_transforms("jpeg:75, resize:0.5,blur:1.0,noise:2,identity")]
    ['jpeg:75', 'resize:0.5', 'blur:1', 'noise:2', 'identity']
    >>> x = torch.full((1, 3, 8, 8), 128 / 255)
    >>> bool((Transform("blur", 1.0)(x) == x).all())
    True
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from .errors import ConfigError, InputError, InputTypeError
from .models import check_images

__all__ = ["Transform", "parse_transforms", "KINDS", "SPEC_HELP"]

#: The transform kinds, in the order the help text lists them.
KINDS = ("identity", "jpeg", "resize", "blur", "noise")

#: The largest blur sigma (pixels: a kernel 601 pixels wide) and noise std (8-bit levels: the whole range) taken;
#: beyond them nothing of the image is left to measure.
MAX_BLUR_SIGMA = 100.0
MAX_NOISE_STD = 255.0

#: The allowed forms, for error messages and help texts.
SPEC_HELP = (
    "identity, jpeg:Q (JPEG quality Q, an integer 1..100), resize:F (down by the factor F in (0, 1] and back up), "
    f"blur:S (Gaussian sigma S in (0, {MAX_BLUR_SIGMA:g}] pixels), noise:N (Gaussian noise, std N in "
    f"(0, {MAX_NOISE_STD:g}] 8-bit levels); "
    "comma-separated, e.g. jpeg:75,resize:0.5,blur:1,noise:2"
)


def _check_param(kind: str, param: float) -> float:
    """``param`` validated for ``kind`` and returned as a float; ``ConfigError`` (a ValueError) naming the allowed
    range otherwise."""
    if kind not in KINDS:
        raise ConfigError(f"unknown transform {kind!r}; the allowed forms: {SPEC_HELP}")
    if isinstance(param, bool) or not isinstance(param, int | float) or not math.isfinite(param):
        raise ConfigError(f"transform {kind}: the parameter must be a finite number, got {param!r}; {SPEC_HELP}")
    p = float(param)
    shown = _format(p)
    if kind == "identity" and p != 0:
        raise ConfigError(f"identity takes no parameter (param=0), got {shown}; write 'identity'")
    if kind == "jpeg" and not (p.is_integer() and 1 <= p <= 100):
        raise ConfigError(f"jpeg quality must be an integer from 1 to 100 (e.g. jpeg:75), got {shown}")
    if kind == "resize" and not 0 < p <= 1:
        raise ConfigError(
            f"resize factor must be in (0, 1] (down by the factor and back up, e.g. resize:0.5), got {shown}"
        )
    if kind == "blur" and not 0 < p <= MAX_BLUR_SIGMA:
        raise ConfigError(
            f"blur sigma must be a positive number of pixels up to {MAX_BLUR_SIGMA:g} (e.g. blur:1), got {shown}"
        )
    if kind == "noise" and not 0 < p <= MAX_NOISE_STD:
        raise ConfigError(
            f"noise std must be a positive number of 8-bit levels up to {MAX_NOISE_STD:g} (e.g. noise:2), got {shown}"
        )
    return p


def _format(value: float) -> str:
    """1.0 -> '1', 0.5 -> '0.5', 1e308 -> '1e+308' (the shortest text that reads back as the same float)."""
    return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)


def _quantise(x: Tensor) -> Tensor:
    """Clip to [0, 1] and round to the 8-bit grid (k/255), as saving and loading an 8-bit image does."""
    return (x.clamp(0, 1) * 255).round() / 255


class _StraightThrough(torch.autograd.Function):
    """Forward: a given value (the quantised or JPEG-compressed input); backward: the identity (straight-through,
    or BPDA with the identity as the approximation, Athalye et al. 2018)."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, value: Tensor) -> Tensor:
        return value.clone()

    @staticmethod
    def backward(ctx: Any, *grads: Tensor) -> tuple[Tensor, None]:
        return grads[0], None


def _straight_through(x: Tensor, value: Tensor) -> Tensor:
    """``value`` exactly, with the gradient of ``x`` (where ``x`` needs one; else ``value`` itself)."""
    if not (torch.is_grad_enabled() and x.requires_grad):
        return value
    out = _StraightThrough.apply(x, value.detach())
    assert isinstance(out, Tensor)
    return out


def _jpeg(images: Tensor, quality: int) -> Tensor:
    """Pillow's JPEG round trip of each image's 8-bit version: (B, C, H, W) in [0, 1] -> the same, k/255 values."""
    b, c = images.shape[:2]
    if c not in (1, 3):
        raise InputError(f"jpeg needs images with 1 or 3 channels (grey or RGB), got {c}")
    levels = (images.detach().clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()
    out = np.empty_like(levels)
    for i in range(b):
        array = levels[i, 0] if c == 1 else np.ascontiguousarray(levels[i].transpose(1, 2, 0))
        buf = io.BytesIO()
        Image.fromarray(array, mode="L" if c == 1 else "RGB").save(buf, format="JPEG", quality=quality)
        buf.seek(0)
        with Image.open(buf) as decoded:
            back = np.asarray(decoded.convert("L" if c == 1 else "RGB"))
        out[i] = back[None] if c == 1 else back.transpose(2, 0, 1)
    return torch.from_numpy(out).to(device=images.device, dtype=images.dtype) / 255


def _resize(images: Tensor, factor: float) -> Tensor:
    """Bilinear with antialiasing down to round(factor * size) (at least 1 pixel) and bilinear back up."""
    h, w = images.shape[-2:]
    small = (max(1, round(h * factor)), max(1, round(w * factor)))
    if small == (h, w):
        return images
    down = F.interpolate(images, size=small, mode="bilinear", align_corners=False, antialias=True)
    return F.interpolate(down, size=(h, w), mode="bilinear", align_corners=False)


def _blur(images: Tensor, sigma: float) -> Tensor:
    """Separable Gaussian blur, kernel radius ceil(3 sigma), reflect padding; each channel on its own."""
    c, h, w = images.shape[1:]
    r = math.ceil(3 * sigma)
    if r >= h or r >= w:
        raise InputError(
            f"blur:{_format(sigma)} has a kernel radius of {r} pixels, which reflect padding cannot take on images "
            f"of {h}x{w}; use a sigma below {min(h, w) / 3:.3g} or larger images"
        )
    x = torch.arange(-r, r + 1, dtype=images.dtype, device=images.device)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    k = k / k.sum()
    padded = F.pad(images, (r, r, r, r), mode="reflect")
    out = F.conv2d(padded, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(out, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def _noise(images: Tensor, std_levels: float, generator: torch.Generator | None) -> Tensor:
    """images + N(0, (std_levels / 255)^2) per value, drawn on the generator's device (CPU for the global RNG)."""
    device = generator.device if generator is not None else torch.device("cpu")
    dtype = images.dtype if images.dtype in (torch.float32, torch.float64) else torch.float32
    n = torch.randn(images.shape, dtype=dtype, device=device, generator=generator)
    return images + n.to(device=images.device, dtype=images.dtype) * (std_levels / 255)


@dataclass(frozen=True)
class Transform:
    """One survival transform (see the module docstring): ``kind`` and its parameter ``param`` (jpeg: quality
    1..100; resize: factor in (0, 1]; blur: Gaussian sigma in (0, 100] pixels; noise: Gaussian std in (0, 255] 8-bit
    levels; identity: 0). Invalid values raise ``ConfigError`` (a ValueError) at construction.

    >>> Transform("jpeg", 75).name
    'jpeg:75'
    """

    kind: str
    param: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "param", _check_param(self.kind, self.param))

    @property
    def name(self) -> str:
        """The canonical spec ('jpeg:75', 'resize:0.5', 'blur:1', 'noise:2', 'identity'); parses back to self."""
        return "identity" if self.kind == "identity" else f"{self.kind}:{_format(self.param)}"

    @property
    def random(self) -> bool:
        """Whether the output depends on a random draw (noise), not on the images alone."""
        return self.kind == "noise"

    def _apply(self, images: Tensor, generator: torch.Generator | None) -> Tensor:
        if self.kind == "identity":
            return images if images.requires_grad else images.clone()
        if self.kind == "jpeg":
            return _straight_through(images, _jpeg(images, int(self.param)))
        work = images if images.dtype in (torch.float32, torch.float64) else images.float()
        if self.kind == "resize":
            out = _resize(work, self.param)
        elif self.kind == "blur":
            out = _blur(work, self.param)
        else:
            out = _noise(work, self.param, generator)
        out = out.clamp(0, 1).to(images.dtype)
        return _straight_through(out, _quantise(out.detach()).to(images.dtype))

    def __call__(self, images: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
        """Apply the transform: (B, C, H, W) float in [0, 1] -> the same shape, dtype and device, in [0, 1] and on
        the 8-bit grid (identity: an exact copy). No gradient; ``images`` is not modified. ``generator``: the noise
        draw (None: torch's global RNG); the same generator state gives the same noise."""
        check_images(images)
        with torch.no_grad():
            return self._apply(images.detach(), generator)

    def differentiable(self, images: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
        """The values of ``__call__`` (bit for bit, for the same generator state), with a gradient with respect to
        ``images``: exact for resize, blur and noise (with the 8-bit rounding passed straight through; zero where
        the clip to [0, 1] acts), the identity for jpeg (BPDA, Athalye et al. 2018)."""
        check_images(images)
        return self._apply(images, generator)


def _parse_one(text: str) -> Transform:
    item = text.strip()
    if item == "identity":
        return Transform("identity")
    kind, colon, value = item.partition(":")
    kind, value = kind.strip(), value.strip()
    if kind not in KINDS or kind == "identity":
        raise ConfigError(f"unknown transform {item!r}; the allowed forms: {SPEC_HELP}")
    if not colon or not value:
        raise ConfigError(f"transform {item!r} needs a parameter ({kind}:VALUE); the allowed forms: {SPEC_HELP}")
    try:
        number = float(value)
    except ValueError:
        raise ConfigError(f"transform {item!r}: {value!r} is not a number; the allowed forms: {SPEC_HELP}") from None
    return Transform(kind, number)


def parse_transforms(spec: str) -> list[Transform]:
    """A comma-separated spec ("jpeg:75,jpeg:50,resize:0.5,blur:1.0,noise:2", "identity") -> the transforms, in
    order. ``ConfigError`` (a ValueError) naming the allowed forms and ranges for anything else, and for a
    transform listed twice.

    >>> parse_transforms("jpeg:75,noise:2")
    [Transform(kind='jpeg', param=75.0), Transform(kind='noise', param=2.0)]
    """
    if not isinstance(spec, str):
        raise InputTypeError(f"a transforms spec is a string such as 'jpeg:75,blur:1', got {type(spec).__name__}")
    items = [s for s in spec.split(",")]
    if not spec.strip() or any(not s.strip() for s in items):
        raise ConfigError(f"empty transform in {spec!r}; the allowed forms: {SPEC_HELP}")
    out = [_parse_one(s) for s in items]
    names = [t.name for t in out]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ConfigError(f"transforms spec {spec!r} lists {', '.join(twice)} twice; give each transform once")
    return out
