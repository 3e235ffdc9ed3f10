"""The worst case over several attacks or losses, per image, as SEA (Croce, Singh and Hein 2024) evaluates."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from ..models import classes_of
from ._core import Best, Model, logits_at, prepare
from .registry import Cost, check_options, info, register

__all__ = ["worst_case", "parse_member"]

#: SEA's losses, each run with APGD (Croce et al. 2024 use balanced and masked CE and the JS divergence).
SEA_MEMBERS: tuple[str, ...] = ("apgd:masked-ce", "apgd:balanced-ce", "apgd:js", "apgd:ce")


def parse_member(member: str) -> tuple[str, dict[str, Any]]:
    """``"apgd:js"`` -> ``("apgd", {"loss": "js"})``; ``"segpgd"`` -> ``("segpgd", {})``."""
    if not isinstance(member, str) or not member:
        raise ValueError(
            f"worst_case members are attack names, optionally with ':LOSS' (e.g. 'apgd:js'); got {member!r}"
        )
    name, _, loss = member.partition(":")
    if name == "worst_case":
        raise ValueError("worst_case cannot contain itself")
    opts: dict[str, Any] = {"loss": loss} if loss else {}
    check_options(name, opts)
    return name, opts


def _check_members(options: Mapping[str, Any]) -> None:
    for member in options.get("attacks", SEA_MEMBERS):
        parse_member(member)


def _cost(eps_levels: float, *, attacks: tuple[str, ...] = SEA_MEMBERS, **common: Any) -> Cost:
    fwd = bwd = 0
    exact = True
    for member in attacks:
        name, opts = parse_member(member)
        entry = info(name)
        if entry.cost is None:
            raise ValueError(f"attack {name!r} does not document its cost")
        shared = {k: v for k, v in common.items() if k in entry.defaults and v is not None}
        c = entry.cost(eps_levels, **opts, **shared)
        fwd, bwd, exact = fwd + c.forward + 1, bwd + c.backward, exact and c.exact
    return Cost(forward=fwd, backward=bwd, exact=exact)


@register("worst_case", cost=_cost, check=_check_members)
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
    attacks: tuple[str, ...] = SEA_MEMBERS,
) -> Tensor:
    """Run every attack in ``attacks`` and keep, per image, the result with the highest success: the lowest pixel
    accuracy against ``labels`` (untargeted) or the most pixels on target (targeted), as SEA (Croce, Singh and Hein
    2024) take the worst case over their losses.

    Args:
        attacks: registered attack names, each optionally with ``:LOSS`` for attacks that take ``loss=`` (default
            SEA's four losses with APGD: ``apgd:masked-ce``, ``apgd:balanced-ce``, ``apgd:js``, ``apgd:ce``).
        steps, step_size: passed to every member when given; else each member's own defaults.

    Cost: the members' passes plus one forward pass per member (to measure its success).
    """
    members = [parse_member(m) for m in attacks]
    if not members:
        raise ValueError("worst_case needs at least one attack in attacks=")
    problem = prepare(model, images, labels, eps=eps, targeted=targeted, mask=mask, ignore_index=ignore_index)
    common = {"eps": eps, "targeted": targeted, "mask": mask, "ignore_index": ignore_index}
    kept: Best | None = None
    for name, opts in members:
        entry = info(name)
        extra = {k: v for k, v in (("steps", steps), ("step_size", step_size)) if v is not None and k in entry.defaults}
        adv = entry.fn(problem.model, images, labels, **common, **opts, **extra)
        with torch.no_grad():
            score = problem.success(classes_of(logits_at(problem, adv, check=False)))
        if kept is None:
            kept = Best(adv, score)  # Best keeps any per-image tensor: here the adversarial images themselves
        else:
            kept.update(adv, score)
    assert kept is not None
    return kept.delta
