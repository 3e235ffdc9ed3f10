"""A patch measured on held-out images: paste it (as placed, or under fixed EOT draws), and compare the network's
prediction with its clean prediction on the same image, per image.

Measures (pixels under the patch never count: they are the patch, not the scene):

- ``miou`` and ``accuracy``: the mean IoU and the pixel accuracy of the patched prediction against the clean
  prediction (``segattack.metrics.confusion_matrix`` / ``mean_iou`` / ``pixel_accuracy``, the patch's pixels
  ignored); 1 means nothing changed;
- with a hidden class: ``hidden`` (the share of the class's clean pixels no longer predicted as it) and ``kept``
  (the share of the other pixels whose prediction did not change), ``target_hit`` and ``class_pixels``: the
  measures of ``segattack.metrics.hiding_metrics`` (``fooled``, ``preserved``, ...), computed on the pixels outside
  the patch;
- ``changed_by_distance``: per bin of Euclidean distance (pixels, from the pixel centre to the nearest patch pixel's
  centre; bins [edges[i], edges[i + 1])), the share of pixels whose prediction changed; NaN for an empty bin.

An image where a region placement finds no position is skipped: its row says so and holds NaN.

>>> import torch
>>> from segattack import PixelModel
>>> from segattack.patches import Placement
>>> net = torch.nn.Conv2d(3, 2, kernel_size=1)
>>> ev = evaluate(PixelModel(net), torch.rand(2, 3, 8, 8), torch.zeros(3, 2, 2), placement=Placement(size=(2, 2)))
>>> ev.miou.shape, ev.changed_by_distance.shape
(torch.Size([2]), torch.Size([2, 8]))
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from scipy import ndimage
from torch import Tensor

from ..attacks._core import Model, as_model
from ..errors import InputError, InputTypeError
from ..metrics import confusion_matrix, hiding_metrics, mean_iou, pixel_accuracy
from ..targets import class_id_tuple, hidden_mask, hide_class_target
from ..universal.fit import forward, model_dtype_device
from .eot import PatchEOT
from .fit import load_images, place_batch
from .placement import Box, Placement, check_patch

__all__ = ["evaluate", "PatchEvaluation", "DISTANCE_EDGES", "changed_by_distance"]

#: Default distance bins (pixels): [1, 2), [2, 4), ..., [64, 128), [128, inf). Pixels outside the patch are at least
#: 1 pixel from it.
DISTANCE_EDGES: tuple[float, ...] = (1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, math.inf)

_IGNORE = -1


@dataclass(frozen=True, eq=False)
class PatchEvaluation:
    """Per-image measures of a patch (module docstring), each a (B,) float64 tensor unless said otherwise.

    image_ids; boxes: each image's base box (top, left, height, width) or None (skipped); miou, accuracy;
    hidden, kept, target_hit (NaN without a hidden class), class_pixels (int64, the class's clean pixels outside
    the patch); patch_pixels (int64); changed_by_distance (B, len(edges) - 1); edges: the bins' edges.
    """

    image_ids: tuple[str, ...]
    boxes: tuple[Box | None, ...]
    miou: Tensor
    accuracy: Tensor
    hidden: Tensor
    kept: Tensor
    target_hit: Tensor
    class_pixels: Tensor
    patch_pixels: Tensor
    changed_by_distance: Tensor
    edges: tuple[float, ...]

    def rows(self) -> list[dict[str, Any]]:
        """One plain dict per image (NaN stays NaN), for a results file."""
        out = []
        for j, image_id in enumerate(self.image_ids):
            out.append({
                "image_id": image_id,
                "skipped": "no_place" if self.boxes[j] is None else None,
                "box": None if self.boxes[j] is None else list(self.boxes[j] or ()),
                "miou": float(self.miou[j]), "accuracy": float(self.accuracy[j]),
                "hidden": float(self.hidden[j]), "kept": float(self.kept[j]),
                "target_hit": float(self.target_hit[j]), "class_pixels": int(self.class_pixels[j]),
                "patch_pixels": int(self.patch_pixels[j]),
                "changed_by_distance": [float(v) for v in self.changed_by_distance[j]],
            })  # fmt: skip
        return out


def changed_by_distance(clean: Tensor, adv: Tensor, mask: Tensor, edges: Sequence[float]) -> Tensor:
    """(len(edges) - 1,) float64: per distance bin from the patch (``mask`` (H, W) bool), the share of pixels whose
    prediction differs between ``clean`` and ``adv`` (H, W); NaN for an empty bin (or no patch at all).

    >>> m = torch.zeros(1, 5, dtype=torch.bool); m[0, 0] = True
    >>> changed_by_distance(torch.zeros(1, 5), torch.tensor([[9, 1, 0, 0, 0]]), m, (1, 2, 8)).tolist()
    [1.0, 0.0]
    """
    out = torch.full((len(edges) - 1,), math.nan, dtype=torch.float64)
    if not bool(mask.any()):
        return out
    dist = torch.from_numpy(ndimage.distance_transform_edt(~mask.cpu().numpy()))
    changed = (clean != adv).cpu()
    outside = ~mask.cpu()
    for i in range(len(edges) - 1):
        sel = outside & (dist >= edges[i]) & (dist < edges[i + 1])
        n = int(sel.sum())
        if n:
            out[i] = float((changed & sel).sum()) / n
    return out


def _check_edges(edges: Any) -> tuple[float, ...]:
    try:
        e = tuple(float(v) for v in edges)
    except (TypeError, ValueError):
        raise InputTypeError(
            f"edges takes increasing distances in pixels, e.g. (1, 2, 4, inf), got {edges!r}"
        ) from None
    if len(e) < 2 or any(not b > a for a, b in zip(e, e[1:], strict=False)) or e[0] < 0:
        raise InputError(f"edges must be at least two increasing distances >= 0 (pixels), got {edges!r}")
    return e


@torch.no_grad()
def evaluate(
    model: Model,
    images: Any,
    patch: Tensor,
    *,
    placement: Placement,
    class_id: int | Sequence[int] | None = None,
    eot: PatchEOT | None = None,
    seed: int = 0,
    edges: Sequence[float] = DISTANCE_EDGES,
    batch_size: int = 8,
    limit: int | None = None,
    first_index: int = 0,
) -> PatchEvaluation:
    """Measure a patch on images it was not fitted on (module docstring).

    Args:
        model: a ``PixelModel`` or a callable images in [0, 1] -> logits (B, K, H, W).
        images: (N, 3, H, W) in [0, 1] or a segattack data set; not modified.
        patch: (3, h, w) in [0, 1] (``PatchResult.patch``).
        placement: where it goes; a region draws one position per image from ``patch_generator(seed, -1, index)``.
        class_id: the hidden class(es) for ``hidden``/``kept`` (None: those are NaN).
        eot: fixed EOT draws (one per image, from the same generators; None: the patch as placed).
        edges: the distance bins' edges in pixels.
        batch_size: images per pass (memory only). limit: only the first N images.
        first_index: the index of the first image in the whole data set, so that a job that calls this per batch
            makes the same draws as one call over all images.

    Returns:
        ``PatchEvaluation``.
    """
    model = as_model(model)
    check_patch(patch)
    if not isinstance(placement, Placement):
        raise InputTypeError(f"placement must be a segattack.patches.Placement, got {type(placement).__name__}")
    ids_h = class_id_tuple(class_id) if class_id is not None else ()
    e = _check_edges(edges)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise InputError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    x_all, ids, _ = load_images(images, limit)
    dtype, device = model_dtype_device(model)
    n = x_all.shape[0]
    nan = torch.full((n,), math.nan, dtype=torch.float64)
    miou, acc, hid, kept, hit = nan.clone(), nan.clone(), nan.clone(), nan.clone(), nan.clone()
    cls_px = torch.zeros(n, dtype=torch.int64)
    patch_px = torch.zeros(n, dtype=torch.int64)
    by_dist = torch.full((n, len(e) - 1), math.nan, dtype=torch.float64)
    boxes_all: list[Box | None] = []
    p = patch.detach().to(device, dtype)
    for start in range(0, n, batch_size):
        x = x_all[start : start + batch_size].to(device, dtype)
        clean_logits = forward(model, x, check=True)
        k = int(clean_logits.shape[1])
        if any(c >= k for c in ids_h):
            raise InputError(f"class id {list(ids_h)} out of range: the model predicts {k} classes (0..{k - 1})")
        clean = clean_logits.argmax(1)
        index = [first_index + start + j for j in range(x.shape[0])]
        adv_x, mask, boxes = place_batch(x, p, placement, pred=clean.cpu(), eot=eot, seed=seed, step=-1,
                                         indices=index)  # fmt: skip
        boxes_all.extend(boxes)
        adv = forward(model, adv_x, check=False).argmax(1)
        for j in range(x.shape[0]):
            r = start + j
            if boxes[j] is None:
                continue
            m = mask[j, 0] > 0
            out = ~m
            patch_px[r] = int(m.sum())
            truth = torch.where(m, torch.full_like(clean[j], _IGNORE), clean[j])
            cm = confusion_matrix(adv[j], truth, num_classes=k, ignore_index=_IGNORE)
            miou[r], acc[r] = mean_iou(cm), pixel_accuracy(cm)
            by_dist[r] = changed_by_distance(clean[j], adv[j], m, e)
            if ids_h:
                c_out, a_out = clean[j][out][None, None], adv[j][out][None, None]
                all_hidden = bool(hidden_mask(clean[j], ids_h).all())  # no target exists: target_hit is NaN
                tgt = None if all_hidden else hide_class_target(clean[j][None], class_id=ids_h)[0][out][None, None]
                hm = hiding_metrics(c_out, a_out, class_id=ids_h, target=tgt)
                hid[r], kept[r], hit[r] = float(hm.fooled[0]), float(hm.preserved[0]), float(hm.target_hit[0])
                cls_px[r] = int(hm.class_pixels[0])
    return PatchEvaluation(
        image_ids=tuple(ids),
        boxes=tuple(boxes_all),
        miou=miou,
        accuracy=acc,
        hidden=hid,
        kept=kept,
        target_hit=hit,
        class_pixels=cls_px,
        patch_pixels=patch_px,
        changed_by_distance=by_dist,
        edges=e,
    )
