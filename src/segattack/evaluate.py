"""Clean evaluation against ground truth: confusion matrix, per-class IoU, mean IoU, pixel accuracy.

The measures follow the Cityscapes pixel-level benchmark: pixels labelled ``ignore_index`` (255) leave the count;
IoU_k = TP / (TP + FP + FN) over the whole data set (not averaged per image); the mean IoU is taken over the classes
present in the ground truth or the prediction (``iou`` gives NaN to the others).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from .data.base import UnreadableImageError
from .metrics import confusion_matrix, iou, mean_iou, pixel_accuracy
from .models import PixelModel

__all__ = ["EvalResult", "evaluate"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EvalResult:
    """Clean-evaluation result. ``confusion``: (K, K) int64, rows ground truth, columns prediction."""

    confusion: Tensor
    images: int
    skipped: list[str] = field(default_factory=list)

    @property
    def iou(self) -> Tensor:
        """(K,) float64 per-class IoU; NaN for classes absent from both ground truth and prediction."""
        return iou(self.confusion)

    @property
    def miou(self) -> float:
        return mean_iou(self.confusion)

    @property
    def pixel_accuracy(self) -> float:
        return pixel_accuracy(self.confusion)

    def as_dict(self, names: tuple[str, ...] | None = None) -> dict[str, Any]:
        values = self.iou.tolist()
        keys = names if names is not None and len(names) == len(values) else tuple(map(str, range(len(values))))
        return {
            "images": self.images,
            "skipped": list(self.skipped),
            "miou": None if math.isnan(self.miou) else self.miou,
            "pixel_accuracy": None if math.isnan(self.pixel_accuracy) else self.pixel_accuracy,
            "iou": {k: (None if math.isnan(v) else v) for k, v in zip(keys, values, strict=True)},
            "confusion": self.confusion.tolist(),
        }


def evaluate(
    model: PixelModel,
    dataset: Any,
    *,
    num_classes: int,
    batch_size: int = 4,
    limit: int | None = None,
    ignore_index: int = 255,
    device: str | torch.device = "cpu",
    progress: Callable[[int, int], None] | None = None,
) -> EvalResult:
    """Evaluate ``model`` on a segattack data set (items ``(uint8 image, int64 label)``, ``has_labels``).

    Images that cannot be read are skipped with a warning and listed in ``skipped``. ``progress(done, total)`` is
    called after each image. Raises ValueError for a data set without ground truth.
    """
    if not getattr(dataset, "has_labels", True):
        raise ValueError("this data set has no ground-truth labels; clean evaluation needs them (e.g. gtFine/)")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    n = len(dataset) if limit is None else min(limit, len(dataset))
    cm = torch.zeros(num_classes, num_classes, dtype=torch.int64)
    skipped: list[str] = []
    pending: list[tuple[Tensor, Tensor]] = []
    done = 0

    def flush() -> None:
        nonlocal cm
        if not pending:
            return
        images = torch.stack([im for im, _ in pending]).to(device).float() / 255
        labels = torch.stack([lb for _, lb in pending])
        pred = model.predict(images).cpu()
        cm += confusion_matrix(pred, labels, num_classes=num_classes, ignore_index=ignore_index)
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
            pending.append((image, label))
            if len(pending) == batch_size:
                flush()
        done += 1
        if progress is not None and (not pending or i == n - 1):
            progress(done, n)
    flush()
    if progress is not None:
        progress(n, n)
    return EvalResult(confusion=cm, images=n - len(skipped), skipped=skipped)
