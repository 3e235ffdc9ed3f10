"""One batch through an attack: predict, target, attack every budget, restrict, predict again, measure.

``segattack run``, ``segattack attack`` and ``segattack demo`` all go through ``attack_batch`` and ``measure``; the
experiment loop around it keeps only grouping, resume and files.

Goals:

- ``HideGoal(class_ids)``: the paper's (Fischer et al. 2017). Labels = ``hide_class_target`` of the clean prediction,
  the attack is targeted; modes ``posthoc``/``during`` restrict the perturbation to the class pixels; measured with
  ``hiding_metrics`` (pixels) and ``segattack.instances`` (persons: connected components of the class in the clean
  prediction, and ground-truth instances where the data set has them).
- ``UntargetedGoal()``: robustness under attack. Labels = the ground truth where the data set has it (else the clean
  prediction), the attack is untargeted; measured with pixel accuracy and a confusion matrix against those labels
  (mIoU under attack over a data set comes from the summed matrices, as ``segattack eval``).

Survival (``transformed_outcome``): the adversarial images of a batch after an image transform (JPEG, resize, blur,
noise: ``segattack.transforms``), measured against the clean prediction of the identically transformed clean image;
the result is a ``BatchOutcome`` like any other, so ``measure`` applies unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from .attacks import mix_seed, registry
from .attacks.illm import restrict
from .attacks.registry import DEFAULT_ATTACK, AttackError, AttackInfo
from .errors import InputError
from .instances import DEFAULT_THRESHOLD, Components, components, gt_components, instance_rows
from .metrics import confusion_matrix, dense_confusion, hiding_metrics, pixel_accuracy, sparse_confusion
from .targets import class_id_tuple, hidden_mask, hide_class_target

__all__ = [
    "AttackSpec",
    "HideGoal",
    "UntargetedGoal",
    "Goal",
    "BatchOutcome",
    "attack_batch",
    "measure",
    "transformed_outcome",
    "sparse_confusion",
    "dense_confusion",
]


@dataclass(frozen=True)
class AttackSpec:
    """An attack with its options, checked once against the attack's signature and its own checks.

    ``name``: a registered name, or an attack as a value (a callable with the attack signature; ``functools.partial``
    binds options, which then appear in ``options``); after construction ``name`` is always the attack's name and
    ``entry`` its ``registry.AttackInfo``.

    >>> import functools, segattack as sa
    >>> spec = AttackSpec(functools.partial(sa.attacks.pgd, loss="js"), {"steps": 5})
    >>> spec.name, dict(spec.options)
    ('pgd', {'loss': 'js', 'steps': 5})
    """

    name: Any = DEFAULT_ATTACK
    options: Mapping[str, Any] = field(default_factory=dict)
    entry: AttackInfo = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        entry = registry.resolve(self.name)
        if not isinstance(self.options, Mapping):
            raise AttackError(f"the options of attack {entry.name!r} must be a mapping, got {self.options!r}")
        options = {**entry.bound, **registry.check_options(entry, dict(self.options))}
        object.__setattr__(self, "name", entry.name)
        object.__setattr__(self, "options", options)
        object.__setattr__(self, "entry", entry)

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "options": {k: list(v) if isinstance(v, tuple) else v for k, v in self.options.items()},
        }
        if not self.entry.registered:
            out["callable"] = True
        return out

    def passes(self, eps: float) -> int | None:
        """Gradient (backward) passes of one call at ``eps`` ([0, 1] units); None if the attack does not document
        them."""
        if self.entry.cost is None:
            return None
        return registry.cost_checked(self.entry, self.options, eps=eps).backward

    def plan_note(self, eps: Sequence[float]) -> str:
        """``registry.plan``'s sentence for the budgets ``eps`` ([0, 1] units)."""
        return registry.plan_checked(self.entry, self.options, eps).note

    def check_goal(self, *, targeted: bool) -> None:
        """``AttackError`` if the attack (or a member) cannot serve a targeted (or untargeted) goal."""
        registry.check_goal(self.entry, self.options, targeted=targeted)

    def sweep(self, model: Any, images: Tensor, labels: Tensor, *, eps: Sequence[float], targeted: bool,
              mask: Tensor | None = None, seed: Any = None) -> Tensor:  # fmt: skip
        """``registry.sweep`` of this attack with its (checked) options: (K, B, C, H, W) for the budgets ``eps``
        ([0, 1] units)."""
        return registry.sweep_checked(self.entry, self.options, model, images, labels, eps=eps, targeted=targeted,
                                      mask=mask, seed=seed)  # fmt: skip

    def seeds(self, image_seeds: Sequence[int]) -> list[int]:
        """Per-image seeds of this attack: derived from each image's seed and the attack's name and options, so that
        two attacks of a run draw independently and an image's draws depend on nothing but its own seed."""
        key = repr(sorted(self.describe()["options"].items()))
        return [mix_seed(s, self.name, key) for s in image_seeds]


@dataclass(frozen=True)
class HideGoal:
    """Hide ``class_ids`` (Fischer et al. 2017): targeted, towards the nearest other class."""

    class_ids: tuple[int, ...]
    name: str = "hide"
    targeted: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "class_ids", class_id_tuple(self.class_ids))

    def labels(self, pred: Tensor, truth: Tensor | None) -> Tensor:
        return hide_class_target(pred, class_id=self.class_ids)

    def restrict_mask(self, pred: Tensor) -> Tensor:
        return hidden_mask(pred, self.class_ids)


@dataclass(frozen=True)
class UntargetedGoal:
    """Move the prediction away from the labels (ground truth where given, else the clean prediction)."""

    name: str = "untargeted"
    targeted: bool = False

    def labels(self, pred: Tensor, truth: Tensor | None) -> Tensor:
        return pred if truth is None else truth.to(pred.device)

    def restrict_mask(self, pred: Tensor) -> Tensor:
        raise InputError("the untargeted goal has no class to restrict the perturbation to; use mode 'full' only")


Goal = HideGoal | UntargetedGoal


@dataclass
class BatchOutcome:
    """What one batch produced: the clean prediction, the attack's labels, and per mode the K x B adversarial images
    and their predictions (K budgets, in the order given). Hide goal: ``components``, per image the instances of the
    class in the clean prediction, and ``gt``, per image its ground-truth instances (None where the data set has
    none), computed once and measured at every budget and mode."""

    pred: Tensor
    labels: Tensor
    advs: dict[str, Tensor]
    preds: dict[str, Tensor]
    components: list[Components] | None = None
    gt: list[Components | None] | None = None
    no_target: list[bool] | None = None  # per image: the labels are no target (a transformed image all class)


def clean_instances(goal: Goal, pred: Tensor, instance_ids: Tensor | Sequence[Tensor | None] | None) -> dict[str, Any]:
    """The hide goal's instances of a batch's clean prediction (and ground truth), as ``BatchOutcome`` keeps them:
    ``{"components": [...], "gt": [...] or None}``; ``{}`` for another goal."""
    if not isinstance(goal, HideGoal):
        return {}
    comps = [components(p, goal.class_ids) for p in pred]
    gt = None
    if instance_ids is not None:
        gt = [None if m is None else gt_components(m, goal.class_ids) for m in instance_ids]
    return {"components": comps, "gt": gt}


def attack_batch(
    model: Any,
    images: Tensor,
    *,
    attack: AttackSpec,
    goal: Goal,
    eps: Sequence[float],
    modes: Sequence[str] = ("full",),
    pred: Tensor | None = None,
    truth: Tensor | None = None,
    batch_size: int | None = None,
    keep: Sequence[str] = (),
    instance_ids: Tensor | Sequence[Tensor | None] | None = None,
    labels: Tensor | None = None,
    instances: Mapping[str, Any] | None = None,
    seeds: Sequence[int] | None = None,
) -> BatchOutcome:
    """Attack ``images`` (B, 3, H, W) in [0, 1] at every budget in ``eps`` ([0, 1] units).

    Modes: ``full`` (the whole image), ``posthoc`` (the full perturbation kept on the goal's class pixels afterwards)
    and ``during`` (restricted during the optimisation: one more attack). ``keep``: modes whose images are made
    although they are not measured (Figure 1 needs ``full`` and ``posthoc``). The clean prediction ``pred`` is
    computed unless given. ``instance_ids``: per image the ground-truth instance ids (H, W) (``segattack.instances``;
    None for an image without them), for the hide goal's ``gt_instances*`` measures. ``labels`` (the goal's labels
    of ``pred``: ``goal.labels(pred, truth)``) and ``instances`` (``clean_instances(goal, pred, instance_ids)``) may
    be given when they were computed beforehand (the experiment does so on its reader thread while the previous batch
    attacks). ``seeds``: one seed per image (``AttackSpec.seeds`` derives the attack's own from them) for an attack
    that draws random numbers; None leaves them to torch's global RNG.

    Every attack's output is checked (``check_output``): its shape, its range and its budget, so that a broken
    attack is named instead of recorded.
    """
    if pred is None:
        pred = model.predict(images, batch_size=batch_size)
    if labels is None:
        labels = goal.labels(pred, truth)
    eps01 = list(eps)
    wanted = [m for m in ("full", "posthoc", "during") if m in modes or m in keep]
    mask = goal.restrict_mask(pred) if "posthoc" in wanted or "during" in wanted else None
    advs: dict[str, Tensor] = {}
    common: dict[str, Any] = {"targeted": goal.targeted}
    if seeds is not None and attack.entry.seeded:
        common["seed"] = attack.seeds(seeds)
    if "full" in wanted or "posthoc" in wanted:
        swept = attack.sweep(model, images, labels, eps=eps01, **common)
        advs["full"] = check_output(attack.name, swept, images, eps01)
    if "posthoc" in wanted:
        assert mask is not None
        advs["posthoc"] = restrict(advs["full"], images, mask=mask)
    if "during" in wanted:
        advs["during"] = check_output(
            attack.name, attack.sweep(model, images, labels, eps=eps01, mask=mask, **common), images, eps01,
            mask=mask,
        )  # fmt: skip
    k, b = len(eps01), images.shape[0]
    h, w = images.shape[-2:]
    preds = {m: model.predict(a.flatten(0, 1), batch_size=batch_size).view(k, b, h, w) for m, a in advs.items()}
    if instances is None:
        instances = clean_instances(goal, pred, instance_ids)
    return BatchOutcome(pred=pred, labels=labels, advs=advs, preds=preds, **instances)


#: Slack of the budget check, in levels: attacks work in float32 levels, so a perturbation may exceed a budget by
#: rounding alone; anything beyond is the attack's fault.
_BUDGET_SLACK = 1e-3


def check_output(
    name: str, advs: Tensor, images: Tensor, eps: Sequence[float], *, mask: Tensor | None = None
) -> Tensor:
    """``advs`` (K, B, C, H, W), the adversarial images an attack made at the budgets ``eps`` ([0, 1] units), if
    they are images of ``images``' shape and dtype, finite, in [0, 1], within each budget (and zero off ``mask``);
    else ``AttackError`` naming the attack and what is wrong. Returns ``advs``."""
    k, shape = len(eps), tuple(images.shape)
    if not isinstance(advs, Tensor) or tuple(advs.shape) != (k, *shape):
        got = tuple(advs.shape) if isinstance(advs, Tensor) else type(advs).__name__
        raise AttackError(
            f"attack {name!r} returned {got} for {k} budget(s) of images {shape}; an attack returns "
            f"adversarial images of the input's shape (B, C, H, W)"
        )
    if advs.dtype != images.dtype:
        raise AttackError(
            f"attack {name!r} returned {advs.dtype} images for {images.dtype} inputs; return the input's dtype"
        )
    if not bool(torch.isfinite(advs).all()):
        raise AttackError(f"attack {name!r} returned images with NaN or infinite values")
    lo, hi = float(advs.min()), float(advs.max())
    if lo < 0 or hi > 1:
        raise AttackError(f"attack {name!r} returned values in [{lo:.4g}, {hi:.4g}]; images are in [0, 1] (clamp them)")
    for i, e in enumerate(eps):
        delta = (advs[i] - images).abs()
        linf = float(delta.amax()) * 255 if delta.numel() else 0.0
        if linf > e * 255 + _BUDGET_SLACK:
            raise AttackError(
                f"attack {name!r} exceeded its budget: L-inf {linf:.4g} levels at eps {e * 255:.4g} "
                f"levels; an attack must project onto the eps-ball"
            )
        if mask is not None:
            off = delta.amax(1)[~mask.to(delta.device)]
            if off.numel() and float(off.max()) > 0:
                raise AttackError(f"attack {name!r} changed pixels outside the restriction mask (mode 'during')")
    return advs


def transformed_outcome(
    model: Any,
    outcome: BatchOutcome,
    images: Tensor,
    transform: Callable[..., Tensor],
    *,
    goal: Goal,
    seeds: Sequence[int],
    batch_size: int | None = None,
    instance_ids: Tensor | Sequence[Tensor | None] | None = None,
) -> tuple[BatchOutcome, Tensor]:
    """The outcome of a batch after ``transform`` (a ``segattack.transforms.Transform``: (B, 3, H, W) in [0, 1] ->
    the same, 8-bit), and the transformed clean images T(clean) (B, 3, H, W).

    The returned outcome's ``pred`` is model(T(clean)), its labels the goal's labels of that prediction (hide: its
    nearest-other-class target), its ``advs``/``preds`` per mode T(adv) (K, B, 3, H, W) and model(T(adv)), and its
    instances those of model(T(clean)); ``measure`` on it gives hidden and kept against model(T(clean)). Random
    transforms (noise) draw from a CPU ``torch.Generator`` seeded with ``seeds[j]`` for image j, afresh for T(clean)
    and for each T(adv), so the clean and every adversarial image of one image get the identical draw (the same on
    every device).
    """
    b = images.shape[0]
    if len(seeds) != b:
        raise InputError(f"seeds gives {len(seeds)} seeds for {b} images; give one per image")

    def apply(x: Tensor, j: int) -> Tensor:
        gen = torch.Generator().manual_seed(int(seeds[j]))  # on the CPU: the same draw on every device
        return transform(x, generator=gen)

    with torch.no_grad():
        clean_t = torch.cat([apply(images[j : j + 1], j) for j in range(b)])
        pred_t = model.predict(clean_t, batch_size=batch_size)
        advs: dict[str, Tensor] = {}
        for m, a in outcome.advs.items():
            if m not in outcome.preds:
                continue
            k = a.shape[0]
            advs[m] = torch.stack([torch.cat([apply(a[i, j : j + 1], j) for j in range(b)]) for i in range(k)])
        h, w = pred_t.shape[-2:]
        preds = {
            m: model.predict(a.flatten(0, 1), batch_size=batch_size).view(a.shape[0], b, h, w) for m, a in advs.items()
        }
    labels, no_target = outcome.labels, None
    if isinstance(goal, HideGoal):
        # an image that T turned all class has no target: its labels are its prediction and its target_hit NaN
        no_target = hidden_mask(pred_t, goal.class_ids).flatten(1).all(1).tolist()
        labels = pred_t.clone()
        has = [j for j in range(b) if not no_target[j]]
        if has:
            labels[has] = goal.labels(pred_t[has], None)
    out = BatchOutcome(
        pred=pred_t, labels=labels, advs=advs, preds=preds, no_target=no_target,
        **clean_instances(goal, pred_t, instance_ids),
    )  # fmt: skip
    return out, clean_t


def measure(
    goal: Goal,
    outcome: BatchOutcome,
    mode: str,
    k: int,
    *,
    num_classes: int,
    ignore_index: int = 255,
    instance_threshold: float = DEFAULT_THRESHOLD,
) -> list[dict[str, Any]]:
    """Per-image measures of budget ``k`` in ``mode`` (one dict per image of the batch).

    Hide: ``fooled``, ``preserved``, ``target_hit``, ``class_pixels``, and the instance counts of
    ``segattack.instances.instance_rows`` (``instances``, ``instances_hidden``, per size bin, and ``gt_instances*``
    where the outcome has ground-truth instances; an instance is hidden when at least ``instance_threshold`` of its
    pixels are no longer the class). Untargeted: ``accuracy`` and ``confusion`` (sparse triples) of the adversarial
    prediction against the labels, and ``clean_accuracy``/``clean_confusion`` of the clean prediction.
    """
    adv_pred = outcome.preds[mode][k]
    if isinstance(goal, HideGoal):
        met = hiding_metrics(outcome.pred, adv_pred, class_id=goal.class_ids, target=outcome.labels)
        rows: list[dict[str, Any]] = list(met.rows())
        for j, none in enumerate(outcome.no_target or ()):
            if none:
                rows[j]["target_hit"] = math.nan
        inst = instance_rows(
            outcome.pred, adv_pred, class_id=goal.class_ids, threshold=instance_threshold,
            clean_components=outcome.components, gt=outcome.gt,
        )  # fmt: skip
        for row, extra in zip(rows, inst, strict=True):
            row.update(extra)
        return rows
    rows = []
    for j in range(adv_pred.shape[0]):
        ref = outcome.labels[j]
        cm = confusion_matrix(adv_pred[j], ref, num_classes=num_classes, ignore_index=ignore_index)
        clean = confusion_matrix(outcome.pred[j], ref, num_classes=num_classes, ignore_index=ignore_index)
        rows.append(
            {
                "accuracy": pixel_accuracy(cm),
                "clean_accuracy": pixel_accuracy(clean),
                "confusion": sparse_confusion(cm),
                "clean_confusion": sparse_confusion(clean),
            }
        )
    return rows
