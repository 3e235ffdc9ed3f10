"""Square Attack (Andriushchenko, Croce, Flammarion and Hein, ECCV 2020, "Square Attack: a query-efficient black-box
adversarial attack via random search"), L-inf, adapted to semantic segmentation.

A score-based black-box attack: it reads the model's logits, never its gradients. Its use here is the one Carlini et
al. (2019) recommend: on an honest model the white-box attacks (``pgd``, ``apgd``) must beat it at the same budget;
where this random search does better, the model's gradients mislead the white-box attacks (gradient masking).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from ..errors import InputError
from ..models import classes_of
from ._core import Model, Problem, SeedOption, check_count, logits_at, prepare
from .registry import Cost, register

__all__ = ["square", "p_schedule", "OBJECTIVES", "SQUARE_QUERIES", "SQUARE_P_INIT"]

#: Queries per image by default (the paper runs 10 000 on ImageNet; a query is one forward pass of a whole image).
SQUARE_QUERIES = 1000
#: The initial share of the image's pixels in a square: 0.8, AutoAttack's value for L-inf (Croce and Hein 2020; the
#: paper's ImageNet runs use 0.05 with 10 000 queries). With the schedule rescaled to the budget only the first
#: queries use it; on the tiny models of the tests 0.8 fooled 1.3 to 14 times as many pixels as 0.05 in 300 queries.
SQUARE_P_INIT = 0.8
#: The objectives the attack lowers, per image over its counted pixels (see ``square``).
OBJECTIVES = ("accuracy", "margin")

#: Redraws of a square's signs that leave its window unchanged before a changing sign is chosen deterministically.
_REDRAWS = 64


def p_schedule(p_init: float, it: int, queries: int) -> float:
    """The share of pixels a square covers at iteration ``it`` (0-based) of ``queries``: the paper's piecewise
    constant schedule, halved at iterations 10, 50, 200, 500, 1000, 2000, 4000, 6000 and 8000 of 10 000 and
    rescaled to other budgets as the authors' code does (``it`` read as ``int(it / queries * 10000)``).

    >>> [p_schedule(0.8, i, 10000) for i in (0, 10, 11, 51, 9999)]
    [0.8, 0.8, 0.4, 0.2, 0.0015625]
    >>> p_schedule(0.8, 1, 1000), p_schedule(0.8, 2, 1000)
    (0.8, 0.4)
    """
    t = int(it / queries * 10000)
    bounds = (10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000, 10000)
    for halvings, (lo, hi) in enumerate(zip(bounds, bounds[1:], strict=False), start=1):
        if lo < t <= hi:
            return p_init / 2**halvings
    return p_init


def _side(p: float, h: int, w: int) -> int:
    """The side of a square covering a share ``p`` of an (h, w) image: round(sqrt(p h w)), at least 1 pixel and at
    most the image's shorter side (the paper caps it at h - 1 for its square images)."""
    return min(max(round(math.sqrt(p * h * w)), 1), min(h, w))


def _check(options: Mapping[str, Any]) -> None:
    """The registry's check of square's options (also run by ``square`` itself)."""
    steps = options.get("steps")
    if steps is not None:
        check_count("steps", steps, minimum=1)
    if options.get("step_size") is not None:
        raise InputError(
            f"square takes no step_size (got {options['step_size']!r}): every coordinate it changes moves by the "
            "full +-eps; the size of its squares is set by p_init (a share of the image's pixels)"
        )
    objective = options.get("objective", "accuracy")
    if objective not in OBJECTIVES:
        raise InputError(f"unknown square objective {objective!r}; choose one of {', '.join(OBJECTIVES)}")
    p_init = options.get("p_init", SQUARE_P_INIT)
    if isinstance(p_init, bool) or not isinstance(p_init, int | float) or not 0 < p_init <= 1:
        raise InputError(f"p_init must be a share of the image's pixels in (0, 1] (default 0.8), got {p_init!r}")


def _cost(eps_levels: float, *, steps: int | None = None, **_: Any) -> Cost:
    n = SQUARE_QUERIES if steps is None else steps
    return Cost(forward=n, backward=0, exact=False)


def _margin(logits: Tensor, labels: Tensor, targeted: bool) -> Tensor:
    """Per pixel (B, H, W): how far the pixel is from being fooled, in logits; 0 once fooled. Untargeted: label
    logit minus the largest other logit; targeted: the largest logit off the target minus the target's."""
    own = logits.gather(1, labels[:, None])
    others = logits.scatter(1, labels[:, None], -math.inf).amax(1)
    margin = others - own[:, 0] if targeted else own[:, 0] - others
    return margin.clamp(min=0)


class _Search:
    """The random search of one call: the per-image state (best perturbation, its objective) over the images of a
    ``Problem``, and one query of the images still searching."""

    def __init__(self, problem: Problem, objective: str) -> None:
        self.problem = problem
        self.objective = objective
        self.counted = problem.valid.flatten(1).sum(1)  # (B,) counted pixels per image

    def value(self, logits: Tensor, index: Tensor | None) -> Tensor:
        """The objective (B',) to lower for the images ``index`` (all: None) at ``logits``, in float64 (see
        ``square``'s ``objective``)."""
        p = self.problem
        labels, valid = (p.labels, p.valid) if index is None else (p.labels[index], p.valid[index])
        counted = (self.counted if index is None else self.counted[index]).to(torch.float64).clamp(min=1)
        margin = _margin(logits, labels, p.targeted).to(torch.float64)
        margin = torch.where(valid, margin, torch.zeros_like(margin)).flatten(1).sum(1) / counted
        if self.objective == "margin":
            return margin
        pred = classes_of(logits)
        left = ((pred == labels) != p.targeted) & valid  # still on its label / not yet on the target
        # the share of counted pixels not yet fooled; the margin breaks ties, scaled below half a pixel's share
        return (left.flatten(1).sum(1).to(torch.float64) + 0.5 * margin / (1 + margin)) / counted

    def query(self, delta: Tensor, index: Tensor | None, *, check: bool = False) -> Tensor:
        """One forward pass at ``base + delta`` for the images ``index`` (all: None): their objective (B',)."""
        p = self.problem
        base = p.base if index is None else p.base[index]
        adv = ((base + delta) / 255).to(p.images.dtype)
        return self.value(logits_at(p, adv, check=check), index)


def _stripes(problem: Problem, generators: list[torch.Generator | None]) -> Tensor:
    """The paper's start: vertical stripes, each column of each channel at +eps or -eps at random, projected."""
    b, c, _, w = problem.base.shape
    signs = torch.stack([torch.randint(0, 2, (c, 1, w), generator=g) for g in generators]).to(problem.base)
    return torch.clamp((2 * signs - 1) * problem.eps, problem.lo, problem.hi)


def _window(h: int, w: int, s: int, allowed: Tensor | None, generator: torch.Generator | None) -> tuple[int, int]:
    """The top-left corner of an s x s square drawn uniformly; with ``allowed`` (an (h, w) bool mask), a square
    covering a pixel drawn uniformly from the allowed ones (so that it can change something)."""
    if allowed is None:
        top = int(torch.randint(0, h - s + 1, (1,), generator=generator))
        left = int(torch.randint(0, w - s + 1, (1,), generator=generator))
        return top, left
    where = allowed.nonzero()
    r, col = (int(v) for v in where[int(torch.randint(0, len(where), (1,), generator=generator))])
    t0, l0 = max(0, r - s + 1), max(0, col - s + 1)
    top = t0 + int(torch.randint(0, min(r, h - s) - t0 + 1, (1,), generator=generator))
    left = l0 + int(torch.randint(0, min(col, w - s) - l0 + 1, (1,), generator=generator))
    return top, left


def _propose(
    current: Tensor, lo: Tensor, hi: Tensor, eps: float, s: int, allowed: Tensor | None,
    generator: torch.Generator | None,
) -> Tensor:  # fmt: skip
    """One image's candidate (C, H, W): ``current`` with an s x s window set to +-eps per channel (projected), the
    signs redrawn while the window would stay as it is (as the authors' code does)."""
    c, h, w = current.shape
    top, left = _window(h, w, s, allowed, generator)
    win = (slice(None), slice(top, top + s), slice(left, left + s))
    now, wlo, whi = current[win], lo[win], hi[win]
    signs = torch.zeros(c, 1, 1, dtype=current.dtype)
    for _ in range(_REDRAWS):
        signs = (2 * torch.randint(0, 2, (c, 1, 1), generator=generator) - 1).to(current.dtype)
        new = torch.clamp(signs * eps, wlo, whi)
        if not torch.equal(new, now):
            break
    else:  # every draw left the window as it was: flip the first channel whose flip changes it
        for k in range(c):
            flipped = torch.clamp(-signs[k] * eps, wlo[k], whi[k])
            if not torch.equal(flipped, now[k]):
                signs[k] = -signs[k]
                break
        new = torch.clamp(signs * eps, wlo, whi)
    out = current.clone()
    out[win] = new
    return out


@register("square", cost=_cost, check=_check)
def square(
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
    objective: str = "accuracy",
    p_init: float = SQUARE_P_INIT,
    seed: SeedOption = None,
) -> Tensor:
    """L-inf Square Attack (Andriushchenko et al. 2020) for segmentation: a random search over +-eps squares that
    reads only the model's logits (no gradient, no backward pass: the model runs under ``torch.no_grad``).

    Per image: start at vertical stripes (every column of every channel at +eps or -eps), then, query after query,
    set one random s x s square to +eps or -eps per channel and keep the change if it lowers the image's
    objective strictly; s covers a share p of the image's pixels, p following the paper's schedule from ``p_init``
    (``p_schedule``, rescaled to ``steps``). An image stops once its objective is 0 (every counted pixel fooled).

    Args:
        images: (B, C, H, W) in [0, 1]; labels: (B, H, W) class ids to move away from (untargeted) or the target
            (targeted); ``ignore_index`` pixels do not count. eps: the L-inf budget in [0, 1] units, a float or (B,).
        steps: the query budget per image (default 1000), the start included: an image is never evaluated more
            than ``steps`` times; at least 1 (the start alone).
        step_size: not taken (None only): every change is the full +-eps; the squares' size is set by ``p_init``.
        mask: (B, H, W) bool; only these pixels change (squares are drawn to cover at least one of them).
        objective: what the search lowers, per image over its counted pixels. ``"margin"`` (the paper's loss):
            the mean pixel-wise margin, untargeted the label's logit minus the largest other logit, targeted the
            largest logit off the target minus the target's, each clipped at 0 below (a fooled pixel counts 0, so
            queries go to the pixels not yet fooled instead of pushing fooled ones further). ``"accuracy"``
            (default): the share of counted pixels not yet fooled (the pixel accuracy untargeted, 1 - the share on
            target targeted), ties broken by the mean clipped margin (scaled below half a pixel's share, so the
            accuracy always decides first). Summing margins lets the far-from-boundary pixels, which no budget
            flips, dominate the search: on the tiny models of the tests ``"accuracy"`` fooled 1.1 to 2.4 times as
            many pixels as ``"margin"`` in 300 queries.
        p_init: the share of the image's pixels the first squares cover, in (0, 1] (default 0.8, AutoAttack's).
        seed: per-image random draws (``_core.SeedOption``): with seeds an image's result depends on its own seed,
            budget and pixels only, so a batch equals its single runs; None: torch's global RNG.

    Returns (B, C, H, W) in [0, 1]: per image the best perturbation found, within ``eps`` (whole 8-bit levels
    where the images and eps are), zero outside ``mask``.

    Cost: at most ``steps`` forward passes (one per query, on the images still searching), no backward pass.
    """
    _check({"steps": steps, "step_size": step_size, "objective": objective, "p_init": p_init})
    n = SQUARE_QUERIES if steps is None else steps
    with torch.no_grad():
        problem = prepare(
            model, images, labels, eps=eps, targeted=targeted, mask=mask, ignore_index=ignore_index, seed=seed
        )
        problem.restart(0)
        b, _, h, w = problem.base.shape
        generators: list[torch.Generator | None] = (
            list(problem.generators) if problem.generators is not None else [None] * b
        )
        search = _Search(problem, objective)
        delta = _stripes(problem, generators)
        best = search.query(delta, None, check=True)
        allowed = None if problem.mask is None else problem.mask[:, 0].cpu()
        # an image with no counted pixel, or whose mask allows no change, has nothing to search for
        movable = torch.ones(b, dtype=torch.bool) if allowed is None else allowed.flatten(1).any(1)
        searching = (best > 0) & (search.counted > 0) & movable.to(best.device)
        lo, hi = problem.lo.cpu(), problem.hi.cpu()
        for it in range(n - 1):
            index = searching.nonzero()[:, 0]
            if len(index) == 0:
                break
            s = _side(p_schedule(p_init, it, n), h, w)
            current = delta[index].cpu()
            candidate = torch.stack([
                _propose(current[k], lo[j], hi[j], problem.eps_levels[j], s,
                         None if allowed is None else allowed[j], generators[j])
                for k, j in enumerate(index.tolist())
            ]).to(delta.device)  # fmt: skip
            all_searching = len(index) == b
            value = search.query(candidate, None if all_searching else index)
            better = value < best[index]
            if bool(better.any()):
                kept = index[better]
                delta[kept] = candidate[better]
                best[kept] = value[better]
                searching[kept] = value[better] > 0
        return problem.adv(delta)
