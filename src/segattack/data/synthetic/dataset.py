"""The ``SyntheticStreets`` data set: procedural street scenes generated on the fly, with stable ids, and the seeding
that makes item ``i`` of split ``s`` a pure function of ``(seed, s, i)``.

Item ``i`` of split ``s`` draws from ``numpy.random.SeedSequence([seed, SPLITS[s], i])``, so ``train`` and ``val``
are disjoint random streams.
"""

from __future__ import annotations

import numpy as np
import torch
from numpy.typing import NDArray
from torch import Tensor
from torch.utils.data import Dataset

from ...errors import ConfigError, InputTypeError
from .scene import check_size, render_scene, render_scene_instances

__all__ = ["SPLITS", "SyntheticStreets", "scene_rng"]

#: Split name -> code mixed into the seed sequence; different codes give disjoint random streams.
SPLITS: dict[str, int] = {"train": 1, "val": 2}


def scene_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """The random generator of item ``index`` of ``split``: ``SeedSequence([seed, SPLITS[split], index])``."""
    if split not in SPLITS:
        raise ConfigError(f"unknown split {split!r}; valid splits: {', '.join(SPLITS)}")
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, SPLITS[split], index])))


class SyntheticStreets(Dataset[tuple[Tensor, Tensor]]):
    """Procedural street scenes with exact Cityscapes labels, generated on the fly (nothing on disk).

    Item ``i`` is ``(image, label)``: image uint8 (3, H, W) RGB, label int64 (H, W) train ids 0..18. Items are
    pure functions of ``(seed, split, i)``; ``train`` and ``val`` never share a scene. ``image_id(i)`` (and
    ``ids``, all of them) name items stably, e.g. ``"val_000012"``; ``render(i)`` gives the numpy arrays.
    ``instance_ids(i)`` gives the ground-truth person and rider instances (``has_instances``), exact under
    occlusion.

    Args:
        split: "train" or "val".
        size: (height, width) in pixels, default (256, 512).
        length: number of items.
        seed: non-negative int; a different seed gives a different data set.
    """

    has_labels = True
    has_instances = True

    def __init__(
        self, split: str = "val", size: tuple[int, int] = (256, 512), length: int = 500, seed: int = 0
    ) -> None:
        if split not in SPLITS:
            raise ConfigError(f"unknown split {split!r}; valid splits: {', '.join(SPLITS)}")
        self.size = check_size(size)
        if isinstance(length, bool) or not isinstance(length, int | np.integer) or length <= 0:
            raise ConfigError(f"length must be a positive int, got {length!r}")
        if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
            raise ConfigError(f"seed must be a non-negative int, got {seed!r}")
        self.split, self.length, self.seed = split, int(length), int(seed)

    def __len__(self) -> int:
        return self.length

    def _index(self, index: int) -> int:
        if isinstance(index, bool) or not isinstance(index, int | np.integer):
            raise InputTypeError(f"index must be an int, got {type(index).__name__}")
        i = int(index)
        if i < 0:
            i += self.length
        if not 0 <= i < self.length:
            raise IndexError(f"index {index} out of range for {self.length} items")
        return i

    def render(self, index: int) -> tuple[NDArray[np.uint8], NDArray[np.int64]]:
        """Item ``index`` as numpy arrays: image (H, W, 3) uint8, label (H, W) int64."""
        i = self._index(index)
        return render_scene(scene_rng(self.seed, self.split, i), self.size)

    def instance_ids(self, index: int) -> NDArray[np.int64]:
        """The ground-truth instances of item ``index``: (H, W) int64, ``train_id * 1000 + k`` on the pixels of the
        k-th person (train id 11) or rider (12) of the scene, -1 elsewhere (``segattack.instances``' convention).

        Painted with the label's own masks in the label's order (``render_scene_instances``), so they agree with the
        label exactly: an occluded person's id covers only its visible pixels. Renders the scene again.
        """
        i = self._index(index)
        return render_scene_instances(scene_rng(self.seed, self.split, i), self.size)[2]

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        image, label = self.render(index)
        return torch.from_numpy(image).permute(2, 0, 1).contiguous(), torch.from_numpy(label)

    def image_size(self, index: int) -> tuple[int, int]:
        """(H, W) of item ``index`` without rendering it (every scene has the data set's size)."""
        self._index(index)
        return self.size

    def image_id(self, index: int) -> str:
        """Stable id of item ``index``, e.g. ``"val_000012"``."""
        return f"{self.split}_{self._index(index):06d}"

    @property
    def ids(self) -> list[str]:
        """Ids of all items, in order."""
        return [f"{self.split}_{i:06d}" for i in range(self.length)]

    def __repr__(self) -> str:
        return f"SyntheticStreets(split={self.split!r}, size={self.size}, length={self.length}, seed={self.seed})"
