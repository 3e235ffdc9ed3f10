"""The fit of a universal adversarial perturbation: Metzen, Kumar, Brox and Fischer (ICCV 2017), "Universal
adversarial perturbations against semantic image segmentation".

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
attacks, the arithmetic runs in 8-bit levels: with a whole-level budget and step (the defaults' 1/255), xi holds
whole levels and ``clamp(x + xi)`` of an 8-bit image is again an 8-bit image.

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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from ..attacks._core import Model, as_model, check_positive, levels_of, to_levels
from ..errors import InputError, InputTypeError, UnreadableImageError
from ..models import PixelModel, check_images
from ..targets import class_id_tuple, hidden_mask, hide_class_target
from .perturbation import UniversalResult

__all__ = ["universal", "Progress", "DEFAULT_HIDE_CLASS", "model_dtype_device", "forward", "check_item_image"]

log = logging.getLogger(__name__)

#: The class ``target="hide"`` hides when no ``class_id`` is given: Cityscapes' person (train id 11).
DEFAULT_HIDE_CLASS = 11

#: ``progress(done, steps, loss)``: called once with done=0 and loss NaN when the fit starts (images loaded, targets
#: set), then after each iteration with the mean loss at the iterate that iteration started from.
Progress = Callable[[int, int, float], None]


def model_dtype_device(model: Model) -> tuple[torch.dtype, torch.device]:
    """The dtype the network computes in (its first floating parameter or buffer) and the device of the model."""
    net = model.net if isinstance(model, PixelModel) else model
    first: Tensor | None = None
    if isinstance(net, torch.nn.Module):
        first = next((t for t in (*net.parameters(), *net.buffers()) if t.is_floating_point()), None)
    dtype = first.dtype if first is not None else torch.float32
    if isinstance(model, PixelModel):
        return dtype, model.device
    return dtype, first.device if first is not None else torch.device("cpu")


def check_item_image(image: Any, name: str) -> Tensor:
    """A data-set item's image checked: a (3, H, W) tensor, uint8 (0..255) or float in [0, 1]; the error names
    ``name`` (the image's id). The one check of both fits (universal perturbations and patches)."""
    if not isinstance(image, Tensor):
        raise InputTypeError(f"{name}: a data set item must be (image tensor (3, H, W), label), got "
                             f"{type(image).__name__}")  # fmt: skip
    if image.ndim != 3:
        raise InputError(f"{name}: image must have shape (3, H, W), got {tuple(image.shape)}")
    if image.dtype != torch.uint8:
        if not image.is_floating_point():
            raise InputTypeError(f"{name}: image must be uint8 (0..255) or float in [0, 1], got {image.dtype}")
        check_images(image[None], name=name)
    return image


def _image_levels(image: Any, name: str) -> Tensor:
    """One data-set image -> (3, H, W) levels: uint8 as it is, float [0, 1] scaled (and rounded when 8-bit)."""
    image = check_item_image(image, name)
    return image if image.dtype == torch.uint8 else to_levels(image[None])[0]


def _tensor_images(images: Tensor, limit: int | None) -> tuple[Tensor, list[str], list[tuple[str, str]]]:
    check_images(images, name="dataset")
    images = images if limit is None else images[:limit]
    if images.shape[0] == 0:
        raise InputError("dataset holds no images")
    return to_levels(images), [f"image_{i}" for i in range(images.shape[0])], []


def load_images(dataset: Any, limit: int | None) -> tuple[Tensor, list[str], list[tuple[str, str]]]:
    """All images of a data set (or an (N, C, H, W) tensor in [0, 1]) as one levels tensor (uint8 where 8-bit),
    their ids, and (id, "unreadable") for the items that raised ``UnreadableImageError``."""
    if isinstance(dataset, Tensor):
        return _tensor_images(dataset, limit)
    if not hasattr(dataset, "__getitem__") or not hasattr(dataset, "__len__"):
        raise InputTypeError(
            f"dataset must be a segattack data set (items (uint8 image (3, H, W), label)) or an (N, 3, H, W) tensor "
            f"in [0, 1], got {type(dataset).__name__}"
        )
    size_hint = "one universal perturbation needs one image size; resize the data (on the command line: --size {hw})"
    out, kept, skipped = read_items(dataset, limit, _image_levels, size_hint)
    return torch.stack(out), kept, skipped


def read_items(
    dataset: Any, limit: int | None, convert: Callable[[Any, str], Tensor], size_hint: str
) -> tuple[list[Tensor], list[str], list[tuple[str, str]]]:
    """The images of a data set's items 0..limit-1, each through ``convert(image, image_id)``, one dtype for all
    (float32 where they mix), their ids (``image_id(i)`` of the data set, else ``image_<i>``) and (id, "unreadable")
    for the items that raised ``UnreadableImageError``. An image of another size than the first is refused with
    ``size_hint`` (``{hw}``: the first image's HxW); no readable image at all is refused too."""
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
        img = convert(item[0] if isinstance(item, tuple | list) else item, image_id)
        if out and tuple(img.shape) != tuple(out[0].shape):
            h, w = out[0].shape[-2:]
            raise InputError(
                f"image {image_id!r} is {img.shape[-2]}x{img.shape[-1]} pixels but {kept[0]!r} is {h}x{w}: "
                + size_hint.format(hw=f"{h}x{w}")
            )
        if out and img.dtype != out[0].dtype:
            out = [t.to(torch.float32) for t in out]
            img = img.to(torch.float32)
        out.append(img)
        kept.append(image_id)
    if not out:
        raise InputError("the data set holds no readable image" if n else "the data set holds no images")
    return out, kept, skipped


def forward(model: Model, x: Tensor, *, check: bool) -> Tensor:
    """The model's logits on ``x``; with ``check``, refuse logits that are not (B, K, H, W) at input size."""
    logits = model(x) if check or not isinstance(model, PixelModel) else model(x, check=False)
    if check and (logits.ndim != 4 or logits.shape[0] != x.shape[0] or logits.shape[-2:] != x.shape[-2:]):
        raise InputError(
            f"model returned shape {tuple(logits.shape)} for images {tuple(x.shape)}; it must return logits "
            "(B, K, H, W) at input size (wrap the network in segattack.PixelModel)"
        )
    return logits


def _check_ids(ids: Sequence[int], k: int, what: str) -> None:
    bad = [c for c in ids if c >= k]
    if bad:
        raise InputError(f"{what} {bad} out of range: the model predicts {k} classes (0..{k - 1})")


def _class_ids(class_id: int | Sequence[int]) -> tuple[int, ...]:
    try:
        return class_id_tuple(class_id)
    except TypeError as err:
        raise InputTypeError(str(err)) from None
    except ValueError as err:
        raise InputError(str(err)) from None


def _target_map(target: Tensor, class_id: Any, size: tuple[int, int], ignore_index: int) -> Tensor:
    if class_id is not None:
        raise InputError("class_id goes with target='hide' or 'static'; a target label map brings its own classes")
    if target.ndim != 2 or target.is_floating_point() or target.dtype == torch.bool:
        raise InputError(
            f"a static target map must be an integer tensor (H, W) of class ids, got {target.dtype} "
            f"{tuple(target.shape)}"
        )
    if tuple(target.shape) != size:
        raise InputError(f"the target map is {tuple(target.shape)} but the images are {size} (H, W)")
    if bool(((target < 0) & (target != ignore_index)).any()):
        raise InputError("the target map holds negative class ids")
    return target.detach().to(torch.int64).cpu().clone()


def _resolve_target(
    target: str | Tensor, class_id: int | Sequence[int] | None, size: tuple[int, int], ignore_index: int
) -> tuple[str, tuple[int, ...], Tensor | None]:
    """(kind, class ids, target map) of the ``target`` and ``class_id`` arguments."""
    if isinstance(target, Tensor):
        return "map", (), _target_map(target, class_id, size, ignore_index)
    if target == "hide":
        return "hide", _class_ids(DEFAULT_HIDE_CLASS if class_id is None else class_id), None
    if target == "static":
        if class_id is None:
            raise InputError("target='static' needs the class to show everywhere: class_id=<train id>, e.g. 13 (car)")
        ids = _class_ids(class_id)
        if len(ids) != 1:
            raise InputError(f"a static target takes one class, got class_id={ids}")
        return "static", ids, None
    raise InputError(f"target must be 'hide', 'static' or an (H, W) label map, got {target!r}")


@dataclass
class _FitSet:
    """The fit images (levels), their targets (N, H, W) int16 (-1 = ignored), which pixels are hidden (N, H, W)
    bool, their ids, and the images left out (id, reason)."""

    levels: Tensor
    targets: Tensor
    hidden: Tensor
    ids: tuple[str, ...]
    skipped: list[tuple[str, str]]


def _batch_targets(
    logits: Tensor, kind: str, class_ids: tuple[int, ...], target_map: Tensor | None, ignore_index: int
) -> tuple[Tensor, Tensor | None]:
    """One batch's targets (b, H, W) and, for "hide", its hidden-class mask; class ids checked against the model."""
    k = int(logits.shape[1])
    if k > 32767:
        raise InputError(f"the model predicts {k} classes; at most 32767 are supported")
    b, _, h, w = logits.shape
    if kind == "map":
        assert target_map is not None
        _check_ids(target_map[target_map != ignore_index].unique().tolist(), k, "target map class ids")
        return torch.where(target_map == ignore_index, -1, target_map).expand(b, h, w), None
    _check_ids(class_ids, k, "class id" if kind == "static" else "hidden class id")
    if kind == "static":
        return torch.full((b, h, w), class_ids[0], dtype=torch.int64), None
    pred = logits.argmax(1)
    return pred, hidden_mask(pred, class_ids)


@torch.no_grad()
def _targets(
    model: Model, levels: Tensor, ids: list[str], *, kind: str, class_ids: tuple[int, ...],
    target_map: Tensor | None, ignore_index: int, batch_size: int, dtype: torch.dtype, device: torch.device,
) -> _FitSet:  # fmt: skip
    """Per fit image: its target and hidden pixels; "hide" leaves out images predicted entirely as the class."""
    n, _, h, w = levels.shape
    targets = torch.empty((n, h, w), dtype=torch.int16)
    hidden = torch.zeros((n, h, w), dtype=torch.bool)
    keep: list[int] = []
    skipped: list[tuple[str, str]] = []
    for start in range(0, n, batch_size):
        x = levels[start : start + batch_size].to(device, dtype) / 255
        tgt, mask = _batch_targets(forward(model, x, check=True), kind, class_ids, target_map, ignore_index)
        if mask is None:
            targets[start : start + x.shape[0]] = tgt.to(torch.int16)
            keep.extend(range(start, start + x.shape[0]))
            continue
        for j in range(x.shape[0]):
            if bool(mask[j].all()):
                log.warning("leaving %s out of the fit: it is predicted entirely as the hidden class", ids[start + j])
                skipped.append((ids[start + j], "all_hidden"))
                continue
            targets[start + j] = hide_class_target(tgt[j : j + 1], class_id=class_ids)[0].cpu().to(torch.int16)
            hidden[start + j] = mask[j].cpu()
            keep.append(start + j)
    if not keep:
        raise InputError("no image is left to fit on: every image is predicted entirely as the hidden class")
    index = torch.tensor(keep)
    return _FitSet(levels[index], targets[index], hidden[index], tuple(ids[i] for i in keep), skipped)


def _check_arguments(
    eps: float, step_size: float, steps: int, batch_size: int, limit: int | None, omega: float, ignore_index: int,
    progress: Progress | None,
) -> tuple[float, float]:  # fmt: skip
    """The scalar arguments' checks; returns eps and step_size as floats."""
    try:
        eps, step_size = check_positive("eps", eps), check_positive("step_size", step_size)
    except ValueError as err:
        raise InputError(str(err)) from None
    for name, value in (("steps", steps), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < (0 if name == "steps" else 1):
            raise InputError(f"{name} must be an integer >= {0 if name == 'steps' else 1}, got {value!r}")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise InputError(f"limit must be None or an integer >= 1, got {limit!r}")
    if isinstance(omega, bool) or not isinstance(omega, int | float) or not 0 <= omega <= 1:
        raise InputError(f"omega must be a number in [0, 1] (the paper's 0.9999), got {omega!r}")
    if isinstance(ignore_index, bool) or not isinstance(ignore_index, int):
        raise InputTypeError(f"ignore_index must be an integer class id, got {ignore_index!r}")
    if progress is not None and not callable(progress):
        raise InputTypeError("progress must be a callable progress(done, steps, loss) or None")
    return eps, step_size


def _check_mask(mask: Tensor | None, size: tuple[int, int]) -> None:
    if mask is not None and (not isinstance(mask, Tensor) or mask.dtype != torch.bool or tuple(mask.shape) != size):
        raise InputError(
            f"mask must be a boolean tensor (H, W) = {size}, got {getattr(mask, 'dtype', type(mask).__name__)} "
            f"{tuple(getattr(mask, 'shape', ()))}"
        )


def _mean_loss_and_grad(
    model: Model, fit: _FitSet, xi: Tensor, weights: tuple[float, float], batch_size: int
) -> tuple[float, Tensor]:
    """The loss summed over the fit images at ``xi`` and its gradient summed over them, (3, H, W) float64."""
    levels, dtype, device = fit.levels, xi.dtype, xi.device
    per_pixel = 1.0 / (levels.shape[-2] * levels.shape[-1])
    grad_sum = torch.zeros(levels.shape[1:], dtype=torch.float64, device=device)
    loss_sum = 0.0
    for start in range(0, levels.shape[0], batch_size):
        x = levels[start : start + batch_size].to(device, dtype)
        adv = ((x + xi).clamp(0, 255) / 255).requires_grad_(True)
        logits = forward(model, adv, check=False)
        tgt = fit.targets[start : start + batch_size].to(device, torch.int64)
        counted = tgt >= 0
        ce = F.cross_entropy(logits, tgt.clamp(min=0), reduction="none")
        hid = fit.hidden[start : start + batch_size].to(device)
        weight = torch.where(hid, weights[0] * per_pixel, weights[1] * per_pixel).to(ce.dtype)
        per_image = torch.where(counted, ce * weight, torch.zeros_like(ce)).flatten(1).sum(1)
        (grad,) = torch.autograd.grad(per_image.sum(), adv)
        grad_sum += grad.to(torch.float64).sum(0)
        loss_sum += float(per_image.detach().sum())
    return loss_sum, grad_sum


def _descend(
    model: Model, fit: _FitSet, *, eps_lv: float, step_lv: float, steps: int, weights: tuple[float, float],
    batch_size: int, mask: Tensor | None, dtype: torch.dtype, device: torch.device, progress: Progress | None,
) -> tuple[Tensor, list[float]]:  # fmt: skip
    """The iterations: xi (1, 3, H, W) in levels and the mean loss at each iterate."""
    m = fit.levels.shape[0]
    xi = torch.zeros((1, *fit.levels.shape[1:]), dtype=dtype, device=device)
    keep_mask = None if mask is None else mask.to(device)
    history: list[float] = []
    log.info("universal perturbation: %d images, %d steps, eps %g levels", m, steps, eps_lv)
    if progress is not None:
        progress(0, steps, math.nan)
    for n in range(steps):
        loss_sum, grad_sum = _mean_loss_and_grad(model, fit, xi, weights, batch_size)
        step = torch.sign(grad_sum / m).to(dtype)
        xi = (xi - step_lv * step).clamp(-eps_lv, eps_lv)
        if keep_mask is not None:
            xi = torch.where(keep_mask, xi, torch.zeros_like(xi))
        history.append(loss_sum / m)
        log.info("iteration %d/%d: loss %.6g", n + 1, steps, history[-1])
        if progress is not None:
            progress(n + 1, steps, history[-1])
    return xi, history


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
    """Fit one universal perturbation on a data set (Metzen, Kumar, Brox and Fischer, ICCV 2017), in memory
    (``run_universal`` is the job that also measures it on held-out images and writes its files).

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
    items that raise ``UnreadableImageError``. Refusals are ``InputError`` (a ValueError) or ``InputTypeError``.

    Returns:
        ``UniversalResult`` with the perturbation (3, H, W) in [0, 1] units on the CPU, deterministic for given
        inputs.
    """
    model = as_model(model)
    eps, step_size = _check_arguments(eps, step_size, steps, batch_size, limit, omega, ignore_index, progress)
    levels, ids, skipped = load_images(dataset, limit)
    size = (int(levels.shape[-2]), int(levels.shape[-1]))
    kind, class_ids, target_map = _resolve_target(target, class_id, size, ignore_index)
    _check_mask(mask, size)
    dtype, device = model_dtype_device(model)
    fit = _targets(model, levels, ids, kind=kind, class_ids=class_ids, target_map=target_map,
                   ignore_index=ignore_index, batch_size=batch_size, dtype=dtype, device=device)  # fmt: skip
    weights = (omega, 1 - omega) if kind == "hide" else (1.0, 1.0)
    xi, history = _descend(model, fit, eps_lv=levels_of(eps), step_lv=levels_of(step_size), steps=steps,
                           weights=weights, batch_size=batch_size, mask=mask, dtype=dtype, device=device,
                           progress=progress)  # fmt: skip
    return UniversalResult(
        perturbation=(xi[0].detach().cpu().to(torch.float32) / 255),
        eps=eps,
        step_size=step_size,
        steps=steps,
        omega=float(omega),
        target=kind,
        class_ids=class_ids,
        loss=tuple(history),
        image_ids=fit.ids,
        skipped=tuple(skipped + fit.skipped),
        target_map=target_map,
    )
