"""Cityscapes (Cordts et al. 2016) in its official layout, labels mapped to the 19 train ids.

Expected layout (as unpacked from ``leftImg8bit_trainvaltest.zip`` and ``gtFine_trainvaltest.zip``)::

    <root>/leftImg8bit/<split>/<city>/<city>_<seq>_<frame>_leftImg8bit.png
    <root>/gtFine/<split>/<city>/<city>_<seq>_<frame>_gtFine_labelIds.png     (optional)
    <root>/gtFine/<split>/<city>/<city>_<seq>_<frame>_gtFine_instanceIds.png  (optional)

Image ids are ``<city>_<seq>_<frame>`` (e.g. ``frankfurt_000000_000294``), in sorted order. Ground truth is read from
the official ``labelIds`` PNGs and mapped to train ids 0..18 (255 = ignore) with ``LABEL_ID_TO_TRAIN_ID``, the table
of cityscapesscripts' ``labels.py``. The paper (Fischer et al. 2017) works at 512x1024: pass ``size=(512, 1024)``.

Without a ``gtFine/<split>`` folder the data set has no labels (``has_labels`` False, labels all 255); the attack does
not need them. With it, every image must have its label file (a missing one is an error naming both paths). The
official ``test`` split ships placeholder labels without any evaluated class: they map to all ignore (255).

Instances: where every image has its ``*_gtFine_instanceIds.png`` (values ``labelId * 1000 + k`` on the pixels of
instance k of a class with instances, person and rider among them, and the plain ``labelId`` elsewhere, crowd regions
included), ``has_instances`` is True and ``instance_ids(i)`` gives them in segattack's convention
(``segattack.instances``): ``trainId * 1000 + k``, -1 for pixels of no instance. Experiments then also count the
ground-truth persons that vanish entirely (``gt_instances*`` in the rows).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image
from torch import Tensor
from torch.utils.data import Dataset

from ..errors import DataError, DataNotFoundError
from .folder import ImageFiles, check_size, image_size_of, read_label_ids, read_rgb, resize_pair, to_item
from .labels import LABEL_ID_TO_TRAIN_ID

__all__ = ["Cityscapes", "label_ids_to_train_ids", "instance_ids_to_train_ids", "LABEL_ID_LUT"]

IMAGE_SUFFIX = "_leftImg8bit.png"
LABEL_SUFFIX = "_gtFine_labelIds.png"
INSTANCE_SUFFIX = "_gtFine_instanceIds.png"


def _lut() -> np.ndarray:
    lut = np.full(256, -1, dtype=np.int64)  # -1: not an official labelId
    for label_id, train_id in LABEL_ID_TO_TRAIN_ID.items():
        if label_id >= 0:
            lut[label_id] = train_id
    return lut


#: (256,) int64 lookup table labelId -> trainId; -1 marks values that are no official labelId (34..255).
LABEL_ID_LUT: np.ndarray = _lut()


def label_ids_to_train_ids(label_ids: np.ndarray) -> np.ndarray:
    """Map official Cityscapes labelIds (any shape, 0..33) to train ids (0..18, 255 = ignore), vectorised.

    >>> label_ids_to_train_ids(np.array([[24, 26, 0, 7]])).tolist()
    [[11, 13, 255, 0]]

    Raises ``DataError`` (a ValueError) for values that are no labelId (e.g. a ``labelTrainIds`` or colour PNG
    passed by mistake).
    """
    ids = np.asarray(label_ids).astype(np.int64)
    bad = (ids < 0) | (ids > 255)
    out = LABEL_ID_LUT[ids.clip(0, 255)]
    bad |= out < 0
    if bool(bad.any()):
        vals = np.unique(ids[bad])[:5].tolist()
        raise DataError(
            f"values {vals} are no Cityscapes labelIds (0..33); is this a *_gtFine_labelIds.png file? "
            "(labelTrainIds, instanceIds and color PNGs are not read)"
        )
    return out


def instance_ids_to_train_ids(instance_ids: np.ndarray) -> np.ndarray:
    """Official ``instanceIds`` values (``labelId * 1000 + k`` for instance k, ``labelId`` elsewhere) -> segattack's
    instance ids (``segattack.instances``): ``trainId * 1000 + k`` on instance pixels of an evaluated class, -1
    elsewhere (no instance, a crowd region, an ignored class).

    >>> instance_ids_to_train_ids(np.array([[24000, 24001, 26003, 24, 7, 1000]])).tolist()
    [[11000, 11001, 13003, -1, -1, -1]]
    """
    ids = np.asarray(instance_ids).astype(np.int64)
    label = ids // 1000
    inside = (ids >= 1000) & (label < LABEL_ID_LUT.shape[0])
    train = np.where(inside, LABEL_ID_LUT[np.where(inside, label, 0).clip(0, 255)], -1)
    ok = inside & (train >= 0) & (train != 255)
    return np.where(ok, train * 1000 + ids % 1000, -1)


class Cityscapes(ImageFiles, Dataset[tuple[Tensor, Tensor]]):
    """The images of one Cityscapes split, with fine ground truth in train ids when present.

    Args:
        root: the Cityscapes root, holding ``leftImg8bit/`` (and optionally ``gtFine/``).
        split: ``"train"``, ``"val"`` or ``"test"`` (any folder name under ``leftImg8bit/``).
        size: optional output size (H, W) in pixels, e.g. ``(512, 1024)`` as in the paper; images are resized
            bilinearly (antialiased), labels with nearest neighbour.
        labels: None reads ``gtFine/<split>`` if it exists; True requires it; False ignores it.
        instances: None reads the ``*_gtFine_instanceIds.png`` files if every image has one; True requires them;
            False ignores them. Read by ``instance_ids(i)`` only (the items stay ``(image, label)``).

    Items: ``(image, label)``: uint8 (3, H, W) RGB and int64 (H, W) train ids (all 255 without ground truth).

    Raises:
        FileNotFoundError: ``<root>/leftImg8bit/<split>`` is missing (the message lists the splits found), ``gtFine``
            is missing with ``labels=True``, or an image has no label file.
        ValueError: the split holds no ``*_leftImg8bit.png`` image; a bad ``size``.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        split: str = "val",
        *,
        size: Sequence[int] | None = None,
        labels: bool | None = None,
        instances: bool | None = None,
    ) -> None:
        self.root = Path(root).expanduser()
        self.split = split
        self.size = check_size(size)
        image_dir = self.root / "leftImg8bit" / split
        if not image_dir.is_dir():
            raise DataNotFoundError(self._missing_message(image_dir))
        files = sorted(image_dir.glob(f"*/*{IMAGE_SUFFIX}"), key=lambda p: (p.name, p.parent.name))
        if not files:
            raise DataError(f"Cityscapes split {split!r} is empty: no <city>/*{IMAGE_SUFFIX} files under {image_dir}")
        self.files: list[Path] = files
        self._ids = [p.name[: -len(IMAGE_SUFFIX)] for p in files]
        label_dir = self.root / "gtFine" / split
        self.label_files: list[Path] | None = None
        if labels is True and not label_dir.is_dir():
            raise DataNotFoundError(
                f"labels=True but the ground truth folder {label_dir} does not exist; "
                "unpack gtFine_trainvaltest.zip into the root, or pass labels=None/False"
            )
        if labels is not False and label_dir.is_dir():
            self.label_files = [
                label_dir / p.parent.name / f"{i}{LABEL_SUFFIX}" for p, i in zip(files, self._ids, strict=True)
            ]
            missing = [(f, lf) for f, lf in zip(files, self.label_files, strict=True) if not lf.is_file()]
            if missing:
                shown = "; ".join(f"image {f} has no label {lf}" for f, lf in missing[:3])
                raise DataNotFoundError(
                    f"{len(missing)} of {len(files)} images of split {split!r} have no ground truth "
                    f"(gtFine/{split} exists, so every image needs its *{LABEL_SUFFIX}): {shown}"
                    + (" ..." if len(missing) > 3 else "")
                )
        self.has_labels = self.label_files is not None
        self.instance_files: list[Path] | None = None
        if instances is not False and label_dir.is_dir():
            found = [label_dir / p.parent.name / f"{i}{INSTANCE_SUFFIX}" for p, i in zip(files, self._ids, strict=True)]
            missing_i = [f for f in found if not f.is_file()]
            if not missing_i:
                self.instance_files = found
            elif instances is True:
                raise DataNotFoundError(
                    f"instances=True but {len(missing_i)} of {len(files)} images of split {split!r} have no "
                    f"*{INSTANCE_SUFFIX}, e.g. {missing_i[0]}; unpack them from gtFine_trainvaltest.zip, or pass "
                    "instances=None/False"
                )
        elif instances is True:
            raise DataNotFoundError(
                f"instances=True but the ground truth folder {label_dir} does not exist (or labels=False); unpack "
                "gtFine_trainvaltest.zip into the root, or pass instances=None/False"
            )
        self.has_instances = self.instance_files is not None

    def _missing_message(self, image_dir: Path) -> str:
        if not self.root.is_dir():
            return f"Cityscapes root {self.root} does not exist (expected the folder holding leftImg8bit/ and gtFine/)"
        images = self.root / "leftImg8bit"
        if images.is_dir():
            splits = sorted(p.name for p in images.iterdir() if p.is_dir())
            found = ", ".join(splits) if splits else "none"
            return f"Cityscapes split folder {image_dir} does not exist; splits found in {images}: {found}"
        hint = ""
        if self.root.name in ("leftImg8bit", "gtFine") or self.root.name == self.split:
            hint = "; root seems to point inside the data set: pass the folder that holds leftImg8bit/ instead"
        return (
            f"{self.root} is not a Cityscapes root: expected the folder {image_dir} "
            f"(official layout <root>/leftImg8bit/<split>/<city>/*{IMAGE_SUFFIX}){hint}"
        )

    def image_id(self, index: int) -> str:
        """``<city>_<seq>_<frame>``, e.g. ``frankfurt_000000_000294``."""
        return self._ids[index]

    def instance_ids(self, index: int) -> np.ndarray:
        """The ground-truth instances of item ``index``: (H, W) int64, ``trainId * 1000 + k`` on the pixels of
        instance k, -1 elsewhere (``instance_ids_to_train_ids``), at the size ``__getitem__`` returns (resized with
        nearest neighbour). Raises DataError without instance files (``has_instances`` False)."""
        if self.instance_files is None:
            raise DataError(f"{self!r} has no *{INSTANCE_SUFFIX} files; check has_instances first")
        path = self.instance_files[index]
        ids = read_label_ids(path)
        ih, iw = image_size_of(self.files[index])
        if ids.shape != (ih, iw):
            raise DataError(
                f"instances {path} are {ids.shape[1]}x{ids.shape[0]} but image {self.files[index]} is {iw}x{ih} (W x H)"
            )
        h, w = self.size if self.size is not None else (ih, iw)
        out = instance_ids_to_train_ids(ids)
        if out.shape != (h, w):
            # nearest neighbour on 32-bit ints keeps every id exactly, as the labels
            out = np.asarray(Image.fromarray(out.astype(np.int32)).resize((w, h), Image.Resampling.NEAREST))
        return out.astype(np.int64)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        path = self.files[index]
        image, _ = read_rgb(path)
        label = None
        if self.label_files is not None:
            lpath = self.label_files[index]
            ids = read_label_ids(lpath)
            if ids.shape != image.shape[:2]:
                raise DataError(
                    f"label {lpath} is {ids.shape[1]}x{ids.shape[0]} but image {path} is "
                    f"{image.shape[1]}x{image.shape[0]} (W x H)"
                )
            try:
                label = label_ids_to_train_ids(ids)
            except ValueError as e:
                raise DataError(f"label {lpath}: {e}") from None
        image, label = resize_pair(image, label, self.size)
        return to_item(image, label)

    def __repr__(self) -> str:
        gt = "with" if self.has_labels else "without"
        inst = " and instances" if self.has_instances else ""
        return (
            f"Cityscapes({str(self.root)!r}, split={self.split!r}, size={self.size}): {len(self)} images {gt} "
            f"labels{inst}"
        )
