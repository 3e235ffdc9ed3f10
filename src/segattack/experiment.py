"""The paper's experiment over a data set: hide a class at several budgets, measure, write resumable result rows.

For each batch of images (Fischer et al. 2017, Sec. 2-3):

1. clean prediction ``model.predict(images)``;
2. target ``hide_class_target(pred, class_id=...)`` (nearest other class, from the prediction, never ground truth);
3. one ``illm_sweep`` for all budgets (their common prefix is computed once): mode ``full``;
4. mode ``posthoc``: the same perturbations kept only on the class pixels of the clean prediction (``restrict``; no
   further attack, as in the paper's Figure 1 (c) and Figure 2 right);
5. mode ``during``: a second sweep restricted to those pixels during the optimisation (``mask=``);
6. predictions on every adversarial image -> ``hiding_metrics``, ``perturbation_norms``, ``psnr`` -> rows.

Steps 2-6 are ``segattack.pipeline.attack_batch`` and ``measure``; any registered attack takes the place of
``illm`` (``attacks=``, one set of rows per attack), and ``goal="untargeted"`` measures robustness under attack
instead (pixel accuracy and confusion matrices against the ground truth where the data set has it, else against
the clean prediction).

Files in ``out_dir``:

- ``config.json``: the resolved configuration (compared on resume) and the versions and device of the run;
- ``results.jsonl``: one JSON row per image x attack x eps x mode (fields: ``ROW_FIELDS``), appended and fsync'ed
  image by image. ``steps`` is the attack's gradient passes for that budget (an upper bound for ``dag``). Rates
  are fractions in [0, 1]; eps and norms are in 8-bit levels; PSNR in dB; ``time_s`` is the image's
  share of its batch's wall time (all budgets and modes). Non-finite values (an image without the class has no
  ``fooled``) are written as ``null``. ``status`` is ``ok``, ``absent`` (no pixel of the class predicted: not
  attacked), ``all_hidden`` (every pixel is the class: no target exists) or ``unreadable`` (the file cannot be
  decoded; logged as a warning);
- ``figure1_<id>.npz``: what the 11 panels of the paper's Figure 1 need, at the budget nearest 10 levels;
- ``images/eps<E>/<mode>/<id>.png`` with ``save_images=True``: the adversarial images, lossless 8-bit.

Determinism: the same inputs give the same rows (apart from ``time_s``): the attack has no randomness and torch's
generators are seeded for the run. On CUDA a few kernels (e.g. the backward of bilinear upsampling) add in a varying
order, so rows can differ in rare pixels between GPU runs.

Resuming: run the same configuration on the same directory again; images whose rows are complete are skipped, a
torn last line (a crash mid-write) and the rows of half-written images are dropped, so no row is lost or
duplicated. A different configuration is refused unless ``overwrite=True``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import platform
import time
import zipfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from . import rundir
from .attacks import registry
from .data.labels import CLASS_NAMES
from .errors import ConfigError, ModelError, SegattackError, UnreadableImageError
from .metrics import perturbation_norms, psnr
from .models import model_fingerprint
from .pipeline import AttackSpec, BatchOutcome, Goal, HideGoal, UntargetedGoal, attack_batch, measure
from .rundir import (
    CONFIG_FILE,
    DEFAULT_ATTACK,
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
    the start).
    """

    done: int
    total: int
    resumed: int
    image_id: str | None = None
    status: str | None = None


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


def _row_key(row: Mapping[str, Any]) -> tuple[float, str, str]:
    return float(row["eps"]), str(row["mode"]), str(row.get("attack") or DEFAULT_ATTACK)


def _prepare_results(
    path: Path,
    ids: Sequence[str],
    keys: Mapping[str, set[tuple[float, str, str]]],
    redo: set[tuple[int, str]] = frozenset(),  # type: ignore[assignment]
) -> dict[int, set[str]]:
    """Per image, the attacks whose rows are complete (``keys``: the row keys each attack needs); rewrites the file
    without torn lines, partial (image, attack) groups, the groups in ``redo`` and rows of attacks no longer run."""
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
            and (index, attack) not in redo
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
    if dropped:
        rundir.rewrite_jsonl(path, [raw[p] for p in sorted(keep)])
    return done


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
        figure1_ids: image ids to save Figure 1 data for, or N for the first N images that contain the class.
        overwrite: replace the results of a different configuration in ``out_dir`` instead of refusing.
        describe: extra configuration to record and compare (the command line puts its data and model specs here).
        progress: called with a ``Progress`` at the start and after every image (it may raise KeyboardInterrupt;
            finished rows are kept).
        seed: seeds torch's generators for the run (restored afterwards); the attack itself is deterministic.
        check_memory: before any image is read, estimate the memory the run needs from the data set's image sizes
            (``image_size(i)``, read from file headers) and a probe of the model, and refuse with ``ResourceError``
            (the estimate and the fix) if the device does not have it (``segattack.memory``).

    Raises:
        ExperimentError: invalid arguments, a model whose classes do not fit, or a different configuration in
            ``out_dir`` (without ``overwrite``).
    """
    goal_obj, ids_t = _check_goal(goal, class_ids)
    specs = _check_attacks(attacks, goal_obj)
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
    n = len(dataset) if limit is None else min(limit, len(dataset))
    if n == 0:
        raise ExperimentError("the data set holds no images")
    dev = torch.device(device) if device is not None else getattr(model, "device", torch.device("cpu"))
    model = model.to(dev)
    ids = [image_id_of(dataset, i) for i in range(n)]
    if len(set(ids)) != len(ids):
        raise ExperimentError("the data set's image ids are not unique; result rows could not be told apart")

    if check_memory:
        _check_memory(model, dataset, n, ids, dev, batch_size=batch_size, n_eps=len(eps), n_modes=len(modes_t))
    num_classes = _probe_model(model, dataset, n, ids_t, ids, dev)

    reference = "truth" if isinstance(goal_obj, UntargetedGoal) and getattr(dataset, "has_labels", True) else None
    if isinstance(goal_obj, UntargetedGoal) and reference is None:
        reference = "prediction"
    experiment = {
        "goal": goal_obj.name,
        "class_ids": list(ids_t),
        "class_names": [CLASS_NAMES[c] if c < len(CLASS_NAMES) else str(c) for c in ids_t],
        "eps_levels": [_number(e) for e in eps],
        "attacks": [a.describe() for a in specs],
        "passes": {a.name: [a.passes(e) for e in eps] for a in specs},
        "reference": reference,
        "modes": list(modes_t),
        "images": n,
        "limit": limit,
        "image_ids_sha256": _ids_digest(ids),
        "model_sha256": model_fingerprint(model),
        "figure1_eps": _number(figure1_eps(eps)),
        **{k: v for k, v in (describe or {}).items()},
        "num_classes": num_classes,
    }
    out = rundir.check_writable_dir(out_dir)
    with RunLock(out, "segattack run"):
        _run_locked(
            model, dataset, out, experiment, goal_obj, specs, eps, modes_t, ids, n, dev, num_classes, reference,
            batch_size=batch_size, save_images=save_images, figure1_ids=figure1_ids, overwrite=overwrite,
            progress=progress, seed=seed,
        )  # fmt: skip
    return out


def _run_locked(
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
    figure1_ids: int | Sequence[str],
    overwrite: bool,
    progress: Callable[[Progress], None] | None,
    seed: int,
) -> None:
    """The experiment's loop, with ``out`` locked: configuration, resume, batches, rows."""
    reusable = _check_config(out, experiment, overwrite)
    config = {
        "format": CONFIG_FORMAT,
        "experiment": experiment,
        "run": {
            "batch_size": batch_size,
            "device": str(dev),
            "save_images": save_images,
            "figure1": figure1_ids if isinstance(figure1_ids, int) else list(figure1_ids),
            "seed": seed,
            "versions": _versions(),
            "written": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        },
    }
    rundir.write_json(out / CONFIG_FILE, config)

    keys = {a.name: {(float(e), m, a.name) for e in eps for m in modes_t} for a in specs if a.name in reusable}
    results = out / RESULTS_FILE
    redo: set[tuple[int, str]] = set()
    if isinstance(goal_obj, HideGoal):
        redo = {(i, specs[0].name) for i in _corrupt_figure1(out, ids)}
    done = _prepare_results(results, ids, keys, redo)
    names = [a.name for a in specs]
    missing = {i: [a for a in names if a not in done.get(i, set())] for i in range(n)}
    fig1 = _Figure1Picker(figure1_ids if isinstance(goal_obj, HideGoal) else 0, out)
    resumed = sum(1 for i in range(n) if not missing[i])
    log.info("%d images (%d done before), eps %s levels, modes %s", n, resumed, experiment["eps_levels"],
             "+".join(modes_t))  # fmt: skip
    for a in specs:
        log.info("%s", registry.plan(a.name, eps, **a.options).note)
    count = resumed
    if progress is not None:
        progress(Progress(done=count, total=n, resumed=resumed))
    runner = _BatchRunner(
        model, dev, goal_obj, specs, eps, modes_t, batch_size, out, save_images, fig1, num_classes, reference
    )
    cuda = [dev.index or 0] if dev.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda):
        torch.manual_seed(seed)
        for start in range(0, n, batch_size):
            todo = {i: missing[i] for i in range(start, min(n, start + batch_size)) if missing[i]}
            if not todo:
                continue
            per_image = runner.run(dataset, todo, ids)
            for i in todo:
                rundir.append_jsonl(results, per_image[i])  # image by image: a crash loses at most one image
            for i in todo:
                count += 1
                if progress is not None:
                    progress(Progress(count, n, resumed, ids[i], str(per_image[i][0]["status"])))


def _corrupt_figure1(out: Path, ids: Sequence[str]) -> list[int]:
    """Images whose ``figure1_*.npz`` cannot be read (a disk fault, a copy cut short): the file is removed with a
    warning and the image's first attack is redone, which writes it again."""
    by_name = {rundir.figure1_path(out, iid).name: i for i, iid in enumerate(ids)}
    bad: list[int] = []
    for path in sorted(out.glob(f"{rundir.FIGURE1_PREFIX}*.npz")):
        try:
            with np.load(path) as z:
                str(z["image_id"])
                continue
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:
            reason = f"{type(err).__name__}: {err}"
        index = by_name.get(path.name)
        log.warning("%s cannot be read (%s); removed%s", path, reason,
                    "" if index is None else f", image {ids[index]} is redone to write it again")  # fmt: skip
        path.unlink()
        if index is not None:
            bad.append(index)
    return bad


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
        if spec.name == "illm" and not goal.targeted:
            raise ExperimentError(
                "illm is targeted by definition and cannot serve the untargeted goal; use pgd, segpgd, cospgd, apgd, "
                "dag or worst_case"
            )
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
_PER_ATTACK = ("attacks", "passes")


def _check_config(out: Path, experiment: Mapping[str, Any], overwrite: bool) -> set[str]:
    """Refuse a different configuration in ``out``; return the attacks whose earlier rows can be kept (the same
    name and options as before). Adding or removing attacks keeps the rows of the others."""
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


def _check_memory(
    model: Any, dataset: Any, n: int, ids: list[str], device: torch.device, *, batch_size: int, n_eps: int,
    n_modes: int,
) -> None:
    """Refuse a run that would not fit in memory, before any image is generated or decoded: the largest image the
    data set will return (``image_size``; a data set without it is checked on its first image) in full batches."""
    from .memory import check_run_memory

    sizer = getattr(dataset, "image_size", None)
    sizes: list[tuple[int, int]] = []
    for i in range(n):
        try:
            if callable(sizer):
                h, w = sizer(i)
            else:
                image, _ = dataset[i]
                h, w = (int(v) for v in torch.as_tensor(image).shape[-2:])
        except UnreadableImageError:
            continue  # skipped and counted where the image is used
        sizes.append((int(h), int(w)))
        if not callable(sizer):
            break
    if not sizes:
        return
    h, w = max(sizes, key=lambda s: s[0] * s[1])
    check_run_memory(model, device=device, height=h, width=w, batch_size=min(batch_size, n), n_eps=n_eps,
                     n_modes=n_modes, what="this run")  # fmt: skip


def _probe_model(
    model: Any, dataset: Any, n: int, class_ids: tuple[int, ...], ids: list[str], device: torch.device
) -> int:
    """Run the model once on the first readable image: its errors (wrong class count, probabilities, ...) and a
    class id it cannot predict surface before anything is written. Returns the number of classes."""
    for i in range(n):
        try:
            image, _ = dataset[i]
        except UnreadableImageError:
            continue
        x = torch.as_tensor(image)[None].to(device, torch.float32) / 255
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


class _Figure1Picker:
    """Which images get Figure 1 data: the named ids, or the first N images that contain the class (counting those
    saved by an earlier, interrupted run)."""

    def __init__(self, spec: int | Sequence[str], out: Path) -> None:
        self.out = out
        if isinstance(spec, int):
            if spec < 0:
                raise ExperimentError(f"figure1_ids must be a count >= 0 or a list of image ids, got {spec}")
            self.ids: set[str] | None = None
            self.n = spec
            self.saved = {self._id_of(p) for p in out.glob(f"{rundir.FIGURE1_PREFIX}*.npz")}
        else:
            self.ids = {str(s) for s in spec}
            self.n = len(self.ids)
            self.saved = set()

    @staticmethod
    def _id_of(path: Path) -> str:
        try:
            with np.load(path) as z:
                return str(z["image_id"])
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
            return path.stem

    def take(self, image_id: str) -> bool:
        """Whether ``image_id`` gets Figure 1 data; a count-based pick reserves its place at once."""
        if self.ids is not None:
            return image_id in self.ids
        if image_id in self.saved:
            return True
        if len(self.saved) < self.n:
            self.saved.add(image_id)
            return True
        return False


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
        fig1: _Figure1Picker,
        num_classes: int,
        reference: str | None,
    ) -> None:
        self.model = model
        self.device = device
        self.goal = goal
        self.attacks = attacks
        self.eps = eps
        self.modes = modes
        self.batch_size = batch_size
        self.out = out
        self.save_images = save_images
        self.fig1 = fig1
        self.k_fig = eps.index(figure1_eps(eps))
        self.num_classes = num_classes
        self.reference = reference

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
                    row: dict[str, Any] = dict.fromkeys(ROW_FIELDS)
                    row.update(image_id=image_id, index=index, attack=a.name, eps=_number(e), mode=m, steps=0)
                    row.update(class_pixels=class_pixels, time_s=0.0, status=status)
                    rows.append(row)
        return rows

    def run(self, dataset: Any, todo: Mapping[int, list[str]], ids: list[str]) -> dict[int, list[dict[str, Any]]]:
        """Rows of the images in ``todo`` for the attacks listed there (those not finished before)."""
        t0 = time.perf_counter()
        indices = list(todo)
        rows: dict[int, list[dict[str, Any]]] = {}
        groups: dict[tuple[int, ...], list[tuple[int, Tensor, Tensor]]] = {}
        for i in indices:
            try:
                image, label = dataset[i]
            except UnreadableImageError as err:
                log.warning("skipping unreadable image %s: %s", ids[i], err)
                rows[i] = self._status_rows(i, ids[i], "unreadable", None, todo[i])
                continue
            if not isinstance(image, Tensor) or image.dtype != torch.uint8 or image.ndim != 3 or image.shape[0] != 3:
                raise ExperimentError(
                    f"data set item {i} ({ids[i]}) is not a uint8 (3, H, W) image tensor: the data set breaks the "
                    "segattack.data contract"
                )
            groups.setdefault(tuple(image.shape), []).append((i, image, torch.as_tensor(label)))
        for items in groups.values():
            rows.update(self._run_group(items, ids, todo))
        elapsed = time.perf_counter() - t0
        share = elapsed / max(1, len(indices))
        for i in indices:
            for r in rows[i]:
                if r["status"] == "ok":
                    r["time_s"] = round(share, 4)
        return rows

    def _run_group(
        self, items: list[tuple[int, Tensor, Tensor]], ids: list[str], todo: Mapping[int, list[str]]
    ) -> dict[int, list[dict[str, Any]]]:
        x = torch.stack([img for _, img, _ in items]).to(self.device, torch.float32) / 255
        rows: dict[int, list[dict[str, Any]]] = {}
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
            return rows
        sel = torch.tensor(ok, device=self.device)
        xs, ps = x[sel], pred[sel]
        truth = None
        if self.reference == "truth":
            truth = torch.stack([items[b][2] for b in ok]).to(self.device, torch.int64)
        ok_ids = [ids[items[b][0]] for b in ok]
        first = self.attacks[0].name
        fig = {j for j, iid in enumerate(ok_ids) if first in todo[items[ok[j]][0]] and self.fig1.take(iid)}
        per: dict[int, list[dict[str, Any]]] = {items[b][0]: [] for b in ok}
        for spec in self.attacks:
            sub = [j for j, b in enumerate(ok) if spec.name in todo[items[b][0]]]
            if not sub:
                continue
            pick = torch.tensor(sub, device=self.device)
            figs = [n for n, j in enumerate(sub) if j in fig] if spec.name == first else []
            outcome = attack_batch(
                self.model, xs[pick], attack=spec, goal=self.goal, eps_levels=self.eps, modes=self.modes,
                pred=ps[pick], truth=None if truth is None else truth[pick], batch_size=self.batch_size,
                keep=("full", "posthoc") if figs else (),
            )  # fmt: skip
            self._rows(spec, outcome, xs[pick], [ok[j] for j in sub], items, ids, per)
            sub_ids = [ok_ids[j] for j in sub]
            if self.save_images:
                folder = Path("images") / spec.name if len(self.attacks) > 1 else Path("images")
                for k, e in enumerate(self.eps):
                    for m in self.modes:
                        for n, iid in enumerate(sub_ids):
                            path = self.out / folder / f"eps{_number(e)}" / m / f"{output_name(iid)}.png"
                            _save_png(path, to_uint8(outcome.advs[m][k, n], xs[pick][n], e))
            for n in figs:
                j = sub[n]
                self._save_figure1(ok_ids[j], xs[j], outcome.labels[n], ps[j], outcome.advs, outcome.preds, n)
        rows.update(per)
        return rows

    def _rows(
        self,
        spec: AttackSpec,
        outcome: BatchOutcome,
        xs: Tensor,
        ok: list[int],
        items: list[tuple[int, Tensor, Tensor]],
        ids: list[str],
        per: dict[int, list[dict[str, Any]]],
    ) -> None:
        for k, e in enumerate(self.eps):
            passes = spec.passes(e)
            for m in self.modes:
                measures = measure(self.goal, outcome, m, k, num_classes=self.num_classes)
                norms = perturbation_norms(outcome.advs[m][k], xs)
                snr = psnr(outcome.advs[m][k], xs)
                for j, b in enumerate(ok):
                    i = items[b][0]
                    row: dict[str, Any] = dict.fromkeys(ROW_FIELDS)
                    row.update(image_id=ids[i], index=i, attack=spec.name, eps=_number(e), mode=m, steps=passes)
                    row.update({key: rundir.json_safe(v) for key, v in measures[j].items()})
                    row.update(
                        linf=rundir.json_safe(round(float(norms["linf"][j]), 4)),
                        l2=rundir.json_safe(round(float(norms["l2"][j]), 4)),
                        mean_abs=rundir.json_safe(round(float(norms["mean_abs"][j]), 4)),
                        psnr=rundir.json_safe(round(float(snr[j]), 4)),
                        time_s=0.0,
                        status="ok",
                    )
                    per[i].append(row)

    def _save_figure1(
        self,
        image_id: str,
        x: Tensor,
        target: Tensor,
        pred: Tensor,
        advs: Mapping[str, Tensor],
        preds: Mapping[str, Tensor],
        j: int,
    ) -> None:
        k = self.k_fig
        nc = self.num_classes
        arrays: dict[str, Any] = {
            "image_id": np.array(image_id),
            "attack": np.array(self.attacks[0].name),
            "eps": np.array(self.eps[k]),
            "class_ids": np.array(getattr(self.goal, "class_ids", ())),
            "image": to_uint8(x),
            "adv": to_uint8(advs["full"][k, j]),
            "adv_restricted": to_uint8(advs["posthoc"][k, j]),
            "target": _labels_np(target, nc),
            "pred": _labels_np(pred, nc),
            "pred_adv": _labels_np(preds["full"][k, j], nc),
            "pred_restricted": _labels_np(preds["posthoc"][k, j], nc),
        }
        if "during" in advs:
            arrays["adv_during"] = to_uint8(advs["during"][k, j])
            arrays["pred_during"] = _labels_np(preds["during"][k, j], nc)
        with rundir.atomic_open(figure1_path(self.out, image_id)) as fh:
            np.savez_compressed(fh, **arrays)
