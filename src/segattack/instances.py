"""Instance-level hiding: how many persons vanish entirely, not only how many person pixels.

Fischer et al. (2017) measure pixels; a pedestrian detector downstream sees objects. Here an *instance* is one
connected component of the hidden class(es) (8-connectivity: pixels touching at an edge or a corner belong together)
in the clean prediction, or one ground-truth instance where the data set has instance ids (Cityscapes
``*_gtFine_instanceIds.png``). An instance is **hidden** (it vanishes entirely) when at least ``threshold`` (default
0.95) of its pixels are predicted as no hidden class on the adversarial image.

Size bins by the height of the instance's bounding box in pixels, at the resolution the model sees:

- ``small``: height < 32 px;
- ``medium``: 32 <= height < 96 px;
- ``large``: height >= 96 px

(the limits of the COCO detection benchmark, there applied to the area: 32^2 and 96^2 pixels; a pedestrian's height
is what distance changes, and what detectors' "reasonable" subsets of Caltech and CityPersons filter by).

Ground-truth instances: the contract is ``instance_ids`` (H, W) int64 holding ``train_id * 1000 + k`` on the pixels of
instance k (0..999) of a class, and -1 elsewhere (stuff, crowd regions without instance ids, ignore). A ground-truth
instance is measured on its pixels; it is **visible** unless the clean prediction already hides it by the same rule
(at least ``threshold`` of its pixels predicted as no hidden class), and only visible instances are counted
(``gt_instances``; those the model misses on the clean image are ``gt_instances_missed``).

>>> import torch
>>> clean = torch.zeros(1, 6, 6, dtype=torch.int64)
>>> clean[0, 0:2, 0:2] = 11  # one person (4 px)
>>> clean[0, 4:6, 3:6] = 11  # another (6 px)
>>> adv = clean.clone(); adv[0, 0:2, 0:2] = 0  # the first vanishes
>>> c = InstanceCounts.count(components(clean[0], 11), adv[0], class_id=11)
>>> c.instances, c.hidden, c.by_size["small"]
(2, 1, (2, 1))
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from torch import Tensor

from .errors import InputError
from .targets import class_id_tuple

__all__ = [
    "DEFAULT_THRESHOLD",
    "SIZE_BINS",
    "SMALL_MAX",
    "LARGE_MIN",
    "INSTANCE_ID_FACTOR",
    "Components",
    "InstanceCounts",
    "components",
    "gt_components",
    "size_bin",
    "instance_fields",
    "instance_rows",
    "check_threshold",
    "vanished_share",
]

#: An instance is hidden when at least this share of its pixels is no longer predicted as the class.
DEFAULT_THRESHOLD = 0.95
#: Size bins by bounding-box height in pixels: small < SMALL_MAX <= medium < LARGE_MIN <= large.
SIZE_BINS = ("small", "medium", "large")
SMALL_MAX = 32
LARGE_MIN = 96
#: Ground-truth instance ids are ``train_id * INSTANCE_ID_FACTOR + k`` (Cityscapes' convention, in train ids).
INSTANCE_ID_FACTOR = 1000
_EIGHT = np.ones((3, 3), dtype=bool)


def size_bin(height: int) -> str:
    """The size bin of an instance whose bounding box is ``height`` pixels tall.

    >>> size_bin(31), size_bin(32), size_bin(95), size_bin(96)
    ('small', 'medium', 'medium', 'large')
    """
    if height < SMALL_MAX:
        return "small"
    return "medium" if height < LARGE_MIN else "large"


def check_threshold(threshold: float) -> float:
    """``threshold`` as a float in (0, 1]; ValueError otherwise."""
    if isinstance(threshold, bool) or not isinstance(threshold, int | float) or not 0 < float(threshold) <= 1:
        raise InputError(f"the instance threshold is a share of an instance's pixels in (0, 1], got {threshold!r}")
    return float(threshold)


@dataclass(frozen=True)
class Components:
    """The instances of one image: ``labels`` (H, W) int32 numpy array (0 = no instance, 1..n = instance), and per
    instance (index j for label j + 1) its pixel count ``sizes`` and bounding-box ``heights`` in pixels."""

    labels: np.ndarray
    sizes: np.ndarray
    heights: np.ndarray

    @property
    def n(self) -> int:
        """The number of instances."""
        return int(self.sizes.shape[0])

    def still_class(self, hidden_mask: np.ndarray) -> np.ndarray:
        """Per instance, how many of its pixels lie in ``hidden_mask`` ((H, W) bool: pixels predicted as a hidden
        class). (n,) int64."""
        if hidden_mask.shape != self.labels.shape:
            raise InputError(f"mask {hidden_mask.shape} and instance labels {self.labels.shape} differ in shape")
        return np.bincount(self.labels[hidden_mask], minlength=self.n + 1)[1:].astype(np.int64)

    def hidden(self, hidden_mask: np.ndarray, threshold: float = DEFAULT_THRESHOLD) -> np.ndarray:
        """(n,) bool: instances of which at least ``threshold`` of the pixels are outside ``hidden_mask``."""
        gone = self.sizes - self.still_class(hidden_mask)
        # exact in integers: gone / size >= threshold, with the product rounded up (0.95 * 100 -> 95, not 95.0000001)
        need = np.ceil(np.round(threshold * self.sizes.astype(np.float64), 9))
        return gone >= need


def _from_labels(labels: np.ndarray, n: int) -> Components:
    if n == 0:
        empty = np.zeros(0, dtype=np.int64)
        return Components(labels.astype(np.int32, copy=False), empty, empty)
    sizes = np.bincount(labels.ravel(), minlength=n + 1)[1:].astype(np.int64)
    heights = np.zeros(n, dtype=np.int64)
    for j, sl in enumerate(ndimage.find_objects(labels, max_label=n)):
        if sl is not None:
            heights[j] = sl[0].stop - sl[0].start
    return Components(labels.astype(np.int32, copy=False), sizes, heights)


def _mask_np(pred: Tensor | np.ndarray, ids: tuple[int, ...]) -> np.ndarray:
    arr = pred.detach().cpu().numpy() if isinstance(pred, Tensor) else np.asarray(pred)
    if arr.ndim != 2:
        raise InputError(f"expected one (H, W) prediction, got shape {arr.shape}")
    return arr == ids[0] if len(ids) == 1 else np.isin(arr, ids)


def components(pred: Tensor | np.ndarray, class_id: int | Sequence[int]) -> Components:
    """The instances of ``class_id`` (one id or several, taken together) in one prediction (H, W) of class ids:
    its connected components under 8-connectivity (``scipy.ndimage.label``).

    >>> import numpy as np
    >>> p = np.array([[1, 0, 0, 0], [0, 1, 0, 1], [0, 0, 0, 1]])
    >>> c = components(p, 1)  # the diagonal pair touches at a corner: one instance; the right column another
    >>> c.n, c.sizes.tolist(), c.heights.tolist()
    (2, [2, 2], [2, 2])
    """
    ids = class_id_tuple(class_id)
    labels, n = ndimage.label(_mask_np(pred, ids), structure=_EIGHT)
    return _from_labels(labels, int(n))


def gt_components(instance_ids: Tensor | np.ndarray, class_id: int | Sequence[int]) -> Components:
    """The ground-truth instances of ``class_id`` from ``instance_ids`` (H, W): pixels ``train_id * 1000 + k`` form
    instance (train_id, k); other values (-1: no instance) are none. An instance split by an occluder stays one.

    >>> import numpy as np
    >>> ids = np.array([[11000, -1, 11001], [11000, 13000, 11001], [-1, -1, 11000]])
    >>> c = gt_components(ids, 11)
    >>> c.n, c.sizes.tolist(), c.heights.tolist()
    (2, [3, 2], [3, 2])
    """
    ids = class_id_tuple(class_id)
    arr = instance_ids.detach().cpu().numpy() if isinstance(instance_ids, Tensor) else np.asarray(instance_ids)
    if arr.ndim != 2:
        raise InputError(f"expected one (H, W) map of instance ids, got shape {arr.shape}")
    arr = arr.astype(np.int64, copy=False)
    keep = (arr >= 0) & np.isin(arr // INSTANCE_ID_FACTOR, ids)
    uniq, inverse = np.unique(arr[keep], return_inverse=True)
    labels = np.zeros(arr.shape, dtype=np.int32)
    labels[keep] = inverse.astype(np.int32) + 1
    return _from_labels(labels, int(uniq.shape[0]))


@dataclass(frozen=True)
class InstanceCounts:
    """Instance counts of one image: ``instances`` counted, ``hidden`` of them, per size bin ``(count, hidden)``,
    and ``missed`` (ground truth only: instances the clean prediction already hides, not counted)."""

    instances: int
    hidden: int
    by_size: Mapping[str, tuple[int, int]]
    missed: int = 0

    @classmethod
    def count(
        cls,
        comps: Components,
        adv_pred: Tensor | np.ndarray,
        *,
        class_id: int | Sequence[int],
        threshold: float = DEFAULT_THRESHOLD,
        clean_pred: Tensor | np.ndarray | None = None,
    ) -> InstanceCounts:
        """Count the instances ``comps`` and those hidden in ``adv_pred`` (H, W). With ``clean_pred`` (for
        ground-truth instances) only those visible in it count; the others are ``missed``."""
        ids = class_id_tuple(class_id)
        threshold = check_threshold(threshold)
        hidden = comps.hidden(_mask_np(adv_pred, ids), threshold)
        counted = np.ones(comps.n, dtype=bool)
        if clean_pred is not None:
            counted = ~comps.hidden(_mask_np(clean_pred, ids), threshold)
        hidden &= counted
        bins = np.array([size_bin(int(h)) for h in comps.heights], dtype=object)
        by_size = {b: (int((counted & (bins == b)).sum()), int((hidden & (bins == b)).sum())) for b in SIZE_BINS}
        return cls(int(counted.sum()), int(hidden.sum()), by_size, int((~counted).sum()))

    def row(self, prefix: str = "instances") -> dict[str, int]:
        """The row fields: ``<prefix>``, ``<prefix>_hidden``, ``<prefix>_<bin>``, ``<prefix>_<bin>_hidden`` (and
        ``<prefix>_missed`` for ground truth, prefix ``gt_instances``)."""
        out = {prefix: self.instances, f"{prefix}_hidden": self.hidden}
        for b in SIZE_BINS:
            out[f"{prefix}_{b}"], out[f"{prefix}_{b}_hidden"] = self.by_size[b]
        if prefix.startswith("gt"):
            out[f"{prefix}_missed"] = self.missed
        return out


def instance_fields(prefix: str = "instances") -> tuple[str, ...]:
    """The row fields ``InstanceCounts.row(prefix)`` writes, in order.

    >>> instance_fields()[:4]
    ('instances', 'instances_hidden', 'instances_small', 'instances_small_hidden')
    """
    fields = [prefix, f"{prefix}_hidden"]
    for b in SIZE_BINS:
        fields += [f"{prefix}_{b}", f"{prefix}_{b}_hidden"]
    if prefix.startswith("gt"):
        fields.append(f"{prefix}_missed")
    return tuple(fields)


def instance_rows(
    clean_pred: Tensor,
    adv_pred: Tensor,
    *,
    class_id: int | Sequence[int],
    threshold: float = DEFAULT_THRESHOLD,
    clean_components: Sequence[Components] | None = None,
    instance_ids: Tensor | None = None,
    gt: Sequence[Components | None] | None = None,
) -> list[dict[str, int]]:
    """Per image of predictions (B, H, W) on clean and adversarial images, the instance row fields: from the
    clean prediction's components (``instances*``) and, with ground-truth ``instance_ids`` (B, H, W) (or their
    ``gt`` components, None for an image without them), ``gt_instances*``.

    ``clean_components`` / ``gt``: the components computed once per image and reused for every budget and mode.

    >>> import torch
    >>> clean = torch.zeros(1, 4, 4, dtype=torch.int64); clean[0, 1:3, 1:3] = 11
    >>> instance_rows(clean, torch.zeros_like(clean), class_id=11)[0]["instances_hidden"]
    1
    """
    if clean_pred.shape != adv_pred.shape or clean_pred.ndim != 3:
        raise InputError(f"clean_pred {tuple(clean_pred.shape)} and adv_pred {tuple(adv_pred.shape)}: (B, H, W) each")
    ids = class_id_tuple(class_id)
    b = clean_pred.shape[0]
    comps = list(clean_components) if clean_components is not None else [components(p, ids) for p in clean_pred]
    if gt is None and instance_ids is not None:
        gt = [gt_components(m, ids) for m in instance_ids]
    clean_np = clean_pred.detach().cpu().numpy()
    adv_np = adv_pred.detach().cpu().numpy()
    out: list[dict[str, int]] = []
    for j in range(b):
        row = InstanceCounts.count(comps[j], adv_np[j], class_id=ids, threshold=threshold).row()
        if gt is not None and gt[j] is not None:
            g = gt[j]
            assert g is not None
            counts = InstanceCounts.count(g, adv_np[j], class_id=ids, threshold=threshold, clean_pred=clean_np[j])
            row.update(counts.row("gt_instances"))
        out.append(row)
    return out


def vanished_share(hidden: float, instances: float) -> float:
    """Pooled share of instances that vanish: ``hidden / instances`` (NaN without instances).

    >>> vanished_share(3, 12), math.isnan(vanished_share(0, 0))
    (0.25, True)
    """
    return float(hidden) / float(instances) if instances else math.nan
