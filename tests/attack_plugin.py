"""A model module that registers attacks when it is imported, as a user's plug-in does: ``--model
tests.attack_plugin:model --attack plugin-shift`` must find them (the module is imported before --attack is resolved).
``plugin-too-far`` breaks its budget: the pipeline must refuse its output, naming it."""

from __future__ import annotations

from typing import Any

from torch import Tensor

import segattack as sa

from .models_for_cli import tiny_fcn


@sa.attacks.register("plugin-shift", replace=True)
def shift(model: Any, images: Tensor, labels: Tensor, *, eps: float, targeted: bool, mask: Tensor | None = None,
          ignore_index: int = 255) -> Tensor:  # fmt: skip
    """Every pixel down by eps (inside the mask, if given)."""
    delta = -eps if mask is None else -eps * mask[:, None].to(images.dtype)
    return (images + delta).clamp(0, 1)


@sa.attacks.register("plugin-too-far", replace=True)
def too_far(model: Any, images: Tensor, labels: Tensor, *, eps: float, targeted: bool) -> Tensor:
    """Half the range away, whatever eps says: a broken attack."""
    return (images + 0.5).clamp(0, 1)


def model() -> sa.PixelModel:
    return tiny_fcn()
