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
from .poster import PosterInfo, check_placement, check_poster
from .scene import check_size, render_scene, render_scene_instances, render_scene_with_poster

__all__ = ["SPLITS", "SyntheticStreets", "render_with_poster", "scene_rng"]

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

    With a ``poster`` (a patch), every item is the same scene with the poster drawn into it (``poster_placement``:
    on a facade or a billboard; see ``render_scene_with_poster``), and ``poster_info(i)`` says where it is and how
    it is seen.

    Args:
        split: "train" or "val".
        size: (height, width) in pixels, default (256, 512).
        length: number of items.
        seed: non-negative int; a different seed gives a different data set.
        poster: None, or a (3, h, w) float tensor or array in [0, 1] to draw into every scene.
        poster_placement: "building" or "billboard" (used only with a poster).
    """

    has_labels = True
    has_instances = True

    def __init__(
        self,
        split: str = "val",
        size: tuple[int, int] = (256, 512),
        length: int = 500,
        seed: int = 0,
        *,
        poster: Tensor | NDArray[np.floating] | None = None,
        poster_placement: str = "building",
    ) -> None:
        if split not in SPLITS:
            raise ConfigError(f"unknown split {split!r}; valid splits: {', '.join(SPLITS)}")
        self.size = check_size(size)
        if isinstance(length, bool) or not isinstance(length, int | np.integer) or length <= 0:
            raise ConfigError(f"length must be a positive int, got {length!r}")
        if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
            raise ConfigError(f"seed must be a non-negative int, got {seed!r}")
        self.split, self.length, self.seed = split, int(length), int(seed)
        self.poster = None if poster is None else check_poster(poster)  # (h, w, 3) float32
        self.poster_placement = check_placement(poster_placement)

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
        if self.poster is not None:
            image, label, _, _ = self._render_poster(i, False)
            return image, label
        return render_scene(scene_rng(self.seed, self.split, i), self.size)

    def _render_poster(
        self, i: int, instances: bool
    ) -> tuple[NDArray[np.uint8], NDArray[np.int64], PosterInfo, NDArray[np.int64] | None]:
        texture = np.ascontiguousarray(np.asarray(self.poster).transpose(2, 0, 1))
        rng = scene_rng(self.seed, self.split, i)
        return render_scene_with_poster(rng, texture, self.size, placement=self.poster_placement, instances=instances)

    def poster_info(self, index: int) -> PosterInfo:
        """Where item ``index``'s poster is and how it is seen (``PosterInfo``); renders the scene again.
        ``ConfigError`` when the data set has no poster."""
        i = self._index(index)
        if self.poster is None:
            raise ConfigError("this SyntheticStreets has no poster; pass poster=... to draw one")
        return self._render_poster(i, False)[2]

    def instance_ids(self, index: int) -> NDArray[np.int64]:
        """The ground-truth instances of item ``index``: (H, W) int64, ``train_id * 1000 + k`` on the pixels of the
        k-th person (train id 11) or rider (12) of the scene, -1 elsewhere (``segattack.instances``' convention).

        Painted with the label's own masks in the label's order (``render_scene_instances``), so they agree with the
        label exactly: an occluded person's id covers only its visible pixels. Renders the scene again.
        """
        i = self._index(index)
        if self.poster is not None:
            ids = self._render_poster(i, True)[3]
            assert ids is not None
            return ids
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
        text = f"SyntheticStreets(split={self.split!r}, size={self.size}, length={self.length}, seed={self.seed}"
        if self.poster is not None:
            h, w = self.poster.shape[:2]
            text += f", poster=(3, {h}, {w}), poster_placement={self.poster_placement!r}"
        return text + ")"


def render_with_poster(
    poster: Tensor | NDArray[np.floating],
    n: int,
    size: tuple[int, int] = (256, 512),
    *,
    seed: int = 0,
    split: str = "val",
    placement: str = "building",
) -> tuple[Tensor, Tensor, list[PosterInfo]]:
    """``n`` street scenes with ``poster`` (a patch) drawn into each, as a billboard or a poster on a facade, for
    testing a patch on images that were never made by pasting it.

    Scene ``i`` is ``SyntheticStreets(split, size, seed=seed)[i]`` with the poster painted in: the same street,
    objects, light and noise (the poster's place, size and angle come from a stream of their own, drawn from the
    scene's seed), perspective-mapped onto a quad the scene chooses, lit and fogged like the surfaces around it and
    hidden by whatever stands in front of it. Without blur (images under about 140 rows) the image differs from the
    poster-free one only inside ``PosterInfo.visible`` (and, for a billboard, on its frame and legs).

    Args:
        poster: (3, h, w) float tensor or array, values in [0, 1]; its aspect ratio is kept.
        n: number of scenes (items 0..n-1 of the split).
        size: (height, width) in pixels.
        seed, split: as ``SyntheticStreets``.
        placement: "building" (on a facade along the street; on a billboard where no facade takes it) or
            "billboard" (a free-standing panel on a sidewalk, turned 15-75 degrees towards the road).

    Returns:
        images uint8 (N, 3, H, W), labels int64 (N, H, W) Cityscapes train ids (poster pixels: building), and one
        ``PosterInfo`` per scene: ``corners`` (4, 2) pixels, ``visible`` (H, W) bool after occlusion, ``distance``
        metres from the camera, ``angle`` degrees between the poster's normal and the ray to the camera, ``area``
        pixels, ``size`` metres.

    >>> import torch
    >>> patch = torch.rand(3, 16, 16, generator=torch.Generator().manual_seed(0))
    >>> images, labels, infos = render_with_poster(patch, 2, (64, 128), placement="billboard")
    >>> images.dtype, tuple(images.shape), labels.dtype, tuple(labels.shape), len(infos)
    (torch.uint8, (2, 3, 64, 128), torch.int64, (2, 64, 128), 2)
    >>> clean, _ = SyntheticStreets("val", (64, 128), length=2)[1]
    >>> changed = (images[1] != clean).any(0).numpy()
    >>> bool(changed[infos[1].visible].all()), infos[1].placement
    (True, 'billboard')
    """
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n <= 0:
        raise ConfigError(f"n must be a positive int, got {n!r}")
    data = SyntheticStreets(split, size, int(n), seed, poster=poster, poster_placement=placement)
    images, labels, infos = [], [], []
    for i in range(data.length):
        image, label, info, _ = data._render_poster(i, False)
        images.append(torch.from_numpy(image).permute(2, 0, 1))
        labels.append(torch.from_numpy(label))
        infos.append(info)
    return torch.stack(images), torch.stack(labels), infos
