"""The training data: the cached source of (image, label) pairs, the seeded batch order and the augmentation.

Every random draw comes from a generator seeded by (seed, step) or (seed, epoch), never from the global RNG, so a
step's batch and its augmentation are the same whether the run was interrupted or not.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm.auto import tqdm

from ..data.labels import IGNORE_INDEX
from ..errors import ConfigError, DataError, InputTypeError
from .config import TrainConfig

__all__ = ["Source", "open_sources", "synthetic_datasets", "tqdm_disable", "mix", "batch_indices", "augment"]

logger = logging.getLogger(__name__)


class Source:
    """Images (uint8 (3, H, W)) and labels (train ids (H, W)) by index: cached in memory or read from the dataset.

    A segattack data set too (``len``, ``[i]`` -> (uint8 image, int64 label), ``image_id``, ``has_labels``) of the
    first ``n`` items, checked and converted, on the cache's device: validation hands it to
    ``segattack.evaluation.evaluate``.
    """

    has_labels = True  # every item was checked to carry train ids (see _read)

    def __init__(
        self, dataset: Any, n: int, *, name: str, cache_limit_mb: int, num_classes: int, progress: bool | None
    ) -> None:
        if len(dataset) < 1:
            raise DataError(f"the {name} dataset is empty")
        if not getattr(dataset, "has_labels", True):
            raise DataError(f"the {name} dataset has no ground-truth labels; training and validation need them")
        self.dataset = dataset
        self.name = name
        self.num_classes = num_classes
        self.n = min(n, len(dataset))
        first_img, first_lbl = self._read(0)
        self.image_size = (int(first_img.shape[1]), int(first_img.shape[2]))
        per_item = first_img.numel() + first_lbl.numel()
        self.cached = self.n * per_item <= cache_limit_mb * 2**20
        self.images: Tensor | None = None
        self.labels: Tensor | None = None
        if self.cached:
            imgs = torch.empty((self.n, *first_img.shape), dtype=torch.uint8)
            lbls = torch.empty((self.n, *first_lbl.shape), dtype=torch.uint8)
            bar = tqdm(range(self.n), desc=f"caching {name} images", disable=tqdm_disable(progress), leave=False)
            for i in bar:
                img, lbl = (first_img, first_lbl) if i == 0 else self._read(i)
                if img.shape != first_img.shape or lbl.shape != first_lbl.shape:
                    self.cached = False  # sizes vary: read item by item instead
                    break
                imgs[i] = img
                lbls[i] = lbl
            bar.close()
            if self.cached:
                self.images, self.labels = imgs, lbls
        logger.info("%s data: %d images, %s", name, self.n, "cached in memory" if self.cached else "read per batch")

    def to(self, device: torch.device) -> None:
        """Move the cache to ``device`` (on a GPU this saves a host-to-device copy per batch)."""
        if self.images is not None and self.labels is not None:
            self.images, self.labels = self.images.to(device), self.labels.to(device)

    def _read(self, i: int) -> tuple[Tensor, Tensor]:
        item = self.dataset[i]
        if not isinstance(item, tuple | list) or len(item) != 2:
            raise InputTypeError(f"dataset items must be (image, label) pairs, got {type(item).__name__}")
        img = torch.as_tensor(item[0])
        lbl = torch.as_tensor(item[1])
        if img.ndim != 3 or img.shape[0] != 3:
            raise DataError(f"dataset images must have shape (3, H, W), got {tuple(img.shape)}")
        if img.is_floating_point():
            if img.numel() and (img.min() < 0 or img.max() > 1):
                raise DataError("float dataset images must lie in [0, 1]; or give uint8 images in 0..255")
            img = (img * 255).round()
        img = img.to(torch.uint8)
        if lbl.shape != img.shape[1:]:
            raise DataError(f"label shape {tuple(lbl.shape)} does not match image shape {tuple(img.shape[1:])}")
        if lbl.is_floating_point() or bool(((lbl < 0) | (lbl >= self.num_classes) & (lbl != IGNORE_INDEX)).any()):
            raise DataError(
                f"{self.name} item {i}: labels must be integer class ids in 0..{self.num_classes - 1} "
                f"or {IGNORE_INDEX} (ignore); map other ids to train ids first"
            )
        return img, lbl.to(torch.uint8)

    def get(self, indices: Sequence[int]) -> list[tuple[Tensor, Tensor]] | tuple[Tensor, Tensor]:
        """A stacked (images, labels) pair when cached, else a list of per-item pairs."""
        if self.images is not None and self.labels is not None:
            idx = torch.as_tensor(list(indices), dtype=torch.long).to(self.images.device, non_blocking=True)
            return self.images[idx], self.labels[idx]
        return [self._read(i) for i in indices]

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        if not 0 <= i < self.n:
            raise IndexError(f"{self.name} item {i} out of range 0..{self.n - 1}")
        if self.images is not None and self.labels is not None:
            img, lbl = self.images[i], self.labels[i]
        else:
            img, lbl = self._read(i)
        return img, lbl.long()

    def image_id(self, i: int) -> str:
        image_id = getattr(self.dataset, "image_id", None)
        return str(image_id(i)) if callable(image_id) else f"{self.name} item {i}"

    def mean_std(self) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
        """Per-channel mean and std of the images in [0, 1] (all cached images, else the first 64)."""
        total = torch.zeros(3, dtype=torch.float64)
        total_sq = torch.zeros(3, dtype=torch.float64)
        count = 0
        n = self.n if self.cached else min(self.n, 64)
        for start in range(0, n, 16):
            got = self.get(range(start, min(start + 16, n)))
            chunks = [got[0]] if isinstance(got, tuple) else [img[None] for img, _ in got]
            for chunk in chunks:
                x = chunk.to(torch.float64) / 255
                total += x.sum(dim=(0, 2, 3))
                total_sq += (x * x).sum(dim=(0, 2, 3))
                count += x.shape[0] * x.shape[2] * x.shape[3]
        mean = total / count
        std = (total_sq / count - mean * mean).clamp_min(1e-12).sqrt()
        m, s = [round(float(v), 6) for v in mean], [round(float(v), 6) for v in std]
        return (m[0], m[1], m[2]), (s[0], s[1], s[2])


def open_sources(
    config: TrainConfig, train_data: Any, val_data: Any, *, progress: bool | None
) -> tuple[Source, Source]:
    """The training and validation sources of ``config`` (the synthetic streets where a data set is None); a crop size
    is required where the training images vary in size."""
    if train_data is None or val_data is None:
        default_train, default_val = synthetic_datasets(config)
        train_data = default_train if train_data is None else train_data
        val_data = default_val if val_data is None else val_data
    train_src = Source(train_data, config.train_images, name="training", cache_limit_mb=config.cache_limit_mb,
                       num_classes=config.num_classes, progress=progress)  # fmt: skip
    val_src = Source(val_data, config.val_images, name="validation", cache_limit_mb=config.cache_limit_mb,
                     num_classes=config.num_classes, progress=progress)  # fmt: skip
    if config.crop is None and not train_src.cached:
        raise ConfigError("training images of varying size need a crop size (crop=(h, w), --crop HxW)")
    return train_src, val_src


def tqdm_disable(progress: bool | None) -> bool | None:
    """tqdm's ``disable``: True hides the bar, None shows it only on a terminal."""
    return None if progress is None else not progress


def synthetic_datasets(config: TrainConfig) -> tuple[Any, Any]:
    try:
        from ..data.synthetic import SyntheticStreets
    except ImportError as err:
        raise RuntimeError(
            "the synthetic street data set (segattack.data.synthetic) is not available; pass datasets to train()"
        ) from err
    h, w = config.size
    train_ds = SyntheticStreets(split="train", size=(h, w), length=config.train_images, seed=config.data_seed)
    val_ds = SyntheticStreets(split="val", size=(h, w), length=config.val_images, seed=config.data_seed)
    return train_ds, val_ds


def mix(*values: int) -> int:
    """A 63-bit seed from integers (splitmix-style), so that (seed, step) pairs give unrelated streams."""
    x = 0x9E3779B97F4A7C15
    for v in values:
        x = (x ^ (v & 0xFFFFFFFFFFFFFFFF)) * 0xBF58476D1CE4E5B9 & 0xFFFFFFFFFFFFFFFF
        x ^= x >> 31
    return x & 0x7FFFFFFFFFFFFFFF


def batch_indices(step: int, *, batch_size: int, n: int, seed: int) -> list[int]:
    """Indices of the batch for ``step``: a fresh permutation of the data set every epoch, seeded by (seed, epoch)."""
    out: list[int] = []
    perms: dict[int, Tensor] = {}
    for pos in range(step * batch_size, (step + 1) * batch_size):
        epoch, within = divmod(pos, n)
        if epoch not in perms:
            perms[epoch] = torch.randperm(n, generator=torch.Generator().manual_seed(mix(seed, 1, epoch)))
        out.append(int(perms[epoch][within]))
    return out


def luma(x: Tensor) -> Tensor:
    """(B, 3, H, W) RGB -> (B, 1, H, W) luma (ITU-R BT.601 weights, as torchvision's jitter)."""
    return 0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3]


def augment(
    images: Tensor,
    labels: Tensor,
    *,
    crop: tuple[int, int],
    generator: torch.Generator,
    config: TrainConfig,
    fill: Tensor,
) -> tuple[Tensor, Tensor]:
    """Random scale + crop + flip (one affine resampling per image) and colour jitter.

    images: (B, 3, H, W) uint8; labels (B, H, W) uint8, on the training device. Returns float images (B, 3, ch, cw)
    in [0, 1] and int64 labels (B, ch, cw); pixels outside the rescaled image get ``fill`` (per-channel, [0, 1])
    and the ignore label.
    """
    b, _, h, w = images.shape
    ch, cw = crop
    lo, hi = config.scale_range
    # All random draws on the CPU generator, in a fixed order, whatever the device.
    scale = lo + (hi - lo) * torch.rand(b, generator=generator, dtype=torch.float64)
    offset = torch.rand(b, 2, generator=generator, dtype=torch.float64)
    flip = torch.rand(b, generator=generator) < 0.5 if config.hflip else torch.zeros(b, dtype=torch.bool)
    jitter = 2 * torch.rand(b, 3, generator=generator) - 1

    # Crop origin (y0, x0) in the rescaled image: uniform over positions; negative when the crop is larger (pad).
    sh, sw = scale * h, scale * w
    y0 = offset[:, 0] * (sh - ch)
    x0 = offset[:, 1] * (sw - cw)
    # Output normalised coordinate u in [-1, 1] -> input normalised coordinate a * u + c (align_corners=False).
    ax, ay = cw / sw, ch / sh
    cx, cy = ax + 2 * x0 / sw - 1, ay + 2 * y0 / sh - 1
    ax = torch.where(flip, -ax, ax)
    # theta (B, 2, 3) and the jitter factors (B, 3) travel to the device in one copy.
    packed = torch.zeros(b, 9, dtype=torch.float64)
    packed[:, 0], packed[:, 2], packed[:, 4], packed[:, 5] = ax, cx, ay, cy
    packed[:, 6:] = 1 + jitter * torch.tensor([config.brightness, config.contrast, config.saturation])
    packed = packed.to(device=images.device, dtype=torch.float32, non_blocking=True)
    theta, factors = packed[:, :6].view(b, 2, 3), packed[:, 6:]
    grid = F.affine_grid(theta, [b, 3, ch, cw], align_corners=False)

    fill = fill.view(1, 3, 1, 1)
    x = F.grid_sample(images.float() / 255 - fill, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    x = x + fill
    lab = F.grid_sample((labels.float() + 1)[:, None], grid, mode="nearest", padding_mode="zeros", align_corners=False)
    lab = lab[:, 0].round().long() - 1
    lab = torch.where(lab < 0, torch.full_like(lab, IGNORE_INDEX), lab)

    x = x * factors[:, 0].view(b, 1, 1, 1)
    mean_gray = luma(x).mean(dim=(2, 3), keepdim=True)
    x = (x - mean_gray) * factors[:, 1].view(b, 1, 1, 1) + mean_gray
    gray = luma(x)
    x = (x - gray) * factors[:, 2].view(b, 1, 1, 1) + gray
    return x.clamp_(0, 1), lab
