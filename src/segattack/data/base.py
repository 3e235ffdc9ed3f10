"""The contract every segattack data set follows.

A data set is a ``torch.utils.data.Dataset`` whose item ``i`` is ``(image, label)``:

- ``image``: uint8 tensor (3, H, W), RGB;
- ``label``: int64 tensor (H, W) of Cityscapes train ids (0..18), ``IGNORE_INDEX`` (255) where unlabelled; a data set
  without ground truth returns all 255 (the attack needs no ground truth: targets come from the prediction);

and ``image_id(i)`` gives a stable string id (used in result rows and file names). ``has_labels`` says whether
ground truth exists. A file that cannot be read raises ``UnreadableImageError`` from ``__getitem__``; experiments
skip such items with a warning and count them.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from torch import Tensor

from ..errors import UnreadableImageError

__all__ = ["SegDataset", "UnreadableImageError"]


@runtime_checkable
class SegDataset(Protocol):
    has_labels: bool

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]: ...

    def image_id(self, index: int) -> str: ...
