"""``run_universal``: the universal-perturbation job on a directory, which it owns (the lock, the kind check, the
manifest, the files): fit one perturbation on some images, measure it on held-out images it never saw, write
``universal.npz``/``.png``, ``results.jsonl`` (one row per held-out image), ``summary.json`` and ``examples.png``."""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .. import __version__, rundir
from ..attacks._core import as_model
from ..data.labels import label_names
from ..errors import DataError, ModelTypeError, UnreadableImageError
from ..experiment.config import number
from ..metrics import Summary, hiding_metrics, summarize
from ..models import PixelModel
from ..targets import static_target
from .config import UniversalConfig, UniversalError
from .export import class_names_text, write_outputs
from .fit import Progress, model_dtype_device, universal
from .perturbation import UniversalResult, apply_universal

__all__ = ["run_universal", "UniversalRun", "METHOD"]

log = logging.getLogger(__name__)

METHOD = "universal adversarial perturbation (Metzen, Kumar, Brox and Fischer, ICCV 2017)"
_MEASURES = ("fooled", "preserved", "target_hit")


@dataclass(frozen=True)
class UniversalRun:
    """What ``run_universal`` returns: the directory (a path-like), the fitted perturbation, one row per held-out
    image, the means over them (``stats``: fooled, preserved, target_hit as ``Summary``), the image counts by status
    (ok, absent, unreadable), the files written (names in ``out_dir``), and the fit's and measurement's wall times."""

    out_dir: Path
    result: UniversalResult
    rows: tuple[Mapping[str, Any], ...]
    stats: Mapping[str, Summary]
    counts: Mapping[str, int]
    written: tuple[str, ...]
    fit_s: float
    eval_s: float
    label_names: tuple[str, ...] = field(default=(), repr=False)

    def __fspath__(self) -> str:
        return os.fspath(self.out_dir)


def _check_sizes(fit_data: Any, eval_data: Any) -> None:
    """Refuse before the fit when the first images of the two data sets differ in size (each data set's own images
    are checked one by one later)."""
    try:
        a, b = fit_data[0][0], eval_data[0][0]
    except (UnreadableImageError, IndexError):
        return  # reported where the images are used
    if tuple(a.shape[-2:]) != tuple(b.shape[-2:]):
        raise DataError(
            f"the fit images (--fit-data) are {a.shape[-2]}x{a.shape[-1]} pixels but the held-out images (--data) "
            f"{b.shape[-2]}x{b.shape[-1]}; one universal perturbation needs one size: resize all images (on the "
            f"command line: --size {a.shape[-2]}x{a.shape[-1]})"
        )


class _Measure:
    """The held-out images, batch by batch: a row each (``rows``, in the data set's order, unreadable images
    included), and the images drawn in ``examples.png`` (those with the class first)."""

    def __init__(self, model: PixelModel, result: UniversalResult, config: UniversalConfig) -> None:
        self.model, self.config = model, config
        self.dtype, _ = model_dtype_device(model)
        self.xi = result.perturbation.to(model.device)
        self.numbered: list[tuple[int, dict[str, Any]]] = []
        self.shown: list[dict[str, Any]] = []
        self.spare: list[dict[str, Any]] = []

    def batch(self, items: Sequence[tuple[int, str, torch.Tensor]]) -> None:
        model, c = self.model, self.config
        x = torch.stack([img for _, _, img in items]).to(model.device, self.dtype) / 255
        adv = apply_universal(x, self.xi.to(self.dtype))
        clean_pred, adv_pred = model.predict(x), model.predict(adv)
        target = static_target(clean_pred, class_id=c.static) if c.static is not None else None
        m = hiding_metrics(clean_pred, adv_pred, class_id=c.classes, target=target)
        for j, ((i, image_id, _), r) in enumerate(zip(items, m.rows(), strict=True)):
            status = "ok" if r["class_pixels"] > 0 else "absent"
            row = {"image_id": image_id, **{k: rundir.json_safe(v) for k, v in r.items()}, "status": status}
            self.numbered.append((i, row))
            pool = self.shown if status == "ok" else self.spare  # images with the class first
            if len(pool) < c.examples:
                pool.append({"image_id": image_id, "image": x[j], "adv": adv[j], "pred": clean_pred[j],
                             "pred_adv": adv_pred[j], "row": row})  # fmt: skip

    def unreadable(self, i: int, image_id: str, err: Exception) -> None:
        log.warning("skipping %s: %s", image_id, err)
        self.numbered.append((i, {"image_id": image_id, "fooled": None, "preserved": None, "target_hit": None,
                                  "class_pixels": None, "status": "unreadable"}))  # fmt: skip

    @property
    def rows(self) -> list[dict[str, Any]]:
        return [row for _, row in sorted(self.numbered, key=lambda t: t[0])]

    @property
    def examples(self) -> list[dict[str, Any]]:
        return (self.shown + self.spare)[: self.config.examples]


def _measure(model: PixelModel, data: Any, result: UniversalResult, config: UniversalConfig) -> _Measure:
    """One row per held-out image of ``data`` (the first ``eval_limit``): the model's measures on clean + xi."""
    measure = _Measure(model, result, config)
    size = result.size
    n = len(data) if config.eval_limit is None else min(config.eval_limit, len(data))
    batch: list[tuple[int, str, torch.Tensor]] = []
    for i in range(n):
        image_id = str(data.image_id(i)) if callable(getattr(data, "image_id", None)) else f"image_{i}"
        try:
            img = data[i][0]
        except UnreadableImageError as err:
            measure.unreadable(i, image_id, err)
            continue
        if tuple(img.shape[-2:]) != size:
            raise DataError(
                f"held-out image {image_id!r} is {img.shape[-2]}x{img.shape[-1]} pixels but the perturbation is "
                f"{size[0]}x{size[1]}; resize all images (on the command line: --size {size[0]}x{size[1]})"
            )
        batch.append((i, image_id, img))
        if len(batch) == config.batch_size:
            measure.batch(batch)
            batch = []
    if batch:
        measure.batch(batch)
    return measure


def _stats(rows: Sequence[Mapping[str, Any]]) -> tuple[dict[str, Summary], dict[str, int]]:
    def nan(v: Any) -> float:
        return math.nan if v is None else float(v)

    stats = {k: summarize([nan(r[k]) for r in rows if r["status"] != "unreadable"]) for k in _MEASURES}
    counts = {s: sum(r["status"] == s for r in rows) for s in ("ok", "absent", "unreadable")}
    return stats, counts


def _summary(
    config: UniversalConfig, result: UniversalResult, stats: Mapping[str, Summary], counts: Mapping[str, int],
    n_rows: int, describe: Mapping[str, Any], device: str, times: tuple[float, float],
) -> dict[str, Any]:  # fmt: skip
    """``summary.json``: the means over the held-out images, the configuration, the data, model and times."""
    fit_s, eval_s = times
    return {
        "method": METHOD,
        "held_out": {
            k: {
                "mean": rundir.json_safe(s.mean),
                "std": rundir.json_safe(s.std),
                "count": s.count,
                "missing": s.missing,
            }
            for k, s in stats.items()
        },  # fmt: skip
        "images": n_rows,
        **counts,
        "eps": number(config.eps),
        "units": "eps and step_size in 8-bit levels; rates as fractions in [0, 1]",
        "steps": config.steps,
        "step_size": config.step_size,
        "omega": config.omega,
        "target": result.target,
        "hide": list(config.classes),
        "static": config.static,
        "fit": {
            **describe.get("fit", {}),
            "images": len(result.image_ids),
            "skipped": [list(s) for s in result.skipped],
        },  # fmt: skip
        "data": dict(describe.get("data", {})),
        "model": dict(describe.get("model", {})),
        "device": device,
        "batch_size": config.batch_size,
        "loss_first": result.loss[0],
        "loss_last": result.loss[-1],
        "time_s": {"fit": round(fit_s, 3), "measure": round(eval_s, 3), "total": round(fit_s + eval_s, 3)},
        "versions": {"segattack": __version__, "torch": torch.__version__},
    }


def _prepare(model: Any, config: Any, out_dir: Any, device: Any) -> tuple[PixelModel, Path, torch.device]:
    """The arguments' checks, before the directory is touched or an image read: the config, the model, the
    directory's kind."""
    if not isinstance(config, UniversalConfig):
        raise UniversalError(f"config must be a UniversalConfig, got {type(config).__name__}; build one with "
                             "segattack.universal.UniversalConfig(eps=..., classes=...)")  # fmt: skip
    if not str(out_dir).strip():
        raise UniversalError("out_dir is empty; name the directory the job writes into")
    model = as_model(model)
    if not isinstance(model, PixelModel):
        raise ModelTypeError(f"run_universal takes a PixelModel (or an nn.Module), got {type(model).__name__}")
    out = Path(out_dir)
    rundir.check_writable_dir(out, create=False)  # before the fit: a finished fit must have somewhere to go
    rundir.check_kind(out, "universal")  # and it must not replace a run's (or a comparison's) files
    dev = torch.device(device) if device is not None else model.device
    return model.to(dev), out, dev


def _label_names(config: UniversalConfig, model: PixelModel) -> tuple[str, ...]:
    """The names of the model's output classes: the config's, else the model's own, else the defaults."""
    names = config.label_names if config.label_names is not None else getattr(model, "class_names", None)
    try:
        return label_names(model.num_classes, names)
    except ValueError as err:
        raise UniversalError(f"label_names: {err}", field="label_names") from None


def run_universal(
    model: Any,
    fit_data: Any,
    eval_data: Any,
    config: UniversalConfig,
    out_dir: str | os.PathLike[str],
    *,
    device: str | torch.device | None = None,
    describe: Mapping[str, Any] | None = None,
    progress: Progress | None = None,
) -> UniversalRun:
    """Fit one universal perturbation on ``fit_data`` (``universal``), measure it on ``eval_data``, which it never
    saw, and write the job's files into ``out_dir``; return a ``UniversalRun``.

    Args:
        model: a ``PixelModel`` (images in [0, 1] -> logits at input size); its state is not changed.
        fit_data: the data set the perturbation is fitted on (items ``(uint8 image (3, H, W), label)`` with
            ``image_id(i)``), all images of one size.
        eval_data: the held-out data set it is measured on, of the same kind. Unreadable held-out images get a row
            with status "unreadable".
        config: what to do (``UniversalConfig``, eps in 8-bit levels), checked once when it was made.
        out_dir: the job's directory (created). The job holds its lock from the first image to the last file; a
            directory of another kind is refused before any work. There is no resume: a rerun fits again and
            replaces the files the earlier run wrote (only those: an earlier ``examples.png`` this run does not
            draw is removed).
        device: where to run (default: the model's device).
        describe: what to record in ``summary.json`` about the data and model: ``{"fit": {...}, "data": {...},
            "model": {...}}`` (the command line puts its specs here).
        progress: ``progress(done, steps, loss)`` during the fit (see ``universal``).

    Raises:
        UniversalError: a config that is not one, an empty ``out_dir``; ``RunDirError``: a directory in use, not
            writable or of another kind; ``DataError``: images of different sizes; ``InputError``: class ids the
            model does not have, no image to fit on.
    """
    model, out, dev = _prepare(model, config, out_dir, device)
    names = _label_names(config, model)
    about = dict(describe or {})
    with rundir.RunLock(rundir.check_writable_dir(out), "segattack universal"):
        _check_sizes(fit_data, eval_data)
        t0 = time.perf_counter()
        result = universal(
            model, fit_data, eps=config.eps01, target=config.target,
            class_id=config.classes if config.static is None else config.static, steps=config.steps,
            step_size=config.step_size01, omega=config.omega, batch_size=config.batch_size, limit=config.fit_limit,
            progress=progress,
        )  # fmt: skip
        fit_s = time.perf_counter() - t0
        t1 = time.perf_counter()
        measured = _measure(model, eval_data, result, config)
        eval_s = time.perf_counter() - t1
        rows = measured.rows
        stats, counts = _stats(rows)
        summary = _summary(config, result, stats, counts, len(rows), about, str(dev), (fit_s, eval_s))
        written = write_outputs(out, result, rows, summary, measured.examples,
                                hide_text=class_names_text(config.classes, names))  # fmt: skip
    return UniversalRun(out, result, tuple(rows), stats, counts, tuple(written), fit_s, eval_s, names)
