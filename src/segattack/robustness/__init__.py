"""Robustness of a segmentation model under attack: one evaluation with its sanity checks, its report and a
leaderboard of several.

- ``checks``: Carlini et al.'s checks against gradient masking measured in memory (``masking_checks``,
  ``MaskingChecks``, ``pixel_accuracy_of``, ``noise_images``);
- ``protocol``: protocols as data (``sea``, ``quick``, ``custom``): the evaluations a run makes;
- ``config``: ``RobustnessConfig``, the job's configuration (budgets in 8-bit levels), checked once;
- ``run``: ``run_robustness``, the job on a directory it owns (lock, resume, one row per image, evaluation and eps);
- ``summary``: the figures from the files alone (worst cases, the minimal-eps curve, the cost), ``robustness.json``;
- ``sanity``: the sanity checks as pure functions of those figures, each PASS, FAIL or SKIPPED with its numbers.

The page is ``segattack.report.robustness``, the leaderboard ``segattack.report.leaderboard``.

Examples:
    >>> from segattack.robustness import RobustnessConfig
    >>> [p.kind for p in RobustnessConfig(eps=(4,), protocol="custom", attacks=("pgd",)).plan]
    ['white-box', 'transfer', 'large-eps', 'noise']
"""

from .checks import MaskingChecks, masking_checks, noise_images, pixel_accuracy_of
from .config import Planned, RobustnessConfig, RobustnessError
from .protocol import PROTOCOLS, Evaluation
from .run import RobustnessProgress, RobustnessRun, run_robustness
from .summary import summarize_robustness, write_robustness_json

__all__ = [
    "MaskingChecks",
    "masking_checks",
    "pixel_accuracy_of",
    "noise_images",
    "RobustnessConfig",
    "RobustnessError",
    "Planned",
    "Evaluation",
    "PROTOCOLS",
    "run_robustness",
    "RobustnessRun",
    "RobustnessProgress",
    "summarize_robustness",
    "write_robustness_json",
]
