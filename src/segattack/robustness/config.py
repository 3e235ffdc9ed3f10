"""The robustness job's configuration: one frozen object, checked once when it is made (errors name the field),
written to ``config.json`` and compared on resume.

Units: ``eps`` is in 8-bit levels, as on the command line (``eps=(2, 4, 8)`` means 2/255, 4/255, 8/255); the
attacks below take [0, 1] units and ``Planned.eps01`` converts once.

>>> cfg = RobustnessConfig(eps=(8, 2, 4), protocol="custom", attacks=("pgd", "apgd:js"))
>>> cfg.eps, [p.name for p in cfg.plan][:3]
((2.0, 4.0, 8.0), ['pgd', 'apgd:js', 'transfer'])
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..attacks import registry
from ..attacks.registry import AttackError
from ..errors import ConfigError, about_field
from ..experiment.config import check_eps, number
from ..pipeline import AttackSpec
from .protocol import (
    ALL,
    CAP,
    LARGE_EPS,
    MEDIAN,
    MINIMAL_NORM,
    PROTOCOLS,
    TRANSFER,
    WHITE_BOX,
    Evaluation,
    protocol_evaluations,
)

__all__ = ["RobustnessConfig", "RobustnessError", "Planned", "parse_attack"]


class RobustnessError(ConfigError):
    """A robustness evaluation that cannot run as configured (also a ValueError); ``field``: the
    ``RobustnessConfig`` field at fault where one is (the command line names its option)."""


@dataclass(frozen=True)
class Planned:
    """An evaluation resolved against a run's budgets: its ``name``, ``kind`` (``protocol.KINDS``), ``spec`` (the
    attack with its checked options; None for noise), ``eps`` (8-bit levels, sorted), ``shorter_of`` (the evaluation a
    fewer-steps run repeats) and whether it is crafted on the surrogate model (the transfer attack)."""

    name: str
    kind: str
    spec: AttackSpec | None
    eps: tuple[float, ...]
    shorter_of: str | None = None

    @property
    def on_surrogate(self) -> bool:
        return self.kind == TRANSFER

    @property
    def eps01(self) -> list[float]:
        """The budgets in [0, 1] units, for the attacks."""
        return [e / 255 for e in self.eps]

    def describe(self) -> dict[str, Any]:
        """As ``config.json`` records it (and the summary reads it)."""
        out: dict[str, Any] = {"name": self.name, "kind": self.kind, "eps": [number(e) for e in self.eps]}
        if self.spec is not None:
            d = self.spec.describe()
            out["attack"], out["options"] = d["name"], d["options"]
            if d.get("callable"):
                out["callable"] = True
        else:
            out["attack"], out["options"] = None, {}
        if self.shorter_of is not None:
            out["shorter_of"] = self.shorter_of
        return out


def parse_attack(item: Any) -> AttackSpec:
    """An attack of the custom protocol as an ``AttackSpec``: a spec as it is, ``"apgd:js"`` (an attack with its
    ``loss``), a registered name, or an attack as a value (a callable, ``functools.partial`` binding options)."""
    if isinstance(item, AttackSpec):
        return item
    if isinstance(item, str):
        name, _, loss = item.strip().partition(":")
        if not name:
            raise RobustnessError(
                f"an attack is a registered name, optionally with ':LOSS' (e.g. apgd:js), got {item!r}"
            )
        return AttackSpec(name, {"loss": loss} if loss else {})
    return AttackSpec(item)


def _count(value: Any, what: str, *, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise RobustnessError(f"{what} must be a positive integer, got {value!r}")


def _select(selector: str | float, eps: tuple[float, ...]) -> tuple[float, ...]:
    if selector == ALL:
        return eps
    if selector == MEDIAN:
        return (eps[(len(eps) - 1) // 2],)
    if selector == CAP:
        return (max(LARGE_EPS, eps[-1]),)
    return check_eps(selector)


@dataclass(frozen=True)
class RobustnessConfig:
    """What a robustness evaluation does, checked once at construction (``RobustnessError``, a ValueError, naming
    the field).

    Fields:
        eps: L-inf budgets in 8-bit levels (sorted, each in [0.01, 255], none twice), e.g. ``(2, 4, 8)``.
        protocol: ``"sea"``, ``"quick"`` or ``"custom"`` (``segattack.robustness.protocol``).
        attacks: the custom protocol's attacks: names (``"apgd:js"`` gives the loss), ``AttackSpec``s or callables;
            only with ``protocol="custom"``.
        seed: the run's seed; every random draw (random starts, noise) is seeded from (seed, image id, evaluation),
            so rows never depend on batching or resuming.
        limit: only the first ``limit`` images (None: all).
        batch_size: images attacked at once (memory only: rows do not depend on it).

    ``plan`` (derived): the protocol's evaluations resolved against ``eps``, every attack and option checked, every
    attack able to run untargeted; ``notes``: the evaluations left out and why (an optional attack that is not
    registered). The transfer evaluation is in the plan; a run without a surrogate model skips it with a note.
    """

    eps: tuple[float, ...]
    protocol: str = "sea"
    attacks: tuple[Any, ...] = ()
    seed: int = 0
    limit: int | None = None
    batch_size: int = 4
    plan: tuple[Planned, ...] = field(init=False, repr=False, compare=False)
    notes: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        put = self._put
        with about_field("eps"):
            try:
                put("eps", check_eps(self.eps))
            except ConfigError as err:
                raise RobustnessError(str(err)) from None
        with about_field("protocol"):
            if self.protocol not in PROTOCOLS:
                raise RobustnessError(f"unknown protocol {self.protocol!r}; valid protocols: {', '.join(PROTOCOLS)}")
        with about_field("attacks"):
            items = [self.attacks] if isinstance(self.attacks, str | AttackSpec) or callable(self.attacks) else list(
                self.attacks)  # fmt: skip
            if self.protocol == "custom" and not items:
                raise RobustnessError("the custom protocol needs its attacks, e.g. attacks=('pgd', 'apgd:js')")
            if self.protocol != "custom" and items:
                raise RobustnessError(f"the {self.protocol} protocol names its own attacks; pass attacks with "
                                      "protocol='custom'")  # fmt: skip
            try:
                specs = tuple(parse_attack(a) for a in items)
            except AttackError as err:
                raise RobustnessError(str(err)) from None
            if any(s.name == TRANSFER for s in specs):
                raise RobustnessError(
                    "the transfer evaluation crafts the first white-box attack on the surrogate model (surrogate=, "
                    "--transfer-from); list white-box attacks, not 'transfer'"
                )
            put("attacks", specs)
        with about_field("seed"):
            if isinstance(self.seed, bool) or not isinstance(self.seed, int):
                raise RobustnessError(f"seed must be an integer, got {self.seed!r}")
        with about_field("limit"):
            _count(self.limit, "limit", allow_none=True)
        with about_field("batch_size"):
            _count(self.batch_size, "batch_size")
        field_at_fault = "attacks" if self.protocol == "custom" else "protocol"
        with about_field(field_at_fault):
            evaluations = protocol_evaluations(self.protocol, [(s.entry.fn if not s.entry.registered else s.name,
                                                                s.options) for s in specs])  # fmt: skip
            plan, notes = self._resolve(evaluations)
            if not any(p.kind == WHITE_BOX for p in plan):
                raise RobustnessError("the protocol runs no white-box attack; list at least one (e.g. pgd or apgd:js)")
        put("plan", plan)
        put("notes", notes)

    def _resolve(self, evaluations: Sequence[Evaluation]) -> tuple[tuple[Planned, ...], tuple[str, ...]]:
        plan: list[Planned] = []
        notes: list[str] = []
        for ev in evaluations:
            if ev.attack is None:
                plan.append(Planned(ev.name, ev.kind, None, _select(ev.eps, self.eps)))
                continue
            if isinstance(ev.attack, str) and ev.attack not in registry.available() and not ev.required:
                notes.append(f"{ev.name} ({ev.kind}) skipped: the attack {ev.attack!r} is not registered")
                continue
            try:
                spec = AttackSpec(ev.attack, dict(ev.options))
                spec.check_goal(targeted=False)
            except AttackError as err:
                raise RobustnessError(f"protocol {self.protocol!r}, evaluation {ev.name!r}: {err}") from None
            plan.append(Planned(ev.name, ev.kind, spec, _select(ev.eps, self.eps), ev.shorter_of))
        names = {p.name for p in plan}
        kept = []
        for p in plan:  # a fewer-steps run of an evaluation that was skipped has nothing to compare with
            if p.shorter_of is not None and p.shorter_of not in names:
                notes.append(f"{p.name} skipped: {p.shorter_of} does not run")
                continue
            kept.append(p)
        if self.protocol == "custom" and not any(p.shorter_of for p in kept):
            notes.append("the check of iterations is skipped: give the first attack's steps (e.g. pgd.steps=40)")
        if self.protocol == "custom" and not any(p.kind == MINIMAL_NORM for p in kept):
            notes.append("no minimal-norm attack: no minimal-eps curve (list one, e.g. alma_prox)")
        return tuple(kept), tuple(notes)

    def _put(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, value)

    def evaluation(self, name: str) -> Planned:
        """The planned evaluation called ``name``."""
        for p in self.plan:
            if p.name == name:
                return p
        raise RobustnessError(f"no evaluation {name!r} in this plan; it has {', '.join(p.name for p in self.plan)}")

    def record(self) -> dict[str, Any]:
        """The configuration as ``config.json`` records it (``batch_size`` apart: it changes no row)."""
        return {
            "eps_levels": [number(e) for e in self.eps],
            "protocol": self.protocol,
            "attacks": [s.describe() for s in self.attacks],
            "seed": self.seed,
            "limit": self.limit,
            "evaluations": [p.describe() for p in self.plan],
            "notes": list(self.notes),
        }

    @classmethod
    def from_record(cls, record: Mapping[str, Any], **changes: Any) -> RobustnessConfig:
        """The configuration of a ``config.json``'s ``robustness`` record, with ``changes``; attacks taken as values
        (callables) cannot be rebuilt from their names and are refused."""
        if not isinstance(record, Mapping):
            raise RobustnessError(f"a robustness record is a JSON object, got {type(record).__name__}")
        attacks = []
        for a in record.get("attacks") or ():
            if not isinstance(a, Mapping) or not isinstance(a.get("name"), str) or a.get("callable"):
                raise RobustnessError(f"attack {a!r} cannot be rebuilt from config.json; pass attacks= instead")
            attacks.append(AttackSpec(a["name"], {k: tuple(v) if isinstance(v, list) else v
                                                  for k, v in (a.get("options") or {}).items()}))  # fmt: skip
        kwargs: dict[str, Any] = {
            "eps": tuple(record.get("eps_levels") or ()),
            "protocol": record.get("protocol", "sea"),
            "attacks": tuple(attacks),
            "seed": record.get("seed", 0),
            "limit": record.get("limit"),
        }
        kwargs.update(changes)
        return cls(**kwargs)
