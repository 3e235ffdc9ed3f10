"""Projected gradient descent with the sign step (L-inf) and its segmentation variants: ``pgd`` (Madry et al. 2018),
``segpgd`` (Gu et al. ECCV 2022) and ``cospgd`` (Agnihotri et al. ICML 2024). They differ only in the pixel-wise
loss (``segattack.attacks.losses``) and their defaults; the loop, random start, restarts and the best iterate are
shared.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from . import losses
from ._core import (
    EOT_SAMPLES,
    EOTOption,
    Model,
    SeedOption,
    check_count,
    check_flag,
    check_positive,
    levels_of,
    prepare,
    sign_ascent,
)
from .registry import Cost, register

__all__ = ["pgd", "segpgd", "cospgd"]


def _run(
    loss: losses.PixelLoss,
    model: Model,
    images: Tensor,
    labels: Tensor,
    *,
    eps: float | Tensor,
    targeted: bool,
    steps: int,
    step_size: float | None,
    step_rule: Callable[[float, int], float],
    mask: Tensor | None,
    ignore_index: int,
    restarts: int,
    random_start: bool,
    best: bool,
    eot: EOTOption,
    eot_samples: int,
    seed: SeedOption,
) -> Tensor:
    check_count("steps", steps)
    check_count("restarts", restarts, minimum=1)
    check_flag("random_start", random_start)
    check_flag("best", best)
    problem = prepare(
        model, images, labels, eps=eps, targeted=targeted, mask=mask, ignore_index=ignore_index, eot=eot,
        eot_samples=eot_samples, seed=seed,
    )  # fmt: skip
    if step_size is None:
        sizes = [step_rule(e, steps) for e in problem.eps_levels]
    else:
        sizes = [levels_of(check_positive("step_size", step_size))] * problem.batch
    step = problem.per_image(sizes)
    n = [steps] * problem.batch
    keep: Tensor | None = None
    score: Tensor | None = None
    for r in range(restarts):
        problem.restart(r)
        start = problem.random_start() if random_start else torch.zeros_like(problem.base)
        # with restarts, each restart is scored (its best iterate, or its last one without ``best``) to pick one
        delta, s = sign_ascent(problem, loss, steps=n, step_size=step, start=start, best=best, score=restarts > 1)
        if keep is None or s is None or score is None:
            keep, score = delta, s
        else:
            better = s > score
            keep = torch.where(better.view(-1, 1, 1, 1), delta, keep)
            score = torch.where(better, s, score)
    assert keep is not None
    return problem.adv(keep)


def _cost(default_steps: int) -> Callable[..., Cost]:
    def cost(eps_levels: float, *, steps: int | None = None, restarts: int = 1, best: bool = True, **_: Any) -> Cost:
        n = default_steps if steps is None else steps
        extra = int(best or restarts > 1)
        return Cost(forward=restarts * (n + extra), backward=restarts * n)

    return cost


def _madry_step(eps_levels: float, steps: int) -> float:
    return 2.5 * eps_levels / max(steps, 1)


def _cospgd_step(eps_levels: float, steps: int) -> float:
    return 0.01 * 255


#: Iterations of every variant by default (the three compare at equal cost).
PGD_STEPS = SEGPGD_STEPS = COSPGD_STEPS = 20


def _variant(name: str, default_loss: str, step_rule: Callable[[float, int], float], doc: str) -> Callable[..., Tensor]:
    """One PGD variant: the shared loop ``_run`` with its loss (``loss=``, default ``default_loss``) and its default
    step rule; the three variants have this one signature."""

    def attack(
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
        restarts: int = 1,
        random_start: bool = True,
        best: bool = True,
        eot: EOTOption = None,
        eot_samples: int = EOT_SAMPLES,
        seed: SeedOption = None,
        loss: str = default_loss,
    ) -> Tensor:
        return _run(
            losses.get_loss(loss), model, images, labels, eps=eps, targeted=targeted,
            steps=PGD_STEPS if steps is None else steps, step_size=step_size, step_rule=step_rule, mask=mask,
            ignore_index=ignore_index, restarts=restarts, random_start=random_start, best=best, eot=eot,
            eot_samples=eot_samples, seed=seed,
        )  # fmt: skip

    attack.__name__ = attack.__qualname__ = name
    attack.__doc__ = doc
    return register(name, cost=_cost(PGD_STEPS), check=losses.check_loss_option)(attack)


pgd = _variant(
    "pgd",
    "ce",
    _madry_step,
    """L-inf PGD of Madry et al. (ICLR 2018) on the pixel-wise cross-entropy, untargeted or targeted.

    x_0 = x + U(-eps, eps) (``random_start``; whole levels where eps is), x_{t+1} = P(x_t + alpha sign(grad L)),
    ascending the CE summed over the counted pixels (descending it towards the target when ``targeted``).

    Args:
        labels: (B, H, W) labels to move away from (untargeted) or the target (targeted); ``ignore_index`` leaves.
        eps: L-inf budget in [0, 1] units, a float or a (B,) tensor.
        steps: iterations (default 20). step_size: alpha in [0, 1] units (default 2.5 eps / steps, Madry et al.'s
            rule as in their robustness library).
        restarts: independent random starts; per image the one with the highest success is kept (the success of
            the iterate each restart returns: its best one with ``best``, else its last one).
        best: keep per image the iterate with the highest success (``metrics.pixel_success``: share of pixels off
            their label, or on target) instead of the last one.
        loss: a pixel-wise loss from ``segattack.attacks.losses.LOSSES`` (default ``ce``); ``segpgd`` and ``cospgd``
            are this attack with their loss and defaults.
        eot: Expectation over Transformation (Athalye et al. 2018): a transforms spec (``"jpeg:75,blur:1"``) or a
            list of ``segattack.transforms.Transform``; each step then ascends the loss averaged over
            ``eot_samples`` random transforms of the iterate, and the success (``best``, restarts) is averaged over
            such draws too (``_core.EOT``). None: off.
        seed: the random draws (start, EOT): None for torch's global RNG, an int, or one int per image; each image's
            draws then come from its own generator seeded from (its seed, its eps, the restart), so an image's result
            does not depend on the other images of its batch (``_core.Problem.restart``).

    Cost: restarts x steps forward+backward passes, plus restarts forward passes with ``best`` or restarts > 1; all
    times ``eot_samples`` with ``eot`` (times 1 for a single deterministic transform such as ``jpeg:75``).
    """,
)

segpgd = _variant(
    "segpgd",
    "segpgd",
    _madry_step,
    """SegPGD of Gu et al. (ECCV 2022): PGD on the pixel-wise CE with the correctly classified pixels weighted by
    1 - lambda_t and the wrongly classified ones by lambda_t, lambda_t = t / (2T) (t = 0..T-1), so the attack first
    pushes the pixels still correct and turns to the fooled ones as it goes; targeted, the weights swap.

    ``pgd`` with ``loss="segpgd"``. The correct/wrong split is taken from the current prediction (no gradient
    through it); the CE is summed over the counted pixels (the paper's 1/(HW) normalisation does not change the sign
    step). Defaults: 20 steps, step size 2.5 eps / steps and a random start, as ``pgd`` (so that both compare at
    equal cost; the paper's own step size could not be confirmed from its text). Other arguments (``eot``,
    ``eot_samples``, ``seed`` included) and the cost as in ``pgd``.
    """,
)

cospgd = _variant(
    "cospgd",
    "cospgd",
    _cospgd_step,
    """CosPGD of Agnihotri et al. (ICML 2024): PGD on the pixel-wise CE, each pixel's loss scaled by the cosine
    similarity between the softmax and the one-hot label (a constant, no gradient through it), so pixels already
    fooled weigh less; targeted, scaled by one minus it.

    ``pgd`` with ``loss="cospgd"`` and its own default step. Defaults: 20 steps, step size alpha = 0.01 in [0, 1]
    units and a uniform random start, as the authors' code (the ``cospgd`` package). Other arguments (``eot``,
    ``eot_samples``, ``seed`` included) and the cost as in ``pgd``.
    """,
)
