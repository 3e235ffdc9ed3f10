"""Training losses: the pixel-wise cross-entropy (ignore 255) and the Lovasz-softmax surrogate of 1 - IoU."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ..data.labels import IGNORE_INDEX
from ..errors import InputError

__all__ = ["lovasz_softmax", "training_loss"]


def lovasz_softmax(
    probs: Tensor, labels: Tensor, *, ignore_index: int = IGNORE_INDEX, class_weights: Tensor | None = None
) -> Tensor:
    """The Lovasz-softmax loss of Berman, Rannen Triki and Blaschko (2018): a convex surrogate of 1 - IoU.

    ``probs``: (B, K, H, W) class probabilities; ``labels``: (B, H, W) class ids, ``ignore_index`` left out. Per
    image and per class present in its labels, the pixels' errors ``|[y = c] - p_c|`` sorted in decreasing order are
    weighted by the increments of the Jaccard loss along that order (the Lovasz extension of the set function
    1 - IoU_c); the loss is the mean over the (image, class) pairs. For a hard one-hot ``probs`` it equals the mean
    of 1 - IoU_c, which is what it optimises; 0 when there is no labelled pixel. ``class_weights`` (K,): the
    mean becomes the weighted mean, each (image, class) pair weighing its class's weight.
    """
    if probs.ndim != 4 or labels.shape != (probs.shape[0], *probs.shape[2:]):
        raise InputError(f"probs (B, K, H, W) and labels (B, H, W) expected, got {tuple(probs.shape)} and "
                         f"{tuple(labels.shape)}")  # fmt: skip
    k = probs.shape[1]
    y = labels.flatten(1)
    keep = (y != ignore_index)[:, None]
    # An ignored pixel gets no probability and no foreground, so error 0: it sorts last (with other zero errors)
    # and adds nothing.
    p = probs.flatten(2) * keep  # (B, K, N)
    fg = F.one_hot(torch.where(keep[:, 0], y, 0).long(), k).transpose(1, 2).to(p.dtype) * keep
    present = (fg.sum(2) > 0).flatten()  # the classes present in each image's labels: only their rows count
    if not bool(present.any()):
        return probs.sum() * 0
    fg = fg.flatten(0, 1)[present]
    errors = (fg - p.flatten(0, 1)[present]).abs()
    with torch.no_grad():  # the order is a constant of the Lovasz extension; gather carries the gradient
        order = errors.argsort(dim=1, descending=True)
    errors = errors.gather(1, order)
    fg_sorted = fg.gather(1, order)
    total = fg_sorted.sum(1, keepdim=True)
    jaccard = 1 - (total - fg_sorted.cumsum(1)) / (total + (1 - fg_sorted).cumsum(1))
    grad = torch.cat([jaccard[:, :1], jaccard[:, 1:] - jaccard[:, :-1]], dim=1)
    losses = (errors * grad).sum(1)
    if class_weights is None:
        return losses.mean()
    if class_weights.shape != (k,):
        raise InputError(f"class_weights must have one weight per class ({k}), got shape {tuple(class_weights.shape)}")
    w = class_weights.to(losses).repeat(probs.shape[0])[present]
    return (losses * w).sum() / w.sum()


def training_loss(logits: Tensor, labels: Tensor, *, loss: str, lovasz_weights: Tensor | None = None) -> Tensor:
    """The loss a training step minimises: the mean pixel cross-entropy over the labelled pixels (0 for a batch
    without any, not NaN), plus ``lovasz_softmax`` (weighted by ``lovasz_weights``) for ``loss="ce+lovasz"``.

    ``logits``: (B, K, H, W) float; ``labels``: (B, H, W) class ids, ``IGNORE_INDEX`` left out.
    """
    value = F.cross_entropy(logits, labels, ignore_index=IGNORE_INDEX, reduction="sum")
    value = value / (labels != IGNORE_INDEX).sum().clamp_min(1)  # all-ignored batch: loss 0, not NaN
    if loss == "ce+lovasz":
        value = value + lovasz_softmax(logits.softmax(1), labels, ignore_index=IGNORE_INDEX,
                                       class_weights=lovasz_weights)  # fmt: skip
    return value
