"""The rendered scenes of the patch job (``run_patch(rendered=N)``, its module docstring has the definitions): the
street generator draws the fitted patch, a random patch of the same size, or no poster into the same scene, and the
predictions are compared outside the pixels where the two images differ."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from ..metrics import confusion_matrix, mean_iou, pixel_accuracy
from ..universal.fit import forward
from .evaluate import DISTANCE_EDGES, changed_by_distance

__all__ = ["RENDER_SEED", "RENDER_PLACEMENTS", "RENDERED", "compare", "scene_rows"]

#: The generator's seed of the rendered scenes (``synthetic:N`` uses seed 0: other scenes).
RENDER_SEED = 1
RENDER_PLACEMENTS = ("building", "billboard")
#: The rows of one scene: the fitted poster against the random one, the random poster against none.
RENDERED = ("rendered", "rendered-random")
_IGNORE = -1


def scene_rows(model: Any, clean: Tensor, with_random: Tensor, with_fitted: Tensor, random_info: Any,
               fitted_info: Any, classes: tuple[int, ...], n_names: int, dev: torch.device,
               dtype: torch.dtype) -> list[dict[str, Any]]:  # fmt: skip
    """The two rows of one scene (uint8 (3, H, W) images without a poster, with the random and with the fitted one;
    the generator's ``PosterInfo`` of the two posters): ``rendered`` and ``rendered-random``, with the poster's
    placement as drawn, distance, angle, visible fraction and pixels."""
    images = torch.stack([clean, with_random, with_fitted]).to(dev, dtype) / 255
    pred = forward(model, images, check=True).argmax(1).cpu()
    k = max(model.num_classes or 0, n_names, int(pred.max()) + 1)
    visible = torch.from_numpy(fitted_info.visible.copy())
    random_visible = torch.from_numpy(random_info.visible.copy())
    differs_f = (with_fitted != with_random).any(0) | visible | random_visible
    differs_r = (with_random != clean).any(0) | random_visible
    scene = {"drawn_as": fitted_info.placement, "distance": round(float(fitted_info.distance), 4),
             "angle": round(float(fitted_info.angle), 4), "visible_fraction": round(fitted_info.visible_fraction, 6),
             "poster_pixels": int(visible.sum())}  # fmt: skip
    return [
        {**scene, "evaluation": "rendered", "reference": "random poster",
         **compare(pred[2], pred[1], differs_f, classes, k)},
        {**scene, "evaluation": "rendered-random", "reference": "no poster",
         **compare(pred[1], pred[0], differs_r, classes, k)},
    ]  # fmt: skip


def compare(pred: Tensor, ref: Tensor, excluded: Tensor, classes: tuple[int, ...], k: int) -> dict[str, Any]:
    """``pred`` against ``ref`` (H, W) outside ``excluded``: mIoU and accuracy of agreement, the share of the class's
    ``ref`` pixels no longer the class (hidden), the share of the other pixels unchanged (kept), by distance."""
    out = ~excluded
    truth = torch.where(excluded, torch.full_like(ref, _IGNORE), ref)
    cm = confusion_matrix(pred, truth, num_classes=k, ignore_index=_IGNORE)
    in_cls = torch.isin(ref, torch.tensor(classes)) & out
    other = ~torch.isin(ref, torch.tensor(classes)) & out
    n_cls, n_other = int(in_cls.sum()), int(other.sum())
    hidden = float((in_cls & ~torch.isin(pred, torch.tensor(classes))).sum()) / n_cls if n_cls else math.nan
    kept = float((other & (pred == ref)).sum()) / n_other if n_other else math.nan
    by_dist = changed_by_distance(ref, pred, excluded, DISTANCE_EDGES)
    return {"status": "ok" if n_cls else "absent", "miou": mean_iou(cm), "accuracy": pixel_accuracy(cm),
            "hidden": hidden, "kept": kept, "class_pixels": n_cls,
            "changed_by_distance": [float(v) for v in by_dist]}  # fmt: skip
