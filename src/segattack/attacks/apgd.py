"""Auto-PGD (APGD) of Croce and Hein (ICML 2020) for segmentation, with the losses of Croce, Singh and Hein (2024),
"Towards reliable evaluation and fast training of robust semantic segmentation models" (SEA).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
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
    PixelLoss,
    Problem,
    SeedOption,
    check_count,
    check_flag,
    check_positive,
    levels_of,
    objective_and_grad,
    prepare,
    success_at,
)
from .registry import Cost, register

__all__ = ["apgd", "apgd_checkpoints", "apgd_loop", "APGDRun", "halving"]

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


class _Tracking:
    """A ``PixelLoss`` that returns ``loss`` (whose gradient the attack follows) and records ``track`` on the same
    logits, without a gradient and without another forward pass (SEA's step control by the cross-entropy)."""

    def __init__(self, loss: PixelLoss, track: PixelLoss) -> None:
        self.loss = loss
        self.track = track
        self.values: list[Tensor] = []

    def __call__(self, logits: Tensor, labels: Tensor, *, valid: Tensor, targeted: bool, t: int, steps: int) -> Tensor:
        with torch.no_grad():
            self.values.append(self.track(logits.detach(), labels, valid=valid, targeted=targeted, t=t, steps=steps))
        return self.loss(logits, labels, valid=valid, targeted=targeted, t=t, steps=steps)

    def objective(self, problem: Problem) -> Tensor:
        """The recorded loss as the attack's per-image objective (B,): summed over the counted pixels, negated when
        targeted, averaged over the EOT draws, as ``_core.objective_and_grad`` treats the loss it follows."""
        per_image = []
        for pix in self.values:
            if not problem.all_valid:
                pix = torch.where(problem.valid, pix, torch.zeros_like(pix))
            per_image.append(pix.flatten(1).sum(1))
        total = per_image[0] if len(per_image) == 1 else torch.stack(per_image).mean(0)
        return -total if problem.targeted else total


@dataclass
class APGDRun:
    """What one run of ``apgd_loop`` kept, per image: ``best`` the iterate of the highest success
    (``Problem.success``; ``best.score``, all zeros when the loop ran with ``best=False``), ``x_max``/``f_max`` the
    point of the highest objective (the one APGD restarts from at a halving) and that objective, and ``iterations``
    the iterations actually run (fewer than ``steps`` after an early stop)."""

    best: Best
    x_max: Tensor
    f_max: Tensor
    iterations: int


def apgd_loop(
    problem: Problem,
    loss: PixelLoss,
    *,
    start: Tensor,
    lo: Tensor,
    hi: Tensor,
    step_size: Tensor,
    steps: int,
    checkpoints: Sequence[int] | None = None,
    track: PixelLoss | None = None,
    best: bool = True,
    early_stop: bool = False,
    grad_at_last: bool = True,
    stall_at_first: bool = True,
    first_against_zero: bool = False,
    t0: int = 0,
    horizon: int | None = None,
    check: bool = True,
) -> APGDRun:
    """One run of APGD's iteration (Croce and Hein 2020) in 8-bit levels from ``start`` inside the box [lo, hi]
    (``_core.bounds``: the radius, the image range and the mask), shared by ``apgd`` and ``sea``.

    Each iteration: z = clamp(x + eta sign(grad), lo, hi), x <- clamp(x + a (z - x) + (1 - a)(x - x_prev), lo, hi)
    with a = 1 on the first iteration and 0.75 after; at each checkpoint in ``checkpoints`` (iteration counts,
    starting with 0; default ``apgd_checkpoints(steps)``) the images for which ``halving`` says so halve their step
    and go back to their point of the highest objective, with its gradient.

    Args:
        problem: the validated attack (model, labels, targeted, EOT, generators); its ``lo``/``hi`` are not used.
        loss: the pixel-wise loss whose gradient the iteration follows.
        start: (B, C, H, W) perturbation in levels within [lo, hi]; step_size: (B, 1, 1, 1) initial steps in levels.
        steps: iterations N >= 0.
        track: the pixel-wise loss whose objective drives the step-size control and ``x_max`` (SEA: the
            cross-entropy, whatever loss is attacked); None: ``loss`` itself. Computed on the same logits (no extra
            pass).
        best: measure the success of every iterate (an argmax per pass) and keep the best; False: ``best.score`` is
            zeros and ``best.delta`` the start.
        early_stop: an image stops improving once its best success is 1 (every counted pixel fooled); its kept
            point is then fixed (later iterates are not scored for it), and the loop ends when every image has
            stopped. It is checked after each iteration, so at least one iteration runs. Needs ``best``.
        grad_at_last: compute the objective and its gradient at the last iterate (as ``apgd`` always did). False
            (``sea``): measure only its success there (one forward pass, no backward: the gradient and the objective
            of the last iterate change nothing but ``x_max``, which then covers the earlier iterates). Needs ``best``.
        stall_at_first: ``halving``'s condition 2 (no halving and no improvement since the last checkpoint) may
            fire at the first checkpoint, counting from the start (the paper, with w_0 = 0). False: as the code of
            auto-attack and of SEA, whose record of "halved at the last checkpoint" starts as true.
        first_against_zero: the first iteration counts as an increase of the objective when it is above 0, as in
            the code of auto-attack and SEA (their first comparison reads a still-zero entry of the loss history);
            False: when it is above the start's objective.
        t0, horizon: the step index of ``start`` and the horizon T passed to time-dependent losses (``segpgd``):
            iterate k gets t = t0 + k of T = horizon (default ``steps``).
        check: validate the model's output at the start.

    Costs steps + 1 forward and steps + 1 backward passes (steps with ``grad_at_last=False``), fewer after an early
    stop; each times ``eot.draws`` with EOT.
    """
    if (early_stop or not grad_at_last) and not best:
        raise InputError("apgd_loop: early_stop and grad_at_last=False measure the success, so they need best=True")
    horizon = steps if horizon is None else horizon
    marks = apgd_checkpoints(steps)[1:] if checkpoints is None else list(checkpoints)[1:]

    def evaluate(x: Tensor, t: int, first: bool) -> tuple[Tensor, Tensor, Tensor | None]:
        if track is None:
            return objective_and_grad(problem, x, loss, t=t, steps=horizon, check=first, predict=best)
        tracking = _Tracking(loss, track)
        _, grad, now = objective_and_grad(problem, x, tracking, t=t, steps=horizon, check=first, predict=best)
        return tracking.objective(problem), grad, now

    x = start
    f, grad, now = evaluate(x, t0, check)
    success = Best(x, now if now is not None else torch.zeros_like(f))
    x_max, f_max, g_max = x.clone(), f.clone(), grad.clone()
    eta = step_size.clone()
    x_prev = x
    increases = torch.zeros_like(f)
    f_last = torch.zeros_like(f) if first_against_zero else f.clone()
    f_max_at_check = f_max.clone()
    reduced_at_check = torch.full_like(f, not stall_at_first, dtype=torch.bool)
    active = torch.ones_like(f, dtype=torch.bool) if early_stop else None
    last_check = 0
    done = 0
    for k in range(steps):
        z = torch.clamp(x + eta * grad.sign(), lo, hi)
        a = 1.0 if k == 0 else MOMENTUM
        x_new = torch.clamp(x + a * (z - x) + (1 - a) * (x - x_prev), lo, hi)
        x_prev, x = x, x_new
        done = k + 1
        if done == steps and not grad_at_last:
            now = success_at(problem, x)
            success.update(x, now if active is None else torch.where(active, now, -math.inf))
            break
        f, grad, now = evaluate(x, t0 + k + 1, False)
        if now is not None:
            success.update(x, now if active is None else torch.where(active, now, -math.inf))
        increases += (f > f_last).to(f.dtype)
        f_last = f
        up = f > f_max
        if bool(up.any()):
            u4 = up.view(-1, 1, 1, 1)
            x_max = torch.where(u4, x, x_max)
            g_max = torch.where(u4, grad, g_max)
            f_max = torch.where(up, f, f_max)
        if k + 1 in marks:
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
        if active is not None:
            active = active & (success.score < 1)
            if not bool(active.any()):
                break
    return APGDRun(best=success, x_max=x_max, f_max=f_max, iterations=done)


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
        loss: the pixel-wise loss (``segattack.attacks.losses``): ``ce``, ``balanced-ce``, ``masked-ce``,
            ``masked-balanced-ce`` or ``js`` as SEA (Croce et al. 2024) use them, or ``segpgd``/``cospgd``. Summed
            over the counted pixels per image. (SEA itself, with its shrinking radius: ``sea``.)
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
    for r in range(restarts):
        problem.restart(r)
        x = problem.random_start() if random_start else torch.zeros_like(problem.base)
        run = apgd_loop(
            problem, pixel_loss, start=x, lo=problem.lo, hi=problem.hi, step_size=eta0, steps=n,
            checkpoints=checkpoints, best=best, check=r == 0,
        )  # fmt: skip
        delta, key = (run.best.delta, run.best.score) if best else (run.x_max, run.f_max)
        if kept is None:
            kept = Best(delta, key)
        else:
            kept.update(delta, key)
    assert kept is not None
    return problem.adv(kept.delta)
