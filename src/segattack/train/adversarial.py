"""Adversarial training: the attack a run trains against, the adversarial images of a training batch, the robust
validation and the record of the settings in the model card.

A training step with adversarial training on replaces the first ``adversarial_count(share, B)`` images of its
augmented batch (the batch order is a fresh random permutation every epoch, so these are a random subset) by the
attack's adversarial images, untargeted against the ground-truth labels (ignore index 255 left out of the loss), at
``eps`` in [0, 1] units. ``share`` 1.0 trains on adversarial images only (PGD-AT of Madry et al. 2018; PIR-AT of
Croce et al. 2024), 0.5 on half clean and half adversarial ones (SegPGD-AT of Gu et al. 2022, DDC-AT).

The examples are made on ``segattack.models.PixelModel`` wrapping the network being trained with its normalisation,
as every attack sees a network: in eval mode with parameter gradients off, the network's train/eval flags and
``requires_grad`` restored after every pass, so the training step that follows runs in train mode as before. Eval
mode is the choice here because (1) the attack's passes must not move BatchNorm's running statistics (in train mode
every one of the K passes would update them with statistics of half-made adversarial batches, and a model would
then be evaluated with statistics no training batch had); (2) the attack should fool the deterministic network that
is deployed and evaluated, whose BatchNorm normalises with running statistics rather than with the statistics of the
batch being attacked; (3) dropout would make the attack's gradient a random draw per pass, a weaker and noisier
attack, and its draws would consume the global random stream. The training step itself then trains, in train mode
(batch statistics, dropout), on those images.

Random draws: the attack's random start of image ``i`` of step ``t`` comes from its own generator seeded by
``mix_seed(seed, "adversarial", t, i)``, never from the global RNG, so a resumed run makes the same examples as an
uninterrupted one; the robust validation seeds image ``j`` of the validation subset with
``mix_seed(seed, "robust-val", j)``, the same at every validation, so that the curve compares like with like.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ..attacks import mix_seed
from ..data.labels import IGNORE_INDEX
from ..errors import ConfigError, about_field
from ..evaluation import EvalResult
from ..metrics import confusion_matrix
from ..models import PixelModel
from ..pipeline import AttackSpec

__all__ = [
    "VAL_ATTACK", "VAL_STEPS", "EXAMPLES_MODE", "Adversarial", "parse_attack", "adversarial_count",
    "adversarial_images", "robust_validation", "card_record",
]  # fmt: skip

#: The cheap attack of the robust validation: PGD with this many steps at the training eps (its own step rule).
VAL_ATTACK = "pgd"
VAL_STEPS = 10
#: How the network runs while the examples are made (recorded in the model card; see the module docstring).
EXAMPLES_MODE = (
    "eval: BatchNorm normalises with its running statistics and does not update them, dropout is off, parameter "
    "gradients are off (segattack.models.PixelModel); the training step then runs in train mode"
)


def parse_attack(text: str) -> tuple[str, str | None]:
    """``"segpgd"`` -> ("segpgd", None); ``"pgd:js"`` -> ("pgd", "js"): an attack name and the loss it is given."""
    name, sep, loss = text.strip().partition(":")
    if not name.strip() or (sep and not loss.strip()):
        raise ConfigError(f"adversarial takes ATTACK or ATTACK:LOSS, e.g. pgd or segpgd or apgd:js; got {text!r}")
    return name.strip(), loss.strip() or None


@dataclass(frozen=True)
class Adversarial:
    """A run's adversarial training, checked: the attack (``spec``, its steps, step size and loss bound), the budget
    ``eps_levels`` (8-bit levels; ``eps`` in [0, 1] units), the ``share`` of every batch made adversarial and the
    validation subset's size; ``val_spec`` is the robust validation's PGD-10."""

    spec: AttackSpec
    loss: str | None
    eps_levels: float
    steps: int
    step_size_levels: float | None
    share: float
    val_images: int
    val_spec: AttackSpec

    @property
    def eps(self) -> float:
        return self.eps_levels / 255

    @classmethod
    def check(cls, attack: str, *, eps: Any, steps: Any, step_size: Any, share: Any, val_images: Any) -> Adversarial:
        """The adversarial settings of a ``TrainConfig`` checked, each refusal a ``ConfigError`` tagged with its
        field (``adversarial``, ``adv_eps``, ``adv_steps``, ``adv_step_size``, ``adv_share``, ``adv_val_images``):
        an unknown attack, a loss it does not take, a targeted-only attack (``illm``), a budget that is not a
        positive number of 8-bit levels up to 255, fewer than one step, a share outside (0, 1]."""
        from ..experiment.config import check_eps  # the one check of budgets in levels (heavy: imported here)

        with about_field("adversarial"):
            if not isinstance(attack, str):
                raise ConfigError(f"adversarial takes an attack name (ATTACK or ATTACK:LOSS), got {attack!r}")
            name, loss = parse_attack(attack)
            base = AttackSpec(name, {"loss": loss} if loss is not None else {})
            base.check_goal(targeted=False)  # illm is targeted only
        with about_field("adv_eps"):
            if eps is None:
                raise ConfigError("adversarial training needs a budget: adv_eps (--adv-eps) in 8-bit levels, e.g. 4")
            (eps_levels,) = check_eps(eps, what="adv_eps")
        with about_field("adv_steps"):
            if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
                raise ConfigError(f"adv_steps must be an integer >= 1 (attack iterations), got {steps!r}")
        with about_field("adv_step_size"):
            if step_size is not None and (
                isinstance(step_size, bool) or not isinstance(step_size, int | float)
                or not (math.isfinite(step_size) and 0 < step_size <= 255)
            ):  # fmt: skip
                raise ConfigError(
                    f"adv_step_size is in 8-bit levels (1 = 1/255), in (0, 255], or None for the attack's own rule; "
                    f"got {step_size!r}"
                )
            options = {**base.options, "steps": steps}
            if step_size is not None:
                options["step_size"] = step_size / 255
            spec = AttackSpec(base.name, options)
        with about_field("adv_share"):
            if (isinstance(share, bool) or not isinstance(share, int | float) or not math.isfinite(share)
                    or not 0 < share <= 1):  # fmt: skip
                raise ConfigError(f"adv_share must lie in (0, 1] (1: every image adversarial), got {share!r}")
        with about_field("adv_val_images"):
            if isinstance(val_images, bool) or not isinstance(val_images, int) or val_images < 1:
                raise ConfigError(f"adv_val_images must be an integer >= 1, got {val_images!r}")
        return cls(
            spec=spec, loss=loss, eps_levels=float(eps_levels), steps=steps,
            step_size_levels=None if step_size is None else float(step_size), share=float(share),
            val_images=val_images, val_spec=AttackSpec(VAL_ATTACK, {"steps": VAL_STEPS}),
        )  # fmt: skip


def adversarial_count(share: float, batch: int) -> int:
    """How many images of a batch of ``batch`` are made adversarial: ``share * batch`` rounded half up, at least one.

    >>> adversarial_count(1.0, 8), adversarial_count(0.5, 8), adversarial_count(0.5, 3), adversarial_count(0.1, 4)
    (8, 4, 2, 1)
    """
    return min(batch, max(1, math.floor(share * batch + 0.5)))


def adversarial_images(
    model: PixelModel, images: Tensor, labels: Tensor, *, adv: Adversarial, seed: int, step: int
) -> Tensor:
    """The images (B, 3, h, w) in [0, 1] that training step ``step`` trains on: the first
    ``adversarial_count(adv.share, B)`` of ``images`` replaced by ``adv.spec``'s untargeted adversarial images
    against ``labels`` (B, h, w) (255 ignored) at ``adv.eps``, the others as they are. ``model``: the network being
    trained wrapped in ``PixelModel`` (eval mode and frozen parameters during each pass, its flags restored after
    every pass). Image ``i``'s random draws are seeded by ``mix_seed(seed, "adversarial", step, i)``."""
    n = adversarial_count(adv.share, images.shape[0])
    seeds = [mix_seed(seed, "adversarial", step, i) for i in range(n)]
    made = adv.spec.sweep(model, images[:n], labels[:n], eps=[adv.eps], targeted=False, seed=seeds)[0].detach()
    if n == images.shape[0]:
        return made
    return torch.cat([made, images[n:]])


def robust_validation(
    model: PixelModel,
    source: Any,
    *,
    adv: Adversarial,
    seed: int,
    num_classes: int,
    batch_size: int,
    device: torch.device,
) -> EvalResult:
    """Confusion matrix, mIoU and pixel accuracy under ``adv.val_spec`` (PGD-10, untargeted against the ground
    truth, 255 ignored) at ``adv.eps`` on the first ``adv.val_images`` items of ``source`` (a ``batches.Source``:
    uint8 images, train-id labels); image ``j`` is seeded by ``mix_seed(seed, "robust-val", j)``."""
    n = min(adv.val_images, len(source))
    cm = torch.zeros(num_classes, num_classes, dtype=torch.int64)
    pending: list[tuple[int, Tensor, Tensor]] = []

    def flush() -> None:
        nonlocal cm
        if not pending:
            return
        images = torch.stack([im for _, im, _ in pending]).to(device).float() / 255
        labels = torch.stack([lb for _, _, lb in pending]).to(device)
        seeds = [mix_seed(seed, "robust-val", j) for j, _, _ in pending]
        x = adv.val_spec.sweep(model, images, labels, eps=[adv.eps], targeted=False, seed=seeds)[0]
        pred = model.predict(x)
        cm += confusion_matrix(pred, labels, num_classes=num_classes, ignore_index=IGNORE_INDEX).cpu()
        pending.clear()

    for j in range(n):
        image, label = source[j]
        if pending and pending[0][1].shape != image.shape:
            flush()  # a batch holds images of one size
        pending.append((j, image, label))
        if len(pending) == batch_size:
            flush()
    flush()
    return EvalResult(confusion=cm, images=n)


def card_record(adv: Adversarial) -> dict[str, Any]:
    """The adversarial settings as the model card records them (budgets and steps in 8-bit levels)."""
    return {
        "attack": adv.spec.name,
        "loss": adv.loss if adv.loss is not None else adv.spec.entry.options.get("loss"),
        "eps_levels": adv.eps_levels,
        "steps": adv.steps,
        "step_size_levels": adv.step_size_levels,
        "step_size": "given"
        if adv.step_size_levels is not None
        else "the attack's own rule (pgd and segpgd: 2.5 eps / steps)",
        "share": adv.share,
        "adversarial_images": "the first round(share * batch) of each augmented batch (half up, at least one)",
        "targeted": False,
        "labels": "ground truth, 255 ignored",
        "examples_mode": EXAMPLES_MODE,
        "seeds": "image i of step t: mix_seed(seed, 'adversarial', t, i)",
        "validation": {
            "attack": VAL_ATTACK,
            "steps": VAL_STEPS,
            "eps_levels": adv.eps_levels,
            "images": adv.val_images,
        },  # fmt: skip
    }
