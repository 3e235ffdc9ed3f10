"""Transfer attack: adversarial images crafted with a white-box attack on a surrogate model (or an ensemble of them)
and used against another model (Papernot, McDaniel and Goodfellow 2016, "Transferability in machine learning";
Liu, Chen, Liu and Song, ICLR 2017, "Delving into transferable adversarial examples and black-box attacks").

Its use here is Carlini et al.'s (2019, "On evaluating adversarial robustness", Sec. 5) check against gradient
masking: on an honest model the white-box attack on the model itself beats the examples transferred from another
model; where the transferred ones do better, the model's own gradients mislead its attack.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from typing import Any

from torch import Tensor, nn

from ..errors import InputError, InputTypeError
from ._core import Model, SeedOption, as_model
from .registry import AttackError, AttackInfo, Cost, check_options, register, resolve

__all__ = ["transfer", "SurrogateEnsemble", "surrogate_model", "DEFAULT_TRANSFER_ATTACK"]

#: The white-box attack run on the surrogate when ``white_box`` is not given.
DEFAULT_TRANSFER_ATTACK = "apgd"

#: A surrogate: one model (a ``PixelModel``, a bare ``nn.Module`` or a callable images -> logits) or several.
Surrogate = Model | Sequence[Model]


class SurrogateEnsemble:
    """Several models seen as one: (B, C, H, W) images in [0, 1] -> the mean of the members' logits (B, K, H, W).

    Logits are averaged, as Dong et al. (CVPR 2018, "Boosting adversarial attacks with momentum") found transfer
    best among averaging logits, probabilities (Liu et al. 2017's ensemble) or losses. Averaging log-probabilities
    gives the same attack: a member's log-softmax is its logits minus a per-pixel constant, and every loss, margin
    and argmax of the attacks is blind to per-pixel constants. Averaging probabilities would differ: a member whose
    softmax saturates would pass almost no gradient. Each member is a ``PixelModel``, a bare ``nn.Module``
    (wrapped in a ``PixelModel`` without normalisation) or a callable images -> logits at input size.
    """

    def __init__(self, models: Sequence[Model]) -> None:
        if len(models) < 2:
            raise InputError(f"an ensemble averages two or more models, got {len(models)}; pass one model as it is")
        self.models = tuple(as_model(m) for m in models)

    def __call__(self, images: Tensor) -> Tensor:
        total: Tensor | None = None
        for i, member in enumerate(self.models):
            logits = member(images)
            if total is not None and logits.shape != total.shape:
                raise InputError(
                    f"surrogate model {i} returned logits {tuple(logits.shape)} but model 0 returned "
                    f"{tuple(total.shape)}; an ensemble averages logits class by class, so its models must share "
                    "one label space (the same number of classes)"
                )
            total = logits if total is None else total + logits
        assert total is not None
        return total / len(self.models)

    def __len__(self) -> int:
        return len(self.models)


def _check_member(model: object, where: str) -> None:
    if isinstance(model, str | bytes | Tensor) or not (isinstance(model, nn.Module) or callable(model)):
        raise InputTypeError(
            f"{where} must be a model (a segattack.PixelModel, a torch.nn.Module or a callable images -> logits), "
            f"got {type(model).__name__}"
        )


def surrogate_model(surrogate: object) -> Model:
    """The ``surrogate`` option as one model: a model as it is (a bare ``nn.Module`` wrapped in a ``PixelModel``),
    a list of one model as that model, a list of several as their ``SurrogateEnsemble``. ``InputError`` naming
    the fix for None, an empty list or something that is not a model."""
    if surrogate is None:
        raise InputError(
            "transfer needs surrogate=: the model (or a list of models) to craft the examples on, e.g. "
            "transfer(model, images, labels, eps=8/255, surrogate=other_model); the target model is never queried"
        )
    if isinstance(surrogate, Sequence) and not isinstance(surrogate, str | bytes):
        members = list(surrogate)
        if not members:
            raise InputError("surrogate lists no model; give a model or a list of models to average")
        for i, m in enumerate(members):
            _check_member(m, f"surrogate[{i}]")
        return as_model(members[0]) if len(members) == 1 else SurrogateEnsemble(members)
    _check_member(surrogate, "surrogate")
    return as_model(surrogate)  # type: ignore[arg-type]


def _members(surrogate: object) -> int:
    if isinstance(surrogate, Sequence) and not isinstance(surrogate, str | bytes):
        return len(surrogate)
    return 1


def _inner(white_box: object) -> tuple[AttackInfo, dict[str, Any]]:
    """The ``white_box`` option -> (the attack's entry, its options): a registered name, optionally with ``:LOSS``
    (``"apgd:js"``), or an attack as a value (a callable; ``functools.partial`` binding its options)."""
    attack = DEFAULT_TRANSFER_ATTACK if white_box is None else white_box
    opts: dict[str, Any] = {}
    if isinstance(attack, str):
        name, _, loss = attack.strip().partition(":")
        entry = resolve(name)
        if loss:
            opts = check_options(entry, {"loss": loss})
    elif callable(attack):
        entry = resolve(attack)
    else:
        raise AttackError(
            f"transfer.white_box takes a white-box attack: a registered name (e.g. 'apgd', 'pgd:js') or a callable "
            f"attack, got {attack!r}"
        )
    if entry.name == "transfer":
        raise AttackError("transfer cannot craft with transfer itself; give a white-box attack such as 'apgd'")
    return entry, opts


def _shared(entry: AttackInfo, steps: int | None, step_size: float | None) -> dict[str, Any]:
    """``steps`` and ``step_size`` when given, for the crafting attack; ``AttackError`` if it takes neither."""
    out: dict[str, Any] = {}
    for key, value in (("steps", steps), ("step_size", step_size)):
        if value is None:
            continue
        if key not in entry.defaults:
            raise AttackError(f"transfer: its attack {entry.name!r} takes no {key}; leave {key} unset")
        out[key] = value
    return out


def _check(options: Mapping[str, Any]) -> None:
    """The registry's check of transfer's options: a surrogate is given and is a model or a list of models, the
    crafting attack exists and takes the ``steps``/``step_size`` given (checked as its own options)."""
    surrogate_model(options.get("surrogate"))
    entry, opts = _inner(options.get("white_box"))
    check_options(entry, {**entry.bound, **opts, **_shared(entry, options.get("steps"), options.get("step_size"))})


def _member_attacks(options: Mapping[str, Any]) -> list[tuple[AttackInfo, Mapping[str, Any]]]:
    return [_inner(options.get("white_box"))]


def _cost(
    eps_levels: float, *, surrogate: object = None, white_box: object = None, steps: int | None = None,
    step_size: float | None = None, **_: Any,
) -> Cost:  # fmt: skip
    entry, opts = _inner(white_box)
    if entry.cost is None:
        raise AttackError(f"transfer: its attack {entry.name!r} does not document its cost")
    c = entry.cost(eps_levels, **entry.bound, **opts, **_shared(entry, steps, step_size))
    k = _members(surrogate)
    return Cost(forward=k * c.forward, backward=k * c.backward, exact=c.exact)


def _takes(entry: AttackInfo, key: str) -> bool:
    params = inspect.signature(entry.fn).parameters.values()
    return any(p.kind == p.VAR_KEYWORD or (p.name == key and p.kind != p.POSITIONAL_ONLY) for p in params)


@register("transfer", cost=_cost, check=_check, members=_member_attacks)
def transfer(
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
    surrogate: Surrogate | None = None,
    white_box: Any = None,
    seed: SeedOption = None,
) -> Tensor:
    """The examples the attack ``white_box`` crafts on ``surrogate``, for use against ``model`` (a transfer attack,
    Papernot et al. 2016; Liu et al. 2017).

    ``model``, the target, is never run (0 passes): it is taken for the attack signature of the family and checked
    to be a model. The result is exactly ``white_box(surrogate, images, labels, ...)`` with the same eps, goal, mask,
    ``ignore_index``, ``steps``, ``step_size`` and ``seed``: with ``surrogate=model`` it equals the white-box attack.

    Args:
        images: (B, C, H, W) in [0, 1]; labels: (B, H, W) class ids to move away from (untargeted) or the target
            (targeted). eps: the L-inf budget in [0, 1] units, a float or (B,).
        surrogate: required; the model to craft on (a ``PixelModel``, a bare ``nn.Module`` or a callable images ->
            logits), or a list of models crafted on as their ``SurrogateEnsemble`` (the mean of their logits).
        white_box: the attack run on the surrogate: a registered name, optionally with ``:LOSS`` (``"pgd:js"``),
            or a callable attack (``functools.partial`` binding its options); default ``"apgd"``. (Not called
            ``attack``: the registry's ``cost``, ``plan`` and ``sweep`` take the attack itself by that name.)
        steps: passed to ``white_box`` when given (its own default otherwise).
        step_size: likewise.
        seed: passed to ``white_box`` as it is (``_core.SeedOption``) when it draws random numbers.

    Returns (B, C, H, W) in [0, 1], within ``eps``, zero perturbation outside ``mask``.

    Cost: the crafting attack's passes, times the number of surrogate models (each pass of an ensemble runs every
    member); none on ``model``.
    """
    as_model(model)  # the target: a model, never run
    _check({"surrogate": surrogate, "white_box": white_box, "steps": steps, "step_size": step_size})
    crafted_on = surrogate_model(surrogate)
    entry, opts = _inner(white_box)
    kwargs: dict[str, Any] = {"eps": eps, "targeted": targeted, **_shared(entry, steps, step_size)}
    if mask is not None:
        if not _takes(entry, "mask"):
            raise AttackError(f"transfer: its attack {entry.name!r} takes no mask= and cannot keep to the mask")
        kwargs["mask"] = mask
    if _takes(entry, "ignore_index"):
        kwargs["ignore_index"] = ignore_index
    if entry.seeded:
        kwargs["seed"] = seed
    return entry.fn(crafted_on, images, labels, **entry.bound, **opts, **kwargs)
