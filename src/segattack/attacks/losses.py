"""Pixel-wise losses of the segmentation attacks, each a ``PixelLoss``: (logits (B, K, H, W), labels (B, H, W),
valid (B, H, W) bool, targeted, step t of T) -> (B, H, W) per-pixel losses. The attack sums them over the counted
pixels of each image and ascends the sum (descends it when targeted); pixels outside ``valid`` never count.

- ``ce``: cross-entropy (Madry et al. 2018; the paper's ILLM).
- ``segpgd``: cross-entropy with correctly and wrongly classified pixels weighted by 1 - lambda_t and lambda_t,
  lambda_t = t / (2T) (Gu et al. ECCV 2022); targeted, the weights swap (pixels already on target weigh lambda_t).
- ``cospgd``: cross-entropy scaled by the cosine similarity of the softmax and the one-hot label (Agnihotri et al.
  ICML 2024); targeted, by one minus it. The scale is a constant (no gradient flows through it).
- ``balanced-ce``: cross-entropy with each pixel weighted by the inverse frequency of its label class in the image,
  so every class present counts as much as any other (Croce, Singh and Hein 2024, "SEA").
- ``masked-ce``: cross-entropy on the pixels not yet fooled only (still correct, or not yet on target) (SEA).
- ``masked-balanced-ce``: SEA's Mask-CE-Bal: the masked cross-entropy with each pixel weighted by a weight of its
  label class. SEA's code uses weights precomputed per data set (``masked_balanced_ce_with(class_weights)``, weights
  from ``class_weights_from_labels``); by name, without data-set weights, each image's own class frequencies stand
  in for the data set's (the weights of ``balanced-ce``).
- ``js``: Jensen-Shannon divergence between the softmax and the one-hot label (SEA); bounded, so pixels already
  fooled stop dominating.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import InputError, InputTypeError
from ..models import classes_of
from ._core import PixelLoss

__all__ = [
    "LOSSES",
    "ce",
    "segpgd",
    "cospgd",
    "balanced_ce",
    "masked_ce",
    "masked_balanced_ce",
    "masked_balanced_ce_with",
    "check_class_weights",
    "class_weights_from_labels",
    "js",
    "get_loss",
]


def ce(logits: Tensor, labels: Tensor, *, valid: Tensor, targeted: bool, t: int, steps: int) -> Tensor:
    return F.cross_entropy(logits, labels, reduction="none")


def segpgd(logits: Tensor, labels: Tensor, *, valid: Tensor, targeted: bool, t: int, steps: int) -> Tensor:
    lam = t / (2 * steps) if steps else 0.0
    correct = classes_of(logits) == labels
    loss = F.cross_entropy(logits, labels, reduction="none")
    w_correct, w_wrong = (lam, 1 - lam) if targeted else (1 - lam, lam)
    return torch.where(correct, w_correct * loss, w_wrong * loss)


def cospgd(logits: Tensor, labels: Tensor, *, valid: Tensor, targeted: bool, t: int, steps: int) -> Tensor:
    log_p = logits.log_softmax(1)
    loss = -log_p.gather(1, labels[:, None])[:, 0]  # the cross-entropy, sharing log_softmax with the scale
    with torch.no_grad():  # cos(p, onehot(y)) = p_y / ||p||: no one-hot tensor needed
        p = log_p.detach().exp()
        # (p * p).sum(1).sqrt(), not p.norm(dim=1): the same value, about 40x faster on CPU over the class axis
        cos = torch.exp(-loss.detach()) / (p * p).sum(1).sqrt().clamp(min=1e-8)
        scale = 1 - cos if targeted else cos
    return scale * loss


def _image_class_weights(labels: Tensor, valid: Tensor, k: int, dtype: torch.dtype) -> Tensor:
    """Per image, the weight of each class: n_valid / (present classes * count_c), 0 for classes absent from the
    image's counted pixels: (B, K). Every class present then sums to n_valid / present."""
    b = labels.shape[0]
    flat = (labels + k * torch.arange(b, device=labels.device).view(b, 1, 1))[valid]
    counts = torch.bincount(flat, minlength=b * k).view(b, k).to(dtype)
    present = (counts > 0).sum(1, keepdim=True).clamp(min=1)
    n_valid = counts.sum(1, keepdim=True)
    return torch.where(counts > 0, n_valid / (present * counts.clamp(min=1)), torch.zeros_like(counts))


def balanced_ce(logits: Tensor, labels: Tensor, *, valid: Tensor, targeted: bool, t: int, steps: int) -> Tensor:
    weights = _image_class_weights(labels, valid, logits.shape[1], logits.dtype)
    w = weights.gather(1, labels.flatten(1)).view_as(labels)
    return w * F.cross_entropy(logits, labels, reduction="none")


def masked_ce(logits: Tensor, labels: Tensor, *, valid: Tensor, targeted: bool, t: int, steps: int) -> Tensor:
    on_label = classes_of(logits) == labels
    keep = ~on_label if targeted else on_label
    loss = F.cross_entropy(logits, labels, reduction="none")
    return torch.where(keep, loss, torch.zeros_like(loss))


def js(logits: Tensor, labels: Tensor, *, valid: Tensor, targeted: bool, t: int, steps: int) -> Tensor:
    # JS(p, onehot(y)) = 1/2 KL(p || m) + 1/2 KL(y || m), m = (p + y) / 2, depends on p_y alone: m_k = p_k / 2 off
    # the label and (1 + p_y) / 2 on it, so JS = 1/2 [(1 - p_y) log 2 + p_y log p_y - (1 + p_y) log((1 + p_y) / 2)]
    # (closed form: no (B, K, H, W) one-hot tensor; the same value as the definition).
    log_py = logits.log_softmax(1).gather(1, labels[:, None])[:, 0]
    py = log_py.exp()
    log_m = torch.log1p(py) - math.log(2.0)
    return 0.5 * ((1 - py) * math.log(2.0) + py * log_py - (1 + py) * log_m)


def masked_balanced_ce(logits: Tensor, labels: Tensor, *, valid: Tensor, targeted: bool, t: int, steps: int) -> Tensor:
    weights = _image_class_weights(labels, valid, logits.shape[1], logits.dtype)
    w = weights.gather(1, labels.flatten(1)).view_as(labels)
    return w * masked_ce(logits, labels, valid=valid, targeted=targeted, t=t, steps=steps)


def check_class_weights(class_weights: object) -> Tensor | None:
    """The ``class_weights`` option (SEA's Mask-CE-Bal) as a (K,) float64 tensor, or None for none.

    Takes None, a sequence of numbers, a 1-D tensor, or a string of numbers separated by ``+`` or ``,`` (the
    command line's form, ``0.2+0.8``). Each weight must be finite and >= 0, and one at least > 0.

    >>> check_class_weights("0.25+0.75").tolist()
    [0.25, 0.75]
    """
    if class_weights is None:
        return None
    value: object = class_weights
    if isinstance(value, str):
        parts = [p.strip() for p in value.replace(",", "+").split("+") if p.strip()]
        try:
            value = [float(p) for p in parts]
        except ValueError:
            raise InputError(
                f"class_weights takes numbers separated by '+' (one per class, e.g. 0.2+0.8), got {class_weights!r}"
            ) from None
    if isinstance(value, Tensor):
        if value.ndim != 1 or value.is_complex() or value.dtype == torch.bool:
            raise InputError(f"class_weights as a tensor must be 1-D real (K,), got {value.dtype} {tuple(value.shape)}")
        w = value.detach().to("cpu", torch.float64).clone()
    elif isinstance(value, Sequence) and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value):
        w = torch.tensor([float(v) for v in value], dtype=torch.float64)
    else:
        raise InputTypeError(
            f"class_weights takes one number per class (a list, a 1-D tensor or '0.2+0.8'), or None; got "
            f"{class_weights!r}"
        )
    if w.numel() == 0:
        raise InputError("class_weights lists no weight; give one per class of the model, or None")
    if not bool(torch.isfinite(w).all()) or bool((w < 0).any()) or not bool((w > 0).any()):
        raise InputError(f"class_weights must be finite, >= 0 and not all 0, got {w.tolist()}")
    return w


def masked_balanced_ce_with(class_weights: object) -> PixelLoss:
    """SEA's Mask-CE-Bal with fixed class weights (Croce, Singh and Hein 2024): w[y] * CE on the pixels not yet
    fooled, 0 elsewhere, with ``class_weights`` (K,) (``check_class_weights``; e.g. ``class_weights_from_labels``
    of a data set), as their code passes precomputed per-data-set weights to ``cross_entropy(weight=...)``. A model
    with another number of classes than weights raises InputError at the first call.

    >>> import torch
    >>> loss = masked_balanced_ce_with([0.25, 0.75])
    >>> logits = torch.tensor([[[[2.0, 0.0]], [[0.0, 1.0]]]])  # (1, 2, 1, 2): both pixels predicted correctly
    >>> out = loss(logits, torch.tensor([[[0, 1]]]), valid=torch.ones(1, 1, 2, dtype=torch.bool), targeted=False,
    ...            t=0, steps=1)
    >>> [round(v, 4) for v in out.flatten().tolist()]
    [0.0317, 0.2349]
    """
    weights = check_class_weights(class_weights)
    if weights is None:
        raise InputError("masked_balanced_ce_with needs class weights; use masked_balanced_ce for per-image ones")
    fixed = weights

    def weighted(logits: Tensor, labels: Tensor, *, valid: Tensor, targeted: bool, t: int, steps: int) -> Tensor:
        k = logits.shape[1]
        if fixed.numel() != k:
            raise InputError(
                f"class_weights has {fixed.numel()} weights but the model has {k} classes; give one weight per class"
            )
        w = fixed.to(device=logits.device, dtype=logits.dtype)[labels]
        return w * masked_ce(logits, labels, valid=valid, targeted=targeted, t=t, steps=steps)

    return weighted


def class_weights_from_labels(
    label_maps: Tensor | Iterable[Tensor], num_classes: int, *, ignore_index: int = 255
) -> Tensor:
    """Class weights for ``masked_balanced_ce_with`` from the label maps of a data set: the inverse pixel frequency
    of each class, normalised to sum to 1, w_c = (1 / n_c) / sum_k (1 / n_k) over the classes present (n_c: the
    class's counted pixels over all maps; ``ignore_index`` pixels do not count); 0 for a class absent from the data.

    Why this formula: SEA's code ships such weights precomputed per data set, and inverting them gives pixel
    frequencies that are those of the data set (Pascal VOC: background about 71%, person about 5.6%) with weights
    summing to 1; so this recomputes them for any data set. The scale does not matter to the attack (it follows
    the sign of the gradient and controls its step by the cross-entropy), the ratios do.

    ``label_maps``: a (N, H, W) or (H, W) integer tensor, or an iterable of them (a data set streamed batch by
    batch). Returns (num_classes,) float64.

    >>> w = class_weights_from_labels(torch.tensor([[0, 0, 0, 1], [1, 1, 2, 255]]), 4)  # counts 3, 3, 1, 0
    >>> [round(v, 6) for v in w.tolist()]
    [0.2, 0.2, 0.6, 0.0]
    """
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise InputError(f"num_classes must be an integer >= 1, got {num_classes!r}")
    maps: Iterable[Tensor] = [label_maps] if isinstance(label_maps, Tensor) else label_maps
    counts = torch.zeros(num_classes, dtype=torch.float64)
    for m in maps:
        if not isinstance(m, Tensor) or m.is_floating_point() or m.dtype == torch.bool:
            raise InputTypeError(
                f"label maps must be integer tensors of class ids, got {getattr(m, 'dtype', type(m).__name__)}"
            )
        ids = m[m != ignore_index].flatten().to("cpu", torch.int64)
        if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= num_classes):
            bad = ids[(ids < 0) | (ids >= num_classes)].unique()[:5].tolist()
            raise InputError(
                f"label maps hold class ids {bad} outside 0..{num_classes - 1} (ignore_index={ignore_index}); "
                f"check num_classes"
            )
        counts += torch.bincount(ids, minlength=num_classes).to(torch.float64)
    if not bool((counts > 0).any()):
        raise InputError(f"the label maps hold no counted pixel (all {ignore_index} or empty); weights need labels")
    inverse = torch.where(counts > 0, 1 / counts.clamp(min=1), torch.zeros_like(counts))
    return inverse / inverse.sum()


#: The losses by name (the ``loss=`` option of ``apgd``, ``pgd`` and ``worst_case``).
LOSSES: dict[str, PixelLoss] = {
    "ce": ce,
    "balanced-ce": balanced_ce,
    "masked-ce": masked_ce,
    "masked-balanced-ce": masked_balanced_ce,
    "js": js,
    "segpgd": segpgd,
    "cospgd": cospgd,
}


def check_loss_option(options: Mapping[str, Any]) -> None:
    """Registry check for attacks with a ``loss=`` option: the named loss exists."""
    get_loss(options.get("loss", "ce"))


def get_loss(name: str) -> PixelLoss:
    """The loss called ``name``; ValueError listing the known ones otherwise."""
    if not isinstance(name, str) or name not in LOSSES:
        raise InputError(f"unknown loss {name!r}; choose one of {', '.join(sorted(LOSSES))}")
    return LOSSES[name]
