"""The paper's experiment over a data set: hide a class at several budgets, measure, write resumable result rows.

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

Determinism: the same inputs give the same rows (apart from ``time_s``): the attack has no randomness and torch's
generators are seeded for the run; a random transform (``noise``) draws from a generator seeded per (image,
transform) from ``seed``, the same draw for the clean and every adversarial image of that image. On CUDA a few
kernels (e.g. the backward of bilinear upsampling) add in a varying order, so rows can differ in rare pixels between
GPU runs.

Many processes (``torchrun --nproc-per-node N -m segattack run ...``; ``segattack.distributed``): the batches of
images left are dealt out to the processes in turn, each on its own device; process 0 alone checks and writes
``config.json``, prepares ``results.jsonl`` and holds the lock, every process appends its images' rows (one locked
write per image), and process 0 chooses and draws Figure 1 once all are done. The rows are those of one process.

Resuming: run the same configuration on the same directory again; images whose rows are complete are skipped, a
torn last line (a crash mid-write) and the rows of half-written images are dropped, so no row is lost or
duplicated. A different configuration is refused unless ``overwrite=True``. Figure 1 files are brought up to date
at the end of every complete run: those of images still chosen are kept (a corrupt one is drawn again), those of
images no longer chosen are removed.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import math
import os
import platform
import shutil
import time
import zipfile
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from . import distributed, rundir
from .attacks import registry
from .attacks._core import mix_seed
from .data import labels as _labels
from .errors import ConfigError, ModelError, SegattackError, UnreadableImageError
from .instances import DEFAULT_THRESHOLD, check_threshold, instance_fields
from .metrics import perturbation_norms, ssim
from .models import _frozen, model_fingerprint
from .pipeline import (
    AttackSpec,
    BatchOutcome,
    Goal,
    HideGoal,
    UntargetedGoal,
    attack_batch,
    clean_instances,
    measure,
    transformed_outcome,
)
from .rundir import (
    CONFIG_FILE,
    DEFAULT_ATTACK,
    FIGURE1_CACHE_DIR,
    MODES,
    RESULTS_FILE,
    ROW_FIELDS,
    STATUSES,
    RunLock,
    figure1_path,
    output_name,
    read_config,
    read_rows,
    safe_name,
)
from .targets import class_id_tuple, hidden_mask

__all__ = [
    "run_experiment",
    "Progress",
    "ExperimentError",
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
    "to_uint8",
    "Figure1Pick",
    "figure1_min_pixels",
]

log = logging.getLogger(__name__)

CONFIG_FORMAT = 1
GOALS = ("hide", "untargeted")


class ExperimentError(ConfigError):
    """A configuration the experiment cannot honour (message meant for the user)."""


@dataclass(frozen=True)
class Progress:
    """Reported to the ``progress`` callback once at the start and after every image.

    done: images finished so far, including those found finished on resume; total: images in this run;
    resumed: images skipped because earlier rows were complete; image_id/status: the image just finished (None at
    the start); rows: the result rows written for it (empty at the start).

    Running means over every image finished so far (resumed ones included), for the first attack, mode ``full``
    (else the first mode run), at ``eps`` (the budget nearest 10 levels, as Figure 1): ``means`` holds ``fooled``
    and ``preserved`` (hide goal) or ``accuracy`` (untargeted), averaged over the ``measured`` images that have
    them (images without the class have no ``fooled`` and are left out, as in the summary).
    """

    done: int
    total: int
    resumed: int
    image_id: str | None = None
    status: str | None = None
    rows: tuple[Mapping[str, Any], ...] = ()
    eps: float | None = None
    means: Mapping[str, float] = field(default_factory=dict)
    measured: int = 0


class _RunningMeans:
    """The means ``Progress`` reports, kept up to date row by row."""

    def __init__(self, attack: str, eps: float, mode: str, keys: Sequence[str]) -> None:
        self.attack, self.eps, self.mode, self.keys = attack, float(eps), mode, tuple(keys)
        self.sums = dict.fromkeys(self.keys, 0.0)
        self.counts = dict.fromkeys(self.keys, 0)
        self.images: set[int] = set()

    def add(self, rows: Iterable[Mapping[str, Any]]) -> None:
        for r in rows:
            if str(r.get("attack") or DEFAULT_ATTACK) != self.attack or r.get("mode") != self.mode:
                continue
            if r.get("transform"):  # survival rows: the running means are those of the plain rows
                continue
            if r.get("eps") is None or float(r["eps"]) != self.eps:
                continue
            for key in self.keys:
                v = r.get(key)
                if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v):
                    self.sums[key] += float(v)
                    self.counts[key] += 1
                    self.images.add(int(r["index"]))

    def means(self) -> dict[str, float]:
        return {k: self.sums[k] / self.counts[k] for k in self.keys if self.counts[k]}


def image_id_of(dataset: Any, index: int) -> str:
    """A data set's stable id of item ``index`` (``image_id(i)``, else ``name(i)``, else the index)."""
    for attr in ("image_id", "name"):
        fn = getattr(dataset, attr, None)
        if callable(fn):
            return str(fn(index))
    return str(index)


def figure1_eps(eps_levels: Sequence[float]) -> float:
    """The budget Figure 1 shows: the one nearest 10 levels (the paper's), the larger one on a tie.

    >>> figure1_eps([1, 2, 8, 12]), figure1_eps([1, 2, 4])
    (12, 4)
    """
    return min(eps_levels, key=lambda e: (abs(e - 10), -e))


def _number(e: float) -> int | float:
    return int(e) if float(e).is_integer() else float(e)


#: Row fields after ``ROW_FIELDS``: the transform of a survival row (null for plain rows) and SSIM.
def row_fields(*, gt_instances: bool = False) -> tuple[str, ...]:
    """The fields of every result row, in order: ``ROW_FIELDS`` (ending in ``transform``, ``ssim`` and the instance
    counts of ``instance_fields()``) and, for a data set with ground-truth instances,
    ``instance_fields("gt_instances")``."""
    gt = instance_fields("gt_instances") if gt_instances else ()
    return (*ROW_FIELDS, *gt)


#: A row's key within its (image, attack) group: (eps, mode, attack, transform); "" for the plain rows (and the rows
#: written before rows had a transform).
RowKey = tuple[float, str, str, str]


def _row_key(row: Mapping[str, Any]) -> RowKey:
    return (
        float(row["eps"]),
        str(row["mode"]),
        str(row.get("attack") or DEFAULT_ATTACK),
        str(row.get("transform") or ""),
    )


def _prepare_results(
    path: Path, ids: Sequence[str], keys: Mapping[str, set[RowKey]]
) -> tuple[dict[int, set[str]], list[dict[str, Any]]]:
    """Per image, the attacks whose rows are complete (``keys``: the row keys each attack needs), and the rows kept;
    rewrites the file without torn lines, partial (image, attack) groups and rows of attacks no longer run."""
    rows, raw, dropped = rundir.parse_results(path)
    groups: dict[tuple[int, str], list[int]] = {}
    for pos, row in enumerate(rows):
        groups.setdefault((int(row["index"]), str(row["attack"])), []).append(pos)
    done: dict[int, set[str]] = {}
    keep: list[int] = []
    for (index, attack), positions in groups.items():
        got = [_row_key(rows[p]) for p in positions]
        want = keys.get(attack)
        complete = (
            want is not None
            and 0 <= index < len(ids)
            and len(got) == len(want)
            and set(got) == want
            and all(rows[p].get("image_id") == ids[index] for p in positions)
        )
        if complete:
            done.setdefault(index, set()).add(attack)
            keep.extend(positions)
        else:
            dropped = True
            if want is not None:
                log.info("image %d, %s: %d of %d rows found; redone", index, attack, len(got), len(want))
    keep.sort()
    if dropped:
        rundir.rewrite_jsonl(path, [raw[p] for p in keep])
    return done, [rows[p] for p in keep]


def _versions() -> dict[str, str]:
    from . import __version__

    return {
        "segattack": __version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


def _ids_digest(ids: Iterable[str]) -> str:
    digest = hashlib.sha256()
    for i in ids:
        digest.update(i.encode() + b"\0")
    return digest.hexdigest()


def _diff(old: Mapping[str, Any], new: Mapping[str, Any], ignore: Sequence[str] = ()) -> str:
    parts = rundir.config_diff(old, new, ignore=ignore)
    return "; ".join(parts[:4]) + ("; ..." if len(parts) > 4 else "")


def to_uint8(x: Tensor, clean: Tensor | None = None, eps_levels: float | None = None) -> np.ndarray:
    """(3, H, W) in [0, 1] -> (H, W, 3) uint8 (exact for 8-bit images and whole-level budgets).

    With ``clean`` and a fractional ``eps_levels``, the perturbation is rounded toward ``clean`` so that the 8-bit
    image stays within floor(eps) levels of it (plain rounding could move a pixel 3 levels for eps 2.6).

    >>> clean = torch.full((3, 1, 1), 100 / 255)
    >>> int(to_uint8(clean + 2.6 / 255)[0, 0, 0]), int(to_uint8(clean + 2.6 / 255, clean, 2.6)[0, 0, 0])
    (103, 102)
    """
    levels = (x.detach() * 255).round()
    if clean is not None and eps_levels is not None and not float(eps_levels).is_integer():
        base = (clean.detach() * 255).round()
        bound = math.floor(eps_levels)
        levels = base + torch.trunc(x.detach() * 255 - base).clamp(-bound, bound)
    return levels.clamp(0, 255).to(torch.uint8).permute(1, 2, 0).cpu().numpy()


def _labels_np(x: Tensor, num_classes: int) -> np.ndarray:
    return x.detach().cpu().numpy().astype(np.uint8 if num_classes <= 256 else np.int32)


def _save_png(path: Path, image: np.ndarray) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    with rundir.atomic_open(path) as fh:
        Image.fromarray(image).save(fh, format="PNG")


def run_experiment(
    model: Any,
    dataset: Any,
    *,
    class_ids: int | Sequence[int] | None = None,
    eps_levels: Sequence[int | float],
    out_dir: str | os.PathLike[str],
    attacks: Sequence[str | AttackSpec] = ("illm",),
    goal: str = "hide",
    modes: Sequence[str] | None = None,
    batch_size: int = 4,
    limit: int | None = None,
    save_images: bool = False,
    device: str | torch.device | None = None,
    figure1_ids: int | Sequence[str] = 3,
    overwrite: bool = False,
    describe: Mapping[str, Any] | None = None,
    progress: Callable[[Progress], None] | None = None,
    seed: int = 0,
    check_memory: bool = True,
    label_names: Sequence[str] | None = None,
    instance_threshold: float = DEFAULT_THRESHOLD,
    survive: str | Sequence[Any] = (),
    overlap: bool | None = None,
    read_workers: int | None = None,
) -> Path:
    """Run the paper's experiment (hide ``class_ids`` at every budget) over ``dataset``; return ``out_dir``.

    Args:
        model: a ``PixelModel`` (images in [0, 1] -> logits at input size).
        dataset: items ``(uint8 image (3, H, W), label)`` with ``image_id(i)`` (the ``segattack.data`` contract).
        class_ids: the class(es) to hide, e.g. 11 (Cityscapes person) or (11, 12); required for ``goal="hide"``.
        eps_levels: L-inf budgets in 8-bit levels (``[1, 2, 4, 10]``).
        out_dir: where results go (created; see the module docstring for its files).
        attacks: registered attack names (``segattack.attacks.available()``) or ``AttackSpec``s with options; one
            set of rows per attack (default: the paper's ``illm`` with its step of 1 level and iterations).
        goal: ``"hide"`` (the paper's; targeted) or ``"untargeted"`` (robustness under attack: accuracy and
            confusion matrices against the ground truth where the data set has labels, else the clean prediction).
        modes: any of ``"full"`` (perturbation on the whole image), ``"posthoc"`` (restricted afterwards to the
            class pixels) and ``"during"`` (restricted during the optimisation; one more sweep). Default
            ``("full", "posthoc")`` for hide, ``("full",)`` for untargeted (the only mode it has).
        batch_size: images attacked at once (consecutive images of equal size).
        limit: only the first ``limit`` images.
        save_images: also write the adversarial images as PNGs under ``images/``.
        device: where to run (default: the model's device).
        figure1_ids: N (a count): Figure 1 data for N representative images, chosen once the results are known
            (``_figure1_picks``: the image nearest the median hidden share, the hardest, then evenly spaced
            quantiles, among the images with enough class pixels); 0 for none; or a list of image ids (chosen by
            hand). Hide goal only.
        overwrite: replace the results of a different configuration in ``out_dir`` instead of refusing.
        describe: extra configuration to record and compare (the command line puts its data and model specs here).
        progress: called with a ``Progress`` at the start and after every image, with that image's rows and the
            running means at the Figure 1 budget (it may raise KeyboardInterrupt; finished rows are kept; Figure 1
            is then left for the next complete run). ``segattack.commands.progress.RunProgress`` shows it.
        seed: seeds torch's generators for the run (restored afterwards); the attack itself is deterministic.
        check_memory: before any image is read, estimate the memory the run needs from the data set's image sizes
            (``image_size(i)``, read from file headers) and a probe of the model, and refuse with ``ResourceError``
            (the estimate and the fix) if the device does not have it (``segattack.memory``).
        label_names: the names of all the model's output classes, in output order (their number must equal the
            model's); default: the model's ``class_names`` if it has them, else ``segattack.data.labels.
            label_names`` (the Cityscapes names for 19 classes, those and ``"void"`` for 20, plain indices
            otherwise). Recorded in ``config.json`` and every Figure 1 file (legend, colours, title).
        instance_threshold: an instance (a connected component of the class in the clean prediction, or a
            ground-truth instance) counts as hidden when at least this share of its pixels is no longer predicted as
            the class (``segattack.instances``; default 0.95). Hide goal.
        survive: image transforms every adversarial image is measured again after (``segattack.transforms``): a spec
            ``"jpeg:75,jpeg:50,resize:0.5,blur:1.0,noise:2"``, or a list of such names or ``Transform`` objects. One
            more row per transform (field ``transform``), hidden and kept against the prediction of the identically
            transformed clean image; noise is drawn per (image, transform) from a generator seeded by ``seed``, the
            same for the clean and the adversarial images. Hide goal.
        overlap: pipeline the batches: while one batch is attacked (the model's work, on the calling thread), the
            next is read (or generated) on a reader thread and the previous one measured (metrics, SSIM, instances,
            thumbnails, saved images) on a measuring thread; its rows are appended once they are complete, so an
            interruption loses at most the batches in flight. False: one batch after the other on the calling thread
            (the rows are the same). None (default): pipelined on a GPU, where the attack runs on the device and
            the CPU is free for the rest; one after the other on a CPU, where the worker threads would take cores
            from the attack's own threads (measured on 2 cores: 148 s pipelined against 122 s, the demo's run).
        read_workers: worker processes that read (decode, resize, generate) the next batches' images while the
            model attacks (a ``torch.utils.data.DataLoader`` over the images left, two batches ahead per worker); 0
            reads on the calling thread (or the reader thread when pipelined). None (default): up to 4 (half the
            CPU cores) on a GPU, 0 on a CPU, where they would take cores from the attack. The rows are the same
            either way. The data set must work in a forked process (those of ``segattack.data`` do).

    Raises:
        ExperimentError: invalid arguments, a model whose classes do not fit, or a different configuration in
            ``out_dir`` (without ``overwrite``).
    """
    goal_obj, ids_t = _check_goal(goal, class_ids)
    specs = _check_attacks(attacks, goal_obj)
    try:
        threshold = check_threshold(instance_threshold)
    except ValueError as err:
        raise ExperimentError(f"instance_threshold: {err}") from None
    transforms = _check_survive(survive)
    if transforms and not isinstance(goal_obj, HideGoal):
        raise ExperimentError("survive= measures how well a class stays hidden after transforms: the hide goal only")
    figure1_spec = _check_figure1(figure1_ids)
    eps = _check_eps(eps_levels)
    if modes is None:
        modes = ("full", "posthoc") if isinstance(goal_obj, HideGoal) else ("full",)
    modes_t = _check_modes(modes)
    if isinstance(goal_obj, UntargetedGoal) and modes_t != ("full",):
        raise ExperimentError("the untargeted goal has one mode, 'full' (no class to restrict the perturbation to)")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ExperimentError(f"batch_size must be a positive integer, got {batch_size!r}")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ExperimentError(f"limit must be a positive integer, got {limit!r}")
    if read_workers is not None and (isinstance(read_workers, bool) or not isinstance(read_workers, int)
                                     or read_workers < 0):  # fmt: skip
        raise ExperimentError(f"read_workers must be an integer >= 0 (0: read on this process), got {read_workers!r}")
    n = len(dataset) if limit is None else min(limit, len(dataset))
    if n == 0:
        raise ExperimentError("the data set holds no images")
    dev = torch.device(device) if device is not None else getattr(model, "device", torch.device("cpu"))
    with distributed.session(dev) as w:  # torchrun: one process per device, the images shared among them
        dev = distributed.local_device(dev, w)
        error: Exception | None = None
        try:  # every process checks its own device (memory) and model; an error on any stops all of them
            model = model.to(dev)
            ids = [image_id_of(dataset, i) for i in range(n)]
            if len(set(ids)) != len(ids):
                raise ExperimentError("the data set's image ids are not unique; result rows could not be told apart")
            if check_memory:
                _check_memory(model, dataset, n, ids, dev, batch_size=batch_size, n_eps=len(eps),
                              n_modes=len(modes_t))  # fmt: skip
            num_classes = _probe_model(model, dataset, n, ids_t, ids, dev)
            names = _check_label_names(label_names, model, num_classes)
        except Exception as err:
            error = err
        w.agree(error)

        reference = "truth" if isinstance(goal_obj, UntargetedGoal) and getattr(dataset, "has_labels", True) else None
        if isinstance(goal_obj, UntargetedGoal) and reference is None:
            reference = "prediction"
        experiment = {
            "goal": goal_obj.name,
            "class_ids": list(ids_t),
            "class_names": [names[c] for c in ids_t],
            "eps_levels": [_number(e) for e in eps],
            "attacks": [a.describe() for a in specs],
            "passes": {a.name: [a.passes(e / 255) for e in eps] for a in specs},
            "sweeps": {a.name: _sweep_record(a, eps) for a in specs},
            "reference": reference,
            "modes": list(modes_t),
            "images": n,
            "limit": limit,
            "image_ids_sha256": _ids_digest(ids),
            "model_sha256": model_fingerprint(model),
            "figure1_eps": _number(figure1_eps(eps)),
            "instance_threshold": threshold,
            "survive": [t.name for t in transforms],
            "gt_instances": bool(getattr(dataset, "has_instances", False)),
            **{k: v for k, v in (describe or {}).items()},
            "num_classes": num_classes,
            "label_names": list(names),
        }
        run = _Run(
            model, dataset, Path(out_dir), experiment, goal_obj, specs, eps, modes_t, ids, n, dev, num_classes,
            reference, batch_size=batch_size, save_images=save_images, figure1_ids=figure1_spec, progress=progress,
            seed=seed, world=w, instance_threshold=threshold, transforms=transforms,
            overlap=dev.type == "cuda" if overlap is None else bool(overlap),
            read_workers=default_read_workers(dev) if read_workers is None else read_workers,
        )  # fmt: skip
        with contextlib.ExitStack() as stack:
            # rank 0 alone checks and writes config.json, prepares results.jsonl and holds the directory's lock
            done: dict[int, set[str]] | None = None
            kept_rows: list[dict[str, Any]] = []
            if w.main:
                try:
                    stack.enter_context(RunLock(rundir.check_writable_dir(out_dir), "segattack run"))
                    done, kept_rows = run.start(overwrite)
                except Exception as err:
                    error = err
            w.agree(error)
            run.attack(w.broadcast(done), kept_rows)
            w.barrier()  # every image's rows are in results.jsonl
            if w.main:
                run.finish()
    return Path(out_dir)


class _Run:
    """One run of the experiment on ``out``: ``start`` (configuration, resume; rank 0), ``attack`` (this process's
    share of the images not done), ``finish`` (Figure 1; rank 0, once every process is done)."""

    def __init__(
        self,
        model: Any,
        dataset: Any,
        out: Path,
        experiment: dict[str, Any],
        goal_obj: Goal,
        specs: list[AttackSpec],
        eps: list[float],
        modes_t: tuple[str, ...],
        ids: list[str],
        n: int,
        dev: torch.device,
        num_classes: int,
        reference: str | None,
        *,
        batch_size: int,
        save_images: bool,
        figure1_ids: int | tuple[str, ...],
        progress: Callable[[Progress], None] | None,
        seed: int,
        world: distributed.World,
        instance_threshold: float = DEFAULT_THRESHOLD,
        transforms: Sequence[Any] = (),
        overlap: bool = True,
        read_workers: int = 0,
    ) -> None:
        self.overlap, self.read_workers = overlap, read_workers
        self.dataset, self.out, self.experiment, self.goal_obj = dataset, out, experiment, goal_obj
        self.transforms = list(transforms)
        self.specs, self.eps, self.modes_t, self.ids, self.n, self.dev = specs, eps, modes_t, ids, n, dev
        self.batch_size, self.save_images, self.figure1_ids, self.seed = batch_size, save_images, figure1_ids, seed
        self.world = world
        self.progress = progress if world.main else None
        self.fig_eps = figure1_eps(eps)
        self.lead_mode = "full" if "full" in modes_t else modes_t[0]
        self.runner = _BatchRunner(
            model, dev, goal_obj, specs, eps, modes_t, batch_size, out, save_images, num_classes, reference,
            experiment["label_names"], instance_threshold=instance_threshold, transforms=self.transforms, seed=seed,
            gt_instances=bool(experiment.get("gt_instances")),
        )  # fmt: skip
        # Figure 1 candidates: every image when the representative ones are chosen, else the named ones (none for 0).
        if isinstance(figure1_ids, int):
            self.runner.figure1_candidates = None if figure1_ids > 0 else set()
        else:
            self.runner.figure1_candidates = set(figure1_ids)

    def _keys(self, attacks: Iterable[str]) -> dict[str, set[RowKey]]:
        names = set(attacks)
        ts = ["", *(t.name for t in self.transforms)]
        return {a.name: {(float(e), m, a.name, t) for e in self.eps for m in self.modes_t for t in ts}
                for a in self.specs if a.name in names}  # fmt: skip

    def start(self, overwrite: bool) -> tuple[dict[int, set[str]], list[dict[str, Any]]]:
        """Check and write the configuration, prepare results.jsonl: the attacks done per image, the rows kept."""
        out = self.out
        reusable = _check_config(out, self.experiment, overwrite)
        names = [a.name for a in self.specs]
        rundir.record_outputs(out, rundir.run_files(self.ids, attacks=names, eps_levels=self.eps, modes=self.modes_t,
                                                    save_images=self.save_images), kind="run")  # fmt: skip
        config = {
            "format": CONFIG_FORMAT,
            "experiment": self.experiment,
            "run": {
                "batch_size": self.batch_size,
                "device": str(self.dev),
                "processes": self.world.size,
                "save_images": self.save_images,
                "figure1": self.figure1_ids if isinstance(self.figure1_ids, int) else list(self.figure1_ids),
                "seed": self.seed,
                "versions": _versions(),
                "written": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            },
        }
        rundir.write_json(out / CONFIG_FILE, config)
        return _prepare_results(out / RESULTS_FILE, self.ids, self._keys(reusable))

    def attack(self, done: Mapping[int, set[str]], kept_rows: Sequence[Mapping[str, Any]]) -> None:
        """Attack this process's share of the images not done: the batches of the images left (``batch_size``
        consecutive ones each), dealt out to the processes in turn (all of them in a single process), appending
        each image's rows as it is finished."""
        n, ids, w = self.n, self.ids, self.world
        names = [a.name for a in self.specs]
        missing = {i: [a for a in names if a not in done.get(i, set())] for i in range(n)}
        left = [i for i in range(n) if missing[i]]
        resumed = n - len(left)
        batches = [left[s : s + self.batch_size] for s in range(0, len(left), self.batch_size)]
        mine = batches[w.rank :: w.size]
        total = resumed + sum(len(b) for b in mine)  # rank 0's progress: the images done before and its share
        log.info("%d images (%d done before), eps %s levels, modes %s", n, resumed, self.experiment["eps_levels"],
                 "+".join(self.modes_t))  # fmt: skip
        if w.many:
            log.info("process %d of %d: %d of the %d images left", w.rank, w.size, total - resumed, len(left))
        for a in self.specs:
            log.info("%s", a.plan_note([e / 255 for e in self.eps]))
        keys = ("fooled", "preserved") if isinstance(self.goal_obj, HideGoal) else ("accuracy",)
        means = _RunningMeans(self.specs[0].name, self.fig_eps, self.lead_mode, keys)
        means.add(kept_rows)
        count = resumed
        progress = self.progress

        def report(image_id: str | None = None, status: str | None = None, rows: Sequence[dict[str, Any]] = ()) -> None:
            if progress is not None:
                progress(Progress(count, total, resumed, image_id, status, tuple(rows), _number(self.fig_eps),
                                  means.means(), len(means.images)))  # fmt: skip

        report()
        results = self.out / RESULTS_FILE
        append = distributed.append_rows if w.many else rundir.append_jsonl
        cuda = [self.dev.index or 0] if self.dev.type == "cuda" else []

        def emit(todo: Mapping[int, list[str]], per_image: Mapping[int, list[dict[str, Any]]]) -> None:
            nonlocal count
            for i in todo:
                append(results, per_image[i])  # image by image: a crash loses at most the batches in flight
            for i in todo:
                count += 1
                means.add(per_image[i])
                report(ids[i], str(per_image[i][0]["status"]), per_image[i])

        todos = [{i: missing[i] for i in batch} for batch in mine]
        net = getattr(self.runner.model, "net", self.runner.model)
        frozen = _frozen(net) if isinstance(net, torch.nn.Module) else contextlib.nullcontext()
        # frozen for the whole run (eval mode, no parameter gradients; restored at the end): every pass would
        # freeze it anyway, and the pipelined run's two threads then find nothing to set or restore
        with torch.random.fork_rng(devices=cuda), frozen, contextlib.closing(self._reads(todos)) as reads:
            torch.manual_seed(self.seed)
            if self.overlap and len(todos) > 1:
                self._pipelined(todos, reads, emit)
            else:
                for todo, batch in zip(todos, reads, strict=True):
                    self.runner.attack(batch, ids)
                    emit(todo, self.runner.measure(batch))

    def _reads(self, todos: Sequence[Mapping[int, list[str]]]) -> Generator[_Batch, None, None]:
        """The batches of ``todos``, read in order: as they are asked for, on the asking thread, or ahead of
        time in ``read_workers`` processes, started here, on the calling thread, before any worker thread (a fork
        from the reader thread left workers that failed at exit)."""
        runner, ids = self.runner, self.ids
        if self.read_workers == 0 or not todos:
            return (runner.read(self.dataset, todo, ids) for todo in todos)
        loader = torch.utils.data.DataLoader(
            _Items(self.dataset, runner.gt_instances), batch_sampler=[list(todo) for todo in todos],
            num_workers=min(self.read_workers, len(todos)), collate_fn=_as_list, prefetch_factor=2,
            pin_memory=False,  # the attack pins each batch once it is stacked (see _run_group)
        )  # fmt: skip
        return _read_ahead(iter(loader), todos, runner, ids)

    def _pipelined(
        self,
        todos: Sequence[Mapping[int, list[str]]],
        reads: Iterator[_Batch],
        emit: Callable[[Mapping[int, list[str]], Mapping[int, list[dict[str, Any]]]], None],
    ) -> None:
        """Batch n is attacked on this thread while batch n + 1 is read on a reader thread and batch n - 1 is
        measured on a measuring thread; rows are emitted (appended, reported) on this thread in batch order. On an
        error or Ctrl-C the batch being measured is still finished and emitted, then the error goes on."""
        from concurrent.futures import Future, ThreadPoolExecutor

        runner, ids = self.runner, self.ids
        reader = ThreadPoolExecutor(1, thread_name_prefix="segattack-read")
        measurer = ThreadPoolExecutor(1, thread_name_prefix="segattack-measure")
        pending: tuple[Mapping[int, list[str]], Future[dict[int, list[dict[str, Any]]]]] | None = None
        try:
            def read_and_prepare() -> _Batch:  # on the reader thread: reading, prediction, targets, instances
                return runner.prepare(next(reads), ids)

            next_read = reader.submit(read_and_prepare)
            for n, todo in enumerate(todos):
                batch = next_read.result()
                if n + 1 < len(todos):
                    next_read = reader.submit(read_and_prepare)
                runner.attack(batch, ids)
                if pending is not None:
                    done, pending = pending, None
                    emit(done[0], done[1].result())
                pending = (todo, measurer.submit(runner.measure, batch, overlapped=True))
            if pending is not None:
                done, pending = pending, None
                emit(done[0], done[1].result())
        except BaseException:
            if pending is not None:  # finished work is kept: the batch measured meanwhile is written
                with contextlib.suppress(Exception):
                    emit(pending[0], pending[1].result())
            raise
        finally:
            reader.shutdown(wait=True, cancel_futures=True)
            measurer.shutdown(wait=True, cancel_futures=True)

    def finish(self) -> None:
        """Figure 1 from the rows of every image (every process's), or no Figure 1 files for the untargeted goal."""
        if not isinstance(self.goal_obj, HideGoal):
            _remove_figure1(self.out, keep=set())
            return
        cuda = [self.dev.index or 0] if self.dev.type == "cuda" else []
        with torch.random.fork_rng(devices=cuda):
            torch.manual_seed(self.seed)
            n = self.n
            rows = [
                r for r in rundir.parse_results(self.out / RESULTS_FILE)[0]
                if 0 <= int(r["index"]) < n and not r.get("transform")
            ]  # fmt: skip
            picks = _figure1_picks(
                self.figure1_ids, rows, self.ids, attack=self.specs[0].name, eps=self.fig_eps, mode=self.lead_mode,
                class_names=self.experiment["class_names"], pixels=lambda i: self.runner.pixels_of(self.dataset, i),
            )  # fmt: skip
            rundir.record_outputs(self.out, [figure1_path("", p.image_id).name for p in picks], kind="run")
            self.runner.update_figure1(self.dataset, picks)


# -- Figure 1: representative images, chosen once the results are known ------------------------------------------

#: An image takes part in the representative choice with at least this many class pixels, or 1% of its pixels if
#: that is fewer.
FIGURE1_MIN_PIXELS = 500
FIGURE1_MIN_SHARE = 0.01
#: What every Figure 1 file holds (``adv_during``/``pred_during`` as well when mode ``during`` was run).
FIGURE1_KEYS = (
    "image_id", "attack", "attack_options", "eps", "class_ids", "label_names", "reason", "image", "adv",
    "adv_restricted", "target", "pred", "pred_adv", "pred_restricted",
)  # fmt: skip
_NPZ_ERRORS = (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile)
#: Figure 1 candidates are saved during a run (``rundir.FIGURE1_CACHE_DIR``) up to this many MB in all (the demo's 20
#: scenes at 256x512 take 35 MB); an image chosen beyond it is attacked again when Figure 1 is written.
FIGURE1_CACHE_MB = 256


@dataclass(frozen=True)
class Figure1Pick:
    """An image chosen for Figure 1: its index and id, why it was chosen, and its row's hidden share (None for an
    image chosen by hand whose row is not known)."""

    index: int
    image_id: str
    reason: str
    fooled: float | None = None


#: Images per ``ssim`` call when the rows are made (several budgets at once: the whole-image perturbations of one
#: image share their box, so they go through the window in one batch).
SSIM_CHUNK = 8


def _ssim_all(advs: Tensor, xs: Tensor) -> Tensor:
    """``metrics.ssim`` of every budget's adversarial images (K, B, C, H, W) to ``xs`` (B, C, H, W): (K, B), in
    calls of at most ``SSIM_CHUNK`` images."""
    k, b = advs.shape[:2]
    step = max(1, SSIM_CHUNK // b)
    parts = []
    for k0 in range(0, k, step):
        chunk = advs[k0 : k0 + step]
        n = chunk.shape[0]
        parts.append(ssim(chunk.flatten(0, 1), xs.unsqueeze(0).expand(n, *xs.shape).flatten(0, 1)).view(n, b))
    return torch.cat(parts)


def figure1_min_pixels(image_pixels: int) -> int:
    """The class pixels an image needs to be chosen as representative: 500, or 1% of its pixels if fewer.

    >>> figure1_min_pixels(1024 * 2048), figure1_min_pixels(32 * 64)
    (500, 21)
    """
    return min(FIGURE1_MIN_PIXELS, math.ceil(FIGURE1_MIN_SHARE * image_pixels))


def _pct(v: float) -> str:
    return f"{100 * v:.1f}%"


def _figure1_picks(
    spec: int | tuple[str, ...],
    rows: Sequence[Mapping[str, Any]],
    ids: Sequence[str],
    *,
    attack: str,
    eps: float,
    mode: str,
    class_names: Sequence[str],
    pixels: Callable[[int], int],
) -> list[Figure1Pick]:
    """The images Figure 1 shows, from the result rows of ``attack`` at ``eps`` in ``mode`` (status ``ok``).

    A tuple of ids: those images, "chosen by hand" (ids without an attacked row are left out with a warning).
    A count N: representative images, ranked by hidden share (``fooled``; ties by index), among those with at least
    ``figure1_min_pixels`` class pixels (all attacked images if none has that many): first the median (for an even
    number the lower of the two middle images), then the hardest (lowest hidden share), then, for N > 2, the
    images at the evenly spaced quantiles j/(N-1), j = 1..N-1, of which the one nearest 0.5 is the median already.
    A rank already taken moves to the nearest free one. ``pixels(i)``: the pixels of image ``i``.
    """
    by_index: dict[int, Mapping[str, Any]] = {}
    for row in rows:
        i = int(row["index"])
        if (
            str(row.get("attack") or DEFAULT_ATTACK) == attack
            and float(row["eps"]) == float(eps)
            and row["mode"] == mode
            and row["status"] == "ok"
            and 0 <= i < len(ids)
            and row.get("image_id") == ids[i]
        ):
            by_index[i] = row
    cls = "/".join(class_names) if class_names else "class"
    if isinstance(spec, tuple):
        where = {iid: i for i, iid in enumerate(ids)}
        picks = []
        for iid in spec:
            at = where.get(iid)
            if at is None:
                log.warning("Figure 1: image %s is not among the %d images of this run; left out", iid, len(ids))
            elif at not in by_index:
                log.warning("Figure 1: image %s was not attacked (no %s pixels predicted, or unreadable); left out",
                            iid, cls)  # fmt: skip
            else:
                f = float(by_index[at]["fooled"])
                picks.append(Figure1Pick(at, iid, "chosen by hand", f if math.isfinite(f) else None))
        return picks
    if spec == 0 or not by_index:
        return []
    cands = [(float(row["fooled"]), i, int(row["class_pixels"] or 0)) for i, row in by_index.items()]
    cands = [c for c in cands if math.isfinite(c[0])]
    if not cands:
        return []
    # an image with FIGURE1_MIN_PIXELS class pixels takes part whatever its size: sizes are looked up for the
    # others only, and for all once one of them is small (the bar then depends on the size; small images are cheap)
    need = {i: figure1_min_pixels(pixels(i)) for _, i, c in cands if c < FIGURE1_MIN_PIXELS}
    if any(v < FIGURE1_MIN_PIXELS for v in need.values()):
        need = {i: need[i] if i in need else figure1_min_pixels(pixels(i)) for _, i, _ in cands}
    pool = sorted(c for c in cands if c[2] >= need.get(c[1], FIGURE1_MIN_PIXELS))
    levels = sorted(set(need.values()) | ({FIGURE1_MIN_PIXELS} if len(need) < len(cands) else set()))
    rule = f">= {levels[0]}" if len(levels) == 1 else f">= min({FIGURE1_MIN_PIXELS}, 1% of the image)"
    note = ""
    if pool:
        what = f"with {rule} {cls} pixels"
    else:
        pool = sorted(cands)
        what, note = f"with {cls} pixels", f"; none has {rule}"
    m = len(pool)
    k = min(spec, m)
    median = (m - 1) // 2
    if k == 1:
        wanted = [median]
    elif k == 2:
        wanted = [median, 0]
    else:
        jm = min(range(1, k), key=lambda j: (abs(2 * j - (k - 1)), j))  # j/(k-1) nearest 0.5, exactly
        wanted = [median, 0] + [(2 * j * (m - 1) + (k - 1)) // (2 * (k - 1)) for j in range(1, k) if j != jm]
    taken: list[int] = []
    for r in wanted:
        for d in range(m):
            free = [x for x in (r - d, r + d) if 0 <= x < m and x not in taken]
            if free:
                taken.append(free[0])
                break
    picks = []
    for n_pick, r in enumerate(taken):
        f, i, _ = pool[r]
        if n_pick == 0:
            also = " and hardest" if r == 0 and m > 1 else ""
            reason = f"median{also} hidden share: {_pct(f)} (image {r + 1} of {m} {what}, lowest first{note})"
        elif r == 0:
            reason = f"hardest: {_pct(f)} hidden (lowest of {m} images {what}{note})"
        elif r == m - 1:
            reason = f"easiest: {_pct(f)} hidden (highest of {m} images {what}{note})"
        else:
            q = r / (m - 1)
            reason = f"quantile {q:.2f} of hidden share: {_pct(f)} (image {r + 1} of {m} {what}, lowest first{note})"
        picks.append(Figure1Pick(i, ids[i], reason, f))
    return picks


def _figure1_files(out: Path) -> dict[str, Path]:
    """The readable ``figure1_*.npz`` of ``out`` by image id; a corrupt one (a disk fault, a copy cut short) is
    removed with its PNG and a warning (its image, if still chosen, is drawn again)."""
    found: dict[str, Path] = {}
    for path in sorted(out.glob(f"{rundir.FIGURE1_PREFIX}*.npz")):
        try:
            with np.load(path) as z:
                found[str(z["image_id"])] = path
                continue
        except _NPZ_ERRORS as err:
            reason = f"{type(err).__name__}: {err}"
        log.warning("%s cannot be read (%s); removed (drawn again if its image is still chosen)", path, reason)
        path.unlink()
        path.with_suffix(".png").unlink(missing_ok=True)
    return found


def _remove_figure1(out: Path, keep: set[str], files: Mapping[str, Path] | None = None) -> None:
    """Remove the Figure 1 files (``.npz`` and its ``.png``) of images not in ``keep``."""
    for iid, path in (_figure1_files(out) if files is None else files).items():
        if iid not in keep:
            log.info("Figure 1 of %s removed: the image is no longer chosen", iid)
            path.unlink()
            path.with_suffix(".png").unlink(missing_ok=True)


def _check_figure1(spec: int | Sequence[str]) -> int | tuple[str, ...]:
    if isinstance(spec, bool):
        raise ExperimentError(f"figure1_ids must be a count >= 0 or a list of image ids, got {spec!r}")
    if isinstance(spec, int):
        if spec < 0:
            raise ExperimentError(f"figure1_ids must be a count >= 0 or a list of image ids, got {spec}")
        return spec
    if isinstance(spec, str):
        spec = [spec]
    return tuple(dict.fromkeys(str(s) for s in spec))


def _check_label_names(names: Sequence[str] | None, model: Any, num_classes: int) -> tuple[str, ...]:
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


def _check_goal(goal: str, class_ids: int | Sequence[int] | None) -> tuple[Goal, tuple[int, ...]]:
    if goal not in GOALS:
        raise ExperimentError(f"unknown goal {goal!r}; valid goals: {', '.join(GOALS)}")
    if goal == "untargeted":
        return UntargetedGoal(), ()
    if class_ids is None:
        raise ExperimentError("the hide goal needs class_ids, the class(es) to hide (e.g. 11, Cityscapes person)")
    try:
        ids = class_id_tuple(class_ids)
    except (TypeError, ValueError) as err:
        raise ExperimentError(str(err)) from err
    return HideGoal(ids), ids


def _check_attacks(attacks: Sequence[str | AttackSpec], goal: Goal) -> list[AttackSpec]:
    if isinstance(attacks, str | AttackSpec):
        attacks = [attacks]
    specs: list[AttackSpec] = []
    for a in attacks:
        try:
            spec = a if isinstance(a, AttackSpec) else AttackSpec(a)
        except (TypeError, ValueError) as err:
            raise ExperimentError(str(err)) from err
        if any(s.name == spec.name for s in specs):
            raise ExperimentError(f"attack {spec.name!r} is listed twice; give each attack once")
        try:
            spec.check_goal(targeted=goal.targeted)
        except ValueError as err:
            raise ExperimentError(str(err)) from None
        specs.append(spec)
    if not specs:
        raise ExperimentError(f"no attack given; available: {', '.join(registry.available())}")
    return specs


def _check_eps(eps_levels: Sequence[int | float]) -> list[float]:
    eps = [float(e) for e in eps_levels]
    if not eps:
        raise ExperimentError("eps_levels is empty; give at least one budget in 8-bit levels, e.g. [2, 4, 10]")
    for e in eps:
        if not math.isfinite(e) or e <= 0:
            raise ExperimentError(f"eps must be positive (8-bit levels), got {_number(e)}")
        if e > 255:
            raise ExperimentError(f"eps={_number(e)} levels exceeds the 8-bit range (255)")
    if len(set(eps)) != len(eps):
        raise ExperimentError(f"eps lists a budget twice: {[_number(e) for e in eps]}")
    if any(not e.is_integer() for e in eps):
        log.warning("fractional eps levels: adversarial PNGs are rounded to whole levels and no longer bit-exact")
    return sorted(eps)


def _check_survive(survive: str | Sequence[Any]) -> list[Any]:
    """``survive=`` as a list of ``Transform`` objects: a spec string, or names and ``Transform`` objects."""
    from .transforms import Transform, parse_transforms

    items: list[Any] = [survive] if isinstance(survive, str) else list(survive)
    out: list[Any] = []
    for item in items:
        if isinstance(item, Transform):
            out.append(item)
            continue
        if not isinstance(item, str):
            raise ExperimentError(f"survive takes transform specs such as 'jpeg:75,blur:1', got {item!r}")
        if not item.strip():
            continue
        try:
            out.extend(parse_transforms(item))
        except ValueError as err:
            raise ExperimentError(f"survive: {err}") from None
    names = [t.name for t in out]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ExperimentError(f"survive lists a transform twice: {', '.join(twice)}; give each once")
    return out


def image_seed(seed: int, image_id: str) -> int:
    """The seed of one image's random draws in the attacks (random starts, EOT): from the run's seed and the image id
    alone, so that an image's rows do not depend on its batch, on a resume or on the number of processes."""
    return mix_seed(seed, "image", image_id)


def _transform_seed(seed: int, image_id: str, transform: str) -> int:
    """The seed of a random transform's generator for one image: from the run's seed, the image id and the
    transform's name (independent of batching and of the other transforms)."""
    digest = hashlib.sha256(f"{seed}\0{image_id}\0{transform}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


def _check_modes(modes: Sequence[str]) -> tuple[str, ...]:
    if isinstance(modes, str):
        modes = (modes,)
    out: list[str] = []
    for m in modes:
        if m not in MODES:
            raise ExperimentError(f"unknown mode {m!r}; valid modes: {', '.join(MODES)}")
        if m not in out:
            out.append(m)
    if not out:
        raise ExperimentError(f"no mode given; valid modes: {', '.join(MODES)}")
    return tuple(m for m in MODES if m in out)


#: Configuration keys that may change between runs on one directory: attacks are resumed one by one.
_PER_ATTACK = ("attacks", "passes", "sweeps")


def _sweep_record(spec: AttackSpec, eps_levels: Sequence[float]) -> dict[str, Any]:
    """How the attack runs over the budgets (``registry.plan``), recorded in ``config.json`` for the report, which
    reads result files only."""
    if not spec.entry.registered:
        return {"shared": False, "forward": None, "backward": None, "note": f"{spec.name}: one run per eps"}
    p = registry.plan(spec.entry, [e / 255 for e in eps_levels], **spec.options)
    return {"shared": p.shared, "forward": p.forward, "backward": p.backward, "note": p.note}


def _check_config(out: Path, experiment: Mapping[str, Any], overwrite: bool) -> set[str]:
    """Refuse a different configuration in ``out``; return the attacks whose earlier rows can be kept (the same
    name and options as before). Adding or removing attacks keeps the rows of the others."""
    rundir.check_kind(out, "run")  # a universal or compare directory is never taken over, not even by --overwrite
    path = out / CONFIG_FILE
    has_results = (out / RESULTS_FILE).exists()
    names = {a["name"] for a in experiment["attacks"]}
    if overwrite:
        rundir.clear_experiment_outputs(out)
        return names
    if not path.exists():
        if has_results:
            raise ExperimentError(
                f"{out} holds {RESULTS_FILE} but no {CONFIG_FILE}, so its results cannot be resumed; replace them "
                "with --overwrite (overwrite=True) or choose another output directory"
            )
        return names
    old = read_config(out).get("experiment", {})
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
    before = {a["name"]: a for a in old.get("attacks", [{"name": DEFAULT_ATTACK, "options": {}}])}
    kept = {a["name"] for a in new["attacks"] if before.get(a["name"]) == a}
    for a in new["attacks"]:
        if a["name"] in before and a["name"] not in kept:
            log.warning("%s: its options changed (%s -> %s); its rows are redone", a["name"],
                        before[a["name"]]["options"], a["options"])  # fmt: skip
    return kept


def _image_size(dataset: Any, index: int) -> tuple[int, int]:
    """(H, W) of item ``index``: from ``dataset.image_size`` (file headers, nothing decoded) where it has one, else
    from the item itself."""
    sizer = getattr(dataset, "image_size", None)
    if callable(sizer):
        h, w = sizer(index)
    else:
        h, w = torch.as_tensor(dataset[index][0]).shape[-2:]
    return int(h), int(w)


def _check_memory(
    model: Any,
    dataset: Any,
    n: int,
    ids: list[str],
    device: torch.device,
    *,
    batch_size: int,
    n_eps: int,
    n_modes: int,
) -> None:
    """Refuse a run that would not fit in memory, before any image is generated or decoded: the largest image the
    data set will return (``image_size``; a data set without it is checked on its first image) in full batches."""
    from .memory import check_run_memory

    from_header = callable(getattr(dataset, "image_size", None))
    sizes: list[tuple[int, int]] = []
    for i in range(n):
        try:
            sizes.append(_image_size(dataset, i))
        except UnreadableImageError:
            continue  # skipped and counted where the image is used
        if not from_header:
            break
    if not sizes:
        return
    h, w = max(sizes, key=lambda s: s[0] * s[1])
    check_run_memory(model, device=device, height=h, width=w, batch_size=min(batch_size, n), n_eps=n_eps,
                     n_modes=n_modes, what="this run")  # fmt: skip


def first_readable(dataset: Any, n: int, device: torch.device) -> tuple[int, Tensor] | None:
    """The first of the ``n`` items of ``dataset`` that can be read: (its index, the image (1, 3, H, W) in [0, 1] on
    ``device``), or None if none can."""
    for i in range(n):
        try:
            image, _ = dataset[i]
        except UnreadableImageError:
            continue
        return i, torch.as_tensor(image)[None].to(device, torch.float32) / 255
    return None


def _probe_model(
    model: Any, dataset: Any, n: int, class_ids: tuple[int, ...], ids: list[str], device: torch.device
) -> int:
    """Run the model once on the first readable image: its errors (wrong class count, probabilities, ...) and a
    class id it cannot predict surface before anything is written. Returns the number of classes."""
    first = first_readable(dataset, n, device)
    if first is not None:
        i, x = first
        try:
            with torch.no_grad():
                logits = model(x)
        except SegattackError:
            raise
        except ValueError as err:  # PixelModel's checks of the output: probabilities, class count, shape
            raise ModelError(f"the model does not fit (on image {ids[i]}): {err}") from err
        except Exception as err:  # the user's network itself failed: one line here, the traceback with --verbose
            raise ModelError(f"the model failed on image {ids[i]}: {type(err).__name__}: {err}") from err
        k = int(logits.shape[1])
        if class_ids and max(class_ids) >= k:
            raise ExperimentError(f"class id {max(class_ids)} to hide, but the model predicts only {k} classes")
        return k
    raise ExperimentError(f"none of the {n} images can be read")


@dataclass
class _Batch:
    """One batch on its way through the pipeline: read (``groups``: images by size), attacked (``jobs``: the
    measures left to make, ``attack_s``), measured (``rows``: every image's rows)."""

    todo: Mapping[int, list[str]]
    groups: dict[tuple[int, ...], list[tuple[int, Tensor, Tensor]]] = field(default_factory=dict)
    instance_ids: dict[int, Tensor] = field(default_factory=dict)
    rows: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    jobs: list[Callable[[], None]] = field(default_factory=list)
    attack_s: float = 0.0
    prepared: list[_Group] | None = None  # once ``prepare`` has run: the groups' images, predictions and labels


@dataclass
class _Group:
    """One group of equally sized images of a batch, prepared for the attack: the images on the device, their clean
    prediction, the images to attack (``ok``: positions in ``items``), their labels and clean instances."""

    items: list[tuple[int, Tensor, Tensor]]
    ok: list[int]
    xs: Tensor | None = None  # (len(ok), 3, H, W) in [0, 1]
    ps: Tensor | None = None  # (len(ok), H, W) clean prediction
    truth: Tensor | None = None
    labels: Tensor | None = None  # the goal's labels of ps (hide: the nearest-other-class target)
    instances: dict[str, Any] = field(default_factory=dict)  # clean_instances of ps


def default_read_workers(device: torch.device) -> int:
    """Reading processes ``run_experiment`` uses by default: up to 4 (half the CPU cores) on a GPU, where the
    CPU is otherwise idle; none on a CPU, where they would take cores from the attack."""
    return min(4, (os.cpu_count() or 1) // 2) if device.type == "cuda" else 0


def _load_item(dataset: Any, i: int, with_instances: bool) -> tuple[Any, Any, Any]:
    """Item ``i`` of ``dataset`` as it gives it: (image, label, ground-truth instance ids or None), unchecked."""
    image, label = dataset[i]
    return image, label, (dataset.instance_ids(i) if with_instances else None)


#: An item as a reading process returns it: (index, image, label, instance ids or None, None or why unreadable).
_Item = tuple[int, Any, Any, Any, "str | None"]


class _Items(torch.utils.data.Dataset[_Item]):
    """A data set's items for ``DataLoader`` reading processes, an unreadable file as its message (the run counts
    it and goes on) rather than an error that would stop the loader."""

    def __init__(self, dataset: Any, with_instances: bool) -> None:
        self.dataset, self.with_instances = dataset, with_instances

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> _Item:
        try:
            image, label, ids = _load_item(self.dataset, i, self.with_instances)
        except UnreadableImageError as err:
            return i, None, None, None, str(err)
        return i, image, label, ids, None


def _as_list(items: list[_Item]) -> list[_Item]:
    return items


def _read_ahead(
    it: Iterator[list[_Item]], todos: Sequence[Mapping[int, list[str]]], runner: _BatchRunner, ids: list[str]
) -> Generator[_Batch, None, None]:
    """The batches a DataLoader's iterator ``it`` reads ahead; its workers stop at the last one, or on close."""
    try:
        for n, todo in enumerate(todos):
            items = next(it)
            if n + 1 == len(todos):
                next(it, None)  # at its end the loader stops its workers itself
            yield runner.assemble(todo, items, ids)
    finally:
        shutdown = getattr(it, "_shutdown_workers", None)  # now, not when the iterator is collected
        if shutdown is not None:
            shutdown()


class _BatchRunner:
    def __init__(
        self,
        model: Any,
        device: torch.device,
        goal: Goal,
        attacks: list[AttackSpec],
        eps: list[float],
        modes: tuple[str, ...],
        batch_size: int,
        out: Path,
        save_images: bool,
        num_classes: int,
        reference: str | None,
        label_names: Sequence[str],
        *,
        instance_threshold: float = DEFAULT_THRESHOLD,
        transforms: Sequence[Any] = (),
        seed: int = 0,
        gt_instances: bool = False,
    ) -> None:
        self.model = model
        self.instance_threshold = instance_threshold
        self.transforms = list(transforms)
        self.seed = seed
        self.gt_instances = gt_instances
        self.fields = row_fields(gt_instances=gt_instances)
        self.device = device
        self.goal = goal
        self.attacks = attacks
        self.eps = eps
        self.modes = modes
        self.batch_size = batch_size
        self.out = out
        self.save_images = save_images
        self.num_classes = num_classes
        self.reference = reference
        self.label_names = list(label_names)
        self.pixels: dict[int, int] = {}  # image index -> H * W, for the images read in this run
        self.cache_left = FIGURE1_CACHE_MB * 2**20  # bytes of Figure 1 candidates this process may still save
        self.figure1_candidates: set[str] | None = set()  # image ids to save them for (None: every image)

    def pixels_of(self, dataset: Any, index: int) -> int:
        """H * W of image ``index``: known if this run read it, else its header (``image_size``) or the image."""
        if index not in self.pixels:
            h, w = _image_size(dataset, index)
            self.pixels[index] = h * w
        return self.pixels[index]

    def _status_rows(
        self, index: int, image_id: str, status: str, class_pixels: int | None, attacks: list[str]
    ) -> list[dict[str, Any]]:
        """Rows of an image that was not attacked: every measure null."""
        rows = []
        for a in self.attacks:
            if a.name not in attacks:
                continue
            for e in self.eps:
                for m in self.modes:
                    for t in [None, *self.transforms]:
                        row: dict[str, Any] = dict.fromkeys(self.fields)
                        row.update(image_id=image_id, index=index, attack=a.name, eps=_number(e), mode=m, steps=0)
                        row.update(class_pixels=class_pixels, time_s=0.0, status=status)
                        row["transform"] = None if t is None else t.name
                        rows.append(row)
        return rows

    def _read(
        self, dataset: Any, i: int, image_id: str, instance_ids: dict[int, Tensor] | None = None
    ) -> tuple[Tensor, Tensor]:
        """Item ``i`` as (uint8 image, label), checked; its ground-truth instance ids into ``instance_ids`` where
        the data set has them and a dict is given."""
        image, label, ids = _load_item(dataset, i, self.gt_instances and instance_ids is not None)
        return self._accept(i, image_id, image, label, ids, instance_ids)

    def _accept(
        self, i: int, image_id: str, image: Any, label: Any, ids: Any, instance_ids: dict[int, Tensor] | None
    ) -> tuple[Tensor, Tensor]:
        """Check item ``i`` as read (here or in a reading process) and keep its pixel count and instance ids."""
        if not isinstance(image, Tensor) or image.dtype != torch.uint8 or image.ndim != 3 or image.shape[0] != 3:
            raise ExperimentError(
                f"data set item {i} ({image_id}) is not a uint8 (3, H, W) image tensor: the data set breaks the "
                "segattack.data contract"
            )
        self.pixels[i] = int(image.shape[1]) * int(image.shape[2])
        if ids is not None and instance_ids is not None:
            ids = torch.as_tensor(ids)
            if tuple(ids.shape) != tuple(image.shape[1:]):
                raise ExperimentError(
                    f"data set item {i} ({image_id}): instance ids {tuple(ids.shape)} and image {tuple(image.shape)} "
                    "differ in size: instance_ids(i) must match the image (H, W)"
                )
            instance_ids[i] = ids.to(torch.int64)
        return image, torch.as_tensor(label)

    def read(self, dataset: Any, todo: Mapping[int, list[str]], ids: list[str]) -> _Batch:
        """Read (and, for synthetic data, generate) the images of ``todo`` on this thread, as reading processes
        would (``_Items``, then ``assemble``). Thread-safe with respect to the attacking thread (it touches only this
        batch's state)."""
        items = _Items(dataset, self.gt_instances)
        return self.assemble(todo, [items[i] for i in todo], ids)

    def assemble(self, todo: Mapping[int, list[str]], items: Sequence[_Item], ids: list[str]) -> _Batch:
        """The batch of ``todo`` from its items as ``_Items`` gives them (here or in reading processes), checked and
        grouped by size; unreadable ones get their status rows."""
        batch = _Batch(todo=todo)
        for i, image, label, instance_ids, unreadable in items:
            if unreadable is not None:
                log.warning("skipping unreadable image %s: %s", ids[i], unreadable)
                batch.rows[i] = self._status_rows(i, ids[i], "unreadable", None, todo[i])
                continue
            image, label = self._accept(i, ids[i], image, label, instance_ids, batch.instance_ids)
            batch.groups.setdefault(tuple(image.shape), []).append((i, image, label))
        return batch

    def prepare(self, batch: _Batch, ids: list[str]) -> _Batch:
        """Predict ``batch`` and make its labels and clean instances (targets: a distance transform per image, on
        the CPU); the images without the class get their status rows. ``attack`` does it first unless it was done:
        the pipelined experiment does it on its reader thread, so that the CPU work overlaps the previous batch's
        attack on a GPU. Returns ``batch``."""
        if batch.prepared is None:
            batch.prepared = [self._prepare_group(items, ids, batch) for items in batch.groups.values()]
        return batch

    def attack(self, batch: _Batch, ids: list[str]) -> None:
        """Attack ``batch`` (the model's work, on the calling thread; predicted and targeted first unless
        ``prepare`` did so); the per-image measures are left in ``batch.jobs`` for ``measure`` (on this thread or a
        worker)."""
        t0 = time.perf_counter()
        self.prepare(batch, ids)
        assert batch.prepared is not None
        for group in batch.prepared:
            self._run_group(group, ids, batch)
        batch.attack_s = time.perf_counter() - t0

    @staticmethod
    def measure(batch: _Batch, *, overlapped: bool = False) -> dict[int, list[dict[str, Any]]]:
        """Run the measuring jobs of an attacked batch (metrics, SSIM, instances, thumbnails, saved images) and
        return its rows; ``time_s`` of an image is its share of the batch's attack and measuring time, or with
        ``overlapped`` (measured while the next batch attacks) of its attack time alone, so that the rows' times
        add up to the run's."""
        t0 = time.perf_counter()
        for job in batch.jobs:
            job()
        batch.jobs.clear()
        measured = 0.0 if overlapped else time.perf_counter() - t0
        share = (batch.attack_s + measured) / max(1, len(batch.todo))
        for i in batch.todo:
            for r in batch.rows[i]:
                if r["status"] == "ok":
                    r["time_s"] = round(share, 4)
        return batch.rows

    def _prepare_group(self, items: list[tuple[int, Tensor, Tensor]], ids: list[str], batch: _Batch) -> _Group:
        """One group of equally sized images of ``batch`` on the device, predicted, the images without the class
        given their status rows, the others' labels and clean instances made."""
        todo, rows = batch.todo, batch.rows
        x8 = torch.stack([img for _, img, _ in items])
        if self.device.type == "cuda":  # page-locked, so the copy to the GPU is one DMA transfer, not staged
            x8 = x8.pin_memory()
        x = x8.to(self.device, non_blocking=True).to(torch.float32) / 255
        pred = self.model.predict(x, batch_size=self.batch_size)
        ok: list[int] = list(range(len(items)))
        if isinstance(self.goal, HideGoal):
            hidden = hidden_mask(pred, self.goal.class_ids)
            counts = hidden.flatten(1).sum(1).tolist()
            n_pix = pred[0].numel()
            ok = []
            for b, (i, _, _) in enumerate(items):
                if counts[b] == 0:
                    rows[i] = self._status_rows(i, ids[i], "absent", 0, todo[i])
                elif counts[b] == n_pix:
                    rows[i] = self._status_rows(i, ids[i], "all_hidden", int(n_pix), todo[i])
                else:
                    ok.append(b)
        if not ok:
            return _Group(items, ok)
        sel = torch.tensor(ok, device=self.device)
        xs, ps = x[sel], pred[sel]
        truth = None
        if self.reference == "truth":
            truth = torch.stack([items[b][2] for b in ok]).to(self.device, torch.int64)
        inst = [batch.instance_ids[items[b][0]] for b in ok] if self.gt_instances else None
        return _Group(items, ok, xs, ps, truth, self.goal.labels(ps, truth), clean_instances(self.goal, ps, inst))

    def _run_group(self, group: _Group, ids: list[str], batch: _Batch) -> None:
        """Attack the images of a prepared group; their rows are made by the jobs it leaves in ``batch.jobs``
        (status rows at once)."""
        todo, rows, jobs = batch.todo, batch.rows, batch.jobs
        items, ok = group.items, group.ok
        if not ok:
            return
        xs, ps, truth, labels = group.xs, group.ps, group.truth, group.labels
        assert xs is not None and ps is not None and labels is not None
        ok_ids = [ids[items[b][0]] for b in ok]
        per: dict[int, list[dict[str, Any]]] = {items[b][0]: [] for b in ok}
        rows.update(per)  # filled in by the jobs
        for spec in self.attacks:
            sub = [j for j, b in enumerate(ok) if spec.name in todo[items[b][0]]]
            if not sub:
                continue
            pick = torch.tensor(sub, device=self.device)
            sub_ids = [ok_ids[j] for j in sub]
            inst = None
            if self.gt_instances:
                inst = [batch.instance_ids[items[ok[j]][0]] for j in sub]
            picked_instances = {k: None if v is None else [v[j] for j in sub] for k, v in group.instances.items()}
            outcome = attack_batch(
                self.model, xs[pick], attack=spec, goal=self.goal, eps=[e / 255 for e in self.eps],
                modes=self.modes, pred=ps[pick], truth=None if truth is None else truth[pick],
                batch_size=self.batch_size, labels=labels[pick], instances=picked_instances,
                seeds=[image_seed(self.seed, iid) for iid in sub_ids],
            )  # fmt: skip
            picked = [ok[j] for j in sub]
            jobs.append(functools.partial(self._rows, spec, outcome, xs[pick], picked, items, ids, per))
            for t in self.transforms:  # survival: the model's predictions here, the measures in a job
                seeds = [_transform_seed(self.seed, iid, t.name) for iid in sub_ids]
                out_t, clean_t = transformed_outcome(
                    self.model, outcome, xs[pick], t, goal=self.goal, seeds=seeds, batch_size=self.batch_size,
                    instance_ids=inst,
                )  # fmt: skip
                jobs.append(functools.partial(self._rows, spec, out_t, clean_t, picked, items, ids, per,
                                              transform=t.name))  # fmt: skip
                del out_t, clean_t
            if spec is self.attacks[0] and isinstance(self.goal, HideGoal) and "full" in self.modes:
                jobs.append(functools.partial(self._thumbnails, sub_ids, xs[pick], ps[pick], outcome))
                if "posthoc" in self.modes and self.figure1_candidates != set():
                    jobs.append(functools.partial(self._figure1_candidates, sub_ids, xs[pick], outcome))
            if self.save_images:
                jobs.append(functools.partial(self._save_images, spec, outcome, xs[pick], sub_ids))

    def _save_images(self, spec: AttackSpec, outcome: BatchOutcome, xs: Tensor, image_ids: list[str]) -> None:
        """Every adversarial image as a lossless PNG under ``images/[attack/]eps<E>/<mode>/``."""
        folder = Path("images") / spec.name if len(self.attacks) > 1 else Path("images")
        for k, e in enumerate(self.eps):
            for m in self.modes:
                for n, iid in enumerate(image_ids):
                    path = self.out / folder / f"eps{_number(e)}" / m / f"{output_name(iid)}.png"
                    _save_png(path, to_uint8(outcome.advs[m][k, n], xs[n], e))

    def _thumbnails(self, image_ids: list[str], xs: Tensor, ps: Tensor, outcome: BatchOutcome) -> None:
        """The report's gallery: original, adversarial, prediction and prediction on the adversarial image at the
        Figure 1 eps (first attack, whole image), small PNGs under ``thumbs/``."""
        from .report.gallery import write_thumbnails

        k = self.eps.index(figure1_eps(self.eps))
        for n, iid in enumerate(image_ids):
            write_thumbnails(
                self.out, iid, image=to_uint8(xs[n]), adv=to_uint8(outcome.advs["full"][k, n]),
                pred=_labels_np(ps[n], self.num_classes),
                pred_adv=_labels_np(outcome.preds["full"][k, n], self.num_classes), label_names=self.label_names,
            )  # fmt: skip

    def _rows(
        self,
        spec: AttackSpec,
        outcome: BatchOutcome,
        xs: Tensor,
        ok: list[int],
        items: list[tuple[int, Tensor, Tensor]],
        ids: list[str],
        per: dict[int, list[dict[str, Any]]],
        transform: str | None = None,
    ) -> None:
        """Append the rows of ``outcome`` to ``per``; ``xs`` (B, 3, H, W): the images the perturbation is measured
        against (the clean images, or T(clean) for the survival rows of ``transform``)."""
        sims = {m: _ssim_all(outcome.advs[m], xs) for m in self.modes}
        for k, e in enumerate(self.eps):
            passes = spec.passes(e / 255)
            for m in self.modes:
                measures = measure(self.goal, outcome, m, k, num_classes=self.num_classes,
                                   instance_threshold=self.instance_threshold)  # fmt: skip
                norms = perturbation_norms(outcome.advs[m][k], xs)  # and PSNR
                sim = sims[m][k]
                for j, b in enumerate(ok):
                    i = items[b][0]
                    row: dict[str, Any] = dict.fromkeys(self.fields)
                    row.update(image_id=ids[i], index=i, attack=spec.name, eps=_number(e), mode=m, steps=passes)
                    row["transform"] = transform
                    row.update({key: rundir.json_safe(v) for key, v in measures[j].items()})
                    row.update(
                        linf=rundir.json_safe(round(float(norms["linf"][j]), 4)),
                        l2=rundir.json_safe(round(float(norms["l2"][j]), 4)),
                        mean_abs=rundir.json_safe(round(float(norms["mean_abs"][j]), 4)),
                        psnr=rundir.json_safe(round(float(norms["psnr"][j]), 4)),
                        ssim=rundir.json_safe(round(float(sim[j]), 6)),
                        time_s=0.0,
                        status="ok",
                    )
                    per[i].append(row)

    # -- Figure 1 -------------------------------------------------------------------------------------------------

    def _figure1_candidates(self, image_ids: list[str], xs: Tensor, outcome: BatchOutcome) -> None:
        """Save each image's Figure 1 arrays at the Figure 1 eps (from this run's attack) while the size budget
        lasts, so that ``update_figure1`` need not attack the chosen images again."""
        k = self.eps.index(figure1_eps(self.eps))
        folder = self.out / FIGURE1_CACHE_DIR
        for j, iid in enumerate(image_ids):
            if self.figure1_candidates is not None and iid not in self.figure1_candidates:
                continue
            arrays = self._figure1_arrays(iid, "", xs[j], outcome, k, j)
            size = sum(a.nbytes for a in arrays.values())
            if size > self.cache_left:
                return
            self.cache_left -= size
            folder.mkdir(exist_ok=True)
            with rundir.atomic_open(folder / f"{output_name(iid)}.npz") as fh:  # uncompressed: a temporary file
                np.savez(fh, **arrays)  # type: ignore[arg-type]

    def _figure1_arrays(
        self, image_id: str, reason: str, x: Tensor, outcome: BatchOutcome, k: int, j: int
    ) -> dict[str, np.ndarray]:
        """What a Figure 1 file holds for image ``j`` of ``outcome`` at its eps index ``k``."""
        nc = self.num_classes
        arrays = {
            **self._figure1_meta(image_id, reason),
            "image": to_uint8(x),
            "adv": to_uint8(outcome.advs["full"][k, j]),
            "adv_restricted": to_uint8(outcome.advs["posthoc"][k, j]),
            "target": _labels_np(outcome.labels[j], nc),
            "pred": _labels_np(outcome.pred[j], nc),
            "pred_adv": _labels_np(outcome.preds["full"][k, j], nc),
            "pred_restricted": _labels_np(outcome.preds["posthoc"][k, j], nc),
        }
        if "during" in outcome.advs:
            arrays["adv_during"] = to_uint8(outcome.advs["during"][k, j])
            arrays["pred_during"] = _labels_np(outcome.preds["during"][k, j], nc)
        return arrays

    def _figure1_meta(self, image_id: str, reason: str) -> dict[str, Any]:
        spec = self.attacks[0]
        return {
            "image_id": np.array(image_id),
            "attack": np.array(spec.name),
            "attack_options": np.array(json.dumps(spec.describe()["options"], sort_keys=True)),
            "eps": np.array(figure1_eps(self.eps)),
            "class_ids": np.array(getattr(self.goal, "class_ids", ())),
            "label_names": np.array(self.label_names, dtype=str),
            "reason": np.array(reason),
        }

    def _figure1_current(self, path: Path, pick: Figure1Pick) -> dict[str, np.ndarray] | None:
        """The arrays of an existing Figure 1 file if they are those of ``pick`` now (same attack, options, budget,
        classes and modes), else None (drawn again)."""
        try:
            with np.load(path) as z:
                data = {k: z[k] for k in z.files}
        except _NPZ_ERRORS:
            return None
        want = self._figure1_meta(pick.image_id, pick.reason)
        keys = set(FIGURE1_KEYS) | ({"adv_during", "pred_during"} if "during" in self.modes else set())
        if not keys <= data.keys() or ("adv_during" in data) != ("during" in self.modes):
            return None
        for k in ("image_id", "attack", "attack_options", "eps", "class_ids", "label_names"):
            if not np.array_equal(data[k], want[k]):
                return None
        return data

    def update_figure1(self, dataset: Any, picks: Sequence[Figure1Pick]) -> None:
        """Bring the Figure 1 files up to date with ``picks``: remove those of images no longer chosen (and corrupt
        ones), keep those still current (a changed reason is rewritten), take the others from the candidates saved
        during the run, attack the rest again and write them; then drop the candidates."""
        files = _figure1_files(self.out)
        _remove_figure1(self.out, keep={p.image_id for p in picks}, files=files)
        redo: list[Figure1Pick] = []
        cache = self.out / FIGURE1_CACHE_DIR
        for pick in picks:
            path = files.get(pick.image_id)
            data = self._figure1_current(path, pick) if path is not None else None
            fresh = data is None
            if data is None:  # saved during the run (the same attack), else attacked again below
                candidate = cache / f"{output_name(pick.image_id)}.npz"
                data = self._figure1_current(candidate, pick) if candidate.is_file() else None
            if data is None:
                redo.append(pick)
            elif fresh or str(data["reason"]) != pick.reason:
                data["reason"] = np.array(pick.reason)
                self._write_figure1(pick.image_id, data)
        shutil.rmtree(cache, ignore_errors=True)
        if not redo:
            return
        e = figure1_eps(self.eps)
        log.info("Figure 1: attacking %d image(s) again at eps %s: %s", len(redo), _number(e),
                 ", ".join(p.image_id for p in redo))  # fmt: skip
        groups: dict[tuple[int, ...], list[tuple[Figure1Pick, Tensor]]] = {}
        for pick in redo:
            try:
                image, _ = self._read(dataset, pick.index, pick.image_id)
            except UnreadableImageError as err:
                log.warning("Figure 1 of %s left out: the image cannot be read now: %s", pick.image_id, err)
                continue
            groups.setdefault(tuple(image.shape), []).append((pick, image))
        for members in groups.values():
            for start in range(0, len(members), self.batch_size):
                chunk = members[start : start + self.batch_size]
                self._figure1_batch([p for p, _ in chunk], torch.stack([img for _, img in chunk]))

    def _figure1_batch(self, picks: list[Figure1Pick], images: Tensor) -> None:
        x = images.to(self.device, torch.float32) / 255
        e = figure1_eps(self.eps)
        outcome = attack_batch(
            self.model, x, attack=self.attacks[0], goal=self.goal, eps=[e / 255], modes=self.modes,
            batch_size=self.batch_size, keep=("full", "posthoc"),
            seeds=[image_seed(self.seed, p.image_id) for p in picks],
        )  # fmt: skip
        mode = "full" if "full" in self.modes else self.modes[0]
        measured = measure(self.goal, outcome, mode, 0, num_classes=self.num_classes)
        for j, pick in enumerate(picks):
            fooled = float(measured[j]["fooled"])
            if pick.fooled is not None and abs(fooled - pick.fooled) > 1e-9:
                log.info("Figure 1 of %s: attacked again, %s of the class pixels are hidden against %s in the results "
                         "(an attack with random starts, or GPU kernels that add in varying order); the figure "
                         "shows the new attack", pick.image_id, _pct(fooled), _pct(pick.fooled))  # fmt: skip
            self._write_figure1(pick.image_id, self._figure1_arrays(pick.image_id, pick.reason, x[j], outcome, 0, j))

    def _write_figure1(self, image_id: str, arrays: Mapping[str, Any]) -> None:
        with rundir.atomic_open(figure1_path(self.out, image_id)) as fh:
            np.savez_compressed(fh, **arrays)
        figure1_path(self.out, image_id, ".png").unlink(missing_ok=True)  # drawn again by the report
