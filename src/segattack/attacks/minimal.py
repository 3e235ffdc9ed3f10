"""Minimal-norm L-inf attacks for segmentation: ALMA prox (Rony, Pesquet and Ben Ayed, CVPR 2023, "Proximal
Splitting Adversarial Attacks for Semantic Segmentation", arXiv:2206.07179), and what one run of it gives: every
image's minimal eps, hence the whole accuracy-against-eps curve.

The problem, per image: the smallest ``||delta||_inf`` such that at least a share ``apsr`` (the adversarial pixel
success rate, 0.99 by default, as adv_lib and the paper) of the counted pixels (labels != ignore_index) is fooled:
off their label (untargeted) or on the target (targeted), as ``metrics.pixel_success`` defines it.

Why ALMA prox and not FMN (Pintor, Roli, Brendel and Biggio, NeurIPS 2021): FMN adapts one norm bound per sample
from one scalar constraint (misclassified or not), a natural fit for classification. Segmentation asks for a share
of up to millions of per-pixel constraints; the success is a pixel count, flat almost everywhere, so an FMN
adaptation would have to invent a scalar surrogate whose boundary is not the APSR. ALMA prox handles the per-pixel
constraints directly, with a Lagrange multiplier and a penalty parameter per pixel, and leaves out the (1 - apsr)
share of the hardest constraints; it is the segmentation-specific method the literature compares with, and adv_lib
implements it, so this implementation is checked against it (``tests/test_minimal_norm.py``).

The algorithm (Sec. 3-4 of the paper; defaults as the authors' code and adv_lib 0.2.8), each iteration i = 0..N-1:

1. evaluate x + delta_i: the prediction, the APSR and the norm; keep per image the smallest-norm iterate whose APSR
   reaches ``apsr`` (before one is found, the iterate with the highest APSR);
2. the constraints c_j = w * DLR_j, the difference of logits ratio of Croce and Hein (2020) per pixel, signed so that
   c_j <= 0 means pixel j is fooled with a margin of 1e-4 logits; w, a per-image scale in [0.1, 1], shrinks by 2%
   at each adversarial iterate and grows by 2% otherwise;
3. constraint masking: the k_i = floor((1 - apsr) * n * i / (N - 1)) largest constraints of an image (n counted
   pixels) leave the objective (all but the k_i-th itself, as the authors' code);
4. every 10 steps, the penalty parameter rho_j doubles where the constraint neither improved by a factor 0.95 nor
   was satisfied since the last check; the multipliers mu_j follow an exponential moving average (0.8) of the
   derivative of the penalty-Lagrangian P2 (Birgin et al. 2005; ALMA, Rony et al. 2021), clipped to [1e-12, 1];
5. a variable-metric forward-backward step (Chouzenoux et al. 2014): delta <- prox(delta - lr_i H^-1 grad), with
   H the RMSProp preconditioner (0.8) of the gradient of sum_j P2(c_j; rho_j, mu_j), and the proximity operator of
   lr_i ||.||_inf + the box (image range, eps, mask) in the metric H. The step size lr_i starts at ``step_size``
   (0.001) and decays to a tenth of it, hyperbolically, from the iteration the image was first fooled (from N/2 if
   it was not fooled before).

Where this implementation differs from the authors' code (and adv_lib 0.2.8, which has the same code), and why:

- the multipliers and the gradient use the derivative of P2 as the papers state it, mu + 2 mu rho y + rho^2 y^2 / 2
  for y >= 0 (``p2_derivative``); the authors' hand-written backward has mu * y for the first term, so its
  derivative drops from mu to 0 as a constraint crosses 0 from the satisfied side, and constraints violated by a
  little are barely pushed. Measured on a per-pixel linear 5-class model (8 images of 10x10, untargeted): at 500
  steps both reach the APSR on every image with per-image norms 0.88-1.08 times adv_lib's (mean 0.99); at 200 steps
  adv_lib reached it on none, this implementation on all. With the authors' derivative and margin substituted,
  this implementation reproduces adv_lib's norms to 0.2% (``tests/test_minimal_norm.py``);
- the proximity operator is solved exactly (a sort per image; ``prox_linf_box``) instead of by a ternary search to
  1e-6: the same point, without a tolerance;
- the targeted constraint puts the 1e-4 logit margin on the side of success (the pixel must be on the target by the
  margin), as the untargeted one does; the authors' sign flip makes it 1e-4 short of the target (with their
  derivative, their targeted attack then stalls: it reached the APSR on none of the 8 images above in 500 steps,
  this implementation on all 8);
- models with fewer than 4 classes (targeted) or 3 (untargeted) normalise the logit difference by the spread of
  the top logits they have (z_1 - z_3, resp. z_1 - z_K); 2 classes are refused: the ratio is then +-1 whatever the
  logits, so it has no gradient.
- the attack is bounded by ``eps`` (the family's contract; eps=1 is the unbounded attack of the paper): the box of
  the proximity operator is the eps-ball intersected with the image range and the ``mask``.

Cost: N forward passes (the iterates delta_0 = 0 .. delta_{N-1}) and N - 1 backward passes; no early stop.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ..errors import InputError, InputTypeError
from ..models import classes_of
from ._core import Model, check_count, check_positive, logits_at, prepare
from .registry import Cost, register

__all__ = [
    "alma_prox",
    "minimal_norm",
    "minimal_eps",
    "MinimalNorm",
    "accuracy_curve",
    "pixel_accuracy_curve",
    "prox_linf_box",
    "ALMA_STEPS",
    "APSR",
]

#: Iterations (forward passes) by default, as the paper and adv_lib.
ALMA_STEPS = 500
#: The adversarial pixel success rate an image must reach to count as fooled, as adv_lib and the paper.
APSR = 0.99
#: The initial step size (learning rate) in [0, 1] image units, and the share of it reached at the last iteration.
LR_INIT = 0.001
LR_REDUCTION = 0.1
#: Penalty-Lagrangian: initial multiplier and penalty parameter; every CHECK_STEPS iterations the penalty parameter
#: of a constraint that neither improved by the factor TAU nor was satisfied is multiplied by GAMMA.
MU_INIT = 1.0
RHO_INIT = 0.01
CHECK_STEPS = 10
TAU = 0.95
GAMMA = 2.0
#: Weight of the past in the moving averages of the multipliers and of the squared gradient (RMSProp).
ALPHA = 0.8
#: The per-image constraint scale w: its bounds, start and rate.
SCALE_MIN = 0.1
SCALE_MAX = 1.0
SCALE_INIT = 1.0
SCALE_RATE = 0.02
#: Logit margin by which a pixel must be fooled for its constraint to be satisfied.
LOGIT_TOLERANCE = 1e-4


def _check_apsr(apsr: object) -> float:
    if isinstance(apsr, bool) or not isinstance(apsr, int | float) or not 0 < apsr <= 1:
        raise InputError(
            f"apsr must be a share of pixels in (0, 1], the adversarial pixel success rate an image must reach "
            f"(e.g. apsr=0.99), got {apsr!r}"
        )
    return float(apsr)


def _check(options: Mapping[str, Any]) -> None:
    steps = options.get("steps")
    if steps is not None and steps < 1:
        raise InputError(
            f"option alma_prox.steps must be at least 1 (the clean image is its first iterate), got {steps}"
        )
    _check_apsr(options.get("apsr", APSR))


def _cost(eps_levels: float, *, steps: int | None = None, **_: Any) -> Cost:
    n = ALMA_STEPS if steps is None else steps
    return Cost(forward=n, backward=n - 1)


# ------------------------------------------------------------------------------------------------------------------
# building blocks


def dlr_constraints(logits: Tensor, labels: Tensor, *, targeted: bool, tolerance: float = LOGIT_TOLERANCE) -> Tensor:
    """Per-pixel constraints of ALMA prox: the difference of logits ratio (Croce and Hein 2020), <= 0 where the pixel
    is fooled by ``tolerance`` logits. (B, K, H, W) logits and (B, H, W) labels -> (B, H, W), differentiable.

    Untargeted: (z_y - max_{k != y} z_k + tol) / (z_(1) - z_(3)); targeted: (max_{k != t} z_k - z_t + tol) /
    (z_(1) - (z_(3) + z_(4)) / 2), with z_(r) the r-th largest logit (fewer classes: the smallest of the top ones).

    >>> z = torch.tensor([[[[3.0]], [[1.0]], [[0.0]]]])  # one pixel, 3 classes, label 0: not fooled
    >>> round(float(dlr_constraints(z, torch.tensor([[[0]]]), targeted=False, tolerance=0.0)), 6)
    0.666667
    """
    k = logits.shape[1]
    own = logits.gather(1, labels[:, None])[:, 0]
    other = logits.scatter(1, labels[:, None], float("-inf")).amax(1)
    top = logits.topk(min(4 if targeted else 3, k), dim=1).values
    if targeted and k >= 4:
        spread = top[:, 0] - (top[:, 2] + top[:, 3]) / 2
    else:
        spread = top[:, 0] - top[:, -1]
    margin = (other - own) if targeted else (own - other)
    return (margin + tolerance) / (spread + 1e-8)


def p2_derivative(y: Tensor, rho: Tensor, mu: Tensor) -> Tensor:
    """Derivative in y of the penalty-Lagrangian P2 (Birgin, Castillo and Martinez 2005) as ALMA uses it:
    P2(y) = mu y + mu rho y^2 + rho^2 y^3 / 6 for y >= 0 and mu y / (1 - max(rho, 1) y) for y < 0 (the authors'
    code bounds rho below by 1 on the satisfied side). Elementwise, any shapes that broadcast.

    >>> p2_derivative(torch.tensor([0.0, -1.0]), torch.tensor(0.5), torch.tensor(1.0)).tolist()
    [1.0, 0.25]
    """
    pos = mu + 2 * mu * rho * y + 0.5 * rho**2 * y**2
    neg = mu / (1 - rho.clamp(min=1) * y.clamp(max=0)) ** 2
    return torch.where(y >= 0, pos, neg)


def prox_linf_box(v: Tensor, lam: Tensor, h: Tensor, lo: Tensor, hi: Tensor) -> Tensor:
    """The proximity operator of lam ||.||_inf plus the indicator of the box [lo, hi] in the metric diag(h), per image:
    argmin_u 1/2 sum_j h_j (u_j - v_j)^2 + lam ||u||_inf subject to lo <= u <= hi (lo <= 0 <= hi).

    Shapes: ``v``, ``h`` (h > 0), ``lo``, ``hi``: (B, ...) (``lo``/``hi`` broadcast to it); ``lam``: (B,) > 0. Solved
    exactly: for a bound t on the norm the minimiser is clamp(clamp(v, lo, hi), -t, t), and the objective is convex
    in t with a piecewise-linear derivative whose root is found from the sorted |clamp(v, lo, hi)|: O(n log n) per
    image (the paper's ternary search approximates the same point).

    >>> v = torch.tensor([[3.0, -1.0, 0.5]])
    >>> prox_linf_box(v, torch.tensor([1.0]), torch.ones(1, 3), -torch.ones(1, 3) * 9, torch.ones(1, 3) * 9).tolist()
    [[2.0, -1.0, 0.5]]
    """
    b = v.shape[0]
    p = torch.clamp(v, lo, hi)
    a = p.abs().flatten(1)
    u = v.abs().flatten(1)
    w = h.expand_as(v).flatten(1)
    a_sorted, order = a.sort(dim=1, descending=True)
    w_s = w.gather(1, order)
    wu_s = w_s * u.gather(1, order)
    zero = torch.zeros(b, 1, dtype=a.dtype, device=a.device)
    s = w_s.cumsum(1)
    t_sum = wu_s.cumsum(1)
    s_before = torch.cat([zero, s[:, :-1]], 1)
    t_before = torch.cat([zero, t_sum[:, :-1]], 1)
    lam = lam.to(a.dtype).view(b, 1)
    # derivative of the objective in t just above the k-th largest |p|: non-increasing in k, positive at k = 1
    slope = lam + s_before * a_sorted - t_before
    count = (slope >= 0).sum(1, keepdim=True).clamp(min=1)
    t = (t_sum.gather(1, count - 1) - lam) / s.gather(1, count - 1)
    upper = a_sorted.gather(1, count - 1)
    lower = torch.cat([a_sorted, zero], 1).gather(1, count)
    t = torch.maximum(torch.minimum(t, upper), lower).view(b, *[1] * (v.ndim - 1))
    return torch.maximum(torch.minimum(p, t), -t)


# ------------------------------------------------------------------------------------------------------------------
# the attack


@dataclass(frozen=True)
class MinimalNorm:
    """One run of ALMA prox on a batch of B images (N iterations).

    ``adversarial``: (B, C, H, W) in [0, 1], per image the smallest-norm iterate whose APSR reached ``apsr``, else
    the iterate of the highest APSR (the clean image if nothing moved a pixel). ``norm``: (B,) float64, its
    ``||adversarial - images||_inf`` in [0, 1] units; ``success``: (B,) float64, its APSR (``metrics.pixel_success``);
    ``reached``: (B,) bool, success >= apsr. ``trace_norm``/``trace_success``: (N, B) float64, the norm and the APSR
    of every iterate (iterate 0 is the clean image), from which ``pixel_accuracy_curve`` reads.
    """

    adversarial: Tensor
    norm: Tensor
    success: Tensor
    reached: Tensor
    trace_norm: Tensor
    trace_success: Tensor
    apsr: float

    @property
    def minimal_eps(self) -> Tensor:
        """(B,) float64: each image's smallest L-inf norm found that reaches the APSR, [0, 1] units; +inf where the
        APSR was never reached (within the run's eps)."""
        return torch.where(self.reached, self.norm, torch.full_like(self.norm, math.inf))


def minimal_norm(
    model: Model,
    images: Tensor,
    labels: Tensor,
    *,
    eps: float | Tensor = 1.0,
    targeted: bool = False,
    steps: int | None = None,
    step_size: float | None = None,
    mask: Tensor | None = None,
    ignore_index: int = 255,
    apsr: float = APSR,
) -> MinimalNorm:
    """ALMA prox (Rony, Pesquet and Ben Ayed, CVPR 2023): per image the smallest L-inf perturbation found that fools
    at least a share ``apsr`` of the counted pixels, with the trace of the run (see the module docstring).

    Args:
        model: a ``PixelModel`` (or a callable images -> logits (B, K, H, W) at input size), K >= 3.
        images: (B, C, H, W) in [0, 1]. labels: (B, H, W) int64, the labels to move away from (untargeted: the
            ground truth or the clean prediction) or the target (targeted); ``ignore_index`` pixels never count.
        eps: the largest norm allowed, [0, 1] units, a float or a (B,) tensor; 1.0 (default): unbounded.
        steps: iterations N (forward passes; default 500). step_size: the initial step size in [0, 1] units
            (default 0.001, the paper's).
        mask: (B, H, W) bool, the perturbation is zero outside it.
        apsr: the share of counted pixels that must be fooled, in (0, 1] (default 0.99).

    Returns a ``MinimalNorm``. Costs N forward and N - 1 backward passes.
    """
    n = ALMA_STEPS if steps is None else check_count("steps", steps, minimum=1)
    share = _check_apsr(apsr)
    lr0 = LR_INIT if step_size is None else check_positive("step_size", step_size)
    problem = prepare(model, images, labels, eps=eps, targeted=targeted, mask=mask, ignore_index=ignore_index)
    b = problem.batch
    dtype, device = problem.base.dtype, problem.base.device
    lo, hi = problem.lo / 255, problem.hi / 255  # the box of the perturbation in [0, 1] units
    valid = problem.valid
    counted = valid.flatten(1).sum(1).to(torch.float64)

    def full(shape: tuple[int, ...] | torch.Size, value: float) -> Tensor:
        return torch.full(shape, value, dtype=torch.float64, device=device)

    delta = torch.zeros_like(problem.base)
    sq_avg = torch.zeros_like(delta)
    mu = full(valid.shape, MU_INIT)
    rho = full(valid.shape, RHO_INIT)
    scale = full((b,), SCALE_INIT)
    lr = full((b,), lr0)
    found = torch.zeros(b, dtype=torch.bool, device=device)
    step_found = full((b,), float(n // 2))
    best_levels = torch.zeros_like(delta)
    best_norm = full((b,), math.inf)
    best_success = full((b,), 0.0)
    fooled_since_check = torch.zeros_like(valid)
    previous: Tensor | None = None
    trace_norm = full((n, b), math.nan)
    trace_success = full((n, b), math.nan)

    for i in range(n):
        last = i == n - 1
        levels = torch.clamp(delta * 255, problem.lo, problem.hi)
        adv = problem.adv(levels).requires_grad_(not last)
        with torch.set_grad_enabled(not last):
            logits = logits_at(problem, adv, check=i == 0)
        if i == 0 and logits.shape[1] < 3:
            raise InputError(
                f"alma_prox needs a model with at least 3 classes, got {logits.shape[1]}: its constraint, the "
                "difference of logits ratio, is +-1 whatever the logits with 2 classes; use apgd or dag for this model"
            )
        pred = classes_of(logits)
        success = problem.success(pred)
        norm = (adv.detach() - images).abs().flatten(1).amax(1).to(torch.float64)
        trace_norm[i], trace_success[i] = norm, success
        fooled = success >= share
        better = (fooled & (norm <= best_norm)) | (~found & (success >= best_success.clamp(max=share)))
        if i < n // 2:
            step_found = torch.where(~found & fooled, float(i), step_found)
        found |= fooled
        best_norm = torch.where(better, norm, best_norm)
        best_success = torch.where(better, success, best_success)
        best_levels = torch.where(better.view(-1, 1, 1, 1), levels, best_levels)
        if last:
            break

        hit = (pred == problem.labels) if problem.targeted else (pred != problem.labels)
        fooled_since_check |= hit
        scale = (scale / torch.where(fooled, 1 + SCALE_RATE, 1 - SCALE_RATE)).clamp(SCALE_MIN, SCALE_MAX)
        constraints = scale.to(logits.dtype).view(-1, 1, 1) * dlr_constraints(
            logits, problem.labels, targeted=problem.targeted
        )
        c = constraints.detach().to(torch.float64)

        # constraint masking: the k_i largest constraints of each image leave the objective (all but the k_i-th)
        drop = torch.floor((1 - share) * counted * i / (n - 1)).long()
        kept = valid
        k_max = int(drop.max())
        if k_max > 0:
            ranked = c.masked_fill(~valid, -math.inf).flatten(1).topk(k_max, dim=1).values
            xi = ranked.gather(1, (drop - 1).clamp(min=0)[:, None]).view(-1, 1, 1)
            kept = valid & ((c <= xi) | (drop == 0).view(-1, 1, 1))

        # penalty parameters and multipliers
        if previous is None:
            previous = c
        elif (i + 1) % CHECK_STEPS == 0:
            improved = torch.where(kept, c, torch.zeros_like(c)) <= TAU * previous
            rho = torch.where(fooled_since_check | improved, rho, GAMMA * rho)
            previous = c
            fooled_since_check = torch.zeros_like(valid)
        zero = torch.zeros_like(c)
        if i > 0:
            target = torch.where(kept, p2_derivative(c, rho, mu), zero)
            mu = (ALPHA * mu + (1 - ALPHA) * target).clamp(1e-12, 1)
        weight = torch.where(kept, p2_derivative(c, rho, mu), zero)
        (grad,) = torch.autograd.grad(constraints, adv, grad_outputs=weight.to(constraints.dtype))

        # step size: from lr0 at the iteration the image was first fooled down to lr0 * LR_REDUCTION at the end
        tangent = LR_REDUCTION / (1 - LR_REDUCTION) * (n - step_found).clamp(min=1)
        lam = lr * tangent / ((i - step_found).clamp(min=0) + tangent)

        # variable-metric forward-backward step
        sq_avg = ALPHA * sq_avg + (1 - ALPHA) * grad * grad
        metric = (sq_avg / (1 - ALPHA ** (i + 1))).sqrt().clamp(min=1e-8)
        moved = delta - lam.to(dtype).view(-1, 1, 1, 1) * grad / metric
        delta = prox_linf_box(moved, lam, metric, lo, hi)

    return MinimalNorm(
        adversarial=problem.adv(best_levels),
        norm=best_norm,
        success=best_success,
        reached=found,
        trace_norm=trace_norm,
        trace_success=trace_success,
        apsr=share,
    )


@register("alma_prox", cost=_cost, check=_check)
def alma_prox(
    model: Model,
    images: Tensor,
    labels: Tensor,
    *,
    eps: float | Tensor = 1.0,
    targeted: bool = False,
    steps: int | None = None,
    step_size: float | None = None,
    mask: Tensor | None = None,
    ignore_index: int = 255,
    apsr: float = APSR,
) -> Tensor:
    """ALMA prox (Rony, Pesquet and Ben Ayed, CVPR 2023): the smallest L-inf perturbation that fools ``apsr`` of the
    pixels.

    Per image: the smallest-norm iterate found whose APSR (the share of counted pixels off their label, or on the
    target when ``targeted``) reaches ``apsr`` (default 0.99), within ``eps`` ([0, 1] units; 1.0 = unbounded);
    where it is never reached, the iterate of the highest APSR (as adv_lib), so the result is always within eps and
    as adversarial as the run found. ``steps``: iterations (default 500); ``step_size``: the initial step size in
    [0, 1] units (default 0.001). ``minimal_norm`` returns the norms and the trace too; ``minimal_eps`` the norms.

    Cost: steps forward and steps - 1 backward passes.
    """
    return minimal_norm(
        model, images, labels, eps=eps, targeted=targeted, steps=steps, step_size=step_size, mask=mask,
        ignore_index=ignore_index, apsr=apsr,
    ).adversarial  # fmt: skip


def minimal_eps(model: Model, images: Tensor, labels: Tensor, **options: Any) -> Tensor:
    """Each image's smallest L-inf norm that fools a share ``apsr`` of its counted pixels, as ALMA prox finds it:
    (B,) float64 in [0, 1] units, +inf where the APSR was never reached. ``options``: those of ``minimal_norm``.

    From one run, ``accuracy_curve(minimal_eps(...), eps_grid)`` is the APSR-robust accuracy at every eps.
    """
    return minimal_norm(model, images, labels, **options).minimal_eps


# ------------------------------------------------------------------------------------------------------------------
# curves from one run


def _eps_grid(eps_grid: Sequence[float] | Tensor) -> Tensor:
    grid: Tensor | None = None
    if isinstance(eps_grid, Tensor | Sequence) and not isinstance(eps_grid, str):
        try:
            grid = torch.as_tensor(eps_grid, dtype=torch.float64).reshape(-1).cpu()
        except (TypeError, ValueError, RuntimeError):
            grid = None
    if grid is None or grid.numel() == 0 or not bool(torch.isfinite(grid).all()) or bool((grid < 0).any()):
        raise InputError(
            f"eps_grid must list finite budgets >= 0 in [0, 1] units (e.g. [k / 255 for k in range(17)]), "
            f"got {eps_grid!r}"
        )
    return grid


def accuracy_curve(minimal: Tensor, eps_grid: Sequence[float] | Tensor) -> Tensor:
    """The APSR-robust accuracy at every eps of ``eps_grid`` ([0, 1] units): the share of images whose minimal eps
    (``minimal_eps``: (B,), +inf where never broken) is above eps. (B,) and (K,) -> (K,) float64.

    An image counts as broken at eps when its minimal eps <= eps, i.e. when the attack fooled at least ``apsr``
    (99%) of its pixels within eps. This is not pixel accuracy: an image with 98% of its pixels fooled still counts
    as robust here (see ``pixel_accuracy_curve``). It is an upper bound on the true APSR-robust accuracy (the attack
    may miss smaller perturbations), comparable with a fixed-eps attack run at every eps, at the cost of one run.

    Norms equal to an eps up to float32 rounding (a relative 1e-6) count as within it.

    >>> accuracy_curve(torch.tensor([0.0, 2 / 255, math.inf]), [0.0, 1 / 255, 2 / 255, 1.0]).tolist()
    [0.6666666666666666, 0.6666666666666666, 0.3333333333333333, 0.3333333333333333]
    """
    if not isinstance(minimal, Tensor):
        raise InputTypeError(f"minimal must be the (B,) tensor minimal_eps returns, got {type(minimal).__name__}")
    if minimal.ndim != 1 or minimal.numel() == 0 or not minimal.is_floating_point():
        raise InputError(f"minimal must be a non-empty (B,) float tensor (minimal_eps), got {tuple(minimal.shape)}")
    m = minimal.detach().to(torch.float64).cpu()
    if bool(m.isnan().any()) or bool((m < 0).any()):
        raise InputError("minimal holds NaN or negative norms; pass the (B,) tensor minimal_eps returns")
    grid = _eps_grid(eps_grid)
    return (m[None, :] > grid[:, None] * (1 + 1e-6)).to(torch.float64).mean(1)


def pixel_accuracy_curve(result: MinimalNorm, eps_grid: Sequence[float] | Tensor) -> Tensor:
    """Per image, an upper bound on the pixel accuracy at every eps of ``eps_grid`` ([0, 1] units) that one run of
    ALMA prox proves: 1 - the highest APSR among its iterates within eps (the clean image, iterate 0, is always
    one). (K,) grid -> (K, B) float64; untargeted against the ground truth, 1 - APSR is the pixel accuracy of the
    counted pixels (targeted: the share of pixels not on the target).

    What one run can honestly give: at eps >= an image's minimal eps, at most 1 - apsr (1%) of its pixels are still
    correct; below it, only the iterates the run happened to pass through, which were not aiming at the most pixels
    within that eps. So the bound is tight only where the curve is at 1 - apsr or at the clean accuracy; between them
    a fixed-eps attack (``apgd``) at eps gives a lower, truer value.
    """
    if not isinstance(result, MinimalNorm):
        raise InputTypeError(f"result must be the MinimalNorm minimal_norm returns, got {type(result).__name__}")
    grid = _eps_grid(eps_grid).to(result.trace_norm.device)
    within = result.trace_norm[None] <= grid.view(-1, 1, 1)  # (K, N, B)
    best = torch.where(within, result.trace_success[None], torch.zeros_like(result.trace_success[None])).amax(1)
    return 1 - best
