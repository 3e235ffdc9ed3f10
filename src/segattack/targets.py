"""Adversarial targets for semantic segmentation.

``hide_class_target`` implements the target of Fischer et al. (2017), Sec. 2: every pixel that the network predicts
as a hidden class takes the class of its nearest pixel (exact Euclidean distance between pixel centres) whose
predicted class is not hidden; every other pixel keeps the prediction. Targets are built from the network's
prediction on the clean image, never from the ground truth.

Nearest neighbours come from ``scipy.ndimage.distance_transform_edt`` with ``return_indices=True``: an exact
Euclidean distance transform, one call per image, computed inside the image (no wrap-around at borders).
Ties: when several non-hidden pixels are equally near, the one that scipy's exact transform returns is taken. That
choice is deterministic (same prediction, same target, on every run and platform with the same scipy); it is not
a geometric rule such as "lowest row first", and the tests check the distance, not the identity, of tied pixels.

>>> import torch
>>> pred = torch.tensor([[[0, 0, 11, 11, 2]]])
>>> hide_class_target(pred, class_id=11)
tensor([[[0, 0, 0, 2, 2]]])
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from scipy import ndimage
from torch import Tensor

from .errors import InputError, InputTypeError

__all__ = ["hide_class_target", "static_target", "class_id_tuple", "check_prediction"]


def class_id_tuple(class_id: int | Sequence[int]) -> tuple[int, ...]:
    """Normalise ``class_id`` (an int or a sequence of ints) into a non-empty tuple of distinct ints."""
    ids = (class_id,) if isinstance(class_id, int | np.integer) else tuple(class_id)
    if not ids:
        raise InputError("class_id is empty; pass one class id (e.g. class_id=11) or several (class_id=(11, 12))")
    out: list[int] = []
    for c in ids:
        if isinstance(c, bool) or not isinstance(c, int | np.integer):
            raise InputTypeError(f"class ids must be integers, got {c!r}; map class names to ids first")
        if c < 0:
            raise InputError(f"class ids must be non-negative, got {c}")
        if int(c) not in out:
            out.append(int(c))
    return tuple(out)


def check_prediction(pred: Tensor, *, name: str = "pred") -> None:
    """Validate a label map batch: (B, H, W) integer tensor."""
    if not isinstance(pred, Tensor):
        raise InputTypeError(f"{name} must be a torch.Tensor of shape (B, H, W), got {type(pred).__name__}")
    if pred.ndim != 3:
        raise InputError(
            f"{name} must have shape (B, H, W), got {tuple(pred.shape)}; "
            + ("take the argmax over classes (model.predict) first" if pred.ndim == 4 else "add a batch axis")
        )
    if pred.is_floating_point() or pred.dtype == torch.bool:
        raise InputTypeError(f"{name} must hold integer class ids, got {pred.dtype}; use model.predict(images)")


def hidden_mask(pred: Tensor, ids: tuple[int, ...]) -> Tensor:
    """(B, H, W) bool: the pixels of ``pred`` whose class is one of ``ids`` (the class(es) to hide).

    >>> hidden_mask(torch.tensor([[[0, 11], [12, 11]]]), (11,)).tolist()
    [[[False, True], [False, True]]]
    """
    if len(ids) == 1:  # the usual case: 14x faster than isin on a CPU
        return pred == ids[0]
    return torch.isin(pred, torch.tensor(ids, dtype=pred.dtype, device=pred.device))


def hide_class_target(pred: Tensor, *, class_id: int | Sequence[int]) -> Tensor:
    """Target that hides ``class_id`` (Fischer et al. 2017): hidden pixels take their nearest non-hidden class.

    Args:
        pred: (B, H, W) integer prediction of the network on the clean images.
        class_id: the class to hide, or several (all of them are hidden at once).

    Returns:
        (B, H, W) int64 target on ``pred``'s device. An image with no hidden pixel gets its prediction back.

    Raises:
        ValueError: if an image is entirely hidden class (no pixel to copy a class from); the message names the
            image's index so the caller can drop it.
    """
    check_prediction(pred)
    ids = class_id_tuple(class_id)
    hidden = hidden_mask(pred, ids).cpu().numpy()
    pred_np = pred.detach().cpu().numpy().astype(np.int64)
    target = pred_np.copy()
    for b in range(pred_np.shape[0]):
        mask = hidden[b]
        if not mask.any():
            continue
        if mask.all():
            raise InputError(
                f"image {b} is predicted entirely as hidden class(es) {ids}: there is no other class to take the "
                "pixels over; drop this image (segattack's experiment counts it as 'all hidden')"
            )
        # distance_transform_edt measures, for each non-zero pixel, the distance to the nearest zero pixel; the
        # non-zero pixels are the hidden ones, so the indices point at the nearest non-hidden pixel.
        rows, cols = ndimage.distance_transform_edt(mask, return_distances=False, return_indices=True)
        target[b][mask] = pred_np[b][rows[mask], cols[mask]]
    return torch.from_numpy(target).to(pred.device)


def static_target(pred: Tensor, *, class_id: int) -> Tensor:
    """Static target: every pixel of every image takes ``class_id`` (Metzen et al. 2017's static attack).

    >>> static_target(torch.zeros(1, 2, 3, dtype=torch.long), class_id=4)[0, 0].tolist()
    [4, 4, 4]
    """
    check_prediction(pred)
    (cid,) = class_id_tuple(class_id)
    return torch.full_like(pred, cid, dtype=torch.int64)
