"""The iterative least-likely / targeted iterative method of Kurakin et al. (2016), as used by Fischer et al. (2017).

    xi_0 = 0,   xi_{n+1} = Clip_eps( xi_n - alpha * sign( grad_x J_ce( f(x + xi_n), y_target ) ) )

with alpha = 1 level (1/255), n = min(eps + 4, 1.25 eps) iterations (eps in levels, rounded up: ``paper_steps``),
the cross-entropy summed over all pixels, and the adversarial image kept in [0, 1].
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import torch
from torch import Tensor

from ..errors import InputError
from ..models import check_images
from . import losses
from ._core import (
    EOT_SAMPLES,
    EOTOption,
    Model,
    SeedOption,
    bounds,
    check_flag,
    check_mask,
    check_positive,
    levels_of,
    paper_steps,
    prepare,
    sign_ascent,
)
from .registry import Cost, register

__all__ = ["illm", "illm_sweep", "sweep_plan", "SweepPlan", "paper_steps", "restrict"]

log = logging.getLogger(__name__)

_NOT_UNTARGETED = (
    "illm is targeted by definition (Kurakin et al.'s least-likely class; Fischer et al.'s hide-class target): pass "
    "the target map with targeted=True, or use an untargeted attack such as 'pgd', 'segpgd' or 'apgd'"
)


def _steps_for(eps_levels: float, steps: int | None) -> int:
    if steps is None:
        return paper_steps(eps_levels)
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise InputError(f"steps must be a non-negative integer, got {steps!r}")
    return steps


def _illm_cost(eps_levels: float, *, steps: int | None = None, best: bool = False, **_: object) -> Cost:
    n = _steps_for(float(eps_levels), steps)
    return Cost(forward=n + int(best), backward=n)


def _illm_sweep_cost(
    eps_levels: Sequence[float], *, steps: int | None = None, step_size: float | None = None, **_: object
) -> Cost:
    p = sweep_plan([e / 255 for e in eps_levels], steps=steps, step_size=step_size or 1 / 255)
    return Cost(forward=p.passes, backward=p.passes)


def _sweep_entry(model: Model, images: Tensor, target: Tensor, *, eps: Sequence[float], targeted: bool = True,
                 mask: Tensor | None = None, ignore_index: int = 255, steps: int | None = None,
                 step_size: float | None = None, best: bool = False, eot: EOTOption = None,
                 eot_samples: int = EOT_SAMPLES, seed: SeedOption = None) -> Tensor:  # fmt: skip
    if not check_flag("targeted", targeted):
        raise InputError(_NOT_UNTARGETED)
    if eot is not None:  # random draws: separate runs (the registry only shares the prefix without EOT)
        return torch.stack([
            illm(model, images, target, eps=e, steps=steps, step_size=step_size, mask=mask, ignore_index=ignore_index,
                 best=best, eot=eot, eot_samples=eot_samples, seed=seed) for e in eps
        ])  # fmt: skip
    return illm_sweep(model, images, target, eps=eps, steps=steps, step_size=step_size, mask=mask,
                      ignore_index=ignore_index)  # fmt: skip


@register(
    "illm",
    cost=_illm_cost,
    sweep=_sweep_entry,
    sweep_when=lambda o: not o.get("best", False) and o.get("eot") is None,
    sweep_cost=_illm_sweep_cost,
    only="targeted",
)
def illm(
    model: Model,
    images: Tensor,
    target: Tensor,
    *,
    eps: float | Tensor,
    targeted: bool = True,
    step_size: float | None = None,
    steps: int | None = None,
    mask: Tensor | None = None,
    ignore_index: int = 255,
    best: bool = False,
    eot: EOTOption = None,
    eot_samples: int = EOT_SAMPLES,
    seed: SeedOption = None,
) -> Tensor:
    """Targeted iterative attack (Kurakin et al. 2016; Fischer et al. 2017) towards a per-pixel target.

    Args:
        model: a ``PixelModel`` (or any callable) mapping images in [0, 1] to logits (B, K, H, W).
        images: (B, C, H, W) float in [0, 1]; not modified.
        target: (B, H, W) int64 class ids (``ignore_index`` pixels leave the loss).
        eps: L-inf budget in [0, 1] units (``10/255``), a float or a (B,) tensor (one budget per image).
        targeted: must be True (the attack is targeted by definition); False raises ValueError.
        step_size: alpha in [0, 1] units; the paper's 1/255 by default (None).
        steps: iterations; default ``paper_steps(eps * 255)`` per image (eps=10/255 -> 13).
        mask: optional (B, H, W) bool; the perturbation is kept to these pixels during the optimisation.
        best: keep, per image, the iterate with the most pixels on target instead of the last one (one more forward
            pass). Off by default: the paper uses the last iterate.
        eot: Expectation over Transformation (Athalye et al. 2018; not in Fischer et al.): a transforms spec
            (``"jpeg:75,blur:1"``) or a list of ``segattack.transforms.Transform``; each step then follows the sign
            of the loss gradient averaged over ``eot_samples`` random transforms of the iterate (``_core.EOT``;
            draws from ``seed``'s generators, else torch's global RNG). None (default): off.
        eot_samples: random draws per step with ``eot`` (default 8; one draw for a single deterministic transform).
        seed: the EOT draws, as ``pgd``'s (the attack has no other randomness).

    Cost: ``steps`` forward+backward passes (the largest per-image count), +1 forward with ``best``; all times
    ``eot_samples`` with ``eot`` (times 1 for a single deterministic transform).

    Returns:
        (B, C, H, W) adversarial images in [0, 1], detached, same dtype and device as ``images``. With 8-bit images
        and whole-level eps and step, ``adv * 255`` is integral (a PNG of it reproduces the attack exactly).
    """
    if not check_flag("targeted", targeted):
        raise InputError(_NOT_UNTARGETED)
    check_flag("best", best)
    problem = prepare(
        model, images, target, eps=eps, targeted=True, mask=mask, ignore_index=ignore_index, eot=eot,
        eot_samples=eot_samples, seed=seed,
    )  # fmt: skip
    problem.restart(0)
    s = levels_of(check_positive("step_size", 1 / 255 if step_size is None else step_size))
    n_steps = [_steps_for(e, steps) for e in problem.eps_levels]
    delta, _ = sign_ascent(
        problem, losses.ce, steps=n_steps, step_size=problem.per_image(s), start=torch.zeros_like(problem.base),
        best=best,
    )  # fmt: skip
    return problem.adv(delta)


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
        raise InputError("eps must list at least one budget, e.g. eps=[2/255, 4/255, 10/255]")
    s = levels_of(check_positive("step_size", step_size))
    lv = [levels_of(check_positive("eps", e)) for e in eps]
    if steps is None or isinstance(steps, int):
        n = [_steps_for(e, steps) for e in lv]
    else:
        n = list(steps)
        if len(n) != len(lv):
            raise InputError(f"steps lists {len(n)} values for {len(lv)} budgets; give one per eps or a single int")
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
    step_size: float | None = None,
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

    The other arguments are those of ``illm``.

    Returns:
        (K, B, C, H, W) adversarial images, in the order of ``eps``.
    """
    step_size = 1 / 255 if step_size is None else step_size
    plan = sweep_plan(eps, step_size=step_size, steps=steps)
    problem = prepare(model, images, target, eps=max(eps), targeted=True, mask=mask, ignore_index=ignore_index)
    s = problem.per_image(levels_of(step_size))
    log.info("eps sweep: %d forward+backward passes instead of %d", plan.passes, plan.separate_passes)

    base = problem.base
    out = torch.empty((len(plan.eps_levels), *images.shape), dtype=images.dtype, device=images.device)
    inf = torch.full((), math.inf, dtype=base.dtype, device=base.device)
    trunk_lo, trunk_hi = bounds(base, inf, problem.mask)
    trunk_problem = replace(problem, lo=trunk_lo, hi=trunk_hi)
    trunk = torch.zeros_like(base)
    trunk_step = 0
    b = problem.batch
    checked = False  # the model's output is validated on the sweep's first pass only
    for k in sorted(range(len(plan.eps_levels)), key=lambda i: plan.fork[i]):
        if trunk_step < plan.fork[k]:
            trunk, _ = sign_ascent(
                trunk_problem, losses.ce, steps=[plan.fork[k] - trunk_step] * b, step_size=s, start=trunk, best=False,
                check=not checked,
            )  # fmt: skip
            checked = True
            trunk_step = plan.fork[k]
        e = torch.full((), plan.eps_levels[k], dtype=base.dtype, device=base.device)
        lo, hi = bounds(base, e, problem.mask)
        n_k = plan.steps[k] - plan.fork[k]
        delta, _ = sign_ascent(
            replace(problem, lo=lo, hi=hi), losses.ce, steps=[n_k] * b, step_size=s, start=trunk, best=False,
            check=not checked,
        )  # fmt: skip
        checked = checked or n_k > 0
        out[k] = problem.adv(delta)
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
        raise InputError(f"adv has shape {tuple(adv.shape)}, which does not end in the images' {tuple(images.shape)}")
    m = check_mask(mask, images)
    assert m is not None
    return torch.where(m, adv, images)
