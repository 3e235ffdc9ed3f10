"""Attacks: pure functions from (model, images, labels) to adversarial images, registered by name.

>>> import segattack as sa
>>> sa.attacks.available()[:3]
('apgd', 'cospgd', 'dag')
"""

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
from . import pgd as _pgd  # noqa: E402, F401
from .apgd import apgd  # noqa: E402
from .dag import dag  # noqa: E402
from .ensemble import worst_case  # noqa: E402
from .pgd import cospgd, pgd, segpgd  # noqa: E402

__all__ += ["pgd", "segpgd", "cospgd", "apgd", "dag", "worst_case"]

from .universal import (  # noqa: E402
    UniversalResult,
    apply_universal,
    load_universal,
    perturbation_image,
    save_universal,
    universal,
)

__all__ += ["universal", "UniversalResult", "apply_universal", "save_universal", "load_universal", "perturbation_image"]
