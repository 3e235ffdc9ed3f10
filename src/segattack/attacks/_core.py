"""Shared machinery of the iterative sign-gradient attacks: validation, 8-bit level arithmetic, one step.

Internally the attacks work in 8-bit levels: the clean image as ``X = 255 * images`` (rounded to whole levels when
the images are 8-bit representable) and the perturbation ``D`` in levels. Steps of whole levels and budgets of whole
levels then keep ``X + D`` integral, so the adversarial image ``(X + D) / 255`` is exactly what an 8-bit PNG of it
loads back as.

Expectation over Transformation (EOT; Athalye, Engstrom, Ilyas and Kwok 2018, "Synthesizing Robust Adversarial
Examples") lives here too, once for every attack built on ``objective_and_grad``: with ``Problem.eot`` set, the model
sees ``T(x_adv)`` for random draws ``T`` from a list of survival transforms (``segattack.transforms``), and the
objective, its gradient and the success are averages over the draws (see ``EOT``).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..errors import InputError, InputTypeError
from ..metrics import pixel_success
from ..models import PixelModel, check_images, classes_of
from ..transforms import Transform, parse_transforms

Model = Callable[[Tensor], Tensor]

#: Images whose values are within this many levels of whole levels count as 8-bit images.
_LEVEL_TOL = 1e-3


def as_model(model: Model) -> Model:
    """A bare ``nn.Module`` is wrapped in a ``PixelModel`` (no normalisation) so it runs frozen in eval mode."""
    if isinstance(model, nn.Module) and not isinstance(model, PixelModel):
        return PixelModel(model)
    if not callable(model):
        raise InputTypeError(f"model must be a PixelModel or a callable images -> logits, got {type(model).__name__}")
    return model


def to_levels(images: Tensor) -> Tensor:
    """(B, C, H, W) in [0, 1] -> the same in levels (0..255), rounded exactly when the images are 8-bit."""
    levels = images.detach() * 255
    rounded = levels.round()
    if levels.numel() and float((levels - rounded).abs().max()) <= _LEVEL_TOL:
        return rounded
    return levels


def levels_of(value: float) -> float:
    """A budget or step in [0, 1] units -> levels, snapped to a whole level when within 1e-6 of one."""
    lv = float(value) * 255.0
    return float(round(lv)) if abs(lv - round(lv)) < 1e-6 else lv


#: The ``seed`` option of the attacks that draw random numbers: None (torch's global RNG), an int (one seed for every
#: image of the batch) or one int per image (what the experiment passes, so that an image's draws never depend on its
#: batch, on a resume or on the number of processes).
SeedOption = int | Sequence[int] | None


def mix_seed(*parts: object) -> int:
    """A 63-bit seed derived from ``parts`` (ints, floats, strings) by SHA-256: the same parts give the same seed on
    every machine and process, and different parts independent ones.

    >>> mix_seed(0, "val_000001", "pgd") == mix_seed(0, "val_000001", "pgd"), mix_seed(0, "a") != mix_seed(0, "b")
    (True, True)
    """
    text = "\x1f".join(repr(float(p)) if isinstance(p, float) else str(p) for p in parts)
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big") >> 1


def check_seed(seed: object, b: int) -> list[int] | None:
    """The ``seed`` option as one int per image of a batch of ``b`` (None: torch's global RNG)."""
    if seed is None:
        return None
    if isinstance(seed, int) and not isinstance(seed, bool):
        return [seed] * b
    if isinstance(seed, Tensor):
        seed = seed.tolist()
    if (isinstance(seed, Sequence) and not isinstance(seed, str) and len(seed) == b
            and all(isinstance(s, int) and not isinstance(s, bool) for s in seed)):  # fmt: skip
        return list(seed)
    raise InputTypeError(f"seed takes None, an integer or one integer per image ({b}), got {seed!r}")


def paper_steps(eps_levels: float) -> int:
    """Iterations of Kurakin et al. (2016) as used by Fischer et al. (2017): n = min(eps + 4, 1.25 eps), eps in levels.

    Rounding rule: the ceiling, so an attack never runs fewer iterations than the formula asks for, and every budget
    gets at least one iteration beyond the first moment its boundary can be reached (eps=10 -> 13, eps=1 -> 2).

    Examples:
        >>> [paper_steps(e) for e in (1, 2, 4, 10, 16, 20)]
        [2, 3, 5, 13, 20, 24]
    """
    if not eps_levels > 0:
        raise InputError(f"eps must be positive, got {eps_levels} levels")
    return math.ceil(round(min(eps_levels + 4.0, 1.25 * eps_levels), 6))


def check_positive(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
        raise InputError(f"{name} must be a positive number in [0, 1] image units (e.g. {name}=10/255), got {value!r}")
    if value > 1:
        raise InputError(
            f"{name}={value} exceeds 1, the whole image range; the Python API takes [0, 1] units: "
            f"write {name}={value}/255"
        )
    return float(value)


def check_labels(labels: Tensor, images: Tensor, *, name: str = "labels") -> None:
    """Validate a (B, H, W) integer label map (a target, or the labels an untargeted attack moves away from)."""
    if not isinstance(labels, Tensor):
        raise InputTypeError(f"{name} must be a torch.Tensor of shape (B, H, W), got {type(labels).__name__}")
    if labels.is_floating_point() or labels.dtype == torch.bool:
        raise InputTypeError(f"{name} must hold integer class ids (int64), got {labels.dtype}")
    expected = (images.shape[0], *images.shape[-2:])
    if tuple(labels.shape) != expected:
        raise InputError(
            f"{name} has shape {tuple(labels.shape)} but the images need {expected} (B, H, W); "
            "build it from the prediction on these images, e.g. hide_class_target(model.predict(images), class_id=...)"
        )


def check_flag(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise InputTypeError(f"{name} must be True or False, got {value!r}")
    return value


def check_count(name: str, value: object, *, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InputError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


def eps_per_image(eps: float | Tensor, b: int) -> list[float]:
    """``eps`` (a float or a (B,) tensor, [0, 1] units) -> B budgets in levels, validated."""
    if isinstance(eps, Tensor):
        if eps.shape not in ((b,), ()):
            raise InputError(f"eps as a tensor must have shape (B,) = ({b},), got {tuple(eps.shape)}")
        values = [check_positive("eps", float(e)) for e in eps.reshape(-1).expand(b).tolist()]
    else:
        values = [check_positive("eps", eps)] * b
    return [levels_of(e) for e in values]


def check_mask(mask: Tensor | None, images: Tensor) -> Tensor | None:
    """Validate a (B, H, W) or (B, 1, H, W) boolean mask; return it as (B, 1, H, W) bool."""
    if mask is None:
        return None
    if not isinstance(mask, Tensor) or mask.dtype != torch.bool:
        raise InputTypeError(
            f"mask must be a boolean tensor (B, H, W), e.g. pred == 11; got {getattr(mask, 'dtype', type(mask))}"
        )
    if mask.ndim == 3:
        mask = mask[:, None]
    expected = (images.shape[0], 1, *images.shape[-2:])
    if tuple(mask.shape) != expected:
        raise InputError(f"mask has shape {tuple(mask.shape)}; expected (B, H, W) = {(expected[0], *expected[2:])}")
    return mask.to(images.device)


def check_logits_for_target(logits: Tensor, images: Tensor, target: Tensor, ignore_index: int) -> None:
    if logits.ndim != 4 or logits.shape[0] != images.shape[0] or logits.shape[-2:] != images.shape[-2:]:
        raise InputError(
            f"model returned shape {tuple(logits.shape)} for images {tuple(images.shape)}; it must return logits "
            "(B, K, H, W) at input size (wrap the network in segattack.PixelModel)"
        )
    k = logits.shape[1]
    valid = (target == ignore_index) | ((target >= 0) & (target < k))
    if not bool(valid.all()):
        bad = target[~valid].unique()[:5].tolist()
        raise InputError(f"target holds class ids {bad} outside 0..{k - 1} (the model has {k} classes)")


def bounds(base: Tensor, eps: Tensor, mask: Tensor | None) -> tuple[Tensor, Tensor]:
    """Bounds (lo, hi) in levels on the perturbation D for clean levels ``base``: |D| <= eps (per sample, (B,1,1,1)
    or scalar), 0 <= base + D <= 255, and D = 0 outside ``mask``; one clamp to [lo, hi] projects onto all three."""
    lo = torch.maximum(-eps, -base)
    hi = torch.minimum(eps, 255 - base)
    if mask is not None:
        zero = torch.zeros((), dtype=base.dtype, device=base.device)
        lo = torch.where(mask, lo, zero)
        hi = torch.where(mask, hi, zero)
    return lo, hi


#: The ``eot`` option of the iterative attacks: a transforms spec, a list of transforms, or None (off).
EOTOption = str | Sequence[Transform] | None

#: Draws per step when an attack's ``eot`` option is set and ``eot_samples`` is not given.
EOT_SAMPLES = 8


@dataclass(frozen=True)
class EOT:
    """Expectation over Transformation (Athalye et al. 2018): at every step the attack ascends the average of its
    objective over ``draws`` random draws; each draw picks, per image, one of ``transforms`` uniformly (and, for
    ``noise``, a fresh noise sample) and feeds ``transform.differentiable(x_adv)`` to the model (JPEG by BPDA).

    Draws come from the attack's per-image generators where it was given a ``seed`` (``Problem.restart``), else from
    torch's global RNG, like the random start of ``pgd``. A single deterministic transform (``identity``, ``jpeg``,
    ``resize``, ``blur``) needs no
    sampling: ``draws`` is then 1 whatever ``samples`` says, and the attack is deterministic (a batch equals its
    single runs); with ``identity`` alone it is the attack without EOT, bit for bit.
    """

    transforms: tuple[Transform, ...]
    samples: int

    @property
    def draws(self) -> int:
        """Forward (and backward) passes per evaluation: 1 for one deterministic transform, else ``samples``."""
        if len(self.transforms) == 1 and not self.transforms[0].random:
            return 1
        return self.samples

    @property
    def spec(self) -> str:
        """The canonical transforms spec, e.g. ``'jpeg:75,blur:1'``."""
        return ",".join(t.name for t in self.transforms)

    def apply(self, adv: Tensor, generators: Sequence[torch.Generator] | None = None) -> Tensor:
        """One draw: (B, C, H, W) in [0, 1] -> each image through one transform picked uniformly at random (the
        same values as the transform's ``__call__``), differentiable with respect to ``adv``. ``generators``: one
        CPU generator per image (its choice and its noise come from it alone); None: torch's global RNG."""
        n = len(self.transforms)
        if generators is not None:
            outs = []
            for j, gen in enumerate(generators):
                k = int(torch.randint(n, (1,), generator=gen)) if n > 1 else 0
                t = self.transforms[k]
                one = adv[j : j + 1]
                outs.append(t.differentiable(one, generator=gen) if t.random else t.differentiable(one))
            return torch.cat(outs)
        if n == 1:
            return self.transforms[0].differentiable(adv)
        choice = torch.randint(n, (adv.shape[0],))
        order: list[Tensor] = []
        parts: list[Tensor] = []
        for k in choice.unique().tolist():
            idx = (choice == k).nonzero()[:, 0]
            order.append(idx)
            parts.append(self.transforms[k].differentiable(adv[idx.to(adv.device)]))
        if len(parts) == 1:
            return parts[0]
        inverse = torch.argsort(torch.cat(order)).to(adv.device)
        return torch.cat(parts)[inverse]


def make_eot(eot: object, samples: object = EOT_SAMPLES) -> EOT | None:
    """The ``eot`` and ``eot_samples`` options of an attack -> an ``EOT`` (None: off).

    ``eot``: None, a transforms spec (``"jpeg:75,blur:1"``, see ``segattack.transforms.parse_transforms``) or a
    sequence of ``Transform``; ``samples``: draws per step, an integer >= 1. ValueError/TypeError naming the
    problem otherwise.

    >>> make_eot("jpeg:75,noise:2", 4).draws, make_eot("jpeg:75", 4).draws, make_eot(None, 4)
    (4, 1, None)
    """
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise InputError(f"eot_samples must be an integer >= 1 (random draws per step), got {samples!r}")
    if eot is None:
        return None
    if isinstance(eot, Transform):
        transforms = [eot]
    elif isinstance(eot, str):
        transforms = parse_transforms(eot)
    elif isinstance(eot, Sequence) and all(isinstance(t, Transform) for t in eot):
        transforms = list(eot)
        if not transforms:
            raise InputError("eot lists no transform; give at least one, e.g. eot='jpeg:75,blur:1', or None for off")
        names = [t.name for t in transforms]
        if len(set(names)) != len(names):
            raise InputError(f"eot lists a transform twice ({', '.join(names)}); give each transform once")
    else:
        raise InputTypeError(
            f"eot takes a transforms spec such as 'jpeg:75,blur:1', a list of segattack.transforms.Transform, or "
            f"None, got {eot!r}"
        )
    return EOT(tuple(transforms), samples)


#: A pixel-wise loss: (logits (B, K, H, W), labels (B, H, W) with ignored pixels already replaced by class 0,
#: valid (B, H, W) bool, targeted, step t, steps T) -> (B, H, W) losses. Invalid pixels are zeroed by the caller.
PixelLoss = Callable[..., Tensor]


@dataclass
class Problem:
    """A validated attack problem in 8-bit levels, shared by every iterative attack.

    ``base``: clean images in levels; ``eps``: (B, 1, 1, 1) budgets in levels; ``lo``/``hi``: the one clamp for
    budget, image range and mask (``bounds``); ``labels``: (B, H, W) with ignored pixels set to 0 and ``valid``
    marking the counted ones. The attack ascends ``objective`` (its loss, negated when targeted); with ``eot``,
    its average over random transforms of the adversarial image (``EOT``).
    """

    model: Model
    images: Tensor
    labels: Tensor
    valid: Tensor
    base: Tensor
    eps: Tensor
    eps_levels: list[float]
    lo: Tensor
    hi: Tensor
    mask: Tensor | None
    targeted: bool
    ignore_index: int
    raw_labels: Tensor
    all_valid: bool = False
    eot: EOT | None = None
    seeds: list[int] | None = None
    generators: list[torch.Generator] | None = None

    def restart(self, index: int) -> None:
        """Begin restart ``index``: with ``seeds``, every image gets a fresh CPU generator seeded from (its seed, its
        budget, ``index``), from which its random start and its EOT draws of this restart come; so an image's draws
        never depend on the other images of its batch. Without seeds, torch's global RNG is used."""
        if self.seeds is not None:
            pairs = zip(self.seeds, self.eps_levels, strict=True)
            self.generators = [torch.Generator().manual_seed(mix_seed(s, e, index)) for s, e in pairs]

    @property
    def batch(self) -> int:
        return int(self.images.shape[0])

    def per_image(self, values: Sequence[float] | float) -> Tensor:
        """Per-image values as a (B, 1, 1, 1) tensor in the images' dtype and device."""
        if isinstance(values, int | float):
            values = [float(values)] * self.batch
        return torch.tensor(list(values), dtype=self.base.dtype, device=self.base.device).view(-1, 1, 1, 1)

    def adv(self, delta: Tensor) -> Tensor:
        """The adversarial images (B, C, H, W) in [0, 1] for a perturbation in levels."""
        return ((self.base + delta) / 255).to(self.images.dtype)

    def success(self, pred: Tensor) -> Tensor:
        """``metrics.pixel_success`` of a prediction, NaN (no counted pixel) as 0: (B,) float64."""
        return pixel_success(pred, self.raw_labels, targeted=self.targeted, ignore_index=self.ignore_index).nan_to_num(
            0.0
        )

    def random_start(self, generator: torch.Generator | None = None) -> Tensor:
        """A uniform random perturbation in [-eps, eps] (Madry et al. 2018), projected; whole levels where eps is
        a whole number of levels, so that 8-bit exactness survives the random start."""
        if generator is None and self.generators is not None:
            shape = self.base.shape[1:]
            u = torch.stack([torch.rand(shape, dtype=self.base.dtype, generator=g) for g in self.generators])
        else:
            u = torch.rand(self.base.shape, dtype=self.base.dtype, device="cpu", generator=generator)
        u = u.to(self.base.device)
        delta = (2 * u - 1) * self.eps
        whole = torch.tensor([float(e).is_integer() for e in self.eps_levels], device=self.base.device)
        whole = whole.view(-1, 1, 1, 1)
        delta = torch.where(whole, delta.round(), delta)
        return torch.clamp(delta, self.lo, self.hi)


def prepare(
    model: Model,
    images: Tensor,
    labels: Tensor,
    *,
    eps: float | Tensor,
    targeted: bool,
    mask: Tensor | None,
    ignore_index: int,
    eps_limit: float | None = None,
    eot: object = None,
    eot_samples: object = EOT_SAMPLES,
    seed: object = None,
) -> Problem:
    """Validate the common arguments of every attack (same checks and messages as ``illm``) into a ``Problem``;
    ``eot``/``eot_samples``: the attack's EOT options (``make_eot``); ``seed``: its ``SeedOption`` (call
    ``Problem.restart`` before each restart's draws)."""
    model = as_model(model)
    eot_plan = make_eot(eot, eot_samples)
    check_images(images)
    check_labels(labels, images)
    check_flag("targeted", targeted)
    if isinstance(ignore_index, bool) or not isinstance(ignore_index, int):
        raise InputTypeError(f"ignore_index must be an integer class id, got {ignore_index!r}")
    m = check_mask(mask, images)
    b = images.shape[0]
    seeds = check_seed(seed, b)
    eps_lv = eps_per_image(eps, b)
    base = to_levels(images)
    e_t = torch.tensor(eps_lv, dtype=base.dtype, device=base.device).view(b, 1, 1, 1)
    lo, hi = bounds(base, e_t, m)
    raw = labels.to(images.device)
    valid = raw != ignore_index
    return Problem(
        model=model,
        images=images,
        labels=torch.where(valid, raw, torch.zeros_like(raw)),
        valid=valid,
        base=base,
        eps=e_t,
        eps_levels=eps_lv,
        lo=lo,
        hi=hi,
        mask=m,
        targeted=targeted,
        ignore_index=ignore_index,
        raw_labels=raw,
        all_valid=bool(valid.all()),
        eot=eot_plan,
        seeds=seeds,
    )


def logits_at(problem: Problem, adv: Tensor, *, check: bool) -> Tensor:
    """The model's logits at ``adv``; on the first call (``check``) its output is validated against the labels."""
    model = problem.model
    logits = model(adv) if check or not isinstance(model, PixelModel) else model(adv, check=False)
    if check:
        check_logits_for_target(logits, problem.images, problem.raw_labels, problem.ignore_index)
    return logits


def _objective(problem: Problem, logits: Tensor, loss: PixelLoss, t: int, steps: int) -> Tensor:
    pix = loss(logits, problem.labels, valid=problem.valid, targeted=problem.targeted, t=t, steps=steps)
    if not problem.all_valid:  # skipped when nothing is ignored: the select costs about a tenth of a small model's pass
        pix = torch.where(problem.valid, pix, torch.zeros_like(pix))
    per_image = pix.flatten(1).sum(1)
    return -per_image if problem.targeted else per_image


def objective_and_grad(
    problem: Problem, delta: Tensor, loss: PixelLoss, *, t: int, steps: int, check: bool, predict: bool = True
) -> tuple[Tensor, Tensor, Tensor | None]:
    """One forward and one backward pass at ``base + delta`` (with ``problem.eot``: ``eot.draws`` of each, at
    random transforms of it, averaged).

    Returns the per-image objective (B,) (the loss summed over counted pixels, negated when targeted: attacks
    ascend it), its gradient in [0, 1] image units (B, C, H, W) and, with ``predict``, the success (B,) float64
    (``Problem.success`` of the prediction; with EOT its mean over the draws) at ``base + delta`` (None otherwise:
    the argmax over classes is not free).
    """
    eot = problem.eot
    if eot is None:
        adv = problem.adv(delta).requires_grad_(True)
        logits = logits_at(problem, adv, check=check)
        per_image = _objective(problem, logits, loss, t, steps)
        (grad,) = torch.autograd.grad(per_image.sum(), adv)
        return per_image.detach(), grad, problem.success(classes_of(logits)) if predict else None
    draws = eot.draws
    total: Tensor | None = None
    grad_sum: Tensor | None = None
    score: Tensor | None = None
    for d in range(draws):
        adv = problem.adv(delta).requires_grad_(True)
        logits = logits_at(problem, eot.apply(adv, problem.generators), check=check and d == 0)
        per_image = _objective(problem, logits, loss, t, steps)
        (grad,) = torch.autograd.grad(per_image.sum(), adv)
        now = problem.success(classes_of(logits)) if predict else None
        if total is None:
            total, grad_sum, score = per_image.detach(), grad, now
        else:
            assert grad_sum is not None
            total, grad_sum = total + per_image.detach(), grad_sum + grad
            score = None if now is None or score is None else score + now
    assert total is not None and grad_sum is not None
    if draws == 1:
        return total, grad_sum, score
    return total / draws, grad_sum / draws, None if score is None else score / draws


@torch.no_grad()
def predict_at(problem: Problem, delta: Tensor, *, check: bool = False) -> Tensor:
    """The prediction (B, H, W) at ``base + delta`` (untransformed, even with EOT): one forward pass, no backward."""
    return classes_of(logits_at(problem, problem.adv(delta), check=check))


@torch.no_grad()
def success_at(problem: Problem, delta: Tensor, *, check: bool = False) -> Tensor:
    """``Problem.success`` (B,) at ``base + delta``: one forward pass; with ``problem.eot`` its mean over
    ``eot.draws`` random transforms (that many forward passes)."""
    eot = problem.eot
    if eot is None:
        return problem.success(predict_at(problem, delta, check=check))
    adv = problem.adv(delta)
    scores = [
        problem.success(classes_of(logits_at(problem, eot.apply(adv, problem.generators), check=check and d == 0)))
        for d in range(eot.draws)
    ]
    return scores[0] if len(scores) == 1 else torch.stack(scores).mean(0)


class Best:
    """Per image, the perturbation with the highest ``Problem.success`` seen so far (the latest on a tie)."""

    def __init__(self, delta: Tensor, score: Tensor) -> None:
        self.delta = delta.clone()
        self.score = score.clone()

    def update(self, delta: Tensor, score: Tensor) -> None:
        better = score >= self.score
        if bool(better.any()):
            self.delta = torch.where(better.view(-1, 1, 1, 1).to(delta.device), delta, self.delta)
            self.score = torch.where(better, score, self.score)


def sign_ascent(
    problem: Problem,
    loss: PixelLoss,
    *,
    steps: Sequence[int],
    step_size: Tensor,
    start: Tensor,
    best: bool,
    score: bool = False,
    check: bool = True,
) -> tuple[Tensor, Tensor | None]:
    """The iterative sign-gradient method in levels: D <- clamp(D + step * sign(grad objective), lo, hi).

    ``check``: validate the model's output on the first step (off for the later segments of an eps sweep, whose
    first segment has checked the same model on the same images).

    ``steps``: iterations per image (an image stops at its own count); ``step_size``: (B, 1, 1, 1) levels;
    ``start``: the initial perturbation. With ``best`` the perturbation of the highest success per image is kept,
    at the cost of one more forward pass (the last iterate's prediction); ``score`` without ``best`` returns the
    last iterate with its success (the same extra forward pass), e.g. to pick the best of several restarts.

    Costs max(steps) forward+backward passes (+1 forward with ``best`` or ``score``), each times ``eot.draws`` with
    EOT (the success then averaged over the draws). Returns the perturbation and, with ``best`` or ``score``, the
    per-image success of the returned perturbation.
    """
    t_max = max(steps, default=0)
    uniform = len(set(steps)) == 1
    n_t = torch.tensor(list(steps), device=start.device).view(-1, 1, 1, 1)
    delta = start
    tracker: Best | None = None
    for t in range(t_max):
        _, grad, now = objective_and_grad(problem, delta, loss, t=t, steps=t_max, check=check and t == 0,
                                          predict=best)  # fmt: skip
        if now is not None:
            if tracker is None:
                tracker = Best(delta, now)
            else:
                tracker.update(delta, now)
        new = torch.clamp(delta + step_size * grad.sign_(), problem.lo, problem.hi)
        delta = new if uniform else torch.where(n_t > t, new, delta)
    if not (best or score):
        return delta, None
    last = success_at(problem, delta, check=t_max == 0)
    if tracker is None:
        return delta, last
    tracker.update(delta, last)
    return tracker.delta, tracker.score
