"""The universal-perturbation job's configuration: one frozen, typed object, built once (from the command line or by
a Python user) and validated here and nowhere else.

Units: ``eps`` and ``step_size`` are in 8-bit levels, as on the command line and in the paper (``eps=10`` means
10/255); ``eps01`` and ``step_size01`` convert once for the fit, which takes [0, 1] units.

>>> cfg = UniversalConfig(eps=10, classes=(11,), steps=3)
>>> cfg.target, cfg.eps, cfg.eps01 == 10 / 255
('hide', 10.0, True)
>>> UniversalConfig(eps=4, classes=(11,), static=13).target
'static'
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError, about_field
from ..experiment import ExperimentError, check_eps
from ..targets import class_id_tuple

__all__ = ["UniversalConfig", "UniversalError", "DEFAULT_EPS", "DEFAULT_STEPS", "DEFAULT_OMEGA"]

#: The paper's budget (8-bit levels), iterations and hidden-class loss weight.
DEFAULT_EPS = 10.0
DEFAULT_STEPS = 60
DEFAULT_OMEGA = 0.9999


class UniversalError(ConfigError):
    """A universal-perturbation job that cannot run as configured (also a ValueError); ``field``: the
    ``UniversalConfig`` field at fault where one is (the command line names its option)."""


def _count(value: Any, name: str, *, minimum: int, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise UniversalError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        more = "at least 1" if minimum == 1 else f"{minimum} or more"
        raise UniversalError(f"{name} must be {more}, got {value}")


def _number(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise UniversalError(f"{name} must be a number, got {value!r}")
    return float(value)


def _classes(value: Any, name: str) -> tuple[int, ...]:
    try:
        return class_id_tuple(value)
    except (TypeError, ValueError) as err:
        raise UniversalError(f"{name}: {err}") from None


@dataclass(frozen=True)
class UniversalConfig:
    """What a universal-perturbation job does, checked once at construction (``UniversalError``, a ValueError,
    naming the field).

    Fields:
        eps: the L-inf budget in 8-bit levels, one number in [0.01, 255] (``segattack.experiment.check_eps``).
        classes: the class ids to hide (e.g. ``(11,)``, Cityscapes person); with ``static``, the class whose pixels
            are counted as fooled on the held-out images.
        static: instead of hiding, push every pixel towards this one class (the paper's static target); None: hide.
        steps: iterations over the fit images (the paper's 60); each costs one forward and backward pass per image.
        step_size: the step per iteration in 8-bit levels, in (0, 255] (1: xi stays in whole levels).
        omega: the loss weight of the hidden-class pixels in [0, 1], the rest get 1 - omega (the paper's 0.9999).
        batch_size: images per pass (memory only: the result does not depend on it).
        examples: held-out images drawn in ``examples.png`` (0: none, and an earlier run's is removed).
        fit_limit, eval_limit: only the first N fit / held-out images (None: all).
        label_names: the names of all the model's output classes (None: the model's own, else the defaults).

    The fit draws no random numbers: the same configuration, model and images give the same perturbation, so
    there is no seed.
    """

    eps: float = DEFAULT_EPS
    classes: tuple[int, ...] = (11,)
    static: int | None = None
    steps: int = DEFAULT_STEPS
    step_size: float = 1.0
    omega: float = DEFAULT_OMEGA
    batch_size: int = 4
    examples: int = 3
    fit_limit: int | None = None
    eval_limit: int | None = None
    label_names: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        put = self._put
        with about_field("eps"):
            if isinstance(self.eps, Sequence) and not isinstance(self.eps, str) and len(self.eps) > 1:
                raise UniversalError(f"a universal perturbation takes one eps, got {tuple(self.eps)!r}")
            try:
                put("eps", check_eps(self.eps)[0])
            except ExperimentError as err:
                raise UniversalError(str(err)) from None
        with about_field("classes"):
            put("classes", _classes(self.classes, "classes"))
        with about_field("static"):
            if self.static is not None:
                ids = _classes(self.static, "static")
                if len(ids) != 1:
                    raise UniversalError(f"static takes one class, got {ids}")
                put("static", ids[0])
        with about_field("steps"):
            _count(self.steps, "steps", minimum=1)
        with about_field("step_size"):
            step = _number(self.step_size, "step_size")
            if not 0 < step <= 255:
                raise UniversalError(f"step_size must be a positive number of 8-bit levels (e.g. 1), got {step:g}")
            put("step_size", step)
        with about_field("omega"):
            omega = _number(self.omega, "omega")
            if not 0 <= omega <= 1:
                raise UniversalError(f"omega must lie in [0, 1] (the paper's 0.9999), got {omega}")
            put("omega", omega)
        with about_field("batch_size"):
            _count(self.batch_size, "batch_size", minimum=1)
        with about_field("examples"):
            _count(self.examples, "examples", minimum=0)
        with about_field("fit_limit"):
            _count(self.fit_limit, "fit_limit", minimum=1, allow_none=True)
        with about_field("eval_limit"):
            _count(self.eval_limit, "eval_limit", minimum=1, allow_none=True)
        with about_field("label_names"):
            if self.label_names is not None:
                if isinstance(self.label_names, str) or not all(isinstance(n, str) for n in self.label_names):
                    raise UniversalError("label_names takes one name per output class (a list of strings)")
                put("label_names", tuple(self.label_names))

    def _put(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, value)

    @property
    def target(self) -> str:
        """``"static"`` with a static class, else ``"hide"``."""
        return "hide" if self.static is None else "static"

    @property
    def eps01(self) -> float:
        """The budget in [0, 1] units, for the fit."""
        return self.eps / 255

    @property
    def step_size01(self) -> float:
        """The step in [0, 1] units, for the fit."""
        return self.step_size / 255
