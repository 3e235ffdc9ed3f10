"""One batch through an attack: predict, target, attack every budget, restrict, predict again, measure.

``segattack run``, ``segattack attack`` and ``segattack demo`` all go through ``attack_batch`` and ``measure``; the
experiment loop around it keeps only grouping, resume and files.

Goals:

- ``HideGoal(class_ids)``: the paper's (Fischer et al. 2017). Labels = ``hide_class_target`` of the clean prediction,
  the attack is targeted; modes ``posthoc``/``during`` restrict the perturbation to the class pixels; measured with
  ``hiding_metrics``.
- ``UntargetedGoal()``: robustness under attack. Labels = the ground truth where the data set has it (else the clean
  prediction), the attack is untargeted; measured with pixel accuracy and a confusion matrix against those labels
  (mIoU under attack over a data set comes from the summed matrices, as ``segattack eval``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from .attacks import registry
from .attacks.illm import restrict
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
    and their predictions (K budgets, in the order given)."""

    pred: Tensor
    labels: Tensor
    advs: dict[str, Tensor]
    preds: dict[str, Tensor]


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
) -> BatchOutcome:
    """Attack ``images`` (B, 3, H, W) in [0, 1] at every budget in ``eps_levels`` (8-bit levels).

    Modes: ``full`` (the whole image), ``posthoc`` (the full perturbation kept on the goal's class pixels afterwards)
    and ``during`` (restricted during the optimisation: one more attack). ``keep``: modes whose images are made
    although they are not measured (Figure 1 needs ``full`` and ``posthoc``). The clean prediction ``pred`` is
    computed unless given.
    """
    if pred is None:
        pred = model.predict(images, batch_size=batch_size)
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
    return BatchOutcome(pred=pred, labels=labels, advs=advs, preds=preds)


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
    goal: Goal, outcome: BatchOutcome, mode: str, k: int, *, num_classes: int, ignore_index: int = 255
) -> list[dict[str, Any]]:
    """Per-image measures of budget ``k`` in ``mode`` (one dict per image of the batch).

    Hide: ``fooled``, ``preserved``, ``target_hit``, ``class_pixels``. Untargeted: ``accuracy`` and ``confusion``
    (sparse triples) of the adversarial prediction against the labels, and ``clean_accuracy``/``clean_confusion``
    of the clean prediction.
    """
    adv_pred = outcome.preds[mode][k]
    if isinstance(goal, HideGoal):
        met = hiding_metrics(outcome.pred, adv_pred, class_id=goal.class_ids, target=outcome.labels)
        return met.rows()
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
