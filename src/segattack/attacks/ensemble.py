"""The worst case over several attacks or losses, per image, as SEA (Croce, Singh and Hein 2024) evaluates."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from ..models import classes_of
from ._core import Best, Model, SeedOption, check_seed, logits_at, mix_seed, prepare
from .registry import AttackError, AttackInfo, Cost, check_options, register, resolve

__all__ = ["worst_case", "parse_member"]

#: SEA's losses, each run with APGD (Croce et al. 2024 use balanced and masked CE and the JS divergence).
SEA_MEMBERS: tuple[str, ...] = ("apgd:masked-ce", "apgd:balanced-ce", "apgd:js", "apgd:ce")


#: A member: a registered name, optionally with ``:LOSS`` (``"apgd:js"``), or an attack as a value (a callable,
#: ``functools.partial`` binding its options).
Member = str | Callable[..., Tensor]


def parse_member(member: Member) -> tuple[AttackInfo, dict[str, Any]]:
    """``"apgd:js"`` -> (apgd's entry, ``{"loss": "js"}``); ``"segpgd"`` -> (segpgd's entry, ``{}``); a callable ->
    its entry (``registry.resolve``) and ``{}``."""
    if callable(member) and not isinstance(member, str):
        entry = resolve(member)
        if entry.name == "worst_case":
            raise AttackError("worst_case cannot contain itself")
        return entry, {}
    if not isinstance(member, str) or not member.strip():
        raise AttackError(
            f"worst_case members are attack names, optionally with ':LOSS' (e.g. 'apgd:js'); got {member!r}"
        )
    name, _, loss = member.strip().partition(":")
    if name == "worst_case":
        raise AttackError("worst_case cannot contain itself")
    opts: dict[str, Any] = {"loss": loss} if loss else {}
    entry = resolve(name)
    return entry, check_options(entry, opts)


def _members(options: Mapping[str, Any]) -> list[tuple[AttackInfo, dict[str, Any]]]:
    attacks = options.get("attacks", SEA_MEMBERS)
    if isinstance(attacks, str) or not isinstance(attacks, Sequence):
        raise AttackError(f"worst_case.attacks takes a list of attacks (e.g. apgd:ce+apgd:js), got {attacks!r}")
    if len(attacks) == 0:
        raise AttackError(
            "worst_case.attacks lists no attack; give at least one, e.g. worst_case.attacks=apgd:ce+apgd:js"
        )
    return [parse_member(m) for m in attacks]


def _check_members(options: Mapping[str, Any]) -> None:
    _members(options)


def _cost(eps_levels: float, *, attacks: tuple[Member, ...] = SEA_MEMBERS, **common: Any) -> Cost:
    fwd = bwd = 0
    exact = True
    for entry, opts in _members({"attacks": attacks}):
        name = entry.name
        if entry.cost is None:
            raise AttackError(f"attack {name!r} does not document its cost")
        shared = {k: v for k, v in common.items() if k in entry.defaults and v is not None}
        c = entry.cost(eps_levels, **entry.bound, **opts, **shared)
        fwd, bwd, exact = fwd + c.forward + 1, bwd + c.backward, exact and c.exact
    return Cost(forward=fwd, backward=bwd, exact=exact)


@register("worst_case", cost=_cost, check=_check_members, members=_members)
def worst_case(
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
    attacks: tuple[Member, ...] = SEA_MEMBERS,
    seed: SeedOption = None,
) -> Tensor:
    """Run every attack in ``attacks`` and keep, per image, the result with the highest success: the lowest pixel
    accuracy against ``labels`` (untargeted) or the most pixels on target (targeted), as SEA (Croce, Singh and Hein
    2024) take the worst case over their losses.

    Args:
        attacks: registered attack names, each optionally with ``:LOSS`` for attacks that take ``loss=`` (default
            SEA's four losses with APGD: ``apgd:masked-ce``, ``apgd:balanced-ce``, ``apgd:js``, ``apgd:ce``), or
            attacks as values (callables, ``functools.partial`` binding their options).
        seed: the members' random draws: member i of image j draws from seeds derived from (seed j, i), so members
            are independent and an image's result does not depend on its batch (None: torch's global RNG).
        steps: passed to every member when given; else each member's own default.
        step_size: likewise.

    Cost: the members' passes plus one forward pass per member (to measure its success).
    """
    members = _members({"attacks": attacks})
    problem = prepare(model, images, labels, eps=eps, targeted=targeted, mask=mask, ignore_index=ignore_index)
    seeds = check_seed(seed, problem.batch)
    common = {"eps": eps, "targeted": targeted, "mask": mask, "ignore_index": ignore_index}
    kept: Best | None = None
    for i, (entry, opts) in enumerate(members):
        extra: dict[str, Any] = {
            k: v for k, v in (("steps", steps), ("step_size", step_size)) if v is not None and k in entry.defaults
        }
        if entry.seeded and seeds is not None:
            extra["seed"] = [mix_seed(s, i) for s in seeds]
        adv = entry.fn(problem.model, images, labels, **common, **entry.bound, **opts, **extra)
        with torch.no_grad():
            score = problem.success(classes_of(logits_at(problem, adv, check=False)))
        if kept is None:
            kept = Best(adv, score)  # Best keeps any per-image tensor: here the adversarial images themselves
        else:
            kept.update(adv, score)
    assert kept is not None
    return kept.delta
