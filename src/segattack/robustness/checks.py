"""Checks against gradient masking for a robust segmentation model (Carlini et al. 2019, "On evaluating adversarial
robustness", Sec. 5): an evaluation that reports robustness should also show that

1. accuracy falls to near 0 at a large budget (an attack that cannot break the model at 32/255 is not working);
2. more iterations never raise robust accuracy;
3. a transfer attack (crafted on another model, evaluated on this one) is weaker than the white-box attack;
4. uniform random noise of the same eps barely lowers accuracy (much less than the white-box attack).

``masking_checks`` measures the four as pixel accuracies (pooled over the counted pixels of all images, untargeted
against the ground truth) and ``MaskingChecks.failures`` says which fail. Every ``eps`` here is in [0, 1] units.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ..attacks import registry
from ..errors import InputError
from ..models import PixelModel

__all__ = ["MaskingChecks", "masking_checks", "pixel_accuracy_of", "noise_images"]


def pixel_accuracy_of(
    model: PixelModel, images: Tensor, truth: Tensor, *, ignore_index: int = 255, batch_size: int | None = None
) -> float:
    """Pixel accuracy of ``model`` on ``images`` (B, C, H, W) in [0, 1] against ``truth`` (B, H, W), pooled over
    every pixel that is not ``ignore_index`` (each pixel weighs the same, whatever its image)."""
    pred = model.predict(images, batch_size=batch_size)
    keep = truth != ignore_index
    counted = int(keep.sum())
    if counted == 0:
        raise InputError("truth has no counted pixel (every pixel is ignore_index)")
    return int(((pred == truth) & keep).sum()) / counted


def noise_images(images: Tensor, *, eps: float, seed: int = 0) -> Tensor:
    """``images`` plus uniform noise in [-eps, eps] per pixel and channel, clipped to [0, 1] (a fixed seed)."""
    g = torch.Generator().manual_seed(seed)
    u = torch.rand(images.shape, generator=g, dtype=images.dtype).to(images.device)
    return (images + (2 * u - 1) * eps).clamp(0, 1)


@dataclass(frozen=True)
class MaskingChecks:
    """Pixel accuracies (pooled, in [0, 1]) of one model on one set of images, untargeted against the ground truth.

    ``steps``/``by_steps``: the attack at each iteration count with one fixed step size and the best iterate, so
    that a shorter run's iterates are the first iterates of a longer one; ``white_box`` is the last (the most
    steps). ``large``: the attack at ``large_eps``. ``transfer``: the examples crafted on the source model (None
    without one). ``noise``: uniform noise of ``eps``."""

    eps: float
    clean: float
    steps: tuple[int, ...]
    by_steps: tuple[float, ...]
    large_eps: float
    large: float
    noise: float
    transfer: float | None

    @property
    def white_box(self) -> float:
        return self.by_steps[-1]

    def failures(self, *, large_bound: float = 0.05, tolerance: float = 0.0, noise_share: float = 0.25) -> list[str]:
        """The checks that fail, one sentence each (empty: none). ``large_bound``: the highest accuracy at
        ``large_eps`` that counts as near 0; ``tolerance``: how much accuracy may rise with more steps (0: none, exact
        with the shared-prefix runs of ``masking_checks``); ``noise_share``: the largest accuracy drop under noise as
        a share of the white-box attack's drop."""
        out = []
        if self.large > large_bound:
            out.append(
                f"accuracy {self.large:.3f} at the large budget {255 * self.large_eps:g}/255 is above {large_bound}: "
                "the attack does not break the model where it must (gradient masking or a defect)"
            )
        for (n0, a0), (n1, a1) in zip(
            zip(self.steps, self.by_steps, strict=True),
            zip(self.steps[1:], self.by_steps[1:], strict=True),
            strict=False,
        ):
            if a1 > a0 + tolerance:
                out.append(f"accuracy rose from {a0:.4f} at {n0} steps to {a1:.4f} at {n1} steps")
        if self.transfer is not None and self.transfer <= self.white_box:
            out.append(
                f"the transfer attack (accuracy {self.transfer:.3f}) is at least as strong as the white-box attack "
                f"({self.white_box:.3f}): the gradients of this model mislead its own attack"
            )
        drop_noise, drop_attack = self.clean - self.noise, self.clean - self.white_box
        if drop_noise > noise_share * max(drop_attack, 0.0):
            out.append(
                f"uniform noise lowers accuracy by {drop_noise:.3f}, more than {noise_share} of the white-box "
                f"attack's drop ({drop_attack:.3f})"
            )
        return out


def _attack(
    attack: str, model: PixelModel, images: Tensor, truth: Tensor, *, eps: float, seed: int, batch_size: int | None,
    ignore_index: int, **options: Any,
) -> Tensor:  # fmt: skip
    entry = registry.resolve(attack)
    fn = entry.fn
    b = len(images)
    step = b if batch_size is None else batch_size
    out = []
    for s in range(0, b, step):
        extra: dict[str, Any] = {"seed": [seed + i for i in range(s, min(b, s + step))]} if entry.seeded else {}
        out.append(
            fn(model, images[s : s + step], truth[s : s + step], eps=eps, targeted=False, ignore_index=ignore_index,
               **entry.bound, **options, **extra)
        )  # fmt: skip
    return torch.cat(out)


def masking_checks(
    model: PixelModel,
    images: Tensor,
    truth: Tensor,
    *,
    eps: float,
    large_eps: float,
    steps: Sequence[int] = (5, 20, 50),
    step_size: float | None = None,
    source: PixelModel | None = None,
    attack: str = "pgd",
    seed: int = 0,
    ignore_index: int = 255,
    batch_size: int | None = None,
) -> MaskingChecks:
    """Measure the four checks of the module docstring on ``model`` with ``images`` (B, C, H, W) in [0, 1] and
    ``truth`` (B, H, W) class ids (``ignore_index`` not counted).

    ``attack``: a registered attack with ``steps``, ``step_size`` and the best iterate (default ``pgd``), run
    untargeted against ``truth``, image i seeded with ``seed + i``. At ``eps``, it runs ``steps`` (increasing) with
    one fixed ``step_size`` (default eps / 4, so that the shortest run of 5 steps can cross the ball): the same
    seed gives the same start and the same first iterates, and with the best iterate accuracy cannot rise with more
    steps unless the attack is defective. At ``large_eps`` it runs max(steps) steps of its default step rule.
    ``source``: a second model (e.g. the clean one) on which the transfer examples are crafted (max(steps) steps at
    ``eps``, the same fixed step size), evaluated on ``model``. ``batch_size``: images per attack call.
    """
    counts = tuple(int(n) for n in steps)
    if not counts or any(n < 1 for n in counts) or list(counts) != sorted(set(counts)):
        raise InputError(f"steps must be increasing positive counts, e.g. (5, 20, 50); got {tuple(steps)!r}")
    if not 0 < eps < large_eps <= 1:
        raise InputError(
            f"need 0 < eps < large_eps <= 1 in [0, 1] units (eps=8/255), got eps={eps}, large_eps={large_eps}"
        )
    if truth.shape != images.shape[:1] + images.shape[2:]:
        raise InputError(f"truth must be (B, H, W) for images {tuple(images.shape)}, got {tuple(truth.shape)}")
    size = eps / 4 if step_size is None else step_size
    common: dict[str, Any] = {"seed": seed, "batch_size": batch_size, "ignore_index": ignore_index}

    def acc(x: Tensor) -> float:
        return pixel_accuracy_of(model, x, truth, ignore_index=ignore_index, batch_size=batch_size)

    by_steps = tuple(
        acc(_attack(attack, model, images, truth, eps=eps, steps=n, step_size=size, **common)) for n in counts
    )
    large = acc(_attack(attack, model, images, truth, eps=large_eps, steps=counts[-1], **common))
    transfer = None
    if source is not None:
        transfer = acc(_attack(attack, source, images, truth, eps=eps, steps=counts[-1], step_size=size, **common))
    return MaskingChecks(
        eps=eps, clean=acc(images), steps=counts, by_steps=by_steps, large_eps=large_eps, large=large,
        noise=acc(noise_images(images, eps=eps, seed=seed)), transfer=transfer,
    )  # fmt: skip
