"""The fit of one adversarial patch on many images, after Nesti, Rossolini, Nair, Biondi and Buttazzo (WACV 2022),
"Evaluating the robustness of semantic segmentation for autonomous driving against real-world adversarial patch
attacks" (code: retis-ai/SemSegAdvPatch), and its measurement on held-out images (``evaluate``).

One patch p (3, h, w) with values in [0, 1] (no budget: it replaces the pixels it covers) is pasted into every fit
image (``placement``), under random EOT draws (``eot``), and moved by Adam along a composed gradient, as Nesti et
al. do (``untargeted_patch_attack.py``, ``ptsemseg/loss/loss.py``):

- the pixels are split into those where the attack has not succeeded yet (N) and those where it has (S); pixels
  under the patch are in neither (they never count);
- L_N and L_S are the summed cross-entropies over N and S against the target, g_N and g_S their gradients in p,
  each divided by its L2 norm; g_adv = gamma g_N + (1 - gamma) g_S, normalised again (gamma=None: Nesti et al.'s
  dynamic gamma, the share of counted pixels in N);
- the step's gradient is w_adv g_adv + w_tv g_TV / ||g_TV|| + w_nps g_NPS / ||g_NPS|| (total variation and
  non-printability, ``printability``), Adam steps on it, and p is clipped to [0, 1] after every step.

Goals:

- ``"untargeted"`` (Nesti et al.'s): the target is the clean prediction, whose cross-entropy is *ascended*;
  succeeded: the prediction differs from the clean one.
- ``"hide"`` (Fischer et al. 2017's dynamic target, ``segattack.targets.hide_class_target``): pixels predicted as
  the hidden class take the class of their nearest other-class pixel, the rest keep the clean prediction; the
  cross-entropy towards it is *descended*, with the hidden-class pixels weighted by omega and the others by
  1 - omega inside each of N and S (as the universal perturbation's loss); succeeded: the prediction equals the
  target.

Nesti et al.'s defaults (their configs ``configs/*_cityscapes.yml``, ``configs/*_carla.yml``, their
``untargeted_patch_attack.py`` and ``patch_utils.py``): Adam with lr 0.5 in 0..255 image units
(``NESTI_LR`` = 0.5/255 here, [0, 1] units; ICNet on CARLA used 10; ``DEFAULT_LR`` is 4/255, measured to work
better in 200 steps), 200 iterations over 100 optimisation images in batches of 10
(Cityscapes; 500 iterations, batches of 5 on CARLA), a 300x600 patch on 1025x2049 Cityscapes images centred by
default (150x300 on CARLA), a uniformly random initial patch, loss weights adv 1, smoothness 0 (Cityscapes) or 0.1
(CARLA), NPS 0 (their printable colour file is not published), gamma 0.0 in the Cityscapes configs and 1 in the
CARLA ones (their code also offers the dynamic gamma, ``-1``). Their EOT: ``segattack.patches.eot``. Here gamma
defaults to the dynamic one: with 0.0 an unfooled start has nearly no pixel in S to follow.

Every step draws from generators seeded by (seed, step, image index) (``eot.patch_generator``), visits the fit
images in order in batches, and keeps its state in a ``PatchState`` (patch, Adam's state, step): a fit resumed from
a state equals the uninterrupted fit bit for bit (on one device, with deterministic kernels).

>>> import torch
>>> from segattack import PixelModel
>>> from segattack.patches import Placement
>>> _ = torch.manual_seed(0)
>>> net = torch.nn.Conv2d(3, 3, kernel_size=3, padding=1)
>>> images = torch.rand(2, 3, 12, 16)
>>> res = fit(PixelModel(net), images, placement=Placement(size=(4, 4)), goal="untargeted", steps=2)
>>> res.patch.shape, len(res.loss), res.state.step, bool(((res.patch >= 0) & (res.patch <= 1)).all())
(torch.Size([3, 4, 4]), 2, 2, True)
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from ..attacks._core import Model, as_model
from ..errors import InputError, InputTypeError
from ..models import check_images
from ..targets import class_id_tuple, hidden_mask, hide_class_target
from ..universal.fit import check_item_image, forward, model_dtype_device, read_items
from .eot import PatchEOT, image_transform, patch_generator, transform_patch, transform_quad
from .placement import Box, Placement, check_patch, paste, region_positions
from .printability import check_colours, nps, total_variation

__all__ = ["fit", "PatchState", "PatchResult", "Progress", "Checkpoint", "DEFAULT_LR", "NESTI_LR", "DEFAULT_STEPS",
           "GOALS", "load_images", "place_batch"]  # fmt: skip

log = logging.getLogger(__name__)

#: Nesti et al.'s Adam learning rate on Cityscapes, 0.5 in 0..255 units, here in [0, 1] units.
NESTI_LR = 0.5 / 255
#: The default learning rate, 4 levels: Nesti et al.'s 0.5 levels moved the patch too little in 200 steps on the
#: embedded default (2026-12-06, a 64x64 patch on 256x512 scenes, 100 fit and 50 held-out scenes: 9.0% of the person
#: pixels hidden against 8.3% for a random patch; 4 levels: 15.3%; docs/guides/patches.md has the commands).
DEFAULT_LR = 4 / 255
#: Nesti et al.'s iterations on Cityscapes.
DEFAULT_STEPS = 200
#: The goals ``fit`` takes.
GOALS = ("hide", "untargeted")
#: The class hidden when no ``class_id`` is given: Cityscapes' person (train id 11).
DEFAULT_HIDE_CLASS = 11

#: ``progress(done, steps, loss)``: once with done = the starting step and loss NaN, then after every step with the
#: adversarial loss of that step (the weighted mean cross-entropy over the counted pixels of its batch, ``_step_loss``).
Progress = Callable[[int, int, float], None]
#: ``checkpoint(state)``: a copy of the fit's state, every ``checkpoint_every`` steps and after the last.
Checkpoint = Callable[["PatchState"], None]


@dataclass
class PatchState:
    """Everything a fit needs to go on: the patch (3, h, w) float in [0, 1] on the CPU, Adam's ``state_dict()``
    (tensors on the CPU), the number of steps done and the loss of each. Save it with ``torch.save(vars(state))``."""

    patch: Tensor
    optimizer: dict[str, Any]
    step: int
    loss: tuple[float, ...] = ()


@dataclass(frozen=True, eq=False)
class PatchResult:
    """A fitted patch and how it was made.

    patch: (3, h, w) float32 in [0, 1] on the CPU. goal: "hide" or "untargeted"; class_ids: the hidden class(es)
    (() for untargeted). placement, eot: as given (eot None: off). steps, lr, gamma (None: dynamic), omega,
    weights (adv, tv, nps). loss: the adversarial loss of each step. image_ids: the images fitted on; skipped:
    (image id, reason) of those left out ("all_hidden": predicted entirely as the hidden class; "no_place": a region
    placement finds no position; "unreadable"). state: the final ``PatchState`` (to go on with more steps).
    """

    patch: Tensor
    goal: str
    class_ids: tuple[int, ...]
    placement: Placement
    eot: PatchEOT | None
    steps: int
    lr: float
    gamma: float | None
    omega: float
    weights: tuple[float, float, float]
    loss: tuple[float, ...]
    image_ids: tuple[str, ...]
    skipped: tuple[tuple[str, str], ...]
    state: PatchState = field(repr=False)


def _image01(image: Any, name: str) -> Tensor:
    """One data-set image -> (3, H, W) float in [0, 1]."""
    image = check_item_image(image, name)
    return image.to(torch.float32) / 255 if image.dtype == torch.uint8 else image


def load_images(images: Any, limit: int | None = None) -> tuple[Tensor, list[str], list[tuple[str, str]]]:
    """Images in [0, 1] (N, 3, H, W) (a tensor as it is, or a segattack data set's items, uint8 scaled), their ids
    (``image_id(i)`` of a data set, else ``image_<i>``), and (id, "unreadable") for items that raised
    ``UnreadableImageError``. One size for all (``InputError`` naming the first image of another size)."""
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise InputError(f"limit must be None or an integer >= 1, got {limit!r}")
    if isinstance(images, Tensor):
        check_images(images, name="images")
        x = images if limit is None else images[:limit]
        if x.shape[0] == 0:
            raise InputError("images holds no image")
        return x, [f"image_{i}" for i in range(x.shape[0])], []
    if not hasattr(images, "__getitem__") or not hasattr(images, "__len__"):
        raise InputTypeError(f"images must be an (N, 3, H, W) tensor in [0, 1] or a segattack data set, got "
                             f"{type(images).__name__}")  # fmt: skip
    out, ids, skipped = read_items(images, limit, _image01, "one fit takes images of one size (resize the data)")
    return torch.stack(out), ids, skipped


def _number(name: str, value: Any, *, low: float, high: float = math.inf, low_open: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InputError(f"{name} must be a number, got {value!r}")
    v = float(value)
    if v < low or v > high or (low_open and v == low):
        span = f"{'(' if low_open else '['}{low:g}, {high:g}]" if math.isfinite(high) else (
            f"> {low:g}" if low_open else f">= {low:g}")  # fmt: skip
        raise InputError(f"{name} must be {span}, got {value!r}")
    return v


def _count(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InputError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


def place_batch(
    images: Tensor,
    patch: Tensor,
    placement: Placement,
    *,
    pred: Tensor | None,
    eot: PatchEOT | None,
    seed: int,
    step: int,
    indices: Sequence[int],
    boxes: Sequence[Box | None] | None = None,
) -> tuple[Tensor, Tensor, list[Box | None]]:
    """The images with the patch pasted (one draw per image from ``patch_generator(seed, step, index)``), the
    coverage masks (B, 1, H, W) and the base boxes (None: no position on the region; that image is unchanged).

    ``boxes`` fixes the base boxes (else the placement's: a region draws one per image and step); with ``eot`` the
    patch's appearance and quad are drawn, and an image-wide transform applied last; without, the patch is pasted
    as placed. Differentiable in ``patch``."""
    b, _, h, w = images.shape
    gens = [patch_generator(seed, step, i) for i in indices]
    patch_hw = (int(patch.shape[-2]), int(patch.shape[-1]))
    if boxes is None:
        boxes = placement.boxes((h, w), patch_hw, pred=pred, generators=gens, batch=b)
    base = placement.quads(boxes)
    if eot is None:
        out, mask = paste(images, patch, base)
        return out, mask, list(boxes)
    draws = [eot.draw(g) for g in gens]
    patches = torch.stack([transform_patch(patch, d, eot) for d in draws])
    quads = [None if q is None else transform_quad(q, d) for q, d in zip(base, draws, strict=True)]
    out, mask = paste(images, patches, quads)
    if eot.transforms:
        out = torch.cat([image_transform(out[j : j + 1], d, eot) for j, d in enumerate(draws)])
    return out, mask, list(boxes)


def _unit(g: Tensor) -> Tensor:
    n = g.norm()
    return g / n if float(n) > 0 else g


@dataclass
class _Fit:
    images: Tensor
    preds: Tensor
    targets: Tensor
    hidden: Tensor
    ids: list[str]


@torch.no_grad()
def _prepare(model: Model, images: Tensor, ids: list[str], *, goal: str, class_ids: tuple[int, ...],
             placement: Placement, patch_hw: tuple[int, int], batch_size: int, dtype: torch.dtype,
             device: torch.device) -> tuple[_Fit, list[tuple[str, str]]]:  # fmt: skip
    """Clean predictions, targets and hidden masks; images left out (all hidden, no place on the region)."""
    preds, keep, skipped = [], [], []
    for start in range(0, images.shape[0], batch_size):
        x = images[start : start + batch_size].to(device, dtype)
        logits = forward(model, x, check=True)
        k = int(logits.shape[1])
        bad = [c for c in class_ids if c >= k]
        if bad:
            raise InputError(f"class id {bad} out of range: the model predicts {k} classes (0..{k - 1})")
        preds.append(logits.argmax(1).cpu())
    pred = torch.cat(preds)
    hidden = hidden_mask(pred, class_ids) if goal == "hide" else torch.zeros_like(pred, dtype=torch.bool)
    region_ok = None
    if placement.kind == "region":
        size = placement.box_size((int(pred.shape[1]), int(pred.shape[2])), patch_hw)
        region_ok = region_positions(pred, placement.classes, size).flatten(1).any(1)
    for j in range(pred.shape[0]):
        if goal == "hide" and bool(hidden[j].all()):
            skipped.append((ids[j], "all_hidden"))
        elif region_ok is not None and not bool(region_ok[j]):
            skipped.append((ids[j], "no_place"))
        else:
            keep.append(j)
    for image_id, why in skipped:
        log.warning("leaving %s out of the patch fit: %s", image_id, why)
    if not keep:
        raise InputError("no image is left to fit the patch on (" + ", ".join(sorted({w for _, w in skipped})) + ")")
    idx = torch.tensor(keep)
    pred, hidden = pred[idx], hidden[idx]
    target = hide_class_target(pred, class_id=class_ids) if goal == "hide" else pred.clone()
    return _Fit(images[idx], pred, target, hidden, [ids[j] for j in keep]), skipped


def _step_loss(logits: Tensor, fitset: _Fit, rows: Tensor, mask: Tensor, goal: str, omega: float,
               gamma: float | None) -> tuple[Tensor, Tensor, float, float]:  # fmt: skip
    """(L_N, L_S, gamma, loss): the cross-entropies summed over the pixels not yet succeeded and succeeded, and the
    objective the step lowers or raises, the weighted mean cross-entropy over the counted pixels (with the hide goal
    the hidden class's pixels weigh omega and the others 1 - omega, so a rising share of changed background pixels
    barely moves it)."""
    target = fitset.targets[rows].to(logits.device)
    counted = mask[:, 0] == 0
    ce = F.cross_entropy(logits, target, reduction="none")
    pred = logits.detach().argmax(1)
    done = (pred != target) if goal == "untargeted" else (pred == target)
    if goal == "hide":
        hid = fitset.hidden[rows].to(logits.device)
        weight = torch.where(hid, omega, 1 - omega).to(ce.dtype)
    else:
        weight = torch.ones_like(ce)
    not_yet = counted & ~done
    succeeded = counted & done
    l_n = (ce * weight * not_yet).sum()
    l_s = (ce * weight * succeeded).sum()
    n_counted = int(counted.sum())
    g = gamma if gamma is not None else (int(not_yet.sum()) / n_counted if n_counted else 1.0)
    w_counted = weight * counted
    mean_ce = float((ce.detach() * w_counted).sum()) / max(float(w_counted.sum()), 1e-12)
    return l_n, l_s, g, mean_ce


def fit(
    model: Model,
    images: Any,
    *,
    placement: Placement,
    goal: str = "hide",
    class_id: int | Sequence[int] | None = None,
    patch_size: tuple[int, int] | None = None,
    steps: int = DEFAULT_STEPS,
    lr: float = DEFAULT_LR,
    batch_size: int = 10,
    gamma: float | None = None,
    omega: float = 0.9999,
    eot: PatchEOT | None = None,
    adv_weight: float = 1.0,
    tv_weight: float = 0.0,
    nps_weight: float = 0.0,
    colours: Tensor | None = None,
    seed: int = 0,
    init: Tensor | None = None,
    state: PatchState | None = None,
    limit: int | None = None,
    progress: Progress | None = None,
    checkpoint: Checkpoint | None = None,
    checkpoint_every: int = 0,
) -> PatchResult:
    """Fit one adversarial patch on many images (module docstring: the loss, the goals, Nesti et al.'s defaults).

    Args:
        model: a ``PixelModel`` (or a callable images in [0, 1] -> logits (B, K, H, W)); its state is not changed.
        images: (N, 3, H, W) float in [0, 1], or a segattack data set (items ``(uint8 image, label)``); one size.
            Not modified.
        placement: where the patch goes (``Placement``); a region placement draws a position per image and step.
        goal: "hide" (``class_id``, default 11, person) or "untargeted".
        patch_size: the patch's (h, w) in pixels; None: the placement's box on the fit images.
        steps: the total number of Adam steps (a resumed fit goes on from ``state.step`` to ``steps``); each is one
            batch of ``batch_size`` fit images (taken in order, cycling), one forward and two backward passes per
            image (N and S).
        lr: Adam's learning rate in [0, 1] units (Nesti et al.: 0.5/255). gamma: the weight of N in [0, 1], None:
            dynamic. omega: "hide" only, the weight of hidden-class pixels inside N and S in [0, 1].
        eot: the EOT ranges (``PatchEOT``; None: the patch is pasted as placed, no draws).
        adv_weight, tv_weight, nps_weight: the weights (>= 0) of the normalised gradients; ``colours``: (N, 3)
            printable colours for NPS (None: ``DEFAULT_PRINTABLE``).
        seed: seeds the initial patch (uniform random, as Nesti et al.) and every draw.
        init: a starting patch (3, h, w) in [0, 1] instead of the random one. state: a ``PatchState`` to resume from
            (its patch and Adam state; ``init`` and the random start are then unused).
        limit: only the first ``limit`` images.
        progress, checkpoint, checkpoint_every: callbacks (``Progress``, ``Checkpoint``); 0: checkpoint only at the
            end.

    Returns:
        ``PatchResult``; deterministic given the arguments. Refusals: ``InputError`` / ``InputTypeError``.
    """
    model = as_model(model)
    if goal not in GOALS:
        raise InputError(f"goal must be one of {', '.join(GOALS)}, got {goal!r}")
    if not isinstance(placement, Placement):
        raise InputTypeError(f"placement must be a segattack.patches.Placement, got {type(placement).__name__}")
    if eot is not None and not isinstance(eot, PatchEOT):
        raise InputTypeError(f"eot must be a segattack.patches.PatchEOT or None, got {type(eot).__name__}")
    _count("steps", steps, 0)
    _count("batch_size", batch_size, 1)
    _count("checkpoint_every", checkpoint_every, 0)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise InputTypeError(f"seed must be an integer, got {seed!r}")
    lr = _number("lr", lr, low=0, low_open=True)
    gamma = None if gamma is None else _number("gamma", gamma, low=0, high=1)
    omega = _number("omega", omega, low=0, high=1)
    weights = tuple(_number(n, v, low=0) for n, v in
                    (("adv_weight", adv_weight), ("tv_weight", tv_weight), ("nps_weight", nps_weight)))  # fmt: skip
    col = check_colours(colours) if colours is not None else None
    for name, cb in (("progress", progress), ("checkpoint", checkpoint)):
        if cb is not None and not callable(cb):
            raise InputTypeError(f"{name} must be a callable or None")
    class_ids: tuple[int, ...] = ()
    if goal == "hide":
        try:
            class_ids = class_id_tuple(DEFAULT_HIDE_CLASS if class_id is None else class_id)
        except TypeError as err:
            raise InputTypeError(str(err)) from None
    elif class_id is not None:
        raise InputError("class_id goes with goal='hide'; an untargeted patch lowers agreement on every class")

    x_all, ids, skipped = load_images(images, limit)
    hw = (int(x_all.shape[-2]), int(x_all.shape[-1]))
    dtype, device = model_dtype_device(model)
    if state is not None:
        if not isinstance(state, PatchState):
            raise InputTypeError(f"state must be a PatchState, got {type(state).__name__}")
        check_patch(state.patch, name="state.patch")
        start_patch = state.patch
    elif init is not None:
        check_patch(init, name="init")
        start_patch = init
    else:
        ph, pw = patch_size if patch_size is not None else placement.box_size(hw)
        g = torch.Generator().manual_seed(seed)
        start_patch = torch.rand((3, ph, pw), generator=g, dtype=torch.float64)
    if patch_size is not None and tuple(start_patch.shape[1:]) != tuple(patch_size):
        raise InputError(f"patch_size {tuple(patch_size)} but the starting patch is {tuple(start_patch.shape[1:])}")
    patch_hw = (int(start_patch.shape[1]), int(start_patch.shape[2]))

    fitset, left_out = _prepare(model, x_all, ids, goal=goal, class_ids=class_ids, placement=placement,
                                patch_hw=patch_hw, batch_size=batch_size, dtype=dtype, device=device)  # fmt: skip
    m = fitset.images.shape[0]
    patch = start_patch.detach().to(device, dtype).clone().requires_grad_(True)
    opt = torch.optim.Adam([patch], lr=lr)
    done, history = 0, []
    if state is not None:
        opt.load_state_dict(copy.deepcopy(state.optimizer))
        done, history = int(state.step), list(state.loss)
        if done > steps:
            raise InputError(f"the state has done {done} steps, more than steps={steps}; ask for at least {done}")
    log.info("patch fit: %d images, steps %d..%d, patch %dx%d", m, done, steps, *patch_hw)
    if progress is not None:
        progress(done, steps, math.nan)
    sign = -1.0 if goal == "untargeted" else 1.0
    nb = math.ceil(m / batch_size)

    def snapshot() -> PatchState:
        return PatchState(patch.detach().cpu().clone(), copy.deepcopy(opt.state_dict()), done, tuple(history))

    while done < steps:
        j = done % nb
        rows = torch.arange(j * batch_size, min((j + 1) * batch_size, m))
        x = fitset.images[rows].to(device, dtype)
        pred = fitset.preds[rows] if placement.kind == "region" else None
        adv, mask, _ = place_batch(x, patch, placement, pred=pred, eot=eot, seed=seed, step=done,
                                   indices=rows.tolist())  # fmt: skip
        logits = forward(model, adv, check=False)
        l_n, l_s, gam, mean_ce = _step_loss(logits, fitset, rows, mask, goal, omega, gamma)
        (g_n,) = torch.autograd.grad(l_n, patch, retain_graph=True, allow_unused=True)
        (g_s,) = torch.autograd.grad(l_s, patch, allow_unused=True)
        g_n = torch.zeros_like(patch) if g_n is None else g_n
        g_s = torch.zeros_like(patch) if g_s is None else g_s
        total = weights[0] * _unit(sign * (gam * _unit(g_n) + (1 - gam) * _unit(g_s)))
        if weights[1] > 0:
            (g_tv,) = torch.autograd.grad(total_variation(patch), patch)
            total = total + weights[1] * _unit(g_tv)
        if weights[2] > 0:
            (g_nps,) = torch.autograd.grad(nps(patch, col), patch)
            total = total + weights[2] * _unit(g_nps)
        opt.zero_grad(set_to_none=False)
        patch.grad = total.detach()
        opt.step()
        with torch.no_grad():
            patch.clamp_(0, 1)
        done += 1
        history.append(mean_ce)
        log.debug("patch step %d/%d: loss %.6g (gamma %.3g)", done, steps, mean_ce, gam)
        if progress is not None:
            progress(done, steps, mean_ce)
        if checkpoint is not None and checkpoint_every and done % checkpoint_every == 0 and done < steps:
            checkpoint(snapshot())
    final = snapshot()
    if checkpoint is not None:
        checkpoint(final)
    return PatchResult(
        patch=patch.detach().cpu().to(torch.float32),
        goal=goal,
        class_ids=class_ids,
        placement=placement,
        eot=eot,
        steps=steps,
        lr=lr,
        gamma=gamma,
        omega=omega,
        weights=(weights[0], weights[1], weights[2]),
        loss=tuple(history),
        image_ids=tuple(fitset.ids),
        skipped=tuple(skipped + left_out),
        state=final,
    )
