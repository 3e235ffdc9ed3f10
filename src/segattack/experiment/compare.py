"""Several models on the same images: the paper's experiment for each, and the transfer matrix between them.

``compare_models`` runs, for every model, ``run_experiment`` (Fischer et al. 2017: hide a class at every budget,
whole image and restricted) into ``out_dir/models/<name>/``, a normal resumable experiment directory with its own
report; the clean mIoU of every model on the same images (``segattack.evaluation``, against the ground truth where
the data set has it); and the transfer matrix: the adversarial images crafted on model A at ``transfer_eps`` (whole
image, the same attack) predicted by every model B and measured against B's own clean prediction (hidden: B's class
pixels no longer the class; kept: B's other pixels unchanged; ``hiding_metrics``). The diagonal is the white-box
attack: its images are made exactly as the experiment made them (same batches, same prefix-sharing sweep, the
prediction in the experiment's batch layout), so for a deterministic attack it equals the experiment's rows at
that budget, bit for bit on CPU.

Files in ``out_dir`` (besides ``models/``):

- ``compare.json``: the configuration (data, images, attack, classes, budgets, modes, transfer budget; refused on
  resume if different, unless ``overwrite``) and the models (name, experiment directory, fingerprint; these may
  change between runs: what depends on a changed model is redone);
- ``clean.json``: per model its clean mIoU and pixel accuracy on these images, with its fingerprint (not recomputed
  on resume);
- ``transfer.jsonl``: one row per (source model, image), appended and fsync'ed image by image: ``source``,
  ``index``, ``image_id``, ``eps`` (levels), ``status`` (as the experiment's: ``ok``, ``absent``, ``all_hidden``,
  ``unreadable``), ``class_pixels`` (of the source's clean prediction), ``models_sha256`` (the models it was
  measured on) and ``targets``: per model B ``fooled``, ``preserved``, ``class_pixels`` (B's), fractions in [0, 1],
  null where undefined. Resuming keeps the complete rows of the current models and redoes the rest;
- ``compare.png/.svg``, ``transfer.png``, ``transfer.csv``, ``report.html``: ``segattack.report.compare``.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from .. import rundir
from ..data import labels as _labels
from ..errors import ConfigError, UnreadableImageError
from ..evaluation import evaluate
from ..metrics import hiding_metrics
from ..models import first_pass, model_fingerprint, predict_slice
from ..pipeline import HideGoal, attack_batch
from ..report import write_report
from ..report.compare import (
    CLEAN_FILE,
    COMPARE_FILE,
    COMPARE_STEMS,
    MODELS_DIR,
    TRANSFER_CSV,
    TRANSFER_FILE,
    CompareReport,
    is_transfer_row,
    read_compare_config,
    write_compare_report,
)
from ..rundir import RunLock, safe_name
from ..targets import hidden_mask
from .config import ExperimentConfig, RunOptions, number
from .figure1 import figure1_eps
from .reading import first_readable, image_id_of
from .run import Progress, run_experiment

__all__ = ["compare_models", "transfer_budget", "CompareResult", "CompareProgress", "CompareError", "model_dir_name"]

log = logging.getLogger(__name__)

COMPARE_FORMAT = 1
STAGES = ("experiment", "clean", "transfer", "report")


class CompareError(ConfigError):
    """A comparison that cannot be run as asked (message meant for the user)."""


@dataclass(frozen=True)
class CompareProgress:
    """Reported to ``progress``: the ``stage`` (``STAGES``) for ``model`` (its name; None for the report),
    ``done`` of ``total`` images (models for the report), and during the experiment its own ``Progress``."""

    stage: str
    model: str | None
    done: int
    total: int
    experiment: Progress | None = None


@dataclass(frozen=True)
class CompareResult:
    """What ``compare_models`` produced: the directory, the models in order, the budgets (8-bit levels), each
    model's experiment directory and clean mIoU (None without ground truth), and the report (figures, matrix,
    sentences; ``report.matrix[(source, target)]`` is a cell of ``segattack.report.compare.transfer_matrix``)."""

    out_dir: Path
    models: tuple[str, ...]
    eps_levels: tuple[float, ...]
    transfer_eps: float
    model_dirs: dict[str, Path]
    clean_miou: dict[str, float | None]
    report: CompareReport


def model_dir_name(name: str) -> str:
    """The folder of a model's experiment under ``models/``: its name in file-name characters.

    >>> model_dir_name("deeplabv3 synth")
    'deeplabv3_synth'
    """
    return safe_name(name)


def _digest(parts: Iterable[str]) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p.encode() + b"\0")
    return h.hexdigest()


def _check_models(models: Mapping[str, Any]) -> dict[str, Any]:
    if not isinstance(models, Mapping):
        raise CompareError("models must map a name to each model, e.g. {'fcn8s': model_a, 'deeplab': model_b}")
    if len(models) < 2:
        raise CompareError(f"a comparison needs at least 2 models, got {len(models)}; use run_experiment for one")
    dirs: dict[str, str] = {}
    for name in models:
        if not isinstance(name, str) or not name.strip():
            raise CompareError(f"model names must be non-empty strings, got {name!r}")
        d = model_dir_name(name)
        if d in dirs:
            raise CompareError(f"models {dirs[d]!r} and {name!r} would share the folder models/{d}; rename one")
        dirs[d] = name
    return dict(models)


def transfer_budget(eps: Sequence[float], transfer_eps: float | None) -> float:
    """The budget of the transfer matrix in levels: ``transfer_eps``, which must be one of the budgets ``eps`` (the
    diagonal of the matrix is the white-box result at that budget), or the one nearest 10 levels; ``CompareError``
    otherwise.

    >>> transfer_budget([2, 4, 12], None), transfer_budget([2, 4], 4)
    (12, 4.0)
    """
    if transfer_eps is None:
        return figure1_eps(eps)
    t = float(transfer_eps)
    if not math.isfinite(t) or t not in [float(e) for e in eps]:
        raise CompareError(
            f"transfer_eps {number(t) if math.isfinite(t) else t} is not among the budgets "
            f"{[number(e) for e in eps]}; pick one of them (the diagonal of the transfer matrix is the white-box "
            "result at that budget)"
        )
    return t


def _probe_classes(models: Mapping[str, Any], dataset: Any, n: int, device: torch.device) -> int:
    """Run every model once on the first readable image; all must predict the same number of classes."""
    first = first_readable(dataset, n, device)
    if first is None:
        raise CompareError(f"none of the {n} images can be read")
    x = first[1]
    counts: dict[str, int] = {}
    for name, model in models.items():
        counts[name] = int(first_pass(model, x, on="the first image", name=name).shape[1])
    if len(set(counts.values())) > 1:
        listed = ", ".join(f"{k} {v}" for k, v in counts.items())
        raise CompareError(f"the models predict different numbers of classes ({listed}); compare models that share "
                           "one label space")  # fmt: skip
    return next(iter(counts.values()))


class _Transfer:
    """The transfer rows: which (source, image) are done, and the rows of one batch of images."""

    def __init__(
        self, models: Mapping[str, Any], config: ExperimentConfig, transfer_eps: float, device: torch.device,
        digest: str,
    ) -> None:  # fmt: skip
        self.models, self.config, self.spec, self.class_ids = models, config, config.attacks[0], config.classes
        self.goal = HideGoal(config.classes)
        self.eps, self.teps, self.k = list(config.eps), transfer_eps, list(config.eps).index(transfer_eps)
        self.batch_size, self.device, self.digest = config.batch_size, device, digest

    def prepare(self, path: Path, ids: Sequence[str]) -> dict[str, set[int]]:
        """The images done per source; rewrites the file without torn, duplicate or stale rows."""
        rows, raw, dropped = rundir.read_jsonl(path, accept=is_transfer_row)
        done: dict[str, set[int]] = {m: set() for m in self.models}
        keep: list[bytes] = []
        names = set(self.models)
        for r, line in zip(rows, raw, strict=True):
            src, idx = str(r.get("source")), r.get("index")
            ok = (
                src in done
                and isinstance(idx, int)
                and 0 <= idx < len(ids)
                and r.get("image_id") == ids[idx]
                and r.get("models_sha256") == self.digest
                and r.get("eps") is not None
                and float(r["eps"]) == self.teps
                and (r.get("status") != "ok" or set(r["targets"]) == names)
                and idx not in done[src]
            )
            if ok:
                done[src].add(int(r["index"]))
                keep.append(line)
            else:
                dropped = True
        if dropped:
            if rows:
                log.info("transfer: %d of %d rows kept (the others are stale or incomplete; redone)", len(keep),
                         len(rows))  # fmt: skip
            rundir.rewrite_jsonl(path, keep)
        return done

    def _row(self, source: str, index: int, image_id: str, status: str, pixels: int | None) -> dict[str, Any]:
        return {
            "source": source, "index": index, "image_id": image_id, "eps": number(self.teps), "status": status,
            "class_pixels": pixels, "models_sha256": self.digest, "targets": {},
        }  # fmt: skip

    def batch(self, source: str, dataset: Any, indices: Sequence[int], ids: Sequence[str]) -> dict[int, dict[str, Any]]:
        """Rows of ``indices`` for ``source``, the images grouped by size as the experiment groups them."""
        rows: dict[int, dict[str, Any]] = {}
        groups: dict[tuple[int, ...], list[tuple[int, Tensor]]] = {}
        for i in indices:
            try:
                image, _ = dataset[i]
            except UnreadableImageError as err:
                log.warning("transfer: skipping unreadable image %s: %s", ids[i], err)
                rows[i] = self._row(source, i, ids[i], "unreadable", None)
                continue
            groups.setdefault(tuple(image.shape), []).append((i, torch.as_tensor(image)))
        for items in groups.values():
            rows.update(self._group(source, items, ids))
        return rows

    def _group(self, source: str, items: list[tuple[int, Tensor]], ids: Sequence[str]) -> dict[int, dict[str, Any]]:
        model = self.models[source]
        x = torch.stack([img for _, img in items]).to(self.device, torch.float32) / 255
        pred = model.predict(x, batch_size=self.batch_size)
        counts = hidden_mask(pred, self.class_ids).flatten(1).sum(1).tolist()
        n_pix = pred[0].numel()
        rows: dict[int, dict[str, Any]] = {}
        ok: list[int] = []
        for b, (i, _) in enumerate(items):
            if counts[b] == 0:
                rows[i] = self._row(source, i, ids[i], "absent", 0)
            elif counts[b] == n_pix:
                rows[i] = self._row(source, i, ids[i], "all_hidden", int(n_pix))
            else:
                ok.append(b)
        if not ok:
            return rows
        sel = torch.tensor(ok, device=self.device)
        xs = x[sel]
        outcome = attack_batch(
            model, xs, attack=self.spec, goal=self.goal, eps=[self.teps / 255], modes=("full",), pred=pred[sel],
            batch_size=self.batch_size, seeds=[self.config.image_seed(ids[items[b][0]]) for b in ok],
        )  # fmt: skip
        adv = outcome.advs["full"][0]
        targets: dict[str, list[dict[str, Any]]] = {}
        for name, target in self.models.items():
            if name == source:
                b = adv.shape[0]  # predicted as the experiment's sweep predicted it: budget k of len(eps), flattened
                after = predict_slice(model, adv, start=self.k * b, total=len(self.eps) * b, batch_size=self.batch_size)
                clean = outcome.pred
            else:
                clean = target.predict(x, batch_size=self.batch_size)[sel]
                after = target.predict(adv, batch_size=self.batch_size)
            met = hiding_metrics(clean, after, class_id=self.class_ids)
            targets[name] = [
                {"fooled": r["fooled"], "preserved": r["preserved"], "class_pixels": r["class_pixels"]}
                for r in met.rows()
            ]
        for j, b in enumerate(ok):
            i = items[b][0]
            row = self._row(source, i, ids[i], "ok", int(counts[b]))
            row["targets"] = {name: rundir.json_safe(v[j]) for name, v in targets.items()}
            rows[i] = row
        return rows


def _check_config(out: Path, setup: Mapping[str, Any], overwrite: bool) -> None:
    if overwrite:
        for name in (COMPARE_FILE, CLEAN_FILE, TRANSFER_FILE, TRANSFER_CSV, rundir.REPORT_FILE):
            (out / name).unlink(missing_ok=True)
        for stem in COMPARE_STEMS:
            for suffix in (".png", ".svg"):
                (out / f"{stem}{suffix}").unlink(missing_ok=True)
        return
    if not (out / COMPARE_FILE).exists():
        if (out / TRANSFER_FILE).exists():
            raise CompareError(f"{out} holds {TRANSFER_FILE} but no {COMPARE_FILE}, so it cannot be resumed; replace "
                               "it with --overwrite (overwrite=True) or choose another output directory")  # fmt: skip
        return
    old = read_compare_config(out).get("compare", {})
    diff = rundir.config_diff(old, setup)
    if diff:
        shown = "; ".join(diff[:4]) + ("; ..." if len(diff) > 4 else "")
        raise CompareError(f"{out} holds a comparison of a different configuration ({shown}); replace it with "
                           "--overwrite (overwrite=True) or choose another output directory")  # fmt: skip


def _clean_scores(
    models: Mapping[str, Any], dataset: Any, path: Path, fingerprints: Mapping[str, str], ids_sha: str, n: int,
    num_classes: int, batch_size: int, device: torch.device, progress: Callable[[CompareProgress], None] | None,
) -> dict[str, float | None]:  # fmt: skip
    """Clean mIoU per model from ``clean.json``, computing (and storing) those missing or stale."""
    try:
        import json

        entries = json.loads(path.read_text(encoding="utf-8")).get("models", {})
        if not isinstance(entries, dict):
            entries = {}
    except (OSError, ValueError, AttributeError):
        entries = {}
    has_labels = bool(getattr(dataset, "has_labels", True))
    out: dict[str, float | None] = {}
    changed = False
    for name, model in models.items():
        e = entries.get(name)
        if isinstance(e, dict) and e.get("sha256") == fingerprints[name] and e.get("image_ids_sha256") == ids_sha:
            out[name] = None if e.get("miou") is None else float(e["miou"])
            continue
        changed = True
        if not has_labels:
            entries[name] = {"sha256": fingerprints[name], "image_ids_sha256": ids_sha, "miou": None,
                             "note": "the data set has no ground-truth labels"}  # fmt: skip
            out[name] = None
            continue
        names = getattr(model, "class_names", None) or _labels.label_names(num_classes)
        void = [i for i, nm in enumerate(names) if _labels.is_void(str(nm))]

        def tick(done: int, total: int, name: str = name) -> None:
            if progress is not None:
                progress(CompareProgress("clean", name, done, total))

        result = evaluate(model, dataset, num_classes=num_classes, batch_size=batch_size, limit=n, device=device,
                          progress=tick, void_classes=void)  # fmt: skip
        miou = None if math.isnan(result.miou) else float(result.miou)
        entries[name] = {
            "sha256": fingerprints[name], "image_ids_sha256": ids_sha, "images": result.images, "miou": miou,
            "pixel_accuracy": rundir.json_safe(result.pixel_accuracy), "skipped": list(result.skipped),
        }  # fmt: skip
        out[name] = miou
    if changed:
        rundir.write_json(path, {"format": COMPARE_FORMAT, "models": {k: entries[k] for k in models}})
    return out


def compare_models(
    models: Mapping[str, Any],
    dataset: Any,
    config: ExperimentConfig,
    out_dir: str | os.PathLike[str],
    *,
    transfer_eps: float | None = None,
    device: str | torch.device | None = None,
    overwrite: bool = False,
    describe: Mapping[str, Any] | None = None,
    model_describe: Mapping[str, Mapping[str, Any]] | None = None,
    progress: Callable[[CompareProgress], None] | None = None,
    options: RunOptions | None = None,
) -> CompareResult:
    """Compare ``models`` on ``dataset``: the paper's experiment ``config`` for each, clean mIoU, and the transfer
    matrix.

    Args:
        models: name -> ``PixelModel`` (images in [0, 1] -> logits), at least 2, all with the same classes; the
            names label figures and name the experiment folders ``out_dir/models/<name>/``.
        dataset: items ``(uint8 image (3, H, W), label)`` with ``image_id(i)`` (the ``segattack.data`` contract).
        config: the experiment every model runs (``ExperimentConfig``): the hide goal with one attack (a name or a
            callable), its budgets, modes, batch size, limit, seed and Figure 1 (set ``figure1=0`` for none).
        out_dir: where everything goes (see the module docstring).
        transfer_eps: the budget of the transfer matrix in levels, one of ``config.eps`` (default: the one nearest
            10); the transfer matrix is always mode ``full``.
        device: where to run (default: the first model's device).
        overwrite: replace a comparison of a different configuration (and the models' experiments) in ``out_dir``.
        describe: configuration to record with every experiment and in ``compare.json`` (the data spec, ...);
            ``model_describe[name]``: more for one model's experiment (its spec, ...).
        progress: called with a ``CompareProgress`` as images are done.
        options: as ``run_experiment``'s; ``report`` (default True here) also writes each model's own report in
            its folder.

    Returns a ``CompareResult``. Raises ``CompareError`` for arguments it cannot honour (fewer than 2 models,
    different class counts, a transfer budget not among the budgets, a different configuration in ``out_dir``).
    Interrupted, it resumes where it stopped: run it again with the same arguments.
    """
    models = _check_models(models)
    if not isinstance(config, ExperimentConfig):
        raise CompareError(f"config must be an ExperimentConfig, got {type(config).__name__}")
    if config.goal != "hide" or len(config.attacks) != 1:
        raise CompareError("a comparison runs the hide goal with one attack; give ExperimentConfig(classes=..., "
                           "attacks=(ONE,))")  # fmt: skip
    opts = options if options is not None else RunOptions(report=True)
    job = _Job.prepare(models, dataset, config, transfer_eps, device, describe)
    out = Path(out_dir)
    dirs = {k: out / MODELS_DIR / model_dir_name(k) for k in job.models}
    with RunLock(rundir.check_writable_dir(out), "segattack compare"):
        rundir.check_kind(out, "compare")  # never a run's or a universal's directory, not even with overwrite
        _check_config(out, job.setup, overwrite)
        figures = [f"{stem}{suffix}" for stem in COMPARE_STEMS for suffix in (".png", ".svg")]
        written = [COMPARE_FILE, CLEAN_FILE, TRANSFER_FILE, TRANSFER_CSV, rundir.REPORT_FILE, MODELS_DIR, *figures]
        rundir.record_outputs(out, written, kind="compare")
        rundir.write_json(out / COMPARE_FILE, job.record(model_describe))
        run_opts = RunOptions(check_memory=opts.check_memory, overlap=opts.overlap, read_workers=opts.read_workers)
        for k, model in job.models.items():
            log.info("compare: experiment of %s into %s", k, dirs[k])

            def tick(p: Progress, k: str = k) -> None:
                if progress is not None:
                    progress(CompareProgress("experiment", k, p.done, p.total, p))

            run_experiment(
                model, dataset, config, dirs[k], device=job.dev, overwrite=overwrite,
                describe={**(describe or {}), **(model_describe or {}).get(k, {}), "compare_name": k},
                progress=tick, options=run_opts,
            )  # fmt: skip
        clean = _clean_scores(job.models, dataset, out / CLEAN_FILE, job.fingerprints, job.ids_sha, job.n,
                              job.num_classes, config.batch_size, job.dev, progress)  # fmt: skip
        _run_transfer(job.models, dataset, job.ids, out / TRANSFER_FILE, config, job.teps, job.dev, job.digest,
                      progress)  # fmt: skip
        if opts.report:
            for j, k in enumerate(job.models):
                write_report(dirs[k])
                if progress is not None:
                    progress(CompareProgress("report", k, j + 1, len(job.models)))
        report = write_compare_report(out)
    return CompareResult(out, tuple(job.models), tuple(config.eps), job.teps, dirs, clean, report)


@dataclass
class _Job:
    """What a comparison is about once its models and images are checked: the models on their device, the image
    ids, the classes they predict, their fingerprints, and the setup ``compare.json`` records and compares."""

    models: dict[str, Any]
    dev: torch.device
    ids: list[str]
    n: int
    num_classes: int
    teps: float
    fingerprints: dict[str, str]
    digest: str
    ids_sha: str
    setup: dict[str, Any]
    seed: int
    batch_size: int

    @classmethod
    def prepare(
        cls, models: dict[str, Any], dataset: Any, config: ExperimentConfig, transfer_eps: float | None,
        device: str | torch.device | None, describe: Mapping[str, Any] | None,
    ) -> _Job:  # fmt: skip
        teps = transfer_budget(config.eps, transfer_eps)
        n = len(dataset) if config.limit is None else min(int(config.limit), len(dataset))
        if n == 0:
            raise CompareError("the data set holds no images")
        first = next(iter(models.values()))
        dev = torch.device(device) if device is not None else getattr(first, "device", torch.device("cpu"))
        models = {k: m.to(dev) for k, m in models.items()}
        ids = [image_id_of(dataset, i) for i in range(n)]
        if len(set(ids)) != len(ids):
            raise CompareError("the data set's image ids are not unique; result rows could not be told apart")
        num_classes = _probe_classes(models, dataset, n, dev)
        ids_t = config.classes
        if max(ids_t) >= num_classes:
            raise CompareError(f"class id {max(ids_t)} to hide, but the models predict only {num_classes} classes")
        fingerprints = {k: model_fingerprint(m) for k, m in models.items()}
        by_print: dict[str, str] = {}
        for k, fp in fingerprints.items():
            if fp in by_print:
                raise CompareError(f"models {by_print[fp]!r} and {k!r} are the same network (same weights and "
                                   "normalisation); compare different models")  # fmt: skip
            by_print[fp] = k
        first_names = getattr(first, "class_names", None)
        names = _labels.label_names(num_classes, first_names if first_names and len(first_names) == num_classes
                                    else None)  # fmt: skip
        ids_sha = _digest(ids)
        setup = {
            "goal": "hide", "class_ids": list(ids_t), "class_names": [names[c] for c in ids_t],
            "eps_levels": [number(e) for e in config.eps], "modes": list(config.modes or ()),
            "attack": config.attacks[0].describe(), "transfer_eps": number(teps), "images": n, "limit": config.limit,
            "image_ids_sha256": ids_sha, "num_classes": num_classes, **{k: v for k, v in (describe or {}).items()},
        }  # fmt: skip
        digest = _digest(f"{k}={fingerprints[k]}" for k in models)
        return cls(models, dev, ids, n, num_classes, teps, fingerprints, digest, ids_sha, setup, config.seed,
                   config.batch_size)  # fmt: skip

    def record(self, model_describe: Mapping[str, Mapping[str, Any]] | None) -> dict[str, Any]:
        """``compare.json``: the setup, the models (name, folder, fingerprint, spec) and the run."""
        models = [
            {"name": k, "dir": f"{MODELS_DIR}/{model_dir_name(k)}", "sha256": self.fingerprints[k],
             "spec": (model_describe or {}).get(k, {}).get("model")}
            for k in self.models
        ]  # fmt: skip
        run = {"batch_size": self.batch_size, "device": str(self.dev), "seed": self.seed,
               "written": time.strftime("%Y-%m-%dT%H:%M:%S%z")}  # fmt: skip
        return {"format": COMPARE_FORMAT, "compare": self.setup, "models": models, "models_sha256": self.digest,
                "run": run}  # fmt: skip



def _run_transfer(
    models: Mapping[str, Any], dataset: Any, ids: Sequence[str], path: Path, config: ExperimentConfig, teps: float,
    dev: torch.device, digest: str, progress: Callable[[CompareProgress], None] | None,
) -> None:  # fmt: skip
    """Craft on every source at ``teps`` and measure on every target; append one row per (source, image)."""
    batch_size, seed = config.batch_size, config.seed
    transfer = _Transfer(models, config, teps, dev, digest)
    done = transfer.prepare(path, ids)
    n = len(ids)
    cuda = [dev.index or 0] if dev.type == "cuda" else []
    for source in models:
        left = [i for i in range(n) if i not in done[source]]
        count = n - len(left)
        if progress is not None:
            progress(CompareProgress("transfer", source, count, n))
        with torch.random.fork_rng(devices=cuda):
            torch.manual_seed(seed)
            for s in range(0, len(left), batch_size):
                chunk = left[s : s + batch_size]
                rows = transfer.batch(source, dataset, chunk, ids)
                for i in chunk:
                    rundir.append_jsonl(path, [rows[i]])  # image by image: a crash loses at most one image
                    count += 1
                    if progress is not None:
                        progress(CompareProgress("transfer", source, count, n))
