"""``run_patch``: the adversarial-patch job on a directory, which it owns (the lock, the kind check, the
configuration, the manifest, the files): fit one patch on some images, measure it on held-out images it never saw
against a random patch of the same size, optionally in street scenes the generator draws with the patch in them,
and write the job's files. Interrupted at any moment, the same call goes on where it stopped.

Files in ``out_dir``:

- ``config.json``: the configuration (``PatchConfig``'s fields, the rendered scenes, the data's and the model's
  fingerprints); a run on a directory of another configuration is refused, naming the field;
- ``patch_state.pt``: the fit's checkpoint (``PatchState``, every ``checkpoint_every`` steps and at the end): an
  interrupted fit resumes from it and ends with the patch an uninterrupted fit gives, bit for bit;
- ``results.jsonl``: one row per (held-out image, evaluation), appended and fsync'ed batch by batch: ``fitted``
  (the fitted patch) and ``random`` (a uniformly random patch of the same size, seeded by ``seed``), both placed
  as configured (with EOT on, under one fixed EOT draw per image, the same for both) and measured against the
  image's clean prediction (``segattack.patches.evaluate``: ``miou``, ``accuracy``, ``hidden``,
  ``kept``, ``target_hit``, ``class_pixels``, ``patch_pixels``, ``changed_by_distance``), with ``status`` "ok",
  "absent" (no pixel of the class), "no_place" (a region placement found no position) or "unreadable"; and, with
  ``rendered`` scenes, rows ``rendered`` and ``rendered-random`` (below). A finished row is never computed again;
- ``patch.npz`` (the float values, lossless), ``patch.png`` (8-bit, lossless; print size and DPI in its metadata
  when asked for), ``summary.json`` (means and standard deviations over the images, fitted vs random),
  ``examples.png`` and ``report.html``.

Rendered scenes (``rendered=N``): N street scenes of the embedded generator (split "val", seed ``RENDER_SEED``, so
not the scenes of ``synthetic:N``) at the fit images' size, per placement ("building": a poster on a facade,
"billboard": a panel beside the road), drawn three times: without a poster, with the fitted patch as the poster,
and with the random patch as the poster. The poster's place, size and angle depend on the scene alone, so the
three differ only on the poster (and, without one, its frame). A poster changes the scene, so the fitted poster's
effect is measured against the same scene with the random poster, not against the scene without a poster:

- ``rendered``: the prediction with the fitted poster against the prediction with the random poster (``miou``,
  ``accuracy``: agreement; ``hidden``: the share of the class's pixels in the random-poster prediction no longer
  predicted as the class; ``kept``: the share of the other pixels whose class did not change);
- ``rendered-random``: the prediction with the random poster against the prediction without a poster (what
  putting up any poster of that size changes: the baseline's own effect).

Pixels where the two images compared differ (the poster, its frame) never count. Each row holds the poster's
``distance`` (metres), viewing ``angle`` (degrees, 0 head-on), ``visible_fraction`` and ``poster_pixels``.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from .. import rundir
from ..attacks._core import as_model, mix_seed
from ..data.labels import label_names
from ..errors import DataError, ModelTypeError, UnreadableImageError
from ..experiment.config import ids_digest
from ..experiment.reading import image_id_of
from ..models import PixelModel, frozen, model_fingerprint
from ..targets import class_id_tuple
from ..universal.fit import forward, model_dtype_device
from .config import PatchConfig, PatchError
from .evaluate import DISTANCE_EDGES, evaluate
from .export import (
    EXAMPLES_FILE,
    PATCH_FILE,
    PICTURE_FILE,
    STATE_FILE,
    SUMMARY_FILE,
    PrintSize,
    examples_figure,
    load_state,
    print_layout,
    save_patch,
    save_state,
    write_patch_png,
)
from .fit import PatchResult, PatchState, fit, place_batch
from .printability import load_printable_colours
from .rendered import RENDER_PLACEMENTS, RENDER_SEED, RENDERED, scene_rows
from .summary import HELD_OUT, MEASURES, METHOD, hide_names, summarise

__all__ = ["run_patch", "PatchRun", "PatchProgress", "KIND", "CONFIG_KEY", "EVALUATIONS", "MEASURES", "RENDER_SEED",
           "RENDER_PLACEMENTS", "FILES", "METHOD"]  # fmt: skip

log = logging.getLogger(__name__)

KIND = "patch"
#: The key of the job's record in ``config.json``.
CONFIG_KEY = "patch"
CONFIG_FORMAT = 1
#: Every file the job writes (what ``overwrite`` may remove).
FILES = (rundir.CONFIG_FILE, STATE_FILE, rundir.RESULTS_FILE, PATCH_FILE, PICTURE_FILE, SUMMARY_FILE, EXAMPLES_FILE,
         rundir.REPORT_FILE)  # fmt: skip
#: The held-out evaluations and the rendered ones (module docstring).
EVALUATIONS = HELD_OUT + RENDERED
#: Configuration keys that change no row and no patch: a resume may change them.
_FREE = ("examples", "checkpoint_every", "device", "written", "print_size", "dpi")


@dataclass(frozen=True)
class PatchProgress:
    """Reported by ``run_patch``: the ``stage`` ("fit": ``done`` of ``total`` steps, ``loss`` the step's loss;
    "held-out" / "rendered": rows ``done`` of ``total``, ``resumed`` of them found finished)."""

    stage: str
    done: int
    total: int
    loss: float = math.nan
    resumed: int = 0


@dataclass(frozen=True)
class PatchRun:
    """What ``run_patch`` returns: the directory (a path-like), the fitted patch, ``summary.json``'s content, every
    row of ``results.jsonl``, the rows computed by this run and those found finished, the fit's first step in this
    run (0: a fresh fit; ``steps``: it was finished), the files written and the wall times."""

    out_dir: Path
    result: PatchResult
    summary: Mapping[str, Any]
    rows: tuple[Mapping[str, Any], ...]
    computed: int
    resumed: int
    fit_from: int
    written: tuple[str, ...]
    fit_s: float
    eval_s: float

    def __fspath__(self) -> str:
        return os.fspath(self.out_dir)


# -- the directory --------------------------------------------------------------------------------------------------


def _own_config(out: Path) -> dict[str, Any] | None:
    if not (out / rundir.CONFIG_FILE).is_file():
        return None
    config = rundir.read_config(out)
    return config if isinstance(config.get(CONFIG_KEY), dict) else None


def _field_of(diff: Sequence[str]) -> str | None:
    names = {f.name for f in dataclasses.fields(PatchConfig)} | {"rendered"}
    for d in diff:
        key = d.split(":", 1)[0]
        if key in names:
            return key
    return None


def _claim(out: Path, record: Mapping[str, Any], run_info: Mapping[str, Any], overwrite: bool) -> None:
    """Check the directory's kind, remove (``overwrite``) what earlier patch runs wrote and only that, record the
    job's files in the manifest, compare or write ``config.json``."""
    rundir.check_kind(out, KIND)
    if overwrite:
        rundir.clear_experiment_outputs(out)
    old = _own_config(out)
    if old is None and any((out / n).exists() for n in (rundir.RESULTS_FILE, STATE_FILE)):
        raise PatchError(f"{out} holds patch results but no {rundir.CONFIG_FILE}, so they cannot be resumed; "
                         "replace them with --overwrite (overwrite=True) or choose another directory")  # fmt: skip
    if old is not None:
        diff = rundir.config_diff(old[CONFIG_KEY], record, ignore=_FREE)
        if diff:
            shown = "; ".join(diff[:3]) + ("; ..." if len(diff) > 3 else "")
            raise PatchError(f"{out} holds a patch run of a different configuration ({shown}); replace it with "
                             "--overwrite (overwrite=True) or choose another directory",
                             field=_field_of(diff))  # fmt: skip
    rundir.record_outputs(out, FILES, kind=KIND)
    rundir.write_json(out / rundir.CONFIG_FILE, {"format": CONFIG_FORMAT, CONFIG_KEY: dict(record),
                                                 "run": dict(run_info)})  # fmt: skip


# -- rows -----------------------------------------------------------------------------------------------------------


def _key(row: Mapping[str, Any]) -> tuple[str, str, int]:
    return str(row["evaluation"]), str(row.get("placement") or ""), int(row["index"])


def _read_rows(path: Path, n_held: int, n_rendered: int) -> list[dict[str, Any]]:
    """The finished rows of ``results.jsonl``; torn, invalid and duplicate rows are dropped (and the file rewritten
    without them): their work is done again."""

    def valid(row: Any) -> bool:
        ev, idx = row.get("evaluation"), row.get("index")
        if ev not in EVALUATIONS or isinstance(idx, bool) or not isinstance(idx, int) or "status" not in row:
            return False
        if ev in HELD_OUT:
            return 0 <= idx < n_held
        return 0 <= idx < n_rendered and row.get("placement") in RENDER_PLACEMENTS

    rows, raw, dropped = rundir.read_jsonl(path, accept=valid)
    seen: set[tuple[str, str, int]] = set()
    kept_rows, kept_raw = [], []
    for row, line in zip(rows, raw, strict=True):
        if _key(row) in seen:
            dropped = True
            continue
        seen.add(_key(row))
        kept_rows.append(row)
        kept_raw.append(line)
    if dropped:
        rundir.rewrite_jsonl(path, kept_raw)
    return kept_rows


def _nan_row(index: int, image_id: str, evaluation: str, status: str, bins: int) -> dict[str, Any]:
    return {"index": index, "image_id": image_id, "evaluation": evaluation, "status": status, "miou": None,
            "accuracy": None, "hidden": None, "kept": None, "target_hit": None, "class_pixels": None,
            "patch_pixels": None, "box": None, "changed_by_distance": [None] * bins, "time_s": 0.0}  # fmt: skip


# -- the job --------------------------------------------------------------------------------------------------------


class _Job:
    def __init__(self, model: PixelModel, fit_data: Any, data: Any, config: PatchConfig, out: Path, *,
                 rendered: int, describe: Mapping[str, Any], progress: Callable[[PatchProgress], None] | None,
                 dev: torch.device) -> None:  # fmt: skip
        self.model, self.fit_data, self.data, self.config, self.out = model, fit_data, data, config, out
        self.rendered, self.progress, self.dev = rendered, progress, dev
        self.dtype, _ = model_dtype_device(model)
        self.classes = class_id_tuple(config.classes)
        self.n_fit = len(fit_data) if config.fit_limit is None else min(config.fit_limit, len(fit_data))
        self.n_held = len(data) if config.eval_limit is None else min(config.eval_limit, len(data))
        if self.n_fit == 0:
            raise PatchError("the fit data (--fit-data) hold no images")
        if self.n_held == 0:
            raise PatchError("the held-out data (--data) hold no images")
        self.held_ids = [image_id_of(data, i) for i in range(self.n_held)]
        if len(set(self.held_ids)) != len(self.held_ids):
            raise PatchError("the held-out data set's image ids are not unique; result rows could not be told apart")
        self.size = self._fit_size()
        k = model.num_classes
        own = getattr(model, "class_names", None)
        self.names = label_names(k, own if k is None or len(own or ()) == k else None)
        fields = {f.name: getattr(config, f.name) for f in dataclasses.fields(PatchConfig)}
        self.record = {
            **{k_: v for k_, v in fields.items() if k_ not in _FREE},
            "rendered": rendered,
            "fit_images": self.n_fit,
            "fit_ids_sha256": ids_digest(image_id_of(fit_data, i) for i in range(self.n_fit)),
            "held_out_images": self.n_held,
            "held_out_ids_sha256": ids_digest(self.held_ids),
            "image_size": list(self.size),
            "model_sha256": model_fingerprint(model),
            "num_classes": k,
            "label_names": list(self.names),
            **{k_: dict(v) for k_, v in describe.items() if isinstance(v, Mapping)},
        }

    def _fit_size(self) -> tuple[int, int]:
        """The first readable fit image's size; a held-out image of another size is refused before the fit."""
        size = None
        for i in range(self.n_fit):
            try:
                size = tuple(int(v) for v in self.fit_data[i][0].shape[-2:])
                break
            except UnreadableImageError:
                continue
        if size is None:
            raise PatchError(f"none of the {self.n_fit} fit images (--fit-data) can be read")
        for i in range(self.n_held):
            try:
                img = self.data[i][0]
            except UnreadableImageError:
                continue
            if tuple(img.shape[-2:]) != size:
                raise DataError(
                    f"the fit images (--fit-data) are {size[0]}x{size[1]} pixels but the held-out images (--data) "
                    f"{img.shape[-2]}x{img.shape[-1]}; a patch's placement and size are measured on one image size: "
                    f"resize all images (on the command line: --size {size[0]}x{size[1]})"
                )
            break
        return (size[0], size[1])

    def report(self, p: PatchProgress) -> None:
        if self.progress is not None:
            self.progress(p)

    # -- the fit

    def fit(self) -> tuple[PatchResult, int]:
        """The fitted patch (from the checkpoint where it is finished) and the step this run's fit started at."""
        c, path = self.config, self.out / STATE_FILE
        loaded = load_state(path) if path.exists() else None
        if path.exists() and loaded is None:
            log.warning("%s cannot be read; the fit starts over", path)
        state, ids, skipped = loaded if loaded is not None else (None, None, None)
        kwargs = c.fit_kwargs()
        if state is not None and state.step == c.steps and ids is not None and skipped is not None:
            self.report(PatchProgress("fit", c.steps, c.steps, state.loss[-1] if state.loss else math.nan))
            return PatchResult(
                patch=state.patch.to(torch.float32), goal=c.goal, class_ids=self.classes if c.goal == "hide" else (),
                placement=kwargs["placement"], eot=kwargs["eot"], steps=c.steps, lr=c.lr, gamma=c.gamma,
                omega=c.omega, weights=(c.adv_weight, c.tv_weight, c.nps_weight), loss=state.loss, image_ids=ids,
                skipped=skipped, state=state,
            ), c.steps  # fmt: skip
        start = 0 if state is None else state.step

        def checkpoint(s: PatchState) -> None:
            save_state(path, s)

        def progress(done: int, steps: int, loss: float) -> None:
            self.report(PatchProgress("fit", done, steps, loss))

        colours = load_printable_colours(c.colours) if c.colours is not None else None
        result = fit(self.model, self.fit_data, **kwargs, colours=colours, state=state, limit=c.fit_limit,
                     progress=progress, checkpoint=checkpoint, checkpoint_every=c.checkpoint_every)  # fmt: skip
        save_state(path, result.state, image_ids=result.image_ids, skipped=result.skipped)
        return result, start

    # -- held-out images

    def held_out(self, result: PatchResult, random_patch: Tensor, rows: list[dict[str, Any]]) -> int:
        """Every missing held-out row, in fixed batches of ``batch_size`` consecutive images (a resumed run
        computes a batch as an uninterrupted run does); returns the rows written."""
        c = self.config
        have = {_key(r) for r in rows if r["evaluation"] in HELD_OUT}
        total, resumed = 2 * self.n_held, len(have)
        written = 0
        self.report(PatchProgress("held-out", resumed, total, resumed=resumed))
        placement, eot = c.make_placement(), c.make_eot()
        patches = {"fitted": result.patch, "random": random_patch}
        bins = len(DISTANCE_EDGES) - 1
        for start in range(0, self.n_held, c.batch_size):
            idx = range(start, min(start + c.batch_size, self.n_held))
            todo = [(ev, i) for i in idx for ev in HELD_OUT if (ev, "", i) not in have]
            if not todo:
                continue
            t0 = time.perf_counter()
            imgs: dict[int, Tensor] = {}
            new: list[dict[str, Any]] = []
            for i in idx:
                try:
                    img = self.data[i][0]
                except UnreadableImageError as err:
                    log.warning("skipping %s: %s", self.held_ids[i], err)
                    new += [_nan_row(i, self.held_ids[i], ev, "unreadable", bins) for ev in HELD_OUT
                            if (ev, i) in todo]  # fmt: skip
                    continue
                if tuple(img.shape[-2:]) != self.size:
                    raise DataError(f"held-out image {self.held_ids[i]!r} is {img.shape[-2]}x{img.shape[-1]} pixels "
                                    f"but the fit images {self.size[0]}x{self.size[1]}; resize all images (on the "
                                    f"command line: --size {self.size[0]}x{self.size[1]})")  # fmt: skip
                imgs[i] = img.to(torch.float32) / 255 if img.dtype == torch.uint8 else img.to(torch.float32)
            runs = _contiguous(sorted(imgs))
            for ev in HELD_OUT:
                if not any(e == ev for e, _ in todo):
                    continue
                for run in runs:
                    x = torch.stack([imgs[i] for i in run])
                    ev_res = evaluate(self.model, x, patches[ev], placement=placement, class_id=self.classes,
                                      eot=eot, seed=c.seed, batch_size=len(run), first_index=run[0])  # fmt: skip
                    for i, r in zip(run, ev_res.rows(), strict=True):
                        if (ev, i) not in todo:
                            continue
                        status = r.pop("skipped") or ("absent" if not r["class_pixels"] else "ok")
                        new.append({"index": i, **r, "image_id": self.held_ids[i], "evaluation": ev,
                                    "status": status, "time_s": 0.0})  # fmt: skip
            dt = (time.perf_counter() - t0) / max(len(new), 1)
            new.sort(key=lambda r: (r["index"], HELD_OUT.index(r["evaluation"])))
            new = [rundir.json_safe({**r, "time_s": round(dt, 6)}) for r in new]
            rundir.append_jsonl(self.out / rundir.RESULTS_FILE, new)
            rows.extend(new)
            written += len(new)
            have |= {_key(r) for r in new}
            self.report(PatchProgress("held-out", len(have), total, resumed=resumed))
        return written

    # -- rendered scenes

    def rendered_rows(self, result: PatchResult, random_patch: Tensor, rows: list[dict[str, Any]]) -> int:
        """Every missing rendered row (module docstring), one scene at a time; returns the rows written."""
        from ..data.synthetic import SyntheticStreets, render_with_poster

        n = self.rendered
        if n == 0:
            return 0
        have = {_key(r) for r in rows if r["evaluation"] in RENDERED}
        total, resumed = 2 * len(RENDER_PLACEMENTS) * n, len(have)
        self.report(PatchProgress("rendered", resumed, total, resumed=resumed))
        written = 0
        clean_set = SyntheticStreets("val", self.size, n, RENDER_SEED)
        for placement in RENDER_PLACEMENTS:
            if all((ev, placement, i) in have for ev in RENDERED for i in range(n)):
                continue
            fx, _, finfo = render_with_poster(result.patch, n, self.size, seed=RENDER_SEED, split="val",
                                              placement=placement)  # fmt: skip
            rx, _, rinfo = render_with_poster(random_patch, n, self.size, seed=RENDER_SEED, split="val",
                                              placement=placement)  # fmt: skip
            for i in range(n):
                if all((ev, placement, i) in have for ev in RENDERED):
                    continue
                t0 = time.perf_counter()
                new = scene_rows(self.model, clean_set[i][0], rx[i], fx[i], rinfo[i], finfo[i], self.classes,
                                 len(self.names), self.dev, self.dtype)  # fmt: skip
                scene = {"index": i, "image_id": clean_set.image_id(i), "placement": placement}
                new = [{**scene, **r} for r in new]
                dt = round((time.perf_counter() - t0) / 2, 6)
                new = [
                    rundir.json_safe({**r, "time_s": dt}) for r in new if (r["evaluation"], placement, i) not in have
                ]
                rundir.append_jsonl(self.out / rundir.RESULTS_FILE, new)
                rows.extend(new)
                written += len(new)
                have |= {_key(r) for r in new}
                self.report(PatchProgress("rendered", len(have), total, resumed=resumed))
        return written

    # -- examples

    @torch.no_grad()
    def examples(self, result: PatchResult, rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """The held-out images drawn in ``examples.png`` (those with the class first), with the fitted patch placed
        as in their rows."""
        c = self.config
        if c.examples == 0:
            return []
        fitted = sorted((r for r in rows if r["evaluation"] == "fitted"), key=lambda r: r["index"])
        order = [r for r in fitted if r["status"] == "ok"] + [r for r in fitted if r["status"] == "absent"]
        shown = []
        placement, eot = c.make_placement(), c.make_eot()
        for r in order[: c.examples]:
            i = int(r["index"])
            img = self.data[i][0]
            x = (img.to(torch.float32) / 255 if img.dtype == torch.uint8 else img.to(torch.float32))[None]
            x = x.to(self.dev, self.dtype)
            pred = forward(self.model, x, check=True).argmax(1)
            adv, _, _ = place_batch(x, result.patch.to(self.dev, self.dtype), placement, pred=pred.cpu(), eot=eot,
                                    seed=c.seed, step=-1, indices=[i])  # fmt: skip
            shown.append({"image_id": r["image_id"], "adv": adv[0].cpu(), "pred": pred[0].cpu(),
                          "pred_adv": forward(self.model, adv, check=False).argmax(1)[0].cpu(), "row": r})  # fmt: skip
        return shown


def _contiguous(indices: Sequence[int]) -> list[list[int]]:
    """[0, 1, 3, 4] -> [[0, 1], [3, 4]]: runs of consecutive indices (``evaluate``'s draws go by the index)."""
    runs: list[list[int]] = []
    for i in indices:
        if runs and runs[-1][-1] == i - 1:
            runs[-1].append(i)
        else:
            runs.append([i])
    return runs


def random_patch(shape: Sequence[int], seed: int) -> Tensor:
    """The baseline: a uniformly random patch (3, h, w) float32 in [0, 1], seeded by ``seed`` (not the fit's
    starting patch, which ``seed`` draws from another stream)."""
    g = torch.Generator().manual_seed(mix_seed(seed, "random-patch"))
    return torch.rand(tuple(shape), generator=g, dtype=torch.float32)


def _prepare(model: Any, config: Any, out_dir: Any, device: Any, rendered: Any) -> tuple[PixelModel, Path,
                                                                                           torch.device]:  # fmt: skip
    """The arguments' checks, before the directory is touched or an image read."""
    if not isinstance(config, PatchConfig):
        raise PatchError(f"config must be a PatchConfig, got {type(config).__name__}; build one with "
                         "segattack.patches.PatchConfig(size=..., classes=...)")  # fmt: skip
    if not str(out_dir).strip():
        raise PatchError("out_dir is empty; name the directory the job writes into")
    if isinstance(rendered, bool) or not isinstance(rendered, int) or rendered < 0:
        raise PatchError(f"rendered must be a number of scenes, 0 or more, got {rendered!r}", field="rendered")
    model = as_model(model)
    if not isinstance(model, PixelModel):
        raise ModelTypeError(f"run_patch takes a PixelModel (or an nn.Module), got {type(model).__name__}")
    out = Path(out_dir)
    rundir.check_writable_dir(out, create=False)
    if out.is_dir():
        rundir.check_kind(out, KIND)  # before the model runs: a directory of another job is refused at once
    dev = torch.device(device) if device is not None else model.device
    return model.to(dev), out, dev


def run_patch(
    model: Any,
    fit_data: Any,
    data: Any,
    config: PatchConfig,
    out_dir: str | os.PathLike[str],
    *,
    rendered: int = 0,
    print_size: PrintSize | None = None,
    dpi: float | None = None,
    overwrite: bool = False,
    device: str | torch.device | None = None,
    describe: Mapping[str, Any] | None = None,
    progress: Callable[[PatchProgress], None] | None = None,
) -> PatchRun:
    """Fit one adversarial patch on ``fit_data`` (``segattack.patches.fit``), measure it and a random patch of the
    same size on ``data``, which it never saw (``evaluate``), optionally in ``rendered`` generated street scenes,
    and write the job's files into ``out_dir`` (module docstring); return a ``PatchRun``.

    Args:
        model: a ``PixelModel`` (images in [0, 1] -> logits at input size; an ``nn.Module`` is wrapped); its
            state is not changed.
        fit_data: the data set the patch is fitted on (items ``(uint8 image (3, H, W), label)`` with
            ``image_id(i)``), all images of one size. Unreadable images are left out of the fit.
        data: the held-out data set the patch is measured on, of the same kind; unreadable images get rows with
            status "unreadable".
        config: what to do (``PatchConfig``, the learning rate in [0, 1] units), checked once when it was made.
        out_dir: the job's directory (created). The run holds its lock from the first check to the last file; a
            directory of another job, or of another configuration, is refused (``overwrite``: replace what earlier
            patch runs wrote there, and only that). An interrupted run (Ctrl-C, a crash) keeps its fit checkpoint
            and every row it appended; the same call resumes it and recomputes nothing that was finished.
        rendered: scenes per placement drawn with the patch by the embedded generator (module docstring); 0: none.
        print_size: the physical size written into ``patch.png`` (``export.print_layout``); it changes no result
            and may differ on a resume.
        dpi: the resolution written into ``patch.png``, likewise.
        device: where to run (default: the model's device).
        describe: what to record about the data and model: ``{"fit": {...}, "data": {...}, "model": {...}}``
            (the command line puts its specs here); compared on resume like the rest.
        progress: called with a ``PatchProgress`` during the fit and after every batch of rows (it may raise
            KeyboardInterrupt: the checkpoint and the rows written so far are kept).

    Raises:
        PatchError: a config that is not one, an empty ``out_dir``, a different configuration in ``out_dir`` (its
            ``field`` names the first field that differs); ``RunDirError``: a directory in use, not writable or
            another job's; ``DataError``: images of different sizes; ``InputError``: class ids the model does not
            have, no image to fit on, a print size of another aspect ratio than the patch.
    """
    model, out, dev = _prepare(model, config, out_dir, device, rendered)
    about = dict(describe or {})
    from ..report.patch import write_patch_report

    with frozen(model.net):
        job = _Job(model, fit_data, data, config, out, rendered=rendered, describe=about, progress=progress, dev=dev)
        placement = config.make_placement()
        print_layout(placement.box_size(job.size), print_size, dpi)  # refused before the fit
        if placement.kind != "region":
            placement.boxes(job.size)  # a box or corners outside the image: refused before the directory is claimed
        run_info = {"device": str(dev), "examples": config.examples, "checkpoint_every": config.checkpoint_every,
                    "print_size": None if print_size is None else str(print_size), "dpi": dpi,
                    "written": time.strftime("%Y-%m-%dT%H:%M:%S%z")}  # fmt: skip
        with rundir.RunLock(rundir.check_writable_dir(out), "segattack patch"):
            _claim(out, job.record, run_info, overwrite)
            results = out / rundir.RESULTS_FILE
            rows = _read_rows(results, job.n_held, rendered)
            resumed = len(rows)
            t0 = time.perf_counter()
            result, fit_from = job.fit()
            fit_s = time.perf_counter() - t0
            layout = print_layout((int(result.patch.shape[-2]), int(result.patch.shape[-1])), print_size, dpi)
            save_patch(result, out / PATCH_FILE, seed=config.seed)
            write_patch_png(result.patch, out / PICTURE_FILE, layout)
            baseline = random_patch(result.patch.shape, config.seed)
            t1 = time.perf_counter()
            computed = job.held_out(result, baseline, rows)
            computed += job.rendered_rows(result, baseline, rows)
            eval_s = time.perf_counter() - t1
            rows.sort(key=lambda r: (EVALUATIONS.index(r["evaluation"]) // 2, str(r.get("placement") or ""),
                                     int(r["index"]), EVALUATIONS.index(r["evaluation"])))  # fmt: skip
            summary = summarise(job, result, rows, layout, about, (fit_s, eval_s))
            rundir.write_json(out / SUMMARY_FILE, summary)
            written = [rundir.CONFIG_FILE, STATE_FILE, rundir.RESULTS_FILE, PATCH_FILE, PICTURE_FILE, SUMMARY_FILE]
            if config.examples and (computed or fit_from < config.steps or not (out / EXAMPLES_FILE).exists()):
                shown = job.examples(result, rows)
                if shown:
                    examples_figure(shown, result.patch, out / EXAMPLES_FILE, hide_text="/".join(hide_names(job)))
            if config.examples == 0:
                rundir.remove_output(out, EXAMPLES_FILE)  # an earlier run's examples are not this run's
            if (out / EXAMPLES_FILE).exists():
                written.append(EXAMPLES_FILE)
            write_patch_report(out)
            written.append(rundir.REPORT_FILE)
    return PatchRun(out, result, summary, tuple(rows), computed, resumed, fit_from, tuple(written), fit_s, eval_s)
