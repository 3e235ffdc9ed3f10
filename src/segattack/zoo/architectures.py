"""The architectures a model card may name: ``arch`` (as written in the card) -> constructor taking ``num_classes``
and the card's ``arch_kwargs``."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from .deeplabv3 import DeepLabV3
from .fcn8s import FCN8s
from .segformer import SegFormer

__all__ = ["ARCHITECTURES"]

#: Architecture name (as written in a model card) -> constructor taking ``num_classes`` and keyword arguments.
ARCHITECTURES: dict[str, Callable[..., nn.Module]] = {"fcn8s": FCN8s, "deeplabv3": DeepLabV3, "segformer": SegFormer}
