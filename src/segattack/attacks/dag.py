"""Dense Adversary Generation (DAG) of Xie, Wang, Zhang, Zhou, Xie and Yuille (ICCV 2017)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ..errors import InputError
from ..models import classes_of
from ._core import Best, Model, check_count, check_flag, check_positive, levels_of, logits_at, prepare
from .registry import Cost, register

__all__ = ["dag"]

DAG_STEPS = 200
#: The paper's gamma = 0.5 on its 0-255 pixel scale, i.e. half a level (0.5/255 in [0, 1] units).
DAG_GAMMA = 0.5 / 255


def _check_stop(stop: object) -> None:
    if isinstance(stop, bool) or not isinstance(stop, int | float) or not 0 < stop <= 1:
        raise InputError(f"stop must be a share in (0, 1], got {stop!r}")


def _cost(eps_levels: float, *, steps: int | None = None, best: bool = True, **_: Any) -> Cost:
    n = DAG_STEPS if steps is None else steps
    return Cost(forward=n + 1, backward=n, exact=False)


@register("dag", cost=_cost, check=lambda o: _check_stop(o.get("stop", 0.99)))
def dag(
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
    stop: float = 0.99,
    best: bool = True,
) -> Tensor:
    """DAG (Xie et al. 2017): gradient steps on the active pixels only, each normalised to L-inf gamma.

    Active pixels are those not yet adversarial (still predicted as their label when untargeted; not yet on the
    target when targeted). Per step, the gradient of sum over active pixels of (z_adv - z_cur) is taken, where z_cur
    is the logit of the current prediction (targeted: z_adv the target's logit, as the authors' code) or of the label
    (untargeted: z_adv the largest other logit), normalised per image to L-inf ``step_size`` and added:
    r <- r + gamma * g / ||g||_inf. The perturbation is clipped to ``eps`` (the paper's DAG has no budget: pass
    eps=1 for none) and to the image range.

    Args:
        steps: at most this many iterations (the paper's 200).
        step_size: gamma in [0, 1] units; default 0.5/255, the paper's 0.5 on its 0-255 scale (one public
            implementation applies 0.5 to [0, 1] images, 127 levels a step).
        stop: an image stops once this share of its counted pixels is adversarial (0.99, as adv_lib; the paper
            stops when no pixel is active: stop=1.0).
        best: keep per image the iterate with the highest success; else the last one.

    Cost: at most ``steps`` forward+backward passes and one forward pass (the last iterate's prediction);
    ``cost`` reports this bound (``exact=False``): the attack stops early once every image reached ``stop``.
    """
    n = DAG_STEPS if steps is None else check_count("steps", steps)
    check_flag("best", best)
    _check_stop(stop)
    problem = prepare(model, images, labels, eps=eps, targeted=targeted, mask=mask, ignore_index=ignore_index)
    gamma = levels_of(check_positive("step_size", DAG_GAMMA if step_size is None else step_size))
    delta = torch.zeros_like(problem.base)
    running = torch.ones(problem.batch, dtype=torch.bool, device=delta.device)
    tracker: Best | None = None
    for t in range(n + 1):
        adv = problem.adv(delta).requires_grad_(t < n)
        with torch.set_grad_enabled(t < n):
            logits = logits_at(problem, adv, check=t == 0)
        pred = classes_of(logits)
        score = problem.success(pred)
        if tracker is None:
            tracker = Best(delta, score)
        else:
            tracker.update(delta, score)
        running &= score < stop
        if t == n or not bool(running.any()):
            break
        labels_ = problem.labels
        if problem.targeted:
            active = (pred != labels_) & problem.valid
            z_adv = logits.gather(1, labels_[:, None])[:, 0]
            z_cur = logits.gather(1, pred[:, None])[:, 0]
        else:
            active = (pred == labels_) & problem.valid
            z_cur = logits.gather(1, labels_[:, None])[:, 0]
            others = logits.scatter(1, labels_[:, None], float("-inf"))
            z_adv = others.amax(1)
        gain = torch.where(active, z_adv - z_cur, torch.zeros_like(z_cur)).flatten(1).sum(1)
        (grad,) = torch.autograd.grad(gain.sum(), adv)
        if problem.mask is not None:  # normalise over the pixels that may move, so that they move by gamma
            grad = torch.where(problem.mask, grad, torch.zeros_like(grad))
        norm = grad.flatten(1).abs().amax(1).clamp(min=1e-12).view(-1, 1, 1, 1)
        new = torch.clamp(delta + gamma * grad / norm, problem.lo, problem.hi)
        delta = torch.where(running.view(-1, 1, 1, 1), new, delta)
    assert tracker is not None
    return problem.adv(tracker.delta if best else delta)
