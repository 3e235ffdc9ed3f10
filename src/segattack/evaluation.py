"""Evaluation against ground truth, clean or under an attack: confusion matrix, per-class IoU, mean IoU, pixel
accuracy.

The measures follow the Cityscapes pixel-level benchmark: pixels labelled ``ignore_index`` (255) leave the count;
IoU_k = TP / (TP + FP + FN) over the whole data set (not averaged per image); the mean IoU is taken over the classes
present in the ground truth or the prediction (``iou`` gives NaN to the others). With ``attack=`` every batch is
attacked (untargeted, against its ground truth) before it is predicted: the mIoU under attack of one attack at one
budget, in memory (``segattack robustness`` runs a whole protocol, with its sanity checks, into a directory).
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from .data.base import UnreadableImageError
from .errors import InputError
from .metrics import confusion_matrix, iou, mean_iou, pixel_accuracy
from .models import PixelModel

__all__ = ["EvalResult", "evaluate"]

log = logging.getLogger(__name__)

#: ``amp`` values of ``evaluate`` and the autocast dtype each selects.
_AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True)
class EvalResult:
    """Evaluation result. ``confusion``: (K, K) int64, rows ground truth, columns prediction (of the adversarial
    images where ``attack`` is set)."""

    confusion: Tensor
    images: int
    skipped: list[str] = field(default_factory=list)
    #: output classes left out of the mean IoU (a void/unlabelled output; its predictions still count as misses)
    void_classes: tuple[int, ...] = ()
    #: the attack the images went through (its name) and its budget in [0, 1] units; None: clean images
    attack: str | None = None
    eps: float | None = None

    @property
    def iou(self) -> Tensor:
        """(K,) float64 per-class IoU; NaN for classes absent from both ground truth and prediction."""
        return iou(self.confusion)

    @property
    def miou(self) -> float:
        return mean_iou(self.confusion, exclude=self.void_classes)

    @property
    def pixel_accuracy(self) -> float:
        return pixel_accuracy(self.confusion)

    def as_dict(self, names: tuple[str, ...] | None = None) -> dict[str, Any]:
        values = self.iou.tolist()
        keys = names if names is not None and len(names) == len(values) else tuple(map(str, range(len(values))))
        return {
            "attack": self.attack,
            "eps": self.eps,
            "images": self.images,
            "skipped": list(self.skipped),
            "miou": None if math.isnan(self.miou) else self.miou,
            "void_classes": list(self.void_classes),
            "pixel_accuracy": None if math.isnan(self.pixel_accuracy) else self.pixel_accuracy,
            "iou": {k: (None if math.isnan(v) else v) for k, v in zip(keys, values, strict=True)},
            "confusion": self.confusion.tolist(),
        }


def _autocast(amp: str | None, device: torch.device) -> contextlib.AbstractContextManager[Any]:
    """The mixed-precision context for ``amp`` on ``device``; raises ValueError for a value it cannot honour."""
    if amp is None:
        return contextlib.nullcontext()
    if amp not in _AMP_DTYPES:
        raise InputError(f"amp must be 'bf16', 'fp16' or None (float32), got {amp!r}")
    if amp == "fp16" and device.type != "cuda":
        raise InputError(
            f"amp='fp16' needs a CUDA device, got device {str(device)!r}; use amp='bf16' (CPU autocast) or amp=None"
        )
    return torch.autocast(device.type, dtype=_AMP_DTYPES[amp])


def evaluate(
    model: PixelModel,
    dataset: Any,
    *,
    num_classes: int,
    batch_size: int = 4,
    limit: int | None = None,
    ignore_index: int = 255,
    device: str | torch.device = "cpu",
    amp: str | None = None,
    progress: Callable[[int, int], None] | None = None,
    void_classes: Sequence[int] = (),
    attack: Any = None,
    eps: float | None = None,
    attack_options: Mapping[str, Any] | None = None,
    seed: int = 0,
) -> EvalResult:
    """Evaluate ``model`` on the first ``limit`` items (None: all) of a segattack data set, clean or under attack.

    ``attack``: None evaluates the clean images. An attack (a registered name such as ``"apgd"``, a function or a
    ``functools.partial`` binding its options) attacks every batch untargeted against its ground truth at ``eps``
    ([0, 1] units, e.g. ``4/255``) with ``attack_options`` (e.g. ``{"steps": 100, "loss": "js"}``) before it is
    predicted, so the result is the mIoU and accuracy under that attack. An attack that draws random numbers gets
    one seed per image, derived from ``seed`` and the image's index, so the result does not depend on
    ``batch_size``.

    >>> import segattack as sa
    >>> scenes = sa.data.SyntheticStreets(split="val", size=(32, 64), length=2)
    >>> model = sa.zoo.load(sa.zoo.DEFAULT_MODEL)
    >>> robust = evaluate(model, scenes, num_classes=19, attack="pgd", eps=4 / 255, attack_options={"steps": 2})
    >>> robust.attack, robust.images, robust.pixel_accuracy < evaluate(model, scenes, num_classes=19).pixel_accuracy
    ('pgd', 2, True)

    ``void_classes``: output classes left out of the mean IoU (a model's void/unlabelled output; a pixel predicted
    void still counts as a miss of its true class).

    ``dataset``: ``len(dataset)``, ``dataset[i]`` -> ``(image, label)`` with image uint8 (3, H, W) and label
    integer (H, W) train ids (``ignore_index`` = ignored); optional ``has_labels`` (False: refused with ValueError)
    and ``image_id(i)`` (names a skipped image). Items may live on any device; they are moved to ``device``.

    ``model`` must already be on ``device``; it runs in eval mode, and ``PixelModel`` restores the wrapped
    network's train/eval flags after every call (so a training loop can validate mid-run). Consecutive images of
    one size are stacked into batches of up to ``batch_size``.

    ``amp``: None runs in float32; "bf16" or "fp16" runs the forward pass under ``torch.autocast`` on ``device``'s
    type with that dtype. fp16 needs CUDA (ValueError on other devices: use "bf16" there, or None).

    Images that cannot be read (``UnreadableImageError``) are skipped with a warning and listed in ``skipped``.
    ``progress(done, total)`` is called as images are done (after each batch) and at the end.
    """
    if not getattr(dataset, "has_labels", True):
        raise InputError("this data set has no ground-truth labels; clean evaluation needs them (e.g. gtFine/)")
    if batch_size < 1:
        raise InputError(f"batch_size must be at least 1, got {batch_size}")
    device = torch.device(device)
    autocast = _autocast(amp, device)  # refuse a bad amp before any work
    attack_entry, options = _check_attack(attack, eps, attack_options)
    n = len(dataset) if limit is None else min(limit, len(dataset))
    cm = torch.zeros(num_classes, num_classes, dtype=torch.int64)
    skipped: list[str] = []
    pending: list[tuple[Tensor, Tensor, int]] = []
    done = 0

    def flush() -> None:
        nonlocal cm
        if not pending:
            return
        images = torch.stack([im for im, _, _ in pending]).to(device).float() / 255
        labels = torch.stack([lb for _, lb, _ in pending])
        if attack_entry is not None:
            from .attacks import mix_seed, registry

            seeds = [mix_seed(seed, "evaluate", index) for _, _, index in pending]
            images = registry.sweep_checked(attack_entry, options, model, images, labels.to(images.device),
                                            eps=[float(eps or 0)], targeted=False, ignore_index=ignore_index,
                                            seed=seeds)[0]  # fmt: skip
        with autocast:
            pred = model.predict(images)
        cm += confusion_matrix(pred, labels.to(pred.device), num_classes=num_classes, ignore_index=ignore_index)
        pending.clear()

    for i in range(n):
        try:
            image, label = dataset[i]
        except UnreadableImageError as err:
            log.warning("skipping unreadable image %s: %s", dataset.image_id(i), err)
            skipped.append(dataset.image_id(i))
        else:
            if pending and pending[0][0].shape != image.shape:
                flush()  # batches hold images of one size
            pending.append((image, label, i))
            if len(pending) == batch_size:
                flush()
        done += 1
        if progress is not None and (not pending or i == n - 1):
            progress(done, n)
    flush()
    if progress is not None:
        progress(n, n)
    return EvalResult(confusion=cm, images=n - len(skipped), skipped=skipped, void_classes=tuple(void_classes),
                      attack=None if attack_entry is None else attack_entry.name, eps=eps if attack_entry else None)


def _check_attack(attack: Any, eps: float | None, options: Mapping[str, Any] | None) -> tuple[Any, dict[str, Any]]:
    """``evaluate``'s attack, resolved and checked before any work: (its registry entry and checked options), or
    (None, {}) for a clean evaluation; ValueError naming the fix otherwise."""
    if attack is None:
        if eps is not None or options:
            raise InputError("eps and attack_options need an attack: pass attack='apgd' (or another), or neither")
        return None, {}
    from .attacks import check_positive, registry

    if eps is None:
        raise InputError("an evaluation under attack needs its budget: pass eps in [0, 1] units, e.g. eps=4/255")
    check_positive("eps", eps)
    entry = registry.resolve(attack)
    registry.check_goal(entry, options or {}, targeted=False)
    return entry, {**entry.bound, **registry.check_options(entry, options or {})}
