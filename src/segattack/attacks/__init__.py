"""Attacks: pure functions from (model, images, labels) to adversarial images, registered by name.

>>> import segattack as sa
>>> sa.attacks.available()[:3]
('alma_prox', 'apgd', 'cospgd')
"""

import importlib
from typing import Any

from . import losses
from ._core import Model, as_model, check_positive, levels_of, mix_seed, to_levels
from .illm import SweepPlan, illm, illm_sweep, paper_steps, restrict, sweep_plan
from .registry import (
    AttackInfo,
    Cost,
    SweepPlanInfo,
    available,
    check_options,
    cost,
    get,
    info,
    parse_option,
    plan,
    register,
    sweep,
    unregister,
)

__all__ = [
    "illm",
    "illm_sweep",
    "sweep_plan",
    "SweepPlan",
    "paper_steps",
    "restrict",
    "register",
    "unregister",
    "get",
    "available",
    "info",
    "cost",
    "plan",
    "sweep",
    "check_options",
    "parse_option",
    "AttackInfo",
    "Cost",
    "SweepPlanInfo",
    "losses",
    # building blocks for the jobs beside attacks/ (universal/, train/) and the experiment's per-image seeds
    "Model",
    "as_model",
    "check_positive",
    "levels_of",
    "to_levels",
    "mix_seed",
]

# the built-in attacks register themselves on import
from . import apgd as _apgd  # noqa: E402, F401
from . import dag as _dag  # noqa: E402, F401
from . import ensemble as _ensemble  # noqa: E402, F401
from . import minimal as _minimal  # noqa: E402, F401
from . import pgd as _pgd  # noqa: E402, F401
from . import sea as _sea  # noqa: E402, F401
from . import square as _square  # noqa: E402, F401
from . import transfer as _transfer  # noqa: E402, F401
from .apgd import apgd  # noqa: E402
from .dag import dag  # noqa: E402
from .ensemble import worst_case  # noqa: E402
from .minimal import MinimalNorm, accuracy_curve, alma_prox, minimal_eps, minimal_norm, pixel_accuracy_curve  # noqa: E402
from .pgd import cospgd, pgd, segpgd  # noqa: E402
from .sea import sea  # noqa: E402
from .square import square  # noqa: E402
from .transfer import transfer  # noqa: E402

__all__ += ["pgd", "segpgd", "cospgd", "apgd", "dag", "worst_case", "sea", "square", "transfer", "alma_prox"]
__all__ += ["minimal_norm", "minimal_eps", "MinimalNorm", "accuracy_curve", "pixel_accuracy_curve"]

#: Universal perturbations moved to ``segattack.universal`` (a job that fits on a data set and writes files, which an
#: attack module never does); their old names here still work, imported from there on first use, so that nothing
#: under ``attacks`` imports ``universal``, ``data`` or ``rundir`` when it is loaded.
_MOVED = ("universal", "UniversalResult", "apply_universal", "save_universal", "load_universal", "perturbation_image")
__all__ += list(_MOVED)


def __getattr__(name: str) -> Any:
    if name not in _MOVED:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module("segattack.universal"), name)
    globals()[name] = value
    return value
