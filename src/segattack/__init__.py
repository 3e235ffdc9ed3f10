"""segattack: adversarial examples against semantic segmentation networks (Fischer et al. 2017), on PyTorch.

The Python API takes images in [0, 1] and budgets in the same units (``eps=10/255``). Reports (figures, summary,
HTML) live in ``segattack.report`` and read result files only.
"""

from . import attacks, data, pipeline, zoo
from .attacks import SweepPlan, illm, illm_sweep, paper_steps, restrict, sweep_plan
from .evaluate import EvalResult, evaluate
from .experiment import run_experiment
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
    summarize,
)
from .models import PixelModel
from .targets import hide_class_target, static_target

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
    "confusion_matrix",
    "iou",
    "mean_iou",
    "pixel_accuracy",
    "run_experiment",
    "evaluate",
    "EvalResult",
    "attacks",
    "pipeline",
    "data",
    "zoo",
]
