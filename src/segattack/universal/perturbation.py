"""A fitted universal perturbation (``UniversalResult``) and the pure tensor maths on it: adding it to images
(``apply_universal``) and drawing it (``perturbation_image``). No files, no data sets: ``export`` writes it,
``fit`` makes it.

>>> import torch
>>> x = torch.tensor([0.0, 0.5, 1.0]).view(1, 3, 1, 1)
>>> (apply_universal(x, torch.full((3, 1, 1), 2 / 255)) * 255).flatten().tolist()
[2.0, 129.5, 255.0]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from ..attacks._core import levels_of, to_levels
from ..errors import InputError, InputTypeError
from ..models import check_images

__all__ = ["UniversalResult", "apply_universal", "perturbation_image", "snap_levels", "check_perturbation"]

#: Values within this many levels of a whole level count as whole levels.
WHOLE_TOL = 1e-3


@dataclass(frozen=True, eq=False)
class UniversalResult:
    """A fitted universal perturbation and how it was made.

    perturbation: (3, H, W) float32 in [0, 1] units, within [-eps, eps]; whole levels (``levels``) when eps and
        step_size are whole levels.
    eps, step_size: [0, 1] units; steps: iterations; omega: the weight of the hidden-class pixels (``target="hide"``).
    target: "hide", "static" (one class everywhere) or "map" (a fixed label map, in ``target_map``).
    class_ids: the hidden class(es) for "hide", the one class for "static", () for "map".
    loss: the mean loss over the fit images at xi_0 .. xi_{steps-1} (one value per iteration).
    image_ids: the images it was fitted on; skipped: (image id, reason) of images left out of the fit.
    """

    perturbation: Tensor
    eps: float
    step_size: float
    steps: int
    omega: float
    target: str
    class_ids: tuple[int, ...]
    loss: tuple[float, ...]
    image_ids: tuple[str, ...]
    skipped: tuple[tuple[str, str], ...] = ()
    target_map: Tensor | None = None

    @property
    def size(self) -> tuple[int, int]:
        """(H, W) in pixels."""
        return int(self.perturbation.shape[-2]), int(self.perturbation.shape[-1])

    @property
    def levels(self) -> Tensor:
        """The perturbation in 8-bit levels (3, H, W) float32, snapped to whole levels when it holds whole levels."""
        return snap_levels(self.perturbation.detach().to(torch.float32) * 255)

    def apply(self, images: Tensor) -> Tensor:
        """``apply_universal(images, self.perturbation)``."""
        return apply_universal(images, self.perturbation)


def snap_levels(levels: Tensor) -> Tensor:
    """Levels rounded to whole levels when every value is within ``WHOLE_TOL`` of one; unchanged otherwise."""
    rounded = levels.round()
    if levels.numel() and float((levels - rounded).abs().max()) <= WHOLE_TOL:
        return rounded
    return levels


def check_perturbation(perturbation: Tensor) -> None:
    """A perturbation (C, H, W), floating point, in [0, 1] units (``InputError`` / ``InputTypeError`` otherwise)."""
    if not isinstance(perturbation, Tensor):
        raise InputTypeError(f"perturbation must be a torch.Tensor (3, H, W), got {type(perturbation).__name__}")
    if perturbation.ndim != 3 or not perturbation.is_floating_point():
        raise InputError(
            f"perturbation must be a float tensor (C, H, W) in [0, 1] units, got {perturbation.dtype} "
            f"{tuple(perturbation.shape)}; pass UniversalResult.perturbation"
        )
    if perturbation.numel() and not bool(perturbation.detach().abs().le(1).all()):
        raise InputError("perturbation holds values beyond +-1: it must be in [0, 1] units (levels / 255)")


def apply_universal(images: Tensor, perturbation: Tensor | UniversalResult) -> Tensor:
    """Add a universal perturbation to every image: ``clamp(images + xi, 0, 1)``, computed in 8-bit levels.

    Args:
        images: (B, C, H, W) float in [0, 1]; not modified.
        perturbation: (C, H, W) in [0, 1] units (``UniversalResult.perturbation``), or the result itself.

    Returns:
        (B, C, H, W) in the images' dtype and device. For 8-bit images and a whole-level perturbation, ``out * 255`` is
        integral (a PNG of it reproduces it exactly).
    """
    if isinstance(perturbation, UniversalResult):
        perturbation = perturbation.perturbation
    check_images(images)
    check_perturbation(perturbation)
    if tuple(perturbation.shape) != tuple(images.shape[1:]):
        raise InputError(
            f"the perturbation is {tuple(perturbation.shape)} (C, H, W) but the images are {tuple(images.shape[1:])}; "
            "a universal perturbation applies to images of the size it was fitted on (resize them first)"
        )
    delta = snap_levels(perturbation.detach().to(images.device, torch.float64) * 255).to(images.dtype)
    return ((to_levels(images) + delta).clamp(0, 255) / 255).to(images.dtype)


def perturbation_image(perturbation: Tensor | UniversalResult, *, eps: float | None = None) -> np.ndarray:
    """The perturbation as an (H, W, 3) uint8 picture, scaled to the full range: -eps -> 0, 0 -> 128, +eps -> 255
    (value = floor((xi + eps) * 255 / (2 eps) + 0.5)).

    ``eps`` ([0, 1] units) defaults to the result's budget, or to the largest |value| for a bare tensor.

    >>> perturbation_image(torch.tensor([-2.0, 0.0, 2.0]).view(3, 1, 1) / 255).flatten().tolist()
    [0, 128, 255]
    """
    if isinstance(perturbation, UniversalResult):
        eps = perturbation.eps if eps is None else eps
        perturbation = perturbation.perturbation
    check_perturbation(perturbation)
    lv = snap_levels(perturbation.detach().to(torch.float64).cpu() * 255)  # levels: whole levels map exactly
    scale = float(lv.abs().max()) if eps is None else levels_of(eps)
    scale = scale if scale > 0 else 1.0
    # floor(x + 0.5) rather than round-half-even, so that ties (e.g. 25.5) always go up
    img = torch.floor((lv.clamp(-scale, scale) + scale) * 255 / (2 * scale) + 0.5).to(torch.uint8)
    return img.permute(1, 2, 0).numpy()
