"""Auto-PGD (APGD) of Croce and Hein (ICML 2020) for segmentation, with the losses of Croce, Singh and Hein (2024),
"Towards reliable evaluation and fast training of robust semantic segmentation models" (SEA).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from ..errors import InputError
from . import losses
from ._core import (
    EOT_SAMPLES,
    Best,
    EOTOption,
    Model,
    SeedOption,
    check_count,
    check_flag,
    check_positive,
    levels_of,
    objective_and_grad,
    prepare,
)
from .registry import Cost, register

__all__ = ["apgd", "apgd_checkpoints", "halving"]

APGD_STEPS = 100
MOMENTUM = 0.75
RHO = 0.75


def apgd_checkpoints(steps: int) -> list[int]:
    """The iterations at which APGD checks its progress: w_j = ceil(p_j N) with p_0 = 0, p_1 = 0.22,
    p_{j+1} = p_j + max(p_j - p_{j-1} - 0.03, 0.06) (Croce and Hein 2020, Sec. 3.2).

    >>> apgd_checkpoints(100)
    [0, 22, 41, 57, 70, 80, 87, 93, 99]
    """
    p = [0.0, 0.22]
    while p[-1] + max(p[-1] - p[-2] - 0.03, 0.06) <= 1:
        p.append(p[-1] + max(p[-1] - p[-2] - 0.03, 0.06))
    out: list[int] = []
    for v in p:
        w = math.ceil(round(v * steps, 9))
        if w <= steps and (not out or w > out[-1]):
            out.append(w)
    return out


def halving(increases: Tensor, span: int, reduced_before: Tensor, f_max: Tensor, f_max_before: Tensor) -> Tensor:
    """APGD's decision at a checkpoint, per image (Croce and Hein 2020, Sec. 3.2): halve the step if the objective
    rose in at most rho = 75% of the ``span`` steps since the last checkpoint (condition 1; ``<=`` as auto-attack's
    check_oscillation), or if the step was not halved at the last checkpoint and the best objective has not improved
    since (condition 2).

    >>> halving(torch.tensor([16.0, 17.0, 17.0]), 22, torch.tensor([False, False, True]),
    ...         torch.tensor([1.0, 1.0, 1.0]), torch.tensor([0.5, 1.0, 1.0])).tolist()
    [True, True, False]
    """
    oscillating = increases <= RHO * span
    stalled = ~reduced_before & (f_max <= f_max_before)
    return oscillating | stalled


def _cost(eps_levels: float, *, steps: int | None = None, restarts: int = 1, **_: Any) -> Cost:
    n = APGD_STEPS if steps is None else steps
    return Cost(forward=restarts * (n + 1), backward=restarts * (n + 1))


def _check(options: Mapping[str, Any]) -> None:
    losses.check_loss_option(options)
    if options.get("steps") is not None and options["steps"] < 1:
        steps = options["steps"]
        raise InputError(f"option apgd.steps must be at least 1 (its step size halves at checkpoints), got {steps}")


@register("apgd", cost=_cost, check=_check)
def apgd(
    model: Model,
    images: Tensor,
    labels: Tensor,
    *,
    eps: float | Tensor,
    targeted: bool = False,
    steps: int | None = None,
    step_size: float | None = None,
    mask: Tensor | None = None,
    ignore_index: int = 255,
    loss: str = "ce",
    restarts: int = 1,
    random_start: bool = True,
    best: bool = True,
    eot: EOTOption = None,
    eot_samples: int = EOT_SAMPLES,
    seed: SeedOption = None,
) -> Tensor:
    """APGD (Croce and Hein 2020): L-inf PGD with momentum 0.75 and a step size that starts at 2 eps and halves at
    checkpoints (``apgd_checkpoints``) where the loss rose in at most 75% of the steps since the last one, or
    neither the step nor the best loss changed; each halving restarts from the best point so far.

    Args:
        loss: the pixel-wise loss (``segattack.attacks.losses``): ``ce``, ``balanced-ce``, ``masked-ce`` or ``js``
            as SEA (Croce et al. 2024) use them, or ``segpgd``/``cospgd``. Summed over the counted pixels per image.
        steps: iterations N (default 100). step_size: the initial step in [0, 1] units (default 2 eps).
        restarts: independent random starts; per image the best of them is kept (by success, or by loss if not
            ``best``).
        random_start: start at a uniform random point of the eps-ball (whole levels where eps is) instead of x.
        best: return per image the iterate with the highest success (``metrics.pixel_success``); False returns
            the point of the highest loss (the iterate APGD itself restarts from).
        eot: Expectation over Transformation (Athalye et al. 2018): a transforms spec (``"jpeg:75,blur:1"``) or a
            list of ``segattack.transforms.Transform``; the loss, its gradient and the success are then averages
            over ``eot_samples`` random transforms of the iterate (``_core.EOT``).
            None (default): off.
        seed: the random draws (start, EOT), as ``pgd``'s.

    Cost: restarts x (steps + 1) forward+backward passes (the start point and every iterate), times
    ``eot_samples`` with ``eot`` (times 1 for a single deterministic transform).
    """
    n = APGD_STEPS if steps is None else check_count("steps", steps, minimum=1)
    check_count("restarts", restarts, minimum=1)
    check_flag("random_start", random_start)
    check_flag("best", best)
    pixel_loss = losses.get_loss(loss)
    problem = prepare(
        model, images, labels, eps=eps, targeted=targeted, mask=mask, ignore_index=ignore_index, eot=eot,
        eot_samples=eot_samples, seed=seed,
    )  # fmt: skip
    if step_size is None:
        eta0 = 2 * problem.eps
    else:
        eta0 = problem.per_image(levels_of(check_positive("step_size", step_size)))
    checkpoints = apgd_checkpoints(n)
    kept: Best | None = None
    first = True
    for r in range(restarts):
        problem.restart(r)
        x = problem.random_start() if random_start else torch.zeros_like(problem.base)
        f, grad, now = objective_and_grad(problem, x, pixel_loss, t=0, steps=n, check=first, predict=best)
        first = False
        success = Best(x, now if now is not None else torch.zeros_like(f))
        x_max, f_max, g_max = x.clone(), f.clone(), grad.clone()
        eta = eta0.clone()
        x_prev = x
        increases = torch.zeros_like(f)
        f_last = f.clone()
        f_max_at_check = f_max.clone()
        reduced_at_check = torch.zeros_like(f, dtype=torch.bool)
        last_check = 0
        for k in range(n):
            z = torch.clamp(x + eta * grad.sign(), problem.lo, problem.hi)
            a = 1.0 if k == 0 else MOMENTUM
            x_new = torch.clamp(x + a * (z - x) + (1 - a) * (x - x_prev), problem.lo, problem.hi)
            x_prev, x = x, x_new
            f, grad, now = objective_and_grad(problem, x, pixel_loss, t=k + 1, steps=n, check=False, predict=best)
            if now is not None:
                success.update(x, now)
            increases += (f > f_last).to(f.dtype)
            f_last = f
            up = f > f_max
            if bool(up.any()):
                u4 = up.view(-1, 1, 1, 1)
                x_max = torch.where(u4, x, x_max)
                g_max = torch.where(u4, grad, g_max)
                f_max = torch.where(up, f, f_max)
            if k + 1 in checkpoints[1:]:
                span = k + 1 - last_check
                halve = halving(increases, span, reduced_at_check, f_max, f_max_at_check)
                reduced_at_check = halve
                f_max_at_check = f_max.clone()
                increases.zero_()
                last_check = k + 1
                if bool(halve.any()):
                    h4 = halve.view(-1, 1, 1, 1)
                    eta = torch.where(h4, eta / 2, eta)
                    x = torch.where(h4, x_max, x)
                    grad = torch.where(h4, g_max, grad)
        delta, key = (success.delta, success.score) if best else (x_max, f_max)
        if kept is None:
            kept = Best(delta, key)
        else:
            kept.update(delta, key)
    assert kept is not None
    return problem.adv(kept.delta)
