"""The attack registry: every attack is a function with one signature, taken as a value by name.

    fn(model, images, labels, *, eps, targeted, steps=None, step_size=None, mask=None, ignore_index=255, **options)

``labels`` is the target map when ``targeted=True`` and the labels to move away from otherwise (the clean prediction
or ground truth); ``ignore_index`` pixels leave the loss. ``eps`` is a float or a (B,) tensor in [0, 1] units. The
result is (B, C, H, W) in [0, 1], within budget, with inputs and model untouched. An attack that draws random numbers
takes ``seed`` too (``_core.SeedOption``): the experiment passes one seed per image, so that an image's result never
depends on its batch, on a resume or on the number of processes.

Wherever an attack is taken (``resolve``, ``plan``, ``cost``, ``sweep``, ``pipeline.AttackSpec``, the experiment,
``compare_models``, ``worst_case``'s members) a registered name is as good as a callable with the signature above:
``functools.partial(sa.attacks.pgd, loss="js")`` is ``pgd`` with the option ``loss="js"``, and an unregistered
function is run as it is (its cost unknown). What an attack can do is metadata here (``AttackInfo.only``: targeted
or untargeted only; ``seeded``; ``eot``; an exact shared-prefix ``sweep``), checked by ``check_options`` and
``check_goal``, nowhere else. Every ``eps`` here is in [0, 1] units (``plan``, ``cost`` and ``sweep`` alike).

>>> import segattack as sa
>>> "segpgd" in sa.attacks.available()
True
>>> sa.attacks.cost("pgd", eps=8 / 255, steps=10, restarts=2)
Cost(forward=22, backward=20, exact=True)
"""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import Tensor

from ..errors import ConfigError, SegattackError
from ._core import EOT_SAMPLES, make_eot

__all__ = [
    "register",
    "resolve",
    "check_goal",
    "get",
    "available",
    "info",
    "AttackInfo",
    "Cost",
    "SweepPlanInfo",
    "check_options",
    "parse_option",
    "sweep",
    "plan",
    "sweep_checked",
    "plan_checked",
    "cost_checked",
    "COMMON",
]

#: The keyword arguments every attack takes; everything else is an attack's own option.
COMMON = ("eps", "targeted", "steps", "step_size", "mask", "ignore_index")
#: Keyword arguments the caller fills in at run time, never an option of a configuration: ``seed`` (per-image seeds).
RUNTIME = ("seed",)
#: The attack of the paper (Fischer et al. 2017), the default wherever an attack is taken.
DEFAULT_ATTACK = "illm"


class AttackError(ConfigError):
    """An attack, its options or its output that cannot be used (also a ValueError)."""


class AttackSignatureError(SegattackError, TypeError):
    """A callable that does not have the attack signature (also a TypeError)."""


def _levels(eps: float) -> float:
    """A budget in [0, 1] units -> 8-bit levels, snapped to a whole level within 1e-6 of one (``10/255`` -> 10.0)."""
    lv = float(eps) * 255.0
    return float(round(lv)) if abs(lv - round(lv)) < 1e-6 else lv


@dataclass(frozen=True)
class Cost:
    """Forward and backward passes of one attack call (a batch, one eps); ``exact=False``: an upper bound (the
    attack may stop early)."""

    forward: int
    backward: int
    exact: bool = True


@dataclass(frozen=True)
class AttackInfo:
    """A registered attack: its function, its own options (beyond ``COMMON``) with their defaults, how to count its
    passes, and its shared-prefix eps sweep where one is exact."""

    name: str
    fn: Callable[..., Tensor]
    options: Mapping[str, Any]
    cost: Callable[..., Cost] | None
    sweep: Callable[..., Tensor] | None
    sweep_when: Callable[[Mapping[str, Any]], bool] | None
    sweep_cost: Callable[..., Cost] | None
    check: Callable[[Mapping[str, Any]], None] | None
    summary: str
    defaults: Mapping[str, Any]
    #: "targeted" or "untargeted" for an attack that can only do one (``illm``: targeted); None for both.
    only: Literal["targeted", "untargeted"] | None = None
    #: it takes ``seed`` (it draws random numbers; the experiment seeds it per image).
    seeded: bool = False
    #: its member attacks for given options (composite attacks such as ``worst_case``), checked with the goal too.
    members: Callable[[Mapping[str, Any]], Sequence[tuple[AttackInfo, Mapping[str, Any]]]] | None = None
    #: registered by name (False: a callable taken as a value; ``name`` is then its qualified name).
    registered: bool = True
    #: options bound by ``functools.partial`` (part of the attack, recorded with its options).
    bound: Mapping[str, Any] = field(default_factory=dict)

    @property
    def eot(self) -> bool:
        """It takes the ``eot`` and ``eot_samples`` options (Expectation over Transformation)."""
        return "eot" in self.options and "eot_samples" in self.options


_REGISTRY: dict[str, AttackInfo] = {}
_MISSING = object()


def _check_signature(name: str, fn: Callable[..., Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError) as err:
        raise AttackSignatureError(f"attack {name!r}: cannot read the signature of {fn!r}") from err
    params = list(sig.parameters.values())
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if len(positional) != 3:
        raise AttackSignatureError(
            f"attack {name!r} must take exactly three positional arguments (model, images, labels), then keyword-only "
            f"options; {fn.__name__} takes {len(positional)}"
        )
    keywords = {p.name: p for p in params if p.kind == p.KEYWORD_ONLY}
    var_kw = any(p.kind == p.VAR_KEYWORD for p in params)
    for required in ("eps", "targeted"):
        if required not in keywords and not var_kw:
            raise AttackSignatureError(f"attack {name!r} must take the keyword-only argument {required!r}")
    options = {k: p.default for k, p in keywords.items() if k not in COMMON and k not in RUNTIME}
    defaults = {k: p.default for k, p in keywords.items() if k in COMMON}
    for k, v in options.items():
        if v is inspect.Parameter.empty:
            raise AttackSignatureError(f"attack {name!r}: option {k!r} needs a default value")
    return options, defaults


def _eot_cost(cost: Callable[..., Cost]) -> Callable[..., Cost]:
    """``cost`` of an attack with the ``eot``/``eot_samples`` options: every pass of the attack becomes
    ``EOT.draws`` passes (``eot_samples``; 1 for a single deterministic transform), so its count is scaled once
    here for every such attack."""

    def scaled(eps_levels: float, **options: Any) -> Cost:
        plain = cost(eps_levels, **options)
        eot = make_eot(options.get("eot"), options.get("eot_samples", EOT_SAMPLES))
        if eot is None or eot.draws == 1:
            return plain
        return Cost(forward=plain.forward * eot.draws, backward=plain.backward * eot.draws, exact=plain.exact)

    return scaled


def register(
    name: str,
    *,
    cost: Callable[..., Cost] | None = None,
    sweep: Callable[..., Tensor] | None = None,
    sweep_when: Callable[[Mapping[str, Any]], bool] | None = None,
    sweep_cost: Callable[..., Cost] | None = None,
    check: Callable[[Mapping[str, Any]], None] | None = None,
    only: Literal["targeted", "untargeted"] | None = None,
    members: Callable[[Mapping[str, Any]], Sequence[tuple[AttackInfo, Mapping[str, Any]]]] | None = None,
    replace: bool = False,
) -> Callable[[Callable[..., Tensor]], Callable[..., Tensor]]:
    """Decorator: make ``fn`` available as ``name`` to ``get``, the experiment and the command line.

    ``fn`` must have the attack signature (see the module docstring). Optional: ``cost(eps_levels, **options) ->
    Cost`` counts its passes; ``sweep(model, images, labels, *, eps: list, **options) -> (K, B, C, H, W)`` computes
    several budgets at once where ``sweep_when(options)`` says it is exact, at ``sweep_cost(eps_levels_list,
    **options)``; ``check(options)`` raises ValueError for option values the attack cannot take (run before any
    work, so that a bad value fails at once). ``only``: ``"targeted"`` or ``"untargeted"`` for an attack that can
    do only one; ``members(options)``: the member attacks of a composite attack. Registering a taken name raises unless
    ``replace=True``. The ``sweep`` hook takes ``eps`` in [0, 1] units like the attack; the ``cost`` and ``sweep_cost``
    hooks take 8-bit levels (the paper's step counts are defined on them); the public ``cost``, ``plan`` and
    ``sweep`` of this module all take [0, 1] units and convert once. An attack with the options ``eot`` and
    ``eot_samples`` (Expectation over Transformation, see
    ``_core.EOT``) gets them validated by ``check_options`` and its ``cost`` scaled by the draws per step.

    >>> import segattack as sa
    >>> @sa.attacks.register("noop-example")
    ... def noop(model, images, labels, *, eps, targeted, steps=None, step_size=None, mask=None, ignore_index=255):
    ...     return images.clone()
    >>> "noop-example" in sa.attacks.available()
    True
    >>> sa.attacks.unregister("noop-example")
    """
    if not isinstance(name, str) or not name or any(c in name for c in ",.=: +"):
        raise AttackError(
            f"attack names must be non-empty strings without ',', '.', '=', ':', '+' or spaces, got {name!r}"
        )
    if only not in (None, "targeted", "untargeted"):
        raise AttackError(f"only= takes 'targeted', 'untargeted' or None, got {only!r}")

    def decorate(fn: Callable[..., Tensor]) -> Callable[..., Tensor]:
        if name in _REGISTRY and not replace:
            raise AttackError(f"an attack named {name!r} is registered already; pass replace=True to replace it")
        options, defaults = _check_signature(name, fn)
        doc = inspect.getdoc(fn) or ""
        eot = "eot" in options and "eot_samples" in options
        _REGISTRY[name] = AttackInfo(
            name=name,
            fn=fn,
            options=options,
            cost=_eot_cost(cost) if eot and cost is not None else cost,
            sweep=sweep,
            sweep_when=sweep_when,
            sweep_cost=sweep_cost,
            check=check,
            summary=doc.splitlines()[0] if doc else "",
            defaults=defaults,
            only=only,
            seeded="seed" in inspect.signature(fn).parameters,
            members=members,
        )
        return fn

    return decorate


def unregister(name: str) -> None:
    """Remove a registered attack (for tests and plug-ins that replace themselves)."""
    _REGISTRY.pop(name, None)


def available() -> tuple[str, ...]:
    """The registered attack names, sorted."""
    return tuple(sorted(_REGISTRY))


def info(name: str) -> AttackInfo:
    """The registry entry of ``name``; ``AttackError`` (a ValueError) listing the available attacks if there is none."""
    if not isinstance(name, str) or name not in _REGISTRY:
        raise AttackError(f"unknown attack {name!r}; available attacks: {', '.join(available())}")
    return _REGISTRY[name]


def get(name: str) -> Callable[..., Tensor]:
    """The attack function called ``name`` (see the module docstring for its signature)."""
    return info(name).fn


Attack = str | Callable[..., Tensor] | AttackInfo


def resolve(attack: Attack) -> AttackInfo:
    """An attack given by name, as a callable or as an ``AttackInfo`` -> its ``AttackInfo``.

    A registered function (``sa.attacks.pgd``) is its registry entry; ``functools.partial`` of an attack binds
    options (``partial(sa.attacks.pgd, loss="js")``: ``pgd`` with ``bound={"loss": "js"}``, checked like any
    option); any other callable with the attack signature is taken as it is (``registered=False``, no cost, no
    shared sweep, named by its qualified name).

    >>> import functools, segattack as sa
    >>> a = resolve(functools.partial(sa.attacks.pgd, loss="js"))
    >>> a.name, dict(a.bound)
    ('pgd', {'loss': 'js'})
    """
    if isinstance(attack, AttackInfo):
        return attack
    if isinstance(attack, str):
        return info(attack)
    if isinstance(attack, functools.partial):
        if attack.args:
            raise AttackError(
                f"functools.partial of an attack may bind keyword options only, not positional arguments "
                f"{attack.args!r}"
            )
        base = resolve(attack.func)
        bound = dict(attack.keywords)
        fixed = [k for k in bound if (k in COMMON and k not in ("steps", "step_size")) or k in RUNTIME]
        if fixed:
            own = ", ".join(sorted(base.options)) or "none"
            raise AttackError(
                f"functools.partial of attack {base.name!r} binds {', '.join(fixed)}: the run sets "
                f"those; bind the attack's own options only ({own})"
            )
        merged = check_options(base, {**base.bound, **bound})
        return _replace(base, bound=merged)
    if not callable(attack):
        raise AttackError(
            f"an attack is a registered name ({', '.join(available())}) or a callable "
            f"fn(model, images, labels, *, eps, targeted, ...), got {attack!r}"
        )
    for entry in _REGISTRY.values():
        if entry.fn is attack:
            return entry
    name = f"{getattr(attack, '__module__', None) or '?'}.{getattr(attack, '__qualname__', type(attack).__name__)}"
    options, defaults = _check_signature(name, attack)
    doc = inspect.getdoc(attack) or ""
    return AttackInfo(
        name=name, fn=attack, options=options, cost=None, sweep=None, sweep_when=None, sweep_cost=None, check=None,
        summary=doc.splitlines()[0] if doc else "", defaults=defaults,
        seeded="seed" in inspect.signature(attack).parameters, registered=False,
    )  # fmt: skip


def _keywords(fn: Callable[..., Any]) -> set[str] | frozenset[str]:
    """The keyword arguments ``fn`` takes (everything, for a function with ``**kwargs``)."""
    params = inspect.signature(fn).parameters.values()
    if any(p.kind == p.VAR_KEYWORD for p in params):
        return _EVERYTHING
    return {p.name for p in params if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)}


class _Everything(frozenset[str]):
    def __contains__(self, item: object) -> bool:
        return True


_EVERYTHING = _Everything()


def _replace(entry: AttackInfo, **changes: Any) -> AttackInfo:
    import dataclasses

    return dataclasses.replace(entry, **changes)


def check_goal(attack: Attack, options: Mapping[str, Any], *, targeted: bool) -> None:
    """``AttackError`` if ``attack`` (or one of its members, for a composite attack) cannot run ``targeted`` (True)
    or untargeted (False): ``illm`` is targeted only."""
    entry = resolve(attack)
    want = "targeted" if targeted else "untargeted"
    if entry.only is not None and entry.only != want:
        goal = "the hide goal (targeted)" if targeted else "the untargeted goal"
        raise AttackError(
            f"attack {entry.name!r} is {entry.only} only and cannot serve {goal}; choose another "
            f"attack ({', '.join(n for n in available() if _REGISTRY[n].only in (None, want))})"
        )
    if entry.members is not None:
        for member, opts in entry.members({**entry.bound, **options}):
            check_goal(member, opts, targeted=targeted)


def _type_name(default: Any, key: str = "") -> str:
    if key == "steps":
        return "an integer"
    if key == "step_size":
        return "a number"
    if isinstance(default, bool):
        return "true/false"
    if isinstance(default, int):
        return "an integer"
    if isinstance(default, float):
        return "a number"
    if isinstance(default, tuple):
        return "a '+'-separated list"
    return "a string" if isinstance(default, str) else "a value"


def check_options(attack: Attack, options: Mapping[str, Any]) -> dict[str, Any]:
    """Check option names (and the types of those with a typed default) against the attack's signature; the
    attack's own ``check`` then checks their values. ``AttackError`` (a ValueError) naming the option otherwise.

    Common hyperparameters (``steps``, ``step_size``) are accepted for every attack that declares them.
    """
    entry = resolve(attack)
    name = entry.name
    allowed = {**entry.options, **{k: v for k, v in entry.defaults.items() if k in ("steps", "step_size")}}
    out: dict[str, Any] = {}
    for key, value in options.items():
        if key not in allowed:
            known = ", ".join(sorted(allowed)) or "none"
            raise AttackError(f"attack {name!r} has no option {key!r}; its options: {known}")
        default = allowed[key]
        ok = True
        if key in ("steps", "step_size") and value is None:
            pass  # None: the attack's own default (steps and step_size default to None in every attack)
        elif key == "steps":
            ok = isinstance(value, int) and not isinstance(value, bool)
        elif key == "step_size":
            ok = isinstance(value, int | float) and not isinstance(value, bool)
        elif isinstance(default, bool):
            ok = isinstance(value, bool)
        elif isinstance(default, int):
            ok = isinstance(value, int) and not isinstance(value, bool)
        elif isinstance(default, float):
            ok = isinstance(value, int | float) and not isinstance(value, bool)
        elif isinstance(default, str):
            ok = isinstance(value, str)
        elif isinstance(default, tuple):
            ok = isinstance(value, tuple | list)
        if not ok:
            raise AttackError(f"option {name}.{key} takes {_type_name(default, key)}, got {value!r}")
        if key in ("steps", "restarts") and value is not None and value < (1 if key == "restarts" else 0):
            raise AttackError(f"option {name}.{key} must be at least {1 if key == 'restarts' else 0}, got {value}")
        if key == "step_size" and value is not None and not (math.isfinite(value) and 0 < value <= 1):
            raise AttackError(f"option {name}.step_size must be in (0, 1] image units (e.g. 1/255), got {value}")
        if key in ("eot", "eot_samples"):
            value = _check_eot(name, key, value)
        out[key] = tuple(value) if isinstance(value, list) else value
    if entry.check is not None:
        try:
            entry.check({**entry.bound, **out})
        except AttackError:
            raise
        except (TypeError, ValueError) as err:
            raise AttackError(f"attack {name!r}: {err}") from None
    return out


def _check_eot(name: str, key: str, value: Any) -> Any:
    """The ``eot`` option as its canonical spec string (``"jpeg:75,blur:1"``, so that configurations stay plain
    text) or None; ``eot_samples`` an integer >= 1. ValueError naming the option otherwise."""
    try:
        if key == "eot_samples":
            make_eot(None, value)
            return value
        eot = make_eot(value)
    except (TypeError, ValueError) as err:
        raise AttackError(f"option {name}.{key}: {err}") from None
    return None if eot is None else eot.spec


def parse_option(attack: Attack, key: str, text: str) -> Any:
    """A command-line option value (``"50"``, ``"true"``, ``"ce+js"``, ``"jpeg:75,blur:1"`` for ``eot``) converted
    to the type of the option's default (``steps`` an integer, ``step_size`` a number in [0, 1] units); ValueError
    naming the option if it cannot be."""
    entry = resolve(attack)
    name = entry.name
    allowed = {**entry.options, **{k: v for k, v in entry.defaults.items() if k in ("steps", "step_size")}}
    if key not in allowed:
        known = ", ".join(sorted(allowed)) or "none"
        raise AttackError(f"attack {name!r} has no option {key!r}; its options: {known}")
    default = allowed[key]
    text = text.strip()
    if key == "eot":  # a transforms spec; "none" or "off" for none
        return None if text.lower() in ("none", "off", "") else _check_eot(name, key, text)
    try:
        if key == "steps" or (isinstance(default, int) and not isinstance(default, bool)):
            return int(text)
        if key == "step_size" or isinstance(default, float):
            value = float(text)
            if not math.isfinite(value):
                raise ValueError(text)
            return value
    except ValueError:
        raise AttackError(f"option {name}.{key} takes {_type_name(default, key)}, got {text!r}") from None
    if isinstance(default, bool):
        low = text.lower()
        if low in ("true", "1", "yes", "on"):
            return True
        if low in ("false", "0", "no", "off"):
            return False
        raise AttackError(f"option {name}.{key} takes true or false, got {text!r}")
    if isinstance(default, tuple):
        return tuple(part.strip() for part in text.split("+") if part.strip())
    return text


def cost(attack: Attack, *, eps: float, **options: Any) -> Cost:
    """Forward/backward passes of one call of ``attack`` at ``eps`` ([0, 1] units) with ``options`` (checked)."""
    entry = resolve(attack)
    return cost_checked(entry, {**entry.bound, **check_options(entry, options)}, eps=eps)


def cost_checked(entry: AttackInfo, options: Mapping[str, Any], *, eps: float) -> Cost:
    """``cost`` with options already checked (``pipeline.AttackSpec`` holds checked ones): nothing checked twice."""
    if entry.cost is None:
        raise AttackError(f"attack {entry.name!r} does not document its cost")
    return entry.cost(_levels(_check_eps(eps)), **options)


def _check_eps(eps: Any) -> float:
    if isinstance(eps, bool) or not isinstance(eps, int | float) or not (math.isfinite(eps) and 0 < eps <= 1):
        raise AttackError(f"eps must be a budget in (0, 1] image units (e.g. 8/255), got {eps!r}")
    return float(eps)


@dataclass(frozen=True)
class SweepPlanInfo:
    """How ``sweep`` runs attack ``name`` over budgets: ``shared`` if the budgets share a trajectory prefix (one
    call of the attack's own sweep), else one call per eps; ``forward``/``backward``: passes in all (None where the
    attack does not document them); ``note``: a sentence for logs and reports."""

    name: str
    shared: bool
    forward: int | None
    backward: int | None
    note: str


def _shares(entry: AttackInfo, options: Mapping[str, Any]) -> bool:
    return entry.sweep is not None and (entry.sweep_when is None or entry.sweep_when(options))


def plan(attack: Attack, eps: Sequence[float], **options: Any) -> SweepPlanInfo:
    """How ``sweep`` will run ``attack`` over the budgets ``eps`` ([0, 1] units) with ``options`` (checked)."""
    entry = resolve(attack)
    return plan_checked(entry, {**entry.bound, **check_options(entry, options)}, eps)


def plan_checked(entry: AttackInfo, options: Mapping[str, Any], eps: Sequence[float]) -> SweepPlanInfo:
    """``plan`` with options already checked (``pipeline.AttackSpec`` holds checked ones)."""
    name, opts = entry.name, options
    eps = [_levels(_check_eps(e)) for e in eps]
    if _shares(entry, opts) and entry.sweep_cost is not None:
        shared = entry.sweep_cost(eps, **opts)
        alone = sum((entry.cost(e, **opts).forward for e in eps), 0) if entry.cost is not None else None
        tail = f"; {alone} separately" if alone is not None else ""
        return SweepPlanInfo(
            name, True, shared.forward, shared.backward,
            f"{name}: {shared.forward} forward+backward passes for {len(eps)} budgets (shared prefix{tail})",
        )  # fmt: skip
    if entry.cost is None:
        return SweepPlanInfo(name, False, None, None, f"{name}: one run per eps ({len(eps)} runs)")
    costs = [entry.cost(e, **opts) for e in eps]
    fwd, bwd = sum(c.forward for c in costs), sum(c.backward for c in costs)
    bound = "" if all(c.exact for c in costs) else "at most "
    return SweepPlanInfo(
        name, False, fwd, bwd, f"{name}: one run per eps, {bound}{fwd} forward and {bwd} backward passes in all"
    )


def sweep(
    attack: Attack,
    model: Any,
    images: Tensor,
    labels: Tensor,
    *,
    eps: Sequence[float],
    targeted: bool,
    mask: Tensor | None = None,
    ignore_index: int = 255,
    seed: Any = None,
    **options: Any,
) -> Tensor:
    """``attack`` at every budget in ``eps`` ([0, 1] units): (K, B, C, H, W), in the order of ``eps``.

    Uses the attack's shared-prefix sweep where it is exact for these options (``illm`` with its defaults), else one
    call per budget (``plan`` says which). ``seed`` goes to an attack that takes it (``AttackInfo.seeded``); each
    budget's call then draws from generators seeded with its own eps too, so a budget's result does not depend on
    the other budgets of the sweep.
    """
    entry = resolve(attack)
    opts = {**entry.bound, **check_options(entry, options)}
    return sweep_checked(entry, opts, model, images, labels, eps=eps, targeted=targeted, mask=mask,
                         ignore_index=ignore_index, seed=seed)  # fmt: skip


def sweep_checked(
    entry: AttackInfo,
    options: Mapping[str, Any],
    model: Any,
    images: Tensor,
    labels: Tensor,
    *,
    eps: Sequence[float],
    targeted: bool,
    mask: Tensor | None = None,
    ignore_index: int = 255,
    seed: Any = None,
) -> Tensor:
    """``sweep`` with options already checked (``pipeline.AttackSpec`` holds checked ones): nothing checked twice;
    the attack itself checks its inputs (images, labels, budgets) as at any call."""
    opts = dict(options)
    eps = list(eps)
    if not eps:
        raise AttackError("eps must list at least one budget, e.g. eps=[2/255, 4/255, 10/255]")
    common: dict[str, Any] = {"targeted": targeted}
    takes = _keywords(entry.fn)
    if mask is not None:
        if "mask" not in takes:
            raise AttackError(
                f"attack {entry.name!r} takes no mask= and cannot restrict its perturbation (mode "
                f"'during'); add mask=None to its keyword arguments and keep the perturbation off it"
            )
        common["mask"] = mask
    if "ignore_index" in takes:
        common["ignore_index"] = ignore_index
    if entry.seeded:
        common["seed"] = seed
    if _shares(entry, opts):
        assert entry.sweep is not None
        return entry.sweep(model, images, labels, eps=eps, **common, **opts)
    return torch.stack([entry.fn(model, images, labels, eps=e, **common, **opts) for e in eps])
