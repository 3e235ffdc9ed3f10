"""Adversarial patches (Nesti, Rossolini, Nair, Biondi and Buttazzo, WACV 2022): one printable picture, fitted on
many images with EOT, that makes a segmentation network stop seeing a class (or lose agreement with itself) when it
is placed in the scene. A job that fits something on a data set, beside ``segattack.universal``.

- ``placement``: ``Placement`` (size, fixed box / centre / region of classes / four corners, perspective tilt),
  ``homography``,
  ``quad_of``, ``paste`` (differentiable warp by ``grid_sample``; pixels outside the patch untouched);
- ``eot``: ``PatchEOT`` and its seeded ``Draw``s over position, scale, rotation, perspective, brightness, contrast,
  noise, blur and JPEG;
- ``printability``: ``nps`` (Sharif et al. 2016), ``total_variation``, ``DEFAULT_PRINTABLE``,
  ``load_printable_colours``;
- ``fit``: ``fit`` (Adam on Nesti et al.'s composed loss; resumable from a ``PatchState``);
- ``evaluate``: ``evaluate``, per held-out image against the clean prediction;
- ``config``: ``PatchConfig``, the job's configuration, checked once;
- ``export``: ``save_patch``/``load_patch`` (lossless float values), ``patch.png`` with its print size and DPI;
- ``run``: ``run_patch``, the job on a directory it owns (lock, kind, configuration, manifest): fit with
  checkpoints, measure on held-out images against a random patch, optionally in rendered scenes, write; resumable.

>>> import segattack.patches as sp
>>> sp.PatchConfig(size=0.05).make_placement().box_size((100, 200))
(32, 31)
"""

from .config import PatchConfig, PatchError
from .eot import NESTI_EOT, Draw, PatchEOT, patch_generator
from .evaluate import DISTANCE_EDGES, PatchEvaluation, changed_by_distance, evaluate
from .export import PrintSize, load_patch, parse_print_size, save_patch
from .fit import DEFAULT_LR, DEFAULT_STEPS, PatchResult, PatchState, fit, place_batch
from .placement import Placement, homography, paste, quad_of
from .printability import DEFAULT_PRINTABLE, load_printable_colours, nps, total_variation
from .run import PatchProgress, PatchRun, run_patch

__all__ = [
    "PatchConfig",
    "PatchError",
    "Placement",
    "homography",
    "quad_of",
    "paste",
    "PatchEOT",
    "Draw",
    "NESTI_EOT",
    "patch_generator",
    "nps",
    "total_variation",
    "DEFAULT_PRINTABLE",
    "load_printable_colours",
    "fit",
    "place_batch",
    "PatchState",
    "PatchResult",
    "DEFAULT_LR",
    "DEFAULT_STEPS",
    "evaluate",
    "PatchEvaluation",
    "changed_by_distance",
    "DISTANCE_EDGES",
    "run_patch",
    "PatchRun",
    "PatchProgress",
    "save_patch",
    "load_patch",
    "PrintSize",
    "parse_print_size",
]
