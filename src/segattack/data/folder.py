"""Any folder of images as a segattack data set, with optional ground truth in a parallel folder.

Images are found recursively (PNG and JPEG, any case of the extension), sorted by their path relative to the root,
and named by that path without its extension, with ``/`` replaced by ``__``: ``street/a/b.png`` -> ``street__a__b``.
Grey, palette and RGBA images are converted to RGB (alpha dropped, not blended); one note per data set is logged.
Pixels are taken as stored: an EXIF orientation tag is not applied (labels are usually drawn on the stored pixels).

Ground truth (optional): a folder of single-channel PNGs holding Cityscapes train ids (0..18, 255 = ignore), found by
the image's relative path with the extension ``.png``: image ``street/a/b.jpg`` -> label ``<labels>/street/a/b.png``.
Every image must then have its label: a missing one is an error at construction, listing the missing files, because
a partly labelled folder would silently change mIoU. (An attack needs no ground truth: leave ``labels`` out.)

A file that cannot be decoded raises ``UnreadableImageError`` from ``__getitem__``; the experiment skips and counts it.

>>> import tempfile, numpy as np
>>> from PIL import Image
>>> with tempfile.TemporaryDirectory() as root:
...     Image.fromarray(np.zeros((4, 6, 3), np.uint8)).save(f"{root}/a.png")
...     ds = ImageFolder(root, size=(8, 12))
...     image, label = ds[0]
>>> len(ds), ds.image_id(0), ds.has_labels, tuple(image.shape), image.dtype, label.unique().tolist()
(1, 'a', False, (3, 8, 12), torch.uint8, [255])
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import Dataset

from .base import UnreadableImageError
from .labels import IGNORE_INDEX, NUM_CLASSES

__all__ = ["ImageFolder", "IMAGE_EXTENSIONS", "check_size", "read_rgb", "read_label_ids", "resize_pair"]

log = logging.getLogger(__name__)

#: File name endings read as images (compared case-insensitively).
IMAGE_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg")

# What Pillow raises for files it cannot decode: unknown format (UnidentifiedImageError is an OSError), truncated or
# corrupt data (OSError, SyntaxError from the PNG plugin, ValueError), images too large (DecompressionBombError).
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, Image.DecompressionBombError)


def check_size(size: Sequence[int] | None) -> tuple[int, int] | None:
    """Validate an output size ``(H, W)`` in pixels (e.g. the paper's ``(512, 1024)``); None keeps the file's size."""
    if size is None:
        return None
    if (
        isinstance(size, str)
        or not isinstance(size, Sequence)
        or len(size) != 2
        or not all(isinstance(s, int | np.integer) and not isinstance(s, bool) for s in size)
    ):
        raise ValueError(f"size must be a pair of integers (H, W), e.g. (512, 1024), got {size!r}")
    h, w = int(size[0]), int(size[1])
    if h < 1 or w < 1:
        raise ValueError(f"size must be positive (H, W), got {(h, w)}")
    return h, w


def read_rgb(path: Path) -> tuple[np.ndarray, str]:
    """Decode an image file into (H, W, 3) uint8 RGB; also return the file's original Pillow mode ('L', 'RGBA', ...).

    Raises ``UnreadableImageError`` naming the file when Pillow cannot decode it.
    """
    try:
        with Image.open(path) as im:
            mode = im.mode
            rgb = im.convert("RGB")
            rgb.load()
    except _DECODE_ERRORS as e:
        raise UnreadableImageError(f"cannot read image {path}: {e}") from e
    return np.asarray(rgb, dtype=np.uint8), mode


def read_label_ids(path: Path) -> np.ndarray:
    """Decode a single-channel label PNG into (H, W) int64 ids, exactly as stored (no palette colours applied).

    Raises ``UnreadableImageError`` when the file cannot be decoded, ``ValueError`` when it has colour channels.
    """
    try:
        with Image.open(path) as im:
            im.load()
            arr = np.asarray(im)
    except _DECODE_ERRORS as e:
        raise UnreadableImageError(f"cannot read label {path}: {e}") from e
    if arr.ndim != 2:
        raise ValueError(
            f"label {path} has {arr.shape[2]} channels; expected a single-channel PNG of class ids, not a colour "
            "rendering of the labels"
        )
    return arr.astype(np.int64)


def resize_pair(
    image: np.ndarray, label: np.ndarray | None, size: tuple[int, int] | None
) -> tuple[np.ndarray, np.ndarray | None]:
    """Resize (H, W, 3) uint8 to ``size`` = (H', W') with Pillow's antialiased bilinear filter and an (H, W) label
    with nearest neighbour (ids are never blended). Unchanged when ``size`` is None or already the size."""
    if size is None or image.shape[:2] == size:
        return image, label
    h, w = size
    out = np.asarray(Image.fromarray(image).resize((w, h), Image.Resampling.BILINEAR), dtype=np.uint8)
    if label is not None:
        # Pillow's nearest filter on 32-bit ints keeps every id exactly.
        lab = Image.fromarray(label.astype(np.int32)).resize((w, h), Image.Resampling.NEAREST)
        label = np.asarray(lab).astype(np.int64)
    return out, label


def to_item(image: np.ndarray, label: np.ndarray | None) -> tuple[Tensor, Tensor]:
    """(H, W, 3) uint8 and (H, W) int64 train ids (or None: all ``IGNORE_INDEX``) -> the contract's tensors."""
    img = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))
    if label is None:
        lab = torch.full(image.shape[:2], IGNORE_INDEX, dtype=torch.int64)
    else:
        lab = torch.from_numpy(np.ascontiguousarray(label, dtype=np.int64))
    return img, lab


def _is_image(p: Path) -> bool:
    return p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".")


class ImageFolder(Dataset[tuple[Tensor, Tensor]]):
    """Images found recursively under ``root``; optional train-id label PNGs under ``labels``.

    Args:
        root: folder of PNG/JPEG images (searched recursively; hidden files skipped).
        labels: optional folder of label PNGs with the same relative names (extension ``.png``) holding train ids.
        size: optional output size (H, W) in pixels; images are resized bilinearly (antialiased), labels with
            nearest neighbour.

    Items: ``(image, label)``: uint8 (3, H, W) RGB and int64 (H, W) train ids, all 255 without ``labels``.

    Raises:
        FileNotFoundError: ``root`` or ``labels`` is not a folder; an image has no label file.
        ValueError: no image found under ``root`` (the message lists the accepted extensions); a bad ``size``.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        labels: str | os.PathLike[str] | None = None,
        size: Sequence[int] | None = None,
    ) -> None:
        self.root = Path(root).expanduser()
        self.size = check_size(size)
        if not self.root.is_dir():
            what = "is a file, not a folder" if self.root.exists() else "does not exist"
            raise FileNotFoundError(f"image folder {self.root} {what}")
        label_root = None if labels is None else Path(labels).expanduser()
        # a label folder inside the image folder holds PNGs too: they are labels, not images
        skip = label_root.resolve() if label_root is not None and label_root.is_dir() else None
        files = sorted(
            (
                p
                for p in self.root.rglob("*")
                if _is_image(p) and p.is_file() and (skip is None or not p.resolve().is_relative_to(skip))
            ),
            key=lambda p: p.relative_to(self.root).as_posix(),
        )
        if not files:
            raise ValueError(
                f"no images found under {self.root} (searched recursively for {', '.join(IMAGE_EXTENSIONS)}, any case)"
            )
        self.files: list[Path] = files
        rel = [p.relative_to(self.root).with_suffix("") for p in files]
        self._ids = [r.as_posix().replace("/", "__") for r in rel]
        dupes = sorted(i for i, n in Counter(self._ids).items() if n > 1)
        if dupes:
            raise ValueError(
                f"image ids must be unique, but several files share the name without extension: {dupes[:5]} "
                "(e.g. a.png and a.jpg); keep one of each"
            )
        self.label_root: Path | None = None
        self.label_files: list[Path] | None = None
        if label_root is not None:
            self.label_root = label_root
            if not self.label_root.is_dir():
                what = "is a file, not a folder" if self.label_root.exists() else "does not exist"
                raise FileNotFoundError(f"label folder {self.label_root} {what}")
            self.label_files = [self.label_root / r.with_suffix(".png") for r in rel]
            missing = [(f, lf) for f, lf in zip(files, self.label_files, strict=True) if not lf.is_file()]
            if missing:
                shown = "; ".join(f"{f} -> {lf}" for f, lf in missing[:5])
                raise FileNotFoundError(
                    f"{len(missing)} of {len(files)} images have no label PNG in {self.label_root} "
                    f"(expected the image's relative path with .png): {shown}" + (" ..." if len(missing) > 5 else "")
                )
        self.has_labels = self.label_files is not None
        self._noted_conversion = False

    def __len__(self) -> int:
        return len(self.files)

    def image_id(self, index: int) -> str:
        """Relative path without extension, '/' -> '__' (stable across runs and machines)."""
        return self._ids[index]

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        path = self.files[index]
        image, mode = read_rgb(path)
        if mode != "RGB" and not self._noted_conversion:
            self._noted_conversion = True
            log.info("%s: image %s has mode %s; converting to RGB (noted once per data set)", self.root, path, mode)
        label = None
        if self.label_files is not None:
            lpath = self.label_files[index]
            label = read_label_ids(lpath)
            if label.shape != image.shape[:2]:
                raise ValueError(
                    f"label {lpath} is {label.shape[1]}x{label.shape[0]} but image {path} is "
                    f"{image.shape[1]}x{image.shape[0]} (W x H)"
                )
            bad = (label != IGNORE_INDEX) & ((label < 0) | (label >= NUM_CLASSES))
            if bool(bad.any()):
                vals = np.unique(label[bad])[:5].tolist()
                raise ValueError(
                    f"label {lpath} holds ids {vals}; expected train ids 0..{NUM_CLASSES - 1} or {IGNORE_INDEX} "
                    "(map official Cityscapes labelIds to train ids first, or use the Cityscapes data set)"
                )
        image, label = resize_pair(image, label, self.size)
        return to_item(image, label)

    def __repr__(self) -> str:
        lab = f", labels={str(self.label_root)!r}" if self.label_root is not None else ""
        return f"ImageFolder({str(self.root)!r}{lab}, size={self.size}) with {len(self)} images"
