"""The experiment's configuration: one frozen, typed object, built once (from the command line or by a Python user),
validated here and nowhere else, written to ``config.json`` and compared on resume.

Units: ``eps`` is in 8-bit levels, as on the command line and in the paper (``eps=(2, 4, 10)`` means 2/255, 4/255
and 10/255); the library below the experiment (attacks, pipeline) takes [0, 1] units, and ``eps01`` converts once.

>>> cfg = ExperimentConfig(eps=(4, 2), classes=(11,))
>>> cfg.eps, cfg.modes, cfg.attacks[0].name
((2.0, 4.0), ('full', 'posthoc'), 'illm')
>>> ExperimentConfig(eps=(2,), goal="untargeted", attacks=("pgd",)).modes
('full',)
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import platform
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import __version__, rundir
from ..attacks import mix_seed, registry
from ..attacks.registry import DEFAULT_ATTACK, AttackError
from ..data import labels as _labels
from ..errors import ConfigError, about_field
from ..instances import DEFAULT_THRESHOLD, check_threshold
from ..pipeline import AttackSpec, Goal, HideGoal, UntargetedGoal
from ..rundir import CONFIG_FILE, MODES, RESULTS_FILE, read_config
from ..targets import class_id_tuple
from ..transforms import Transform, parse_transforms

__all__ = ["ExperimentConfig", "RunOptions", "ExperimentError", "GOALS", "MODES", "MIN_EPS", "check_eps", "number",
           "resolve_label_names", "check_config_file", "write_config_file"]  # fmt: skip

log = logging.getLogger(__name__)

GOALS = ("hide", "untargeted")
#: The smallest budget, in 8-bit levels: a smaller one vanishes in the attacks' level arithmetic (and in any 8-bit
#: image); 0.01 levels is already 1/25500 of the range.
MIN_EPS = 0.01


class ExperimentError(ConfigError):
    """An experiment that cannot run as configured (also a ValueError); ``field``: the ``ExperimentConfig`` field
    at fault where one is (the command line names its option)."""


def number(e: float) -> int | float:
    """A budget as JSON shows it: ``2`` for a whole level, ``2.5`` otherwise."""
    return int(e) if float(e).is_integer() else float(e)


def check_eps(eps: Any, *, what: str = "eps") -> tuple[float, ...]:
    """Budgets in 8-bit levels -> a sorted tuple of floats; ``ExperimentError`` for none, a duplicate, a value that
    is not a finite number in [``MIN_EPS``, 255]. The one check of budgets in levels, for every job.

    >>> check_eps([10, 2.5])
    (2.5, 10.0)
    """
    if isinstance(eps, int | float) and not isinstance(eps, bool):
        eps = (eps,)
    if isinstance(eps, str) or not isinstance(eps, Sequence):
        raise ExperimentError(f"{what} takes budgets in 8-bit levels, e.g. (2, 4, 10), got {eps!r}")
    out: list[float] = []
    for e in eps:
        if isinstance(e, bool) or not isinstance(e, int | float) or not math.isfinite(e):
            raise ExperimentError(f"{what} takes numbers of 8-bit levels (10 means 10/255), got {e!r}")
        if e <= 0:
            raise ExperimentError(f"{what} must be positive (8-bit levels, e.g. 10 for 10/255), got {e:g}")
        if e > 255:
            raise ExperimentError(f"{what}={number(e)} levels exceeds the 8-bit range (255)")
        if e < MIN_EPS:
            raise ExperimentError(f"{what} must be at least {MIN_EPS} levels (smaller budgets vanish in 8-bit "
                                  f"arithmetic), got {e:g}")  # fmt: skip
        out.append(float(e))
    if not out:
        raise ExperimentError(f"{what} is empty; give at least one budget in 8-bit levels, e.g. 2,4,10")
    twice = sorted({number(e) for e in out if out.count(e) > 1})
    if twice:
        raise ExperimentError(f"{what} lists a budget twice ({', '.join(map(str, twice))}); give each budget once")
    if any(not e.is_integer() for e in out):
        log.warning("fractional eps levels: adversarial PNGs are rounded to whole levels and no longer bit-exact")
    return tuple(sorted(out))


def _positive_int(value: Any, what: str, *, allow_none: bool = False) -> int | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ExperimentError(f"{what} must be a positive integer, got {value!r}")
    return value


def _attacks(attacks: Any, goal: Goal) -> tuple[AttackSpec, ...]:
    if isinstance(attacks, str | AttackSpec) or callable(attacks):
        attacks = [attacks]
    specs: list[AttackSpec] = []
    for a in attacks:
        try:
            spec = a if isinstance(a, AttackSpec) else AttackSpec(a)
            spec.check_goal(targeted=goal.targeted)
        except AttackError as err:
            raise ExperimentError(str(err)) from None
        if any(s.name == spec.name for s in specs):
            raise ExperimentError(f"attack {spec.name!r} is listed twice; give each attack once")
        specs.append(spec)
    if not specs:
        raise ExperimentError("no attack given; e.g. attacks=('illm',) (segattack.attacks.available() lists them)")
    return tuple(specs)


def _modes(modes: Any, goal: Goal) -> tuple[str, ...]:
    if modes is None:
        return ("full", "posthoc") if isinstance(goal, HideGoal) else ("full",)
    if isinstance(modes, str):
        modes = (modes,)
    for m in modes:
        if m not in MODES:
            raise ExperimentError(f"unknown mode {m!r}; valid modes: {', '.join(MODES)}")
    out = tuple(m for m in MODES if m in modes)
    if not out:
        raise ExperimentError(f"no mode given; valid modes: {', '.join(MODES)}")
    if isinstance(goal, UntargetedGoal) and out != ("full",):
        raise ExperimentError("the untargeted goal has one mode, 'full' (no class to restrict the perturbation to)")
    return out


def _survive(survive: Any) -> tuple[Transform, ...]:
    items: list[Any] = [survive] if isinstance(survive, str | Transform) else list(survive)
    out: list[Transform] = []
    for item in items:
        if isinstance(item, Transform):
            out.append(item)
        elif isinstance(item, str):
            if item.strip():
                try:
                    out.extend(parse_transforms(item))
                except ValueError as err:
                    raise ExperimentError(f"survive: {err}") from None
        else:
            raise ExperimentError(f"survive takes transform specs such as 'jpeg:75,blur:1', got {item!r}")
    names = [t.name for t in out]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ExperimentError(f"survive lists a transform twice: {', '.join(twice)}; give each once")
    return tuple(out)


def _figure1(spec: Any) -> int | tuple[str, ...]:
    if isinstance(spec, bool) or (isinstance(spec, int) and spec < 0):
        raise ExperimentError(f"figure1 must be a count >= 0 or a list of image ids, got {spec!r}")
    if isinstance(spec, int):
        return spec
    if isinstance(spec, str):
        spec = [spec]
    if not isinstance(spec, Sequence) or not all(isinstance(s, str) and s for s in spec):
        raise ExperimentError(f"figure1 must be a count >= 0 or a list of image ids, got {spec!r}")
    return tuple(dict.fromkeys(spec))


@dataclass(frozen=True)
class ExperimentConfig:
    """What an experiment does, checked once at construction (``ExperimentError``, a ValueError, naming the field).

    Fields:
        eps: L-inf budgets in 8-bit levels (``check_eps``: sorted, each in [0.01, 255], none twice).
        goal: ``"hide"`` (Fischer et al. 2017; targeted, needs ``classes``) or ``"untargeted"`` (robustness under
            attack: accuracy and confusion matrices against the ground truth where the data set has it).
        classes: the class ids to hide (hide goal), e.g. ``(11,)`` for the Cityscapes person.
        attacks: registered names, callables with the attack signature (``functools.partial`` binding options) or
            ``AttackSpec``s; one set of rows each. Default: the paper's ``illm`` (targeted only: the untargeted goal
            names its attacks).
        modes: ``full``, ``posthoc`` (restricted afterwards to the class pixels), ``during`` (restricted during the
            optimisation); default ``("full", "posthoc")`` for hide, ``("full",)`` for untargeted (its only one).
        survive: transforms every adversarial image is measured again after (``segattack.transforms``): a spec
            ``"jpeg:75,noise:2"`` or ``Transform`` objects. Hide goal.
        figure1: a count of representative images for the paper's Figure 1 (chosen once the results are known),
            or image ids chosen by hand. Hide goal (ignored, as 0, for untargeted).
        instance_threshold: share of an instance's pixels that must be hidden for it to count as hidden (hide).
        seed: the run's seed; every random draw (random starts, EOT, noise transforms) is seeded from (seed, image
            id, attack, eps, restart), so rows never depend on batching, resuming or the number of processes.
        limit: only the first ``limit`` images (None: all).
        batch_size: images attacked at once.
        save_images: also write every adversarial image as a PNG under ``images/``.
        label_names: the names of all the model's output classes (None: the model's own, else the defaults).
    """

    eps: tuple[float, ...]
    goal: str = "hide"
    classes: tuple[int, ...] = ()
    attacks: tuple[AttackSpec, ...] = ()
    modes: tuple[str, ...] | None = None
    survive: tuple[Transform, ...] = ()
    figure1: int | tuple[str, ...] = 3
    instance_threshold: float = DEFAULT_THRESHOLD
    seed: int = 0
    limit: int | None = None
    batch_size: int = 4
    save_images: bool = False
    label_names: tuple[str, ...] | None = None
    goal_obj: Goal = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        put = _setter(self)
        with about_field("goal"):
            if self.goal not in GOALS:
                raise ExperimentError(f"unknown goal {self.goal!r}; valid goals: {', '.join(GOALS)}")
        with about_field("eps"):
            put("eps", check_eps(self.eps))
        goal: Goal
        with about_field("classes"):
            if self.goal == "hide":
                if self.classes is None or (isinstance(self.classes, Sequence) and len(self.classes) == 0):
                    raise ExperimentError("the hide goal needs classes, the class(es) to hide (e.g. 11, Cityscapes "
                                          "person)")  # fmt: skip
                try:
                    put("classes", class_id_tuple(self.classes))
                except (TypeError, ValueError) as err:
                    raise ExperimentError(f"classes: {err}") from None
                goal = HideGoal(self.classes)
            else:
                if self.classes:
                    raise ExperimentError("the untargeted goal hides no class; leave classes empty")
                put("classes", ())
                goal = UntargetedGoal()
        put("goal_obj", goal)
        with about_field("attacks"):
            put("attacks", _attacks(self.attacks or (DEFAULT_ATTACK,), goal))
        with about_field("modes"):
            put("modes", _modes(self.modes, goal))
        with about_field("survive"):
            put("survive", _survive(self.survive))
            if self.survive and self.goal != "hide":
                raise ExperimentError("survive measures how well a class stays hidden after transforms: the hide "
                                      "goal only")  # fmt: skip
        with about_field("figure1"):
            put("figure1", _figure1(self.figure1) if self.goal == "hide" else 0)
        with about_field("instance_threshold"):
            try:
                put("instance_threshold", check_threshold(self.instance_threshold))
            except ValueError as err:
                raise ExperimentError(f"instance_threshold: {err}") from None
        with about_field("seed"):
            if isinstance(self.seed, bool) or not isinstance(self.seed, int):
                raise ExperimentError(f"seed must be an integer, got {self.seed!r}")
        with about_field("limit"):
            _positive_int(self.limit, "limit", allow_none=True)
        with about_field("batch_size"):
            _positive_int(self.batch_size, "batch_size")
        with about_field("save_images"):
            if not isinstance(self.save_images, bool):
                raise ExperimentError(f"save_images must be True or False, got {self.save_images!r}")
        with about_field("label_names"):
            if self.label_names is not None:
                if isinstance(self.label_names, str) or not all(isinstance(n, str) for n in self.label_names):
                    raise ExperimentError("label_names takes one name per output class (a list of strings)")
                put("label_names", tuple(self.label_names))

    def image_seed(self, image_id: str) -> int:
        """The seed of one image's random draws in the attacks (random starts, EOT; ``AttackSpec.seeds`` derives
        each attack's from it): from ``seed`` and the image id alone, so that an image's rows do not depend on its
        batch, on a resume or on the number of processes."""
        return mix_seed(self.seed, "image", image_id)

    def transform_seed(self, image_id: str, transform: str) -> int:
        """The seed of a random survival transform's generator for one image: from ``seed``, the image id and the
        transform's name (independent of batching and of the other transforms)."""
        digest = hashlib.sha256(f"{self.seed}\0{image_id}\0{transform}".encode()).digest()
        return int.from_bytes(digest[:8], "little") & (2**63 - 1)

    @property
    def eps01(self) -> list[float]:
        """The budgets in [0, 1] units, for the library below the experiment."""
        return [e / 255 for e in self.eps]

    @property
    def targeted(self) -> bool:
        return self.goal_obj.targeted

    @classmethod
    def from_record(cls, record: Mapping[str, Any], **changes: Any) -> ExperimentConfig:
        """The configuration of a ``config.json``'s ``experiment`` (``record``'s keys), with ``changes``; attacks
        taken as values (callables) cannot be rebuilt from their names and are refused."""
        if not isinstance(record, Mapping):
            raise ExperimentError(f"an experiment record is a JSON object, got {type(record).__name__}")
        attacks = []
        for a in record.get("attacks") or ():
            if not isinstance(a, Mapping) or not isinstance(a.get("name"), str) or a.get("callable"):
                raise ExperimentError(f"attack {a!r} cannot be rebuilt from config.json; pass attacks= instead")
            attacks.append(AttackSpec(a["name"], a.get("options") or {}))
        kwargs: dict[str, Any] = {
            "eps": tuple(record.get("eps_levels") or ()),
            "goal": record.get("goal", "hide"),
            "classes": tuple(record.get("class_ids") or ()),
            "attacks": tuple(attacks),
            "modes": tuple(record["modes"]) if record.get("modes") else None,
            "survive": ",".join(record.get("survive") or ()),
            "instance_threshold": record.get("instance_threshold", DEFAULT_THRESHOLD),
            "limit": record.get("limit"),
        }
        kwargs.update(changes)
        return cls(**kwargs)


@dataclass(frozen=True)
class RunOptions:
    """How an experiment runs (none of it changes a row): ``check_memory`` refuses, before any image is read, a
    run the device cannot hold (``segattack.memory``); ``overlap`` pipelines the batches (reading, attacking and
    measuring on three threads; None: on a GPU only); ``read_workers`` reads ahead in that many processes (None: up
    to 4 on a GPU, 0 on a CPU); ``report`` writes the report (``segattack.report.write_report``) at the end, under
    the run's lock."""

    check_memory: bool = True
    overlap: bool | None = None
    read_workers: int | None = None
    report: bool = False

    def __post_init__(self) -> None:
        if self.read_workers is not None and (
            isinstance(self.read_workers, bool) or not isinstance(self.read_workers, int) or self.read_workers < 0
        ):
            raise ExperimentError(f"read_workers must be an integer >= 0 (0: read on this process), "
                                  f"got {self.read_workers!r}", field="read_workers")  # fmt: skip


def _versions() -> dict[str, str]:
    return {
        "segattack": __version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


def ids_digest(ids: Iterable[str]) -> str:
    digest = hashlib.sha256()
    for i in ids:
        digest.update(i.encode() + b"\0")
    return digest.hexdigest()


def _diff(old: Mapping[str, Any], new: Mapping[str, Any], ignore: Sequence[str] = ()) -> str:
    parts = rundir.config_diff(old, new, ignore=ignore)
    return "; ".join(parts[:4]) + ("; ..." if len(parts) > 4 else "")


def resolve_label_names(names: Sequence[str] | None, model: Any, num_classes: int) -> tuple[str, ...]:
    """The names of all ``num_classes`` output classes: ``names``, else the model's own, else the defaults."""
    if isinstance(names, str):
        raise ExperimentError("label_names takes one name per output class (a list), not one string")
    if names is None:
        names = getattr(model, "class_names", None)
        if names is not None and len(names) != num_classes:
            names = None  # the model's checks refuse such a model on its first call; the defaults here
    try:
        return _labels.label_names(num_classes, names)
    except ValueError as err:
        raise ExperimentError(f"label_names: {err}") from None


#: Configuration keys that may change between runs on one directory: attacks are resumed one by one.
_PER_ATTACK = ("attacks", "passes", "sweeps", "kept_attacks")
CONFIG_FORMAT = 1


def sweep_record(spec: AttackSpec, eps_levels: Sequence[float]) -> dict[str, Any]:
    """How the attack runs over the budgets (``registry.plan``), recorded in ``config.json`` for the report, which
    reads result files only."""
    if not spec.entry.registered:
        return {"shared": False, "forward": None, "backward": None, "note": f"{spec.name}: one run per eps"}
    p = registry.plan_checked(spec.entry, spec.options, [e / 255 for e in eps_levels])
    return {"shared": p.shared, "forward": p.forward, "backward": p.backward, "note": p.note}


def check_config_file(
    out: Path, experiment: Mapping[str, Any], overwrite: bool, *, seed: int = 0
) -> tuple[set[str], dict[str, dict[str, Any]]]:
    """Refuse a different configuration in ``out``, or another ``seed`` than its rows were made with; return the
    attacks of this run whose earlier rows can be kept (the same name and options as before), and the descriptions
    of the earlier runs' other attacks (those of ``config.json``'s ``attacks`` and ``kept_attacks``), whose finished
    rows stay in ``results.jsonl``: running fewer attacks never deletes finished work, and running them again later
    resumes them."""
    rundir.check_kind(out, "run")  # a universal or compare directory is never taken over, not even by --overwrite
    path = out / CONFIG_FILE
    has_results = (out / RESULTS_FILE).exists()
    names = {a["name"] for a in experiment["attacks"]}
    if overwrite:
        rundir.clear_experiment_outputs(out)
        return names, {}
    if not path.exists():
        if has_results:
            raise ExperimentError(
                f"{out} holds {RESULTS_FILE} but no {CONFIG_FILE}, so its results cannot be resumed; replace them "
                "with --overwrite (overwrite=True) or choose another output directory"
            )
        return names, {}
    old = read_config(out).get("experiment", {})
    if not isinstance(old, Mapping):
        raise ExperimentError(
            f'{path} holds no experiment object ("experiment": {json.dumps(old)[:40]}); replace '
            "it with --overwrite (overwrite=True) or choose another output directory"
        )
    new = json.loads(json.dumps(experiment))
    if "label_names" not in old and new["label_names"] == list(_labels.label_names(new["num_classes"])):
        old = {**old, "label_names": new["label_names"]}  # written before runs recorded them: the defaults
    # written before runs had instances and survival: their defaults (their rows have no transform; they stay valid)
    old = {"instance_threshold": DEFAULT_THRESHOLD, "survive": [], **old}
    if "gt_instances" not in old:
        old["gt_instances"] = new["gt_instances"]
    if rundir.config_diff(old, new, ignore=_PER_ATTACK):
        raise ExperimentError(
            f"{out} holds results of a different configuration ({_diff(old, experiment, _PER_ATTACK)}); replace "
            "them with "
            "--overwrite (overwrite=True) or choose another output directory"
        )
    earlier_seed = read_config(out).get("run", {}).get("seed", 0)
    if has_results and earlier_seed != seed:
        raise ExperimentError(
            f"{out} holds results made with seed {earlier_seed} (random starts, EOT and noise draws), this run has "
            f"seed {seed}; run with --seed {earlier_seed} to resume, or replace them with --overwrite "
            "(overwrite=True), or choose another output directory"
        )
    listed = [*(old.get("kept_attacks") or []), *old.get("attacks", [{"name": DEFAULT_ATTACK, "options": {}}])]
    before = {a["name"]: a for a in listed if isinstance(a, Mapping) and isinstance(a.get("name"), str)}
    kept = {a["name"] for a in new["attacks"] if before.get(a["name"]) == a}
    for a in new["attacks"]:
        if a["name"] in before and a["name"] not in kept:
            log.warning("%s: its options changed (%s -> %s); its rows are redone", a["name"],
                        before[a["name"]]["options"], a["options"])  # fmt: skip
    earlier = {name: dict(a) for name, a in before.items() if name not in names}
    return kept, earlier


def write_config_file(out: Path, experiment: Mapping[str, Any], run: Mapping[str, Any]) -> None:
    """``config.json``: the experiment (compared on resume), the run's settings, the versions and the time."""
    config = {
        "format": CONFIG_FORMAT,
        "experiment": dict(experiment),
        "run": {**run, "versions": _versions(), "written": time.strftime("%Y-%m-%dT%H:%M:%S%z")},
    }
    rundir.write_json(out / CONFIG_FILE, config)


def _setter(obj: object) -> Any:
    def put(name: str, value: Any) -> None:
        object.__setattr__(obj, name, value)

    return put
