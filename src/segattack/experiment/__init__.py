"""The paper's experiment over a data set: hide a class at several budgets, measure, write resumable result rows.

``run_experiment(model, dataset, ExperimentConfig(eps=(2, 4, 10), classes=(11,)), "runs/x")``. The package has one
module per job: ``config`` (``ExperimentConfig``, checked once; ``config.json`` written and compared on resume),
``reading`` (ids, sizes, the memory check and the model's first pass, batches read here or in worker processes),
``loop`` (a batch through the attacks and into rows), ``figure1`` (the representative images and their files),
``outputs`` (adversarial PNGs and the gallery's thumbnails) and ``run`` (``run_experiment``: the directory, its lock,
the distributed session, resume).

For each batch of images (Fischer et al. 2017, Sec. 2-3):

1. clean prediction ``model.predict(images)``;
2. target ``hide_class_target(pred, class_id=...)`` (nearest other class, from the prediction, never ground truth);
3. one ``illm_sweep`` for all budgets (their common prefix is computed once): mode ``full``;
4. mode ``posthoc``: the same perturbations kept only on the class pixels of the clean prediction (``restrict``; no
   further attack, as in the paper's Figure 1 (c) and Figure 2 right);
5. mode ``during``: a second sweep restricted to those pixels during the optimisation (``mask=``);
6. predictions on every adversarial image -> ``hiding_metrics``, instance counts (``segattack.instances``),
   ``perturbation_norms``, ``psnr``, ``ssim`` -> rows;
7. survival (``survive=``): every adversarial image again after each image transform T (``segattack.transforms``),
   measured against the prediction of T(clean) -> one more row per transform.

Steps 2-6 are ``segattack.pipeline.attack_batch`` and ``measure``; any registered attack takes the place of
``illm`` (``attacks=``, one set of rows per attack), and ``goal="untargeted"`` measures robustness under attack
instead (pixel accuracy and confusion matrices against the ground truth where the data set has it, else against
the clean prediction).

Files in ``out_dir``:

- ``config.json``: the resolved configuration (compared on resume) and the versions and device of the run;
- ``results.jsonl``: one JSON row per image x attack x eps x mode x transform (fields: ``row_fields``), appended
  and fsync'ed image by image. ``steps`` is the attack's gradient passes for that budget (an upper bound for
  ``dag``). Rates are fractions in [0, 1]; eps and norms are in 8-bit levels; PSNR in dB; ``ssim`` the structural
  similarity to the original (``segattack.metrics.ssim``, 1 = identical); ``time_s`` is the image's share of its
  batch's wall time (all budgets, modes and transforms). Non-finite values (an image without the class has no
  ``fooled``) are written as ``null``. Hide goal, instances (``segattack.instances``): ``instances`` (connected
  components of the class in the clean prediction, 8-connectivity), ``instances_hidden`` (those of which at least
  ``instance_threshold`` of the pixels are no longer the class), the same per size bin by bounding-box height
  (``instances_small``/``_medium``/``_large`` and their ``_hidden``: < 32, 32..95, >= 96 px), and where the data set
  has ground-truth instance ids (``instance_ids(i)``, ``has_instances``: Cityscapes ``*_gtFine_instanceIds.png``)
  ``gt_instances*`` alike (ground-truth instances visible in the clean prediction; ``gt_instances_missed`` those it
  already misses). ``transform``: null for the plain rows; for the survival rows the transform's name (``jpeg:75``):
  every measure is then taken after the transform T, against model(T(clean)) (hidden, kept, target, instances) and
  T(clean) (norms, PSNR, SSIM: what of the perturbation survives T). ``status`` is ``ok``, ``absent`` (no pixel of
  the class predicted: not attacked), ``all_hidden`` (every pixel is the class: no target exists) or ``unreadable``
  (the file cannot be decoded; logged as a warning);
- ``figure1_<id>.npz``: what the 11 panels of the paper's Figure 1 need, at the budget nearest 10 levels, for
  representative images chosen once the results are known (``figure1_ids``: the median and the hardest by hidden
  share, then evenly spaced quantiles; or ids named by hand), with ``reason`` (why the image was chosen) and
  ``label_names`` (the names of the model's classes). The chosen images are attacked again at the end of the run
  (the attack is deterministic, so the arrays are those behind the rows);
- ``images/eps<E>/<mode>/<id>.png`` with ``save_images=True``: the adversarial images, lossless 8-bit.

Determinism: the same inputs give the same rows (apart from ``time_s``): every random draw (an attack's random start
and EOT draws, a ``noise`` transform) comes from a generator seeded from the configuration's ``seed``, the image id
and, for the attacks, the attack, its options, the budget and the restart (``ExperimentConfig.image_seed``,
``AttackSpec.seeds``), so an image's rows do not depend on its batch, on a resume or on the number of processes; a
noise transform gives the clean and every adversarial image of an image the same draw. On CUDA a few
kernels (e.g. the backward of bilinear upsampling) add in a varying order, so rows can differ in rare pixels between
GPU runs.

Many processes (``torchrun --nproc-per-node N -m segattack run ...``; ``segattack.distributed``): the batches of
images left are dealt out to the processes in turn, each on its own device; process 0 alone checks and writes
``config.json``, prepares ``results.jsonl`` and holds the lock, every process appends its images' rows (one locked
write per image), and process 0 chooses and draws Figure 1 once all are done. The rows are those of one process.

Resuming: run the same configuration on the same directory again; images whose rows are complete are skipped, a
torn last line (a crash mid-write), invalid rows and the rows of half-written images are dropped, so no row is lost
or duplicated. Running fewer attacks keeps the finished rows of the others (``config.json``'s ``kept_attacks``); a
different configuration otherwise is refused unless ``overwrite=True``, which removes only what runs there wrote.
Figure 1 files are brought up to date at the end of every complete run: those of images still chosen are kept (a
corrupt one is drawn again), those of images no longer chosen are removed.
"""

from __future__ import annotations

from ..rundir import (
    CONFIG_FILE,
    MODES,
    RESULTS_FILE,
    ROW_FIELDS,
    STATUSES,
    output_name,
    read_config,
    read_rows,
    safe_name,
)
from .compare import CompareError, CompareProgress, CompareResult, compare_models
from .config import GOALS, MIN_EPS, ExperimentConfig, ExperimentError, RunOptions, check_eps
from .figure1 import Figure1Pick, figure1_eps, figure1_min_pixels
from .loop import row_fields
from .outputs import to_uint8
from .reading import default_read_workers, first_readable, image_id_of
from .run import Progress, RunResult, run_experiment

__all__ = [
    "run_experiment",
    "compare_models",
    "CompareResult",
    "CompareProgress",
    "CompareError",
    "ExperimentConfig",
    "RunOptions",
    "RunResult",
    "Progress",
    "ExperimentError",
    "check_eps",
    "GOALS",
    "MIN_EPS",
    "MODES",
    "ROW_FIELDS",
    "row_fields",
    "STATUSES",
    "RESULTS_FILE",
    "CONFIG_FILE",
    "read_rows",
    "read_config",
    "figure1_eps",
    "safe_name",
    "output_name",
    "image_id_of",
    "first_readable",
    "default_read_workers",
    "to_uint8",
    "Figure1Pick",
    "figure1_min_pixels",
]
