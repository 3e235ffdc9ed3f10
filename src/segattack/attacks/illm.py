"""The iterative least-likely / targeted iterative method of Kurakin et al. (2016), as used by Fischer et al. (2017).

    xi_0 = 0,   xi_{n+1} = Clip_eps( xi_n - alpha * sign( grad_x J_ce( f(x + xi_n), y_target ) ) )

with alpha = 1 level (1/255), n = min(eps + 4, 1.25 eps) iterations (eps in levels, rounded up: ``paper_steps``),
the cross-entropy summed over all pixels, and the adversarial image kept in [0, 1].
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial

import torch
from torch import Tensor

from ..models import check_images
from ._core import (
    Model,
    as_model,
    bounds,
    check_mask,
    check_positive,
    check_target,
    levels_of,
    paper_steps,
    sign_step,
    to_levels,
)

__all__ = ["illm", "illm_sweep", "sweep_plan", "SweepPlan", "paper_steps", "restrict"]

log = logging.getLogger(__name__)


def _steps_for(eps_levels: float, steps: int | None) -> int:
    if steps is None:
        return paper_steps(eps_levels)
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ValueError(f"steps must be a non-negative integer, got {steps!r}")
    return steps


def illm(
    model: Model,
    images: Tensor,
    target: Tensor,
    *,
    eps: float | Tensor,
    step_size: float = 1 / 255,
    steps: int | None = None,
    mask: Tensor | None = None,
    ignore_index: int = 255,
) -> Tensor:
    """Targeted iterative attack (Kurakin et al. 2016; Fischer et al. 2017) towards a per-pixel target.

    Args:
        model: a ``PixelModel`` (or any callable) mapping images in [0, 1] to logits (B, K, H, W).
        images: (B, C, H, W) float in [0, 1]; not modified.
        target: (B, H, W) int64 class ids (``ignore_index`` pixels leave the loss).
        eps: L-inf budget in [0, 1] units (``10/255``), a float or a (B,) tensor (one budget per image).
        step_size: alpha in [0, 1] units; the paper's 1/255 by default.
        steps: iterations; default ``paper_steps(eps * 255)`` per image (eps=10/255 -> 13).
        mask: optional (B, H, W) bool; the perturbation is kept to these pixels during the optimisation.

    Returns:
        (B, C, H, W) adversarial images in [0, 1], detached, same dtype and device as ``images``. With 8-bit images
        and whole-level eps and step, ``adv * 255`` is integral (a PNG of it reproduces the attack exactly).
    """
    model = as_model(model)
    check_images(images)
    check_target(target, images)
    m = check_mask(mask, images)
    s = levels_of(check_positive("step_size", step_size))
    b = images.shape[0]
    if isinstance(eps, Tensor):
        if eps.shape not in ((b,), ()):
            raise ValueError(f"eps as a tensor must have shape (B,) = ({b},), got {tuple(eps.shape)}")
        eps_list = [check_positive("eps", float(e)) for e in eps.reshape(-1).expand(b).tolist()]
    else:
        eps_list = [check_positive("eps", eps)] * b
    eps_lv = [levels_of(e) for e in eps_list]
    n_steps = [_steps_for(e, steps) for e in eps_lv]

    base = to_levels(images)
    e_t = torch.tensor(eps_lv, dtype=images.dtype, device=images.device).view(b, 1, 1, 1)
    delta = torch.zeros_like(base)
    target = target.to(images.device)
    uniform = len(set(n_steps)) == 1
    n_t = torch.tensor(n_steps, device=images.device).view(b, 1, 1, 1)
    lo, hi = bounds(base, e_t, m)
    step = partial(sign_step, model, base, target=target, step=s, ignore_index=ignore_index, images=images)
    for t in range(max(n_steps, default=0)):
        new = step(delta, lo=lo, hi=hi, check=t == 0)
        delta = new if uniform else torch.where(n_t > t, new, delta)
    return ((base + delta) / 255).to(images.dtype)


@dataclass(frozen=True)
class SweepPlan:
    """How ``illm_sweep`` shares work across budgets (all in levels and forward+backward passes).

    ``fork[k]``: the step at which budget k leaves the shared trajectory (before it, its clip cannot act);
    ``steps[k]``: its iterations; ``passes``: total passes of the sweep; ``separate_passes``: passes of separate
    ``illm`` calls.
    """

    eps_levels: tuple[float, ...]
    steps: tuple[int, ...]
    fork: tuple[int, ...]
    passes: int
    separate_passes: int


def sweep_plan(
    eps: Sequence[float], *, step_size: float = 1 / 255, steps: int | Sequence[int] | None = None
) -> SweepPlan:
    """Plan an eps sweep: with step alpha, |xi_n| <= n * alpha, so Clip_eps is inactive for n <= eps / alpha and all
    budgets share the trajectory's prefix. For eps = 1..20 levels: 76 passes instead of 266.

    >>> p = sweep_plan([e / 255 for e in range(1, 21)])
    >>> p.passes, p.separate_passes
    (76, 266)
    """
    eps = list(eps)
    if not eps:
        raise ValueError("eps must list at least one budget, e.g. eps=[2/255, 4/255, 10/255]")
    s = levels_of(check_positive("step_size", step_size))
    lv = [levels_of(check_positive("eps", e)) for e in eps]
    if steps is None or isinstance(steps, int):
        n = [_steps_for(e, steps) for e in lv]
    else:
        n = list(steps)
        if len(n) != len(lv):
            raise ValueError(f"steps lists {len(n)} values for {len(lv)} budgets; give one per eps or a single int")
        n = [_steps_for(e, k) for e, k in zip(lv, n, strict=True)]
    fork = [min(k, math.floor(e / s + 1e-9)) for e, k in zip(lv, n, strict=True)]
    passes = max(fork) + sum(k - f for k, f in zip(n, fork, strict=True))
    return SweepPlan(tuple(lv), tuple(n), tuple(fork), passes, sum(n))


def illm_sweep(
    model: Model,
    images: Tensor,
    target: Tensor,
    *,
    eps: Sequence[float],
    step_size: float = 1 / 255,
    steps: int | Sequence[int] | None = None,
    mask: Tensor | None = None,
    ignore_index: int = 255,
) -> Tensor:
    """``illm`` for several budgets at once, sharing the trajectory's common prefix.

    Each budget's result equals a separate ``illm(model, images, target, eps=e, ...)`` call (bit for bit where the
    model's forward and backward are deterministic), at the cost of ``sweep_plan(eps).passes`` forward+backward
    passes instead of ``.separate_passes``.

    Args:
        eps: K budgets in [0, 1] units, any order (e.g. ``[1/255, 2/255, 4/255, 10/255]``).
        steps: None (the paper's rule per budget), one int for all, or one int per budget.
        Other arguments as in ``illm``.

    Returns:
        (K, B, C, H, W) adversarial images, in the order of ``eps``.
    """
    model = as_model(model)
    check_images(images)
    check_target(target, images)
    m = check_mask(mask, images)
    plan = sweep_plan(eps, step_size=step_size, steps=steps)
    s = levels_of(step_size)
    log.info("eps sweep: %d forward+backward passes instead of %d", plan.passes, plan.separate_passes)

    base = to_levels(images)
    target = target.to(images.device)
    out = torch.empty((len(plan.eps_levels), *images.shape), dtype=images.dtype, device=images.device)
    trunk_lo, trunk_hi = bounds(base, torch.full((), math.inf, dtype=images.dtype, device=images.device), m)
    trunk = torch.zeros_like(base)
    trunk_step = 0
    step = partial(sign_step, model, base, target=target, step=s, ignore_index=ignore_index, images=images)
    for k in sorted(range(len(plan.eps_levels)), key=lambda i: plan.fork[i]):
        while trunk_step < plan.fork[k]:
            trunk = step(trunk, lo=trunk_lo, hi=trunk_hi, check=trunk_step == 0)
            trunk_step += 1
        lo, hi = bounds(base, torch.full((), plan.eps_levels[k], dtype=images.dtype, device=images.device), m)
        delta = trunk
        for t in range(plan.fork[k], plan.steps[k]):
            delta = step(delta, lo=lo, hi=hi, check=t == 0)
        out[k] = (base + delta) / 255
    return out


def restrict(adv: Tensor, images: Tensor, *, mask: Tensor) -> Tensor:
    """Keep the perturbation ``adv - images`` only where ``mask`` is true (the paper's restricted noise, post hoc).

    Args:
        adv: (B, C, H, W) or (K, B, C, H, W) adversarial images (e.g. an ``illm_sweep`` result).
        images: (B, C, H, W) clean images.
        mask: (B, H, W) bool, e.g. ``pred == 11`` (the class pixels of the clean prediction).

    Returns:
        Same shape as ``adv``: ``adv`` where ``mask``, ``images`` elsewhere (bit-exact copies of either).
    """
    check_images(images)
    if adv.shape[-4:] != images.shape:
        raise ValueError(f"adv has shape {tuple(adv.shape)}, which does not end in the images' {tuple(images.shape)}")
    m = check_mask(mask, images)
    assert m is not None
    return torch.where(m, adv, images)
