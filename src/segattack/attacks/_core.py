"""Shared machinery of the iterative sign-gradient attacks: validation, 8-bit level arithmetic, one step.

Internally the attacks work in 8-bit levels: the clean image as ``X = 255 * images`` (rounded to whole levels when
the images are 8-bit representable) and the perturbation ``D`` in levels. Steps of whole levels and budgets of whole
levels then keep ``X + D`` integral, so the adversarial image ``(X + D) / 255`` is exactly what an 8-bit PNG of it
loads back as.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..models import PixelModel

Model = Callable[[Tensor], Tensor]

#: Images whose values are within this many levels of whole levels count as 8-bit images.
_LEVEL_TOL = 1e-3


def as_model(model: Model) -> Model:
    """A bare ``nn.Module`` is wrapped in a ``PixelModel`` (no normalisation) so it runs frozen in eval mode."""
    if isinstance(model, nn.Module) and not isinstance(model, PixelModel):
        return PixelModel(model)
    if not callable(model):
        raise TypeError(f"model must be a PixelModel or a callable images -> logits, got {type(model).__name__}")
    return model


def to_levels(images: Tensor) -> Tensor:
    """(B, C, H, W) in [0, 1] -> the same in levels (0..255), rounded exactly when the images are 8-bit."""
    levels = images.detach() * 255
    rounded = levels.round()
    if levels.numel() and float((levels - rounded).abs().max()) <= _LEVEL_TOL:
        return rounded
    return levels


def levels_of(value: float) -> float:
    """A budget or step in [0, 1] units -> levels, snapped to a whole level when within 1e-6 of one."""
    lv = float(value) * 255.0
    return float(round(lv)) if abs(lv - round(lv)) < 1e-6 else lv


def paper_steps(eps_levels: float) -> int:
    """Iterations of Kurakin et al. (2016) as used by Fischer et al. (2017): n = min(eps + 4, 1.25 eps), eps in levels.

    Rounding rule: the ceiling, so an attack never runs fewer iterations than the formula asks for, and every budget
    gets at least one iteration beyond the first moment its boundary can be reached (eps=10 -> 13, eps=1 -> 2).

    >>> [paper_steps(e) for e in (1, 2, 4, 10, 16, 20)]
    [2, 3, 5, 13, 20, 24]
    """
    if not eps_levels > 0:
        raise ValueError(f"eps must be positive, got {eps_levels} levels")
    return math.ceil(round(min(eps_levels + 4.0, 1.25 * eps_levels), 6))


def check_positive(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive number in [0, 1] image units (e.g. {name}=10/255), got {value!r}")
    if value > 1:
        raise ValueError(
            f"{name}={value} exceeds 1, the whole image range; the Python API takes [0, 1] units: "
            f"write {name}={value}/255"
        )
    return float(value)


def check_target(target: Tensor, images: Tensor) -> None:
    if not isinstance(target, Tensor):
        raise TypeError(f"target must be a torch.Tensor of shape (B, H, W), got {type(target).__name__}")
    if target.is_floating_point() or target.dtype == torch.bool:
        raise TypeError(f"target must hold integer class ids (int64), got {target.dtype}")
    expected = (images.shape[0], *images.shape[-2:])
    if tuple(target.shape) != expected:
        raise ValueError(
            f"target has shape {tuple(target.shape)} but the images need {expected} (B, H, W); "
            "build it from the prediction on these images, e.g. hide_class_target(model.predict(images), class_id=...)"
        )


def check_mask(mask: Tensor | None, images: Tensor) -> Tensor | None:
    """Validate a (B, H, W) or (B, 1, H, W) boolean mask; return it as (B, 1, H, W) bool."""
    if mask is None:
        return None
    if not isinstance(mask, Tensor) or mask.dtype != torch.bool:
        raise TypeError(
            f"mask must be a boolean tensor (B, H, W), e.g. pred == 11; got {getattr(mask, 'dtype', type(mask))}"
        )
    if mask.ndim == 3:
        mask = mask[:, None]
    expected = (images.shape[0], 1, *images.shape[-2:])
    if tuple(mask.shape) != expected:
        raise ValueError(f"mask has shape {tuple(mask.shape)}; expected (B, H, W) = {(expected[0], *expected[2:])}")
    return mask.to(images.device)


def check_logits_for_target(logits: Tensor, images: Tensor, target: Tensor, ignore_index: int) -> None:
    if logits.ndim != 4 or logits.shape[0] != images.shape[0] or logits.shape[-2:] != images.shape[-2:]:
        raise ValueError(
            f"model returned shape {tuple(logits.shape)} for images {tuple(images.shape)}; it must return logits "
            "(B, K, H, W) at input size (wrap the network in segattack.PixelModel)"
        )
    k = logits.shape[1]
    valid = (target == ignore_index) | ((target >= 0) & (target < k))
    if not bool(valid.all()):
        bad = target[~valid].unique()[:5].tolist()
        raise ValueError(f"target holds class ids {bad} outside 0..{k - 1} (the model has {k} classes)")


def bounds(base: Tensor, eps: Tensor, mask: Tensor | None) -> tuple[Tensor, Tensor]:
    """Bounds (lo, hi) in levels on the perturbation D for clean levels ``base``: |D| <= eps (per sample, (B,1,1,1)
    or scalar), 0 <= base + D <= 255, and D = 0 outside ``mask``; one clamp to [lo, hi] projects onto all three."""
    lo = torch.maximum(-eps, -base)
    hi = torch.minimum(eps, 255 - base)
    if mask is not None:
        zero = torch.zeros((), dtype=base.dtype, device=base.device)
        lo = torch.where(mask, lo, zero)
        hi = torch.where(mask, hi, zero)
    return lo, hi


def sign_step(
    model: Model,
    base: Tensor,
    delta: Tensor,
    *,
    target: Tensor,
    step: float,
    lo: Tensor,
    hi: Tensor,
    ignore_index: int,
    check: bool,
    images: Tensor,
) -> Tensor:
    """One targeted step in levels: D <- clamp(D - step * sign(grad_x CE(model(x + D), target)), lo, hi).

    ``lo``/``hi`` come from ``bounds``. ``check`` validates the model's output against the target (first step only;
    later steps skip the value checks that cost a pass over the logits). Costs one forward and one backward pass;
    ``delta`` is not modified.
    """
    adv = ((base + delta) / 255).requires_grad_(True)
    logits = model(adv) if check or not isinstance(model, PixelModel) else model(adv, check=False)
    if check:
        check_logits_for_target(logits, images, target, ignore_index)
    loss = F.cross_entropy(logits, target, ignore_index=ignore_index, reduction="sum")
    (grad,) = torch.autograd.grad(loss, adv)
    return torch.clamp(delta - step * grad.sign_(), lo, hi)
