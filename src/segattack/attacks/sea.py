"""SEA, the Segmentation Ensemble Attack of Croce, Singh and Hein (2024), "Towards reliable evaluation and fast
training of robust semantic segmentation models": APGD with a shrinking radius, run once per loss, keeping per image
the adversarial image with the lowest pixel accuracy.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import torch
from torch import Tensor

from ..errors import InputError
from . import losses as _losses
from ._core import (
    Best,
    Model,
    PixelLoss,
    SeedOption,
    bounds,
    check_count,
    check_flag,
    check_positive,
    levels_of,
    mix_seed,
    prepare,
)
from .apgd import apgd_loop
from .registry import Cost, register

__all__ = ["sea", "sea_schedule", "sea_checkpoints", "SEA_LOSSES", "SEA_STEPS", "SEA_STAGES"]

#: Iterations per loss (the default of SEA's evaluation, ``tools/infer.py --n_iter 300``).
SEA_STEPS = 300
#: SEA's losses in the order its evaluation runs them: Mask-CE-Bal, Mask-CE, JS.
SEA_LOSSES: tuple[str, ...] = ("masked-balanced-ce", "masked-ce", "js")
#: The stages: (share of the iterations, radius as a multiple of eps); the last stage takes the rest.
SEA_STAGES: tuple[tuple[float, float], ...] = ((0.3, 2.0), (0.3, 1.5), (1.0, 1.0))

_NOT_TARGETED = (
    "sea is untargeted only (Croce et al. 2024 lower the pixel accuracy against the labels): pass targeted=False, "
    "or use apgd for a targeted attack"
)


def sea_schedule(steps: int, eps: float) -> list[tuple[int, float]]:
    """SEA's stages for ``steps`` iterations at budget ``eps``: [(iterations, radius)] with int(0.3 n), int(0.3 n)
    and the rest of the n iterations at radii 2 eps, 1.5 eps and eps (``apgd_largereps`` in their code, computed
    in floating point as there). ``eps`` in any unit; the radii are in the same.

    >>> sea_schedule(300, 1.0)
    [(90, 2.0), (90, 1.5), (120, 1.0)]
    >>> [n for n, _ in sea_schedule(10, 4.0)], [r for _, r in sea_schedule(10, 4.0)]
    ([3, 3, 4], [8.0, 6.0, 4.0])
    """
    n = check_count("steps", steps, minimum=1)
    first, second = int(SEA_STAGES[0][0] * n), int(SEA_STAGES[1][0] * n)
    lengths = [first, second, n - first - second]
    return [(k, factor * eps) for k, (_, factor) in zip(lengths, SEA_STAGES, strict=True)]


def sea_checkpoints(steps: int) -> list[int]:
    """The iterations at which SEA's APGD checks its progress, as its code (and auto-attack's) computes them: the
    first after k = max(int(0.22 n), 1) iterations, each next one k = max(k - max(int(0.03 n), 1), max(int(0.06 n),
    1)) later; starting with 0 like ``apgd.apgd_checkpoints`` (which follows the paper's ceil(p_j n) instead).

    >>> sea_checkpoints(100)
    [0, 22, 41, 57, 70, 80, 87, 93, 99]
    >>> sea_checkpoints(90)
    [0, 19, 36, 51, 64, 75, 84]
    """
    n = check_count("steps", steps, minimum=0)
    k = max(int(0.22 * n), 1)
    k_min = max(int(0.06 * n), 1)
    decrease = max(int(0.03 * n), 1)
    out = [0]
    while out[-1] + k <= n:
        out.append(out[-1] + k)
        k = max(k - decrease, k_min)
    return out


def _check_losses(names: object) -> tuple[str, ...]:
    if isinstance(names, str) or not isinstance(names, Sequence):
        raise InputError(f"sea.losses takes a list of loss names (e.g. masked-ce+js), got {names!r}")
    if len(names) == 0:
        raise InputError(f"sea.losses lists no loss; give at least one, e.g. {'+'.join(SEA_LOSSES)}")
    for name in names:
        _losses.get_loss(name)
    if len(set(names)) != len(names):
        raise InputError(f"sea.losses lists a loss twice ({', '.join(names)}); give each loss once")
    return tuple(names)


def _check(options: Mapping[str, Any]) -> None:
    _check_losses(options.get("losses", SEA_LOSSES))
    _losses.check_class_weights(options.get("class_weights"))
    if options.get("steps") is not None and options["steps"] < 1:
        raise InputError(f"option sea.steps must be at least 1 (iterations per loss), got {options['steps']}")


def _cost(
    eps_levels: float, *, steps: int | None = None, losses: Sequence[str] = SEA_LOSSES, early_stop: bool = True,
    **_: Any,
) -> Cost:  # fmt: skip
    n = SEA_STEPS if steps is None else steps
    stages = sum(1 for k, _ in sea_schedule(n, 1.0) if k > 0)
    return Cost(forward=len(losses) * (n + stages), backward=len(losses) * n, exact=not early_stop)


def _loss_for(name: str, weights: Tensor | None) -> PixelLoss:
    if name == "masked-balanced-ce" and weights is not None:
        return _losses.masked_balanced_ce_with(weights)
    return _losses.get_loss(name)


@register("sea", cost=_cost, check=_check, only="untargeted")
def sea(
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
    losses: tuple[str, ...] = SEA_LOSSES,
    class_weights: Any = None,
    random_start: bool = True,
    early_stop: bool = True,
    seed: SeedOption = None,
) -> Tensor:
    """SEA (Croce, Singh and Hein 2024): for each loss, APGD in three stages of shrinking L-inf radius (2 eps over
    int(0.3 n) iterations, 1.5 eps over int(0.3 n), eps over the rest; ``sea_schedule``), each stage starting from
    the previous stage's point of the lowest pixel accuracy projected onto its ball; per image the result of the
    loss with the lowest pixel accuracy (the highest ``metrics.pixel_success``; on a tie the later loss).

    Args:
        labels: (B, H, W) the labels whose pixel accuracy the attack lowers (ground truth, or the clean
            prediction); ``ignore_index`` pixels leave the losses and the accuracy.
        eps: L-inf budget in [0, 1] units, a float or a (B,) tensor. steps: iterations n per loss (default 300).
        step_size: the initial step in [0, 1] units of the last stage (radius eps); each stage starts at it times
            its radius over eps. Default (None): 2 x the stage's radius, as SEA.
        mask: (B, H, W) bool; the perturbation stays on these pixels.
        losses: the losses to run (``segattack.attacks.losses``), SEA's three by default: ``masked-balanced-ce``
            (Mask-CE-Bal), ``masked-ce`` (Mask-CE), ``js`` (JS divergence); any loss of ``losses.LOSSES`` is taken.
            One loss, e.g. ``losses=("js",)``, is exactly that loss's part of a run with several (its random draws
            depend on the loss's name, not on its position), at 1/len(losses) of the cost: the per-loss images for
            SEA's greedy worst-case mIoU.
        class_weights: the class weights of Mask-CE-Bal, one per class of the model (``losses.check_class_weights``:
            a list, a 1-D tensor or ``"w0+w1+..."``), e.g. ``losses.class_weights_from_labels`` of the data set.
            None (default): each image's own class frequencies (``losses.masked_balanced_ce``). Used by
            ``masked-balanced-ce`` only; the other losses ignore it.
        random_start: the first stage starts at a uniform random point of its ball (radius 2 eps; whole levels
            where 2 eps is), as SEA; False: at the clean image.
        early_stop: an image stops once every counted pixel is fooled (pixel accuracy 0), within a stage; SEA stops.
        seed: the random starts: per image and loss, drawn from generators seeded by (seed, eps, the loss's name)
            (``_core.Problem.restart``), so an image's result depends neither on its batch nor on the other losses.
            None: torch's global RNG.

    What matches SEA's code (``semseg/attacker.py``: ``apgd_largereps`` calling ``apgd_train``; ``tools/infer.py``
    calls it with ``n_iter=300, use_rs=True, track_loss="ce-avg", early_stop=True``):
    the stage lengths and radii; the start of stage 2 and 3 (the previous stage's lowest-accuracy point, projected
    onto the new ball and the image range); the random start in stage 1 only; the initial step 2 x radius; momentum
    0.75 (none on the first iteration); the gradient of the attacked loss while the step-size control and the
    point to go back to at a halving follow the cross-entropy (``track_loss="ce-avg"``); the checkpoints as their
    code computes them (``sea_checkpoints``, not the paper's ceil(p_j n)); their halving rules (an oscillation when
    the objective rose in at most 75% of the steps since the last checkpoint, the first iteration counted as a rise
    when its objective is above 0; no halving for stalling at the first checkpoint); the kept point per stage, the
    lowest pixel accuracy, the latest on a tie, the start included; no gradient at a stage's last iterate; the
    losses (Mask-CE: the CE on pixels still correctly classified; Mask-CE-Bal: the same times a weight of the
    pixel's class; JS: the Jensen-Shannon divergence of the softmax and the one-hot label), an image's loss over
    its pixels (a sum here, a mean there: the same up to a constant factor per image, and the attack follows the
    sign of the gradient and compares losses of one image only); the worst case over losses by pixel accuracy.

    What differs, and why:
    - early stop per image (an image stops once its accuracy is 0) instead of when the whole batch is at 0: it is
      what their code does with a batch of one, and it makes a batch equal its single runs;
    - accuracy over the counted pixels only: their loop counts ignored pixels as correct (so that an image with
      ignored pixels never reaches 0 and never stops), and their start point counts them as wrong (so that a later
      iterate with the same accuracy cannot replace it);
    - Mask-CE-Bal without data-set weights uses per-image weights (their weights are per data set and are not
      shipped here; pass them, or compute them with ``losses.class_weights_from_labels``);
    - a stage with no iteration (n < 4 gives int(0.3 n) = 0) costs no pass: its start is its kept point, as there;
    - the arithmetic runs in 8-bit levels and the random start is rounded to whole levels where 2 eps is one,
      like every attack here; per-image budgets, a mask and any ``ignore_index`` are extensions (theirs: -1 only);
    - the per-image worst case over losses replaces their saved per-loss predictions; run one loss at a time for
      their greedy worst-case mIoU.

    Cost per loss: n backward and n + s forward passes, s the stages with iterations (3 for n >= 4): the start of
    each stage and each iterate, no gradient at a stage's last iterate; with ``early_stop`` an upper bound.

    Returns:
        (B, C, H, W) adversarial images in [0, 1] within eps of ``images``, detached, same dtype and device.
    """
    if check_flag("targeted", targeted):
        raise InputError(_NOT_TARGETED)
    n = SEA_STEPS if steps is None else check_count("steps", steps, minimum=1)
    names = _check_losses(losses)
    weights = _losses.check_class_weights(class_weights)
    check_flag("random_start", random_start)
    check_flag("early_stop", early_stop)
    problem = prepare(model, images, labels, eps=eps, targeted=False, mask=mask, ignore_index=ignore_index, seed=seed)
    base_step = None if step_size is None else problem.per_image(levels_of(check_positive("step_size", step_size)))
    stages = sea_schedule(n, 1.0)
    kept: Best | None = None
    first = True
    for name in names:
        pixel_loss = _loss_for(name, weights)
        problem.restart(mix_seed("sea", name))
        delta = torch.zeros_like(problem.base)
        if random_start:
            factor = stages[0][1]
            lo, hi = bounds(problem.base, problem.eps * factor, problem.mask)
            ball = replace(problem, eps=problem.eps * factor, eps_levels=[e * factor for e in problem.eps_levels],
                           lo=lo, hi=hi)  # fmt: skip
            delta = ball.random_start()
        t0 = 0
        score: Tensor | None = None
        for k, factor in stages:
            lo, hi = bounds(problem.base, problem.eps * factor, problem.mask)
            delta = torch.clamp(delta, lo, hi)  # the previous stage's kept point, projected onto this ball
            if k == 0:
                continue
            eta = 2 * factor * problem.eps if base_step is None else base_step * factor
            run = apgd_loop(
                problem, pixel_loss, start=delta, lo=lo, hi=hi, step_size=eta, steps=k,
                checkpoints=sea_checkpoints(k), track=_losses.ce, best=True, early_stop=early_stop,
                grad_at_last=False, stall_at_first=False, first_against_zero=True, t0=t0, horizon=n, check=first,
            )  # fmt: skip
            first = False
            delta, score = run.best.delta, run.best.score
            t0 += k
        assert score is not None  # the last stage has n - 2 int(0.3 n) >= 1 iterations
        if kept is None:
            kept = Best(delta, score)
        else:
            kept.update(delta, score)
    assert kept is not None
    return problem.adv(kept.delta)
