"""segattack: adversarial examples against semantic segmentation networks (Fischer et al. 2017), on PyTorch.

The Python API takes images in [0, 1] and budgets in the same units (``eps=10/255``). Reports (figures, summary,
HTML) live in ``segattack.report`` and read result files only.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the real imports, for type checkers; at run time names load on first use (below)
    from . import attacks, data, instances, patches, pipeline, transforms, universal, zoo
    from .attacks import SweepPlan, illm, illm_sweep, paper_steps, restrict, sweep_plan
    from .evaluation import EvalResult, evaluate
    from .experiment import ExperimentConfig, RunOptions, compare_models, run_experiment
    from .metrics import (
        HidingMetrics,
        Summary,
        confusion_matrix,
        hiding_metrics,
        iou,
        mean_iou,
        perturbation_norms,
        pixel_accuracy,
        psnr,
        ssim,
        summarize,
    )
    from .models import PixelModel
    from .targets import hide_class_target, static_target

#: Where each public name lives. The package imports nothing heavy until a name is used, so that ``segattack``'s
#: command line answers Ctrl-C during start-up (torch's import takes seconds) like any other moment.
_LAZY: dict[str, str] = {
    "attacks": "", "data": "", "pipeline": "", "zoo": "", "errors": "", "rundir": "", "report": "", "transforms": "",
    "instances": "", "universal": "", "patches": "",
    "compare_models": "experiment",
    "SweepPlan": "attacks", "illm": "attacks", "illm_sweep": "attacks", "paper_steps": "attacks",
    "restrict": "attacks", "sweep_plan": "attacks",
    "EvalResult": "evaluation", "evaluate": "evaluation",
    "run_experiment": "experiment", "ExperimentConfig": "experiment", "RunOptions": "experiment",
    "HidingMetrics": "metrics", "Summary": "metrics", "confusion_matrix": "metrics", "hiding_metrics": "metrics",
    "iou": "metrics", "mean_iou": "metrics", "perturbation_norms": "metrics", "pixel_accuracy": "metrics",
    "psnr": "metrics", "ssim": "metrics", "summarize": "metrics",
    "PixelModel": "models",
    "hide_class_target": "targets", "static_target": "targets",
}  # fmt: skip


def __getattr__(name: str) -> Any:
    home = _LAZY.get(name)
    if home is None:
        raise AttributeError(f"module 'segattack' has no attribute {name!r}")
    if home == "":
        value: Any = importlib.import_module(f".{name}", __name__)
    else:
        value = getattr(importlib.import_module(f".{home}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    """The public API only (what ``_LAZY`` re-exports, and ``__version__``): not the helpers this module imports."""
    return sorted({*_LAZY, "__version__"})


__version__ = "0.1.0"

__all__ = [
    "PixelModel",
    "hide_class_target",
    "static_target",
    "illm",
    "illm_sweep",
    "sweep_plan",
    "SweepPlan",
    "paper_steps",
    "restrict",
    "hiding_metrics",
    "HidingMetrics",
    "summarize",
    "Summary",
    "perturbation_norms",
    "psnr",
    "ssim",
    "confusion_matrix",
    "iou",
    "mean_iou",
    "pixel_accuracy",
    "run_experiment",
    "ExperimentConfig",
    "RunOptions",
    "compare_models",
    "evaluate",
    "EvalResult",
    "attacks",
    "universal",
    "patches",
    "instances",
    "pipeline",
    "transforms",
    "data",
    "zoo",
]
