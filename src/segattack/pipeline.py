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

from .attacks import registry
from .attacks.illm import restrict
from .instances import DEFAULT_THRESHOLD, Components, components, gt_components, instance_rows
from .metrics import confusion_matrix, hiding_metrics, pixel_accuracy
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
    """An attack by registered name with its options (checked against the attack's signature)."""

    name: str = "illm"
    options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "options", registry.check_options(self.name, dict(self.options)))

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "options": {k: list(v) if isinstance(v, tuple) else v for k, v in self.options.items()},
        }

    def passes(self, eps_levels: float) -> int | None:
        """Gradient (backward) passes of one call at ``eps_levels``; None if the attack does not document them."""
        entry = registry.info(self.name)
        return entry.cost(eps_levels, **self.options).backward if entry.cost is not None else None


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
        raise ValueError("the untargeted goal has no class to restrict the perturbation to; use mode 'full' only")


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


def clean_instances(
    goal: Goal, pred: Tensor, instance_ids: Tensor | Sequence[Tensor | None] | None
) -> dict[str, Any]:
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
    eps_levels: Sequence[float],
    modes: Sequence[str] = ("full",),
    pred: Tensor | None = None,
    truth: Tensor | None = None,
    batch_size: int | None = None,
    keep: Sequence[str] = (),
    instance_ids: Tensor | Sequence[Tensor | None] | None = None,
    labels: Tensor | None = None,
    instances: Mapping[str, Any] | None = None,
) -> BatchOutcome:
    """Attack ``images`` (B, 3, H, W) in [0, 1] at every budget in ``eps_levels`` (8-bit levels).

    Modes: ``full`` (the whole image), ``posthoc`` (the full perturbation kept on the goal's class pixels afterwards)
    and ``during`` (restricted during the optimisation: one more attack). ``keep``: modes whose images are made
    although they are not measured (Figure 1 needs ``full`` and ``posthoc``). The clean prediction ``pred`` is
    computed unless given. ``instance_ids``: per image the ground-truth instance ids (H, W) (``segattack.instances``;
    None for an image without them), for the hide goal's ``gt_instances*`` measures. ``labels`` (the goal's labels
    of ``pred``: ``goal.labels(pred, truth)``) and ``instances`` (``clean_instances(goal, pred, instance_ids)``) may
    be given when they were computed beforehand (the experiment does so on its reader thread while the previous batch
    attacks).
    """
    if pred is None:
        pred = model.predict(images, batch_size=batch_size)
    if labels is None:
        labels = goal.labels(pred, truth)
    eps01 = [e / 255 for e in eps_levels]
    wanted = [m for m in ("full", "posthoc", "during") if m in modes or m in keep]
    mask = goal.restrict_mask(pred) if "posthoc" in wanted or "during" in wanted else None
    advs: dict[str, Tensor] = {}
    common = {"targeted": goal.targeted, **attack.options}
    if "full" in wanted or "posthoc" in wanted:
        advs["full"] = registry.sweep(attack.name, model, images, labels, eps=eps01, **common)
    if "posthoc" in wanted:
        assert mask is not None
        advs["posthoc"] = restrict(advs["full"], images, mask=mask)
    if "during" in wanted:
        advs["during"] = registry.sweep(attack.name, model, images, labels, eps=eps01, mask=mask, **common)
    k, b = len(eps01), images.shape[0]
    h, w = images.shape[-2:]
    preds = {m: model.predict(a.flatten(0, 1), batch_size=batch_size).view(k, b, h, w) for m, a in advs.items()}
    if instances is None:
        instances = clean_instances(goal, pred, instance_ids)
    return BatchOutcome(pred=pred, labels=labels, advs=advs, preds=preds, **instances)


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
        raise ValueError(f"seeds gives {len(seeds)} seeds for {b} images; give one per image")

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


def sparse_confusion(cm: Tensor) -> list[list[int]]:
    """A (K, K) confusion matrix as its non-zero ``[truth, prediction, count]`` triples (compact JSON)."""
    nz = cm.nonzero().tolist()
    return [[int(t), int(p), int(cm[t, p])] for t, p in nz]


def dense_confusion(triples: Sequence[Sequence[int]], num_classes: int) -> Tensor:
    """The inverse of ``sparse_confusion``: (K, K) int64."""
    cm = torch.zeros(num_classes, num_classes, dtype=torch.int64)
    for t, p, n in triples:
        cm[int(t), int(p)] += int(n)
    return cm


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
