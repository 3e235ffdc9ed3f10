"""Universal adversarial perturbations against semantic segmentation: Metzen, Kumar, Brox and Fischer (ICCV 2017),
"Universal adversarial perturbations against semantic image segmentation".

One perturbation xi (3, H, W) is fitted on m images x_1..x_m and then added to any image of that size:

    xi_0 = 0,   xi_{n+1} = Clip_eps( xi_n - alpha * sign( (1/m) sum_k grad_x J( f(x_k + xi_n), y_k ) ) )

with the adversarial image kept in [0, 1] (``clamp(x + xi, 0, 1)``) and the gradient taken with respect to the
network's input at that image. Targets y_k:

- ``target="hide"`` (the paper's dynamic target): ``hide_class_target`` of the network's clean prediction on x_k,
  computed once per image; the loss weighs the pixels predicted as the hidden class(es) by omega and the others by
  1 - omega: J = (1/|I|) [ omega sum_{I_o} CE + (1 - omega) sum_{I_bg} CE ] (omega = 0.9999 as in the paper);
- ``target="static"``: one class everywhere (``static_target``), or ``target=<(H, W) label map>``: the same map for
  every image; plain cross-entropy averaged over the pixels (``ignore_index`` pixels left out).

The gradient is averaged over all fit images on every iteration (minibatches of ``batch_size`` are summed, then
divided by m), following a public re-implementation of the paper (its text could not be checked here). Like the
other attacks, the arithmetic runs in 8-bit levels: with a whole-level budget and step (the defaults' 1/255), xi
holds whole levels and ``clamp(x + xi)`` of an 8-bit image is again an 8-bit image.

>>> import torch
>>> from segattack import PixelModel
>>> _ = torch.manual_seed(0)
>>> net = torch.nn.Conv2d(3, 4, kernel_size=1)
>>> images = torch.rand(3, 3, 8, 12).mul(255).round().div(255)
>>> res = universal(PixelModel(net), images, eps=4 / 255, class_id=2, steps=3)
>>> res.perturbation.shape, res.size, len(res.loss), res.skipped
(torch.Size([3, 8, 12]), (8, 12), 3, ())
>>> bool((res.levels.abs() <= 4).all()) and bool((res.levels == res.levels.round()).all())
True
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..models import PixelModel, check_images
from ..rundir import atomic_open
from ..targets import class_id_tuple, hidden_mask, hide_class_target
from ._core import Model, as_model, check_positive, levels_of, to_levels

__all__ = [
    "universal",
    "UniversalResult",
    "apply_universal",
    "save_universal",
    "load_universal",
    "perturbation_image",
    "DEFAULT_HIDE_CLASS",
]

log = logging.getLogger(__name__)

#: The class ``target="hide"`` hides when no ``class_id`` is given: Cityscapes' person (train id 11).
DEFAULT_HIDE_CLASS = 11
#: The ``format`` entry of a saved perturbation (``save_universal``).
FILE_FORMAT = "segattack-universal/1"
#: Values within this many levels of a whole level count as whole levels.
_WHOLE_TOL = 1e-3

#: ``progress(done, steps, loss)``: called once with done=0 and loss NaN when the fit starts (images loaded, targets
#: set), then after each iteration with the mean loss at the iterate that iteration started from.
Progress = Callable[[int, int, float], None]


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
        return _snap(self.perturbation.detach().to(torch.float32) * 255)

    def apply(self, images: Tensor) -> Tensor:
        """``apply_universal(images, self.perturbation)``."""
        return apply_universal(images, self.perturbation)


def _snap(levels: Tensor) -> Tensor:
    rounded = levels.round()
    if levels.numel() and float((levels - rounded).abs().max()) <= _WHOLE_TOL:
        return rounded
    return levels


def _check_perturbation(perturbation: Tensor) -> None:
    if not isinstance(perturbation, Tensor):
        raise TypeError(f"perturbation must be a torch.Tensor (3, H, W), got {type(perturbation).__name__}")
    if perturbation.ndim != 3 or not perturbation.is_floating_point():
        raise ValueError(
            f"perturbation must be a float tensor (C, H, W) in [0, 1] units, got {perturbation.dtype} "
            f"{tuple(perturbation.shape)}; pass UniversalResult.perturbation"
        )
    if perturbation.numel() and not bool(perturbation.detach().abs().le(1).all()):
        raise ValueError("perturbation holds values beyond +-1: it must be in [0, 1] units (levels / 255)")


def apply_universal(images: Tensor, perturbation: Tensor | UniversalResult) -> Tensor:
    """Add a universal perturbation to every image: ``clamp(images + xi, 0, 1)``, computed in 8-bit levels.

    Args:
        images: (B, C, H, W) float in [0, 1]; not modified.
        perturbation: (C, H, W) in [0, 1] units (``UniversalResult.perturbation``), or the result itself.

    Returns:
        (B, C, H, W) in the images' dtype and device. For 8-bit images and a whole-level perturbation, ``out * 255`` is
        integral (a PNG of it reproduces it exactly).

    >>> x = torch.tensor([0.0, 0.5, 1.0]).view(1, 3, 1, 1)
    >>> (apply_universal(x, torch.full((3, 1, 1), 2 / 255)) * 255).flatten().tolist()
    [2.0, 129.5, 255.0]
    """
    if isinstance(perturbation, UniversalResult):
        perturbation = perturbation.perturbation
    check_images(images)
    _check_perturbation(perturbation)
    if tuple(perturbation.shape) != tuple(images.shape[1:]):
        raise ValueError(
            f"the perturbation is {tuple(perturbation.shape)} (C, H, W) but the images are {tuple(images.shape[1:])}; "
            "a universal perturbation applies to images of the size it was fitted on (resize them first)"
        )
    delta = _snap(perturbation.detach().to(images.device, torch.float64) * 255).to(images.dtype)
    return ((to_levels(images) + delta).clamp(0, 255) / 255).to(images.dtype)


# --------------------------------------------------------------------------------------------------- the fit


def _model_dtype_device(model: Model) -> tuple[torch.dtype, torch.device]:
    """The dtype the network computes in (its first floating parameter or buffer) and the device of the model."""
    net = model.net if isinstance(model, PixelModel) else model
    first: Tensor | None = None
    if isinstance(net, torch.nn.Module):
        first = next((t for t in (*net.parameters(), *net.buffers()) if t.is_floating_point()), None)
    dtype = first.dtype if first is not None else torch.float32
    if isinstance(model, PixelModel):
        return dtype, model.device
    return dtype, first.device if first is not None else torch.device("cpu")


def _image_levels(image: Any, name: str) -> Tensor:
    """One data-set image -> (3, H, W) levels: uint8 as it is, float [0, 1] scaled (and rounded when 8-bit)."""
    if not isinstance(image, Tensor):
        raise TypeError(f"{name}: a data set item must be (image tensor (3, H, W), label), got {type(image).__name__}")
    if image.ndim != 3:
        raise ValueError(f"{name}: image must have shape (3, H, W), got {tuple(image.shape)}")
    if image.dtype == torch.uint8:
        return image
    if not image.is_floating_point():
        raise TypeError(f"{name}: image must be uint8 (0..255) or float in [0, 1], got {image.dtype}")
    check_images(image[None], name=name)
    return to_levels(image[None])[0]


def _load_images(dataset: Any, limit: int | None) -> tuple[Tensor, list[str], list[tuple[str, str]]]:
    """All images of a data set (or an (N, C, H, W) tensor in [0, 1]) as one levels tensor (uint8 where 8-bit)."""
    if isinstance(dataset, Tensor):
        check_images(dataset, name="dataset")
        images = dataset if limit is None else dataset[:limit]
        if images.shape[0] == 0:
            raise ValueError("dataset holds no images")
        return to_levels(images), [f"image_{i}" for i in range(images.shape[0])], []
    if not hasattr(dataset, "__getitem__") or not hasattr(dataset, "__len__"):
        raise TypeError(
            f"dataset must be a segattack data set (items (uint8 image (3, H, W), label)) or an (N, 3, H, W) tensor "
            f"in [0, 1], got {type(dataset).__name__}"
        )
    from ..data.base import UnreadableImageError

    n = len(dataset) if limit is None else min(limit, len(dataset))
    ids = getattr(dataset, "image_id", None)
    out: list[Tensor] = []
    kept: list[str] = []
    skipped: list[tuple[str, str]] = []
    for i in range(n):
        image_id = str(ids(i)) if callable(ids) else f"image_{i}"
        try:
            item = dataset[i]
        except UnreadableImageError as err:
            log.warning("skipping %s: %s", image_id, err)
            skipped.append((image_id, "unreadable"))
            continue
        img = _image_levels(item[0] if isinstance(item, tuple | list) else item, image_id)
        if out and tuple(img.shape) != tuple(out[0].shape):
            h, w = out[0].shape[-2:]
            raise ValueError(
                f"image {image_id!r} is {img.shape[-2]}x{img.shape[-1]} pixels but {kept[0]!r} is {h}x{w}: one "
                f"universal perturbation needs one image size; resize the data (on the command line: --size {h}x{w})"
            )
        if out and img.dtype != out[0].dtype:
            out = [t.to(torch.float32) for t in out]
            img = img.to(torch.float32)
        out.append(img)
        kept.append(image_id)
    if not out:
        raise ValueError("the data set holds no readable image" if n else "the data set holds no images")
    return torch.stack(out), kept, skipped


def _forward(model: Model, x: Tensor, *, check: bool) -> Tensor:
    logits = model(x) if check or not isinstance(model, PixelModel) else model(x, check=False)
    if check and (logits.ndim != 4 or logits.shape[0] != x.shape[0] or logits.shape[-2:] != x.shape[-2:]):
        raise ValueError(
            f"model returned shape {tuple(logits.shape)} for images {tuple(x.shape)}; it must return logits "
            "(B, K, H, W) at input size (wrap the network in segattack.PixelModel)"
        )
    return logits


def _check_ids(ids: Sequence[int], k: int, what: str) -> None:
    bad = [c for c in ids if c >= k]
    if bad:
        raise ValueError(f"{what} {bad} out of range: the model predicts {k} classes (0..{k - 1})")


def _resolve_target(
    target: str | Tensor, class_id: int | Sequence[int] | None, size: tuple[int, int], ignore_index: int
) -> tuple[str, tuple[int, ...], Tensor | None]:
    if isinstance(target, Tensor):
        if class_id is not None:
            raise ValueError("class_id goes with target='hide' or 'static'; a target label map brings its own classes")
        if target.ndim != 2 or target.is_floating_point() or target.dtype == torch.bool:
            raise ValueError(
                f"a static target map must be an integer tensor (H, W) of class ids, got {target.dtype} "
                f"{tuple(target.shape)}"
            )
        if tuple(target.shape) != size:
            raise ValueError(f"the target map is {tuple(target.shape)} but the images are {size} (H, W)")
        if bool(((target < 0) & (target != ignore_index)).any()):
            raise ValueError("the target map holds negative class ids")
        return "map", (), target.detach().to(torch.int64).cpu().clone()
    if target == "hide":
        return "hide", class_id_tuple(DEFAULT_HIDE_CLASS if class_id is None else class_id), None
    if target == "static":
        if class_id is None:
            raise ValueError("target='static' needs the class to show everywhere: class_id=<train id>, e.g. 13 (car)")
        ids = class_id_tuple(class_id)
        if len(ids) != 1:
            raise ValueError(f"a static target takes one class, got class_id={ids}")
        return "static", ids, None
    raise ValueError(f"target must be 'hide', 'static' or an (H, W) label map, got {target!r}")


@torch.no_grad()
def _targets(
    model: Model,
    levels: Tensor,
    ids: list[str],
    *,
    kind: str,
    class_ids: tuple[int, ...],
    target_map: Tensor | None,
    ignore_index: int,
    batch_size: int,
    dtype: torch.dtype,
    device: torch.device,
) -> tuple[Tensor, Tensor, list[int], list[tuple[str, str]]]:
    """Per fit image: target (N, H, W) int16 (-1 = ignored) and loss weight class (N, H, W) bool (hidden or not)."""
    n, _, h, w = levels.shape
    targets = torch.empty((n, h, w), dtype=torch.int16)
    hidden = torch.zeros((n, h, w), dtype=torch.bool)
    keep: list[int] = []
    skipped: list[tuple[str, str]] = []
    for start in range(0, n, batch_size):
        x = levels[start : start + batch_size].to(device, dtype) / 255
        logits = _forward(model, x, check=True)
        k = int(logits.shape[1])
        if k > 32767:
            raise ValueError(f"the model predicts {k} classes; at most 32767 are supported")
        if kind == "map":
            assert target_map is not None
            _check_ids(target_map[target_map != ignore_index].unique().tolist(), k, "target map class ids")
            tgt = torch.where(target_map == ignore_index, -1, target_map).expand(x.shape[0], h, w)
            targets[start : start + x.shape[0]] = tgt.to(torch.int16)
            keep.extend(range(start, start + x.shape[0]))
            continue
        _check_ids(class_ids, k, "class id" if kind == "static" else "hidden class id")
        pred = logits.argmax(1)
        if kind == "static":
            targets[start : start + x.shape[0]] = class_ids[0]
            keep.extend(range(start, start + x.shape[0]))
            continue
        mask = hidden_mask(pred, class_ids)
        for j in range(x.shape[0]):
            if bool(mask[j].all()):
                log.warning("leaving %s out of the fit: it is predicted entirely as the hidden class", ids[start + j])
                skipped.append((ids[start + j], "all_hidden"))
                continue
            targets[start + j] = hide_class_target(pred[j : j + 1], class_id=class_ids)[0].cpu().to(torch.int16)
            hidden[start + j] = mask[j].cpu()
            keep.append(start + j)
    return targets, hidden, keep, skipped


def universal(
    model: Model,
    dataset: Any,
    *,
    eps: float,
    target: str | Tensor = "hide",
    class_id: int | Sequence[int] | None = None,
    steps: int = 60,
    step_size: float = 1 / 255,
    omega: float = 0.9999,
    batch_size: int = 4,
    limit: int | None = None,
    mask: Tensor | None = None,
    ignore_index: int = 255,
    progress: Progress | None = None,
) -> UniversalResult:
    """Fit one universal perturbation on a data set (Metzen, Kumar, Brox and Fischer, ICCV 2017).

    Args:
        model: a ``PixelModel`` (or a callable images in [0, 1] -> logits (B, K, H, W)); its state is not changed.
        dataset: a segattack data set (items ``(uint8 image (3, H, W), label)``, ``image_id(i)``) or an
            (N, 3, H, W) float tensor in [0, 1]. All images must have one size. Not modified.
        eps: L-inf budget in [0, 1] units (``10/255``).
        target: "hide" (the paper's dynamic target: each image's clean prediction with ``class_id`` replaced by the
            nearest other class; ``class_id`` defaults to 11, person), "static" (``class_id`` everywhere), or an
            (H, W) int64 label map used for every image (``ignore_index`` pixels left out).
        class_id: the hidden class(es) for "hide", the one class for "static".
        steps: iterations (the paper's 60); each costs one forward and one backward pass per fit image.
        step_size: alpha in [0, 1] units (1/255 by default, which keeps xi in whole levels).
        omega: weight of the pixels predicted as the hidden class in the loss (the rest get 1 - omega); "hide" only.
        batch_size: images per forward/backward pass (memory only: the result does not depend on it, up to float
            summation order).
        limit: use only the first ``limit`` images.
        mask: optional (H, W) bool; the perturbation stays zero outside it.
        progress: ``progress(done, steps, loss)``: once with done=0 (loss NaN) when the fit starts, then after every
            iteration.

    Images predicted entirely as the hidden class are left out of a "hide" fit (``UniversalResult.skipped``), as are
    items that raise ``UnreadableImageError``.

    Returns:
        ``UniversalResult`` with the perturbation (3, H, W) in [0, 1] units on the CPU, deterministic for given
        inputs.
    """
    model = as_model(model)
    eps = check_positive("eps", eps)
    step_size = check_positive("step_size", step_size)
    for name, value in (("steps", steps), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < (0 if name == "steps" else 1):
            raise ValueError(f"{name} must be an integer >= {0 if name == 'steps' else 1}, got {value!r}")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ValueError(f"limit must be None or an integer >= 1, got {limit!r}")
    if isinstance(omega, bool) or not isinstance(omega, int | float) or not 0 <= omega <= 1:
        raise ValueError(f"omega must be a number in [0, 1] (the paper's 0.9999), got {omega!r}")
    if isinstance(ignore_index, bool) or not isinstance(ignore_index, int):
        raise TypeError(f"ignore_index must be an integer class id, got {ignore_index!r}")
    if progress is not None and not callable(progress):
        raise TypeError("progress must be a callable progress(done, steps, loss) or None")

    levels, ids, skipped = _load_images(dataset, limit)
    size = (int(levels.shape[-2]), int(levels.shape[-1]))
    kind, class_ids, target_map = _resolve_target(target, class_id, size, ignore_index)
    if mask is not None:
        if not isinstance(mask, Tensor) or mask.dtype != torch.bool or tuple(mask.shape) != size:
            raise ValueError(
                f"mask must be a boolean tensor (H, W) = {size}, got {getattr(mask, 'dtype', type(mask).__name__)} "
                f"{tuple(getattr(mask, 'shape', ()))}"
            )
    dtype, device = _model_dtype_device(model)
    eps_lv, step_lv = levels_of(eps), levels_of(step_size)

    targets, hidden, keep, left_out = _targets(
        model, levels, ids, kind=kind, class_ids=class_ids, target_map=target_map,
        ignore_index=ignore_index, batch_size=batch_size, dtype=dtype, device=device,
    )  # fmt: skip
    skipped += left_out
    if not keep:
        raise ValueError("no image is left to fit on: every image is predicted entirely as the hidden class")
    index = torch.tensor(keep)
    levels, targets, hidden = levels[index], targets[index], hidden[index]
    fit_ids = tuple(ids[i] for i in keep)
    m = len(keep)
    w_hidden, w_rest = (omega, 1 - omega) if kind == "hide" else (1.0, 1.0)
    per_pixel = 1.0 / (size[0] * size[1])

    xi = torch.zeros((1, *levels.shape[1:]), dtype=dtype, device=device)
    keep_mask = None if mask is None else mask.to(device)
    history: list[float] = []
    log.info("universal perturbation: %d images, %d steps, eps %g levels", m, steps, eps_lv)
    if progress is not None:
        progress(0, steps, math.nan)
    for n in range(steps):
        grad_sum = torch.zeros(levels.shape[1:], dtype=torch.float64, device=device)
        loss_sum = 0.0
        for start in range(0, m, batch_size):
            x = levels[start : start + batch_size].to(device, dtype)
            adv = ((x + xi).clamp(0, 255) / 255).requires_grad_(True)
            logits = _forward(model, adv, check=False)
            tgt = targets[start : start + batch_size].to(device, torch.int64)
            counted = tgt >= 0
            ce = F.cross_entropy(logits, tgt.clamp(min=0), reduction="none")
            hid = hidden[start : start + batch_size].to(device)
            weight = torch.where(hid, w_hidden * per_pixel, w_rest * per_pixel).to(ce.dtype)
            per_image = torch.where(counted, ce * weight, torch.zeros_like(ce)).flatten(1).sum(1)
            (grad,) = torch.autograd.grad(per_image.sum(), adv)
            grad_sum += grad.to(torch.float64).sum(0)
            loss_sum += float(per_image.detach().sum())
        step = torch.sign(grad_sum / m).to(dtype)
        xi = (xi - step_lv * step).clamp(-eps_lv, eps_lv)
        if keep_mask is not None:
            xi = torch.where(keep_mask, xi, torch.zeros_like(xi))
        history.append(loss_sum / m)
        log.info("iteration %d/%d: loss %.6g", n + 1, steps, history[-1])
        if progress is not None:
            progress(n + 1, steps, history[-1])
    return UniversalResult(
        perturbation=(xi[0].detach().cpu().to(torch.float32) / 255),
        eps=eps,
        step_size=step_size,
        steps=steps,
        omega=float(omega),
        target=kind,
        class_ids=class_ids,
        loss=tuple(history),
        image_ids=fit_ids,
        skipped=tuple(skipped),
        target_map=target_map,
    )


# --------------------------------------------------------------------------------------------------- files


def perturbation_image(perturbation: Tensor | UniversalResult, *, eps: float | None = None) -> np.ndarray:
    """The perturbation as an (H, W, 3) uint8 picture, scaled to the full range: -eps -> 0, 0 -> 128, +eps -> 255
    (value = floor((xi + eps) * 255 / (2 eps) + 0.5)).

    ``eps`` ([0, 1] units) defaults to the result's budget, or to the largest |value| for a bare tensor.
    """
    if isinstance(perturbation, UniversalResult):
        eps = perturbation.eps if eps is None else eps
        perturbation = perturbation.perturbation
    _check_perturbation(perturbation)
    lv = _snap(perturbation.detach().to(torch.float64).cpu() * 255)  # levels: whole levels map exactly
    scale = float(lv.abs().max()) if eps is None else levels_of(eps)
    scale = scale if scale > 0 else 1.0
    # floor(x + 0.5) rather than round-half-even, so that ties (e.g. 25.5) always go up
    img = torch.floor((lv.clamp(-scale, scale) + scale) * 255 / (2 * scale) + 0.5).to(torch.uint8)
    return img.permute(1, 2, 0).numpy()


def save_universal(result: UniversalResult, path: str | os.PathLike[str]) -> tuple[Path, Path]:
    """Write the perturbation losslessly to ``path`` (.npz: levels as int16, or float32 if not whole, + metadata)
    and a picture of it (``perturbation_image``) next to it as PNG (same stem). Returns (npz path, png path).

    ``load_universal(path)`` gives the same perturbation back, bit for bit.
    """
    from PIL import Image

    path = Path(path)
    if path.suffix.lower() != ".npz":
        raise ValueError(f"the perturbation is saved as .npz, got {str(path)!r}")
    pert = result.perturbation.detach().cpu().to(torch.float32)
    levels = (pert * 255).round()
    whole = bool(torch.equal(levels / 255, pert))  # whole levels, and they give back exactly these values
    arrays: dict[str, np.ndarray] = {
        "format": np.array(FILE_FORMAT),
        "eps": np.array(result.eps, dtype=np.float64),
        "step_size": np.array(result.step_size, dtype=np.float64),
        "steps": np.array(result.steps, dtype=np.int64),
        "omega": np.array(result.omega, dtype=np.float64),
        "target": np.array(result.target),
        "class_ids": np.array(result.class_ids, dtype=np.int64),
        "loss": np.array(result.loss, dtype=np.float64),
        "image_ids": np.array(result.image_ids, dtype=np.str_),
        "skipped_ids": np.array([s[0] for s in result.skipped], dtype=np.str_),
        "skipped_reasons": np.array([s[1] for s in result.skipped], dtype=np.str_),
    }
    if whole:
        arrays["levels"] = levels.numpy().astype(np.int16)
    else:  # not whole levels: keep the float32 values themselves
        arrays["perturbation"] = pert.numpy()
    if result.target_map is not None:
        arrays["target_map"] = result.target_map.numpy().astype(np.int64)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(path) as fh:
        np.savez_compressed(fh, **arrays)  # type: ignore[arg-type]
    png = path.with_suffix(".png")
    with atomic_open(png) as fh:
        Image.fromarray(perturbation_image(result)).save(fh, format="PNG")
    return path, png


def load_universal(path: str | os.PathLike[str]) -> UniversalResult:
    """Read a perturbation written by ``save_universal`` (no pickles are loaded)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no perturbation file {str(path)!r}")
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except (OSError, ValueError) as err:
        raise ValueError(f"{str(path)!r} is not a saved universal perturbation (.npz): {err}") from err
    if str(data.get("format", "")) != FILE_FORMAT:
        raise ValueError(f"{str(path)!r} is not a segattack universal perturbation (format {FILE_FORMAT})")
    if "levels" in data:
        perturbation = torch.from_numpy(data["levels"].astype(np.float32)) / 255
    else:
        perturbation = torch.from_numpy(data["perturbation"].astype(np.float32))
    return UniversalResult(
        perturbation=perturbation,
        eps=float(data["eps"]),
        step_size=float(data["step_size"]),
        steps=int(data["steps"]),
        omega=float(data["omega"]),
        target=str(data["target"]),
        class_ids=tuple(int(c) for c in data["class_ids"].tolist()),
        loss=tuple(float(v) for v in data["loss"].tolist()),
        image_ids=tuple(str(s) for s in data["image_ids"].tolist()),
        skipped=tuple(
            (str(i), str(r))
            for i, r in zip(data["skipped_ids"].tolist(), data["skipped_reasons"].tolist(), strict=True)
        ),
        target_map=torch.from_numpy(data["target_map"]) if "target_map" in data else None,
    )
