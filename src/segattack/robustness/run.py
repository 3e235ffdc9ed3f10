"""``run_robustness``: one robustness evaluation of a model on a data set with ground truth, on a directory it owns
(the lock, the configuration, resume), written through ``segattack.rundir``.

Every attack is untargeted against the ground truth (pixels labelled 255 left out) and resolved through the attack
registry when the configuration is made, so a plug-in attack (``sea``, ``square``, ``alma_prox``) serves as soon as
it is registered. Files in ``out_dir``:

- ``config.json``: the configuration (``RobustnessConfig.record``: the protocol's evaluations with their attacks,
  options and budgets), the model, data and surrogate (fingerprints), the image ids; compared on resume;
- ``results.jsonl``: one row per (image, evaluation, eps), appended and fsync'ed after every attack call: ``index``,
  ``image_id``, ``evaluation``, ``eps`` (8-bit levels; 0 for the clean row), ``status`` (``ok``, ``unreadable``),
  ``confusion`` (the image's confusion matrix as its non-zero ``[truth, prediction, count]`` triples),
  ``accuracy`` (its pixel accuracy, null without a counted pixel), ``linf`` (the perturbation's L-inf norm, 8-bit
  levels, measured), ``forward``/``backward`` (the passes of the attack call through the network that crafted the
  image, counted by hooks, this row's share), ``time_s`` (its share of the call's wall time);
- ``robustness.json``: every figure (``summary.summarize_robustness``), and ``report.html`` (the page).

A finished row is never computed again: a resumed run attacks only the (image, evaluation) pairs with missing
rows, in the same batches as an uninterrupted run would, and each row depends only on its image, the evaluation
and the seed. Budgets: 8-bit levels in the configuration and the rows, [0, 1] units for the attacks.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from .. import rundir
from ..attacks import mix_seed
from ..attacks._core import as_model
from ..data.labels import IGNORE_INDEX, is_void, label_names
from ..errors import ConfigError, DataError, ModelTypeError, RunDirError, UnreadableImageError
from ..experiment.config import ids_digest, number
from ..experiment.reading import image_id_of
from ..metrics import confusion_matrix, perturbation_norms, pixel_accuracy, sparse_confusion
from ..models import PixelModel, first_pass, frozen, model_fingerprint
from ..rundir import CONFIG_FILE, REPORT_FILE, RESULTS_FILE
from .checks import noise_images
from .config import Planned, RobustnessConfig, RobustnessError
from .protocol import CLEAN, NOISE

__all__ = ["run_robustness", "RobustnessRun", "RobustnessProgress", "KIND", "ROBUSTNESS_FILE", "CONFIG_KEY",
           "row_problem", "read_robustness_rows"]  # fmt: skip

log = logging.getLogger(__name__)

#: The kind of directory this job writes (``segattack.rundir``'s kinds list it once the layout knows it).
KIND = "robustness"
ROBUSTNESS_FILE = "robustness.json"
#: The key of the job's record in ``config.json``.
CONFIG_KEY = "robustness"
#: Every file the job writes (what ``overwrite`` may remove).
FILES = (CONFIG_FILE, RESULTS_FILE, ROBUSTNESS_FILE, REPORT_FILE)
STATUSES = ("ok", "unreadable")
CONFIG_FORMAT = 1
#: Configuration keys that change no row: a resume may change them.
_FREE = ("batch_size", "device", "written")
#: What giving a surrogate to a run that had none changes: the transfer evaluation runs (every other row is kept). A
#: surrogate changed or taken away is refused like any other change (its rows would be wrong, or dropped).
_SURROGATE = ("surrogate", "surrogate_sha256", "skipped", "run_notes")


@dataclass(frozen=True)
class RobustnessProgress:
    """Reported at the start and after every attack call: rows ``done`` of ``total`` (``resumed`` of them found
    finished), and the call just finished (its ``evaluation``, its budgets in 8-bit levels, its image count)."""

    done: int
    total: int
    resumed: int
    evaluation: str | None = None
    eps: tuple[float, ...] = ()
    images: int = 0


@dataclass(frozen=True)
class RobustnessRun:
    """What ``run_robustness`` returns: the directory (a path-like), ``robustness.json``'s content, the rows
    computed by this run and those found finished, and the wall time of the attacks."""

    out_dir: Path
    summary: Mapping[str, Any]
    computed: int
    resumed: int
    attack_s: float

    def __fspath__(self) -> str:
        return os.fspath(self.out_dir)


# -- passes ---------------------------------------------------------------------------------------------------------


@dataclass
class _Passes:
    """Forward and backward passes through a network, in images: a forward hook adds the batch of every call, and a
    gradient hook on its output adds it again when a backward pass goes through that output."""

    forward: int = 0
    backward: int = 0
    handles: list[Any] = field(default_factory=list)

    @contextlib.contextmanager
    def counting(self, model: Any) -> Iterator[_Passes]:
        net = getattr(model, "net", model)
        if not isinstance(net, nn.Module):
            yield self
            return

        def hook(_: nn.Module, inputs: tuple[Any, ...], output: Any) -> None:
            b = int(inputs[0].shape[0]) if inputs and isinstance(inputs[0], Tensor) and inputs[0].ndim else 1
            self.forward += b
            if isinstance(output, Tensor) and output.requires_grad:
                output.register_hook(lambda g: self._add_backward(b))

        handle = net.register_forward_hook(hook)
        try:
            yield self
        finally:
            handle.remove()

    def _add_backward(self, b: int) -> None:
        self.backward += b


# -- rows -----------------------------------------------------------------------------------------------------------


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def row_problem(
    row: Any, plan: Mapping[str, set[float]], num_classes: int, *, images: int, ids: Sequence[str] | None = None
) -> str | None:
    """Why ``row`` is not a row of this run (``plan``: evaluation name -> its budgets in levels, the clean one
    included; ``images``: the run's image count; ``ids``: their ids, where known), None for a valid one."""
    if not isinstance(row, dict):
        return "not a JSON object"
    index = row.get("index")
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < images:
        return "with an index outside the data set"
    if not isinstance(row.get("image_id"), str) or (ids is not None and row["image_id"] != ids[index]):
        return "with an image id that is not the data set's"
    name = row.get("evaluation")
    if not isinstance(name, str) or name not in plan:
        return "of an evaluation outside the configuration"
    if not _is_number(row.get("eps")) or float(row["eps"]) not in plan[name]:
        return "at an eps outside the configuration"
    status = row.get("status")
    if status not in STATUSES:
        return "with an unknown status"
    if status == "unreadable":
        return None if name == CLEAN else "unreadable but not a clean row"
    cm = row.get("confusion")
    if not isinstance(cm, list) or not all(
        isinstance(t, list) and len(t) == 3 and all(isinstance(v, int) and not isinstance(v, bool) for v in t)
        and 0 <= t[0] < num_classes and 0 <= t[1] < num_classes and t[2] > 0 for t in cm
    ):  # fmt: skip
        return "with a confusion matrix that is not [truth, prediction, count] triples"
    if row.get("accuracy") is not None and not _is_number(row["accuracy"]):
        return "with accuracy not a number"
    for key in ("linf", "forward", "backward", "time_s"):
        if not _is_number(row.get(key)) or row[key] < 0:
            return f"with {key} not a number >= 0"
    return None


def read_robustness_rows(
    path: Path, plan: Mapping[str, set[float]], num_classes: int, *, images: int, ids: Sequence[str] | None = None
) -> tuple[list[dict[str, Any]], list[bytes], bool]:
    """The valid rows of ``results.jsonl`` (``row_problem``; the first of two with one key), their raw lines, and
    whether any line was dropped (each reason logged once with its count)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return [], [], False
    torn, lines = rundir.jsonl_lines(data)
    rows: list[dict[str, Any]] = []
    raw: list[bytes] = []
    dropped: dict[str, int] = {}
    seen: set[tuple[int, str, float]] = set()
    for _, line, row in lines:
        problem = row_problem(row, plan, num_classes, images=images, ids=ids) if row is not None else "not JSON"
        if problem is None:
            key = (int(row["index"]), str(row["evaluation"]), float(row["eps"]))
            problem = "duplicate" if key in seen else None
            seen.add(key)
        if problem is not None:
            dropped[problem] = dropped.get(problem, 0) + 1
            continue
        rows.append(row)
        raw.append(line)
    if torn:
        dropped["incomplete last line"] = 1
    if dropped:
        log.warning("%s: dropped %s; their work is done again", path,
                    ", ".join(f"{n} {reason}" for reason, n in dropped.items()))  # fmt: skip
    return rows, raw, bool(dropped)


# -- the job --------------------------------------------------------------------------------------------------------


def _dtype(model: Any) -> torch.dtype:
    net = getattr(model, "net", model)
    if isinstance(net, nn.Module):
        for t in (*net.parameters(), *net.buffers()):
            if t.is_floating_point():
                return t.dtype
    return torch.float32


def _as_pixel_model(model: Any, what: str) -> PixelModel:
    model = as_model(model)
    if not isinstance(model, PixelModel):
        raise ModelTypeError(f"run_robustness takes a PixelModel (or an nn.Module) as {what}, got "
                             f"{type(model).__name__}")  # fmt: skip
    return model


def _check_directory(out: Path) -> bool:
    """Refuse (before any work) a directory another job wrote, or files of the job's names that no robustness run
    wrote; return whether earlier robustness runs wrote there."""
    if KIND in rundir.KINDS:
        rundir.check_kind(out, KIND)
        return _own_config(out) is not None
    found = rundir.directory_kind(out)  # the layout does not know this kind yet: recognise the job's files by name
    if found is not None:
        raise RunDirError(f"{out} holds the output of `{rundir.KINDS[found]}`, and `segattack robustness` would "
                          "replace its files; choose another --out")  # fmt: skip
    mine = _own_config(out) is not None
    theirs = [n for n in FILES if (out / n).exists()]
    if theirs and not mine:
        raise RunDirError(f"{out} holds {' and '.join(theirs)} that `segattack robustness` did not write and would "
                          "replace; move them away or choose another --out")  # fmt: skip
    return mine


def _claim(out: Path, overwrite: bool) -> None:
    """``_check_directory``, then with ``overwrite`` remove what earlier robustness runs wrote there, and only that;
    the manifest records the job's files where the layout knows the kind."""
    mine = _check_directory(out)
    if KIND in rundir.KINDS:
        if overwrite:
            rundir.clear_experiment_outputs(out)
        rundir.record_outputs(out, FILES, kind=KIND)
    elif overwrite and mine:
        for n in FILES:
            (out / n).unlink(missing_ok=True)


def _own_config(out: Path) -> dict[str, Any] | None:
    """The job's record in ``out/config.json``; None where there is none (or it is another job's)."""
    if not (out / CONFIG_FILE).is_file():
        return None
    config = rundir.read_config(out)
    record = config.get(CONFIG_KEY)
    return config if isinstance(record, dict) else None


class _Job:
    """One run: the checks before anything is written (``__init__``), the directory (``start``), the attacks
    (``attack``) and the summary (``finish``)."""

    def __init__(
        self, model: Any, dataset: Any, config: RobustnessConfig, out: Path, surrogate: Any, device: Any,
        describe: Mapping[str, Any], progress: Callable[[RobustnessProgress], None] | None,
    ) -> None:  # fmt: skip
        if not isinstance(config, RobustnessConfig):
            raise RobustnessError(f"config must be a RobustnessConfig, got {type(config).__name__}; build one with "
                                  "segattack.robustness.RobustnessConfig(eps=..., protocol=...)")  # fmt: skip
        if not getattr(dataset, "has_labels", True):
            raise RobustnessError(
                "this data set has no ground truth; robustness is measured against it (give a data set with labels, "
                "e.g. folder:PATH with --labels DIR, or cityscapes:PATH)"
            )
        self.config, self.dataset, self.out, self.progress = config, dataset, out, progress
        self.n = len(dataset) if config.limit is None else min(config.limit, len(dataset))
        if self.n == 0:
            raise RobustnessError("the data set holds no images")
        self.model = _as_pixel_model(model, "the model")
        self.dev = torch.device(device) if device is not None else self.model.device
        self.model = self.model.to(self.dev)
        self.surrogate = None if surrogate is None else _as_pixel_model(surrogate, "the surrogate").to(self.dev)
        self.dtype = _dtype(self.model)
        self.ids = [image_id_of(dataset, i) for i in range(self.n)]
        if len(set(self.ids)) != len(self.ids):
            raise RobustnessError("the data set's image ids are not unique; result rows could not be told apart")
        self.k = self._probe()
        names = label_names(self.k, getattr(self.model, "class_names", None)
                            if len(getattr(self.model, "class_names", None) or ()) == self.k else None)  # fmt: skip
        self.names = names
        self.void = [i for i, name in enumerate(names) if is_void(name)]
        skipped = [] if self.surrogate is not None else [p.name for p in config.plan if p.on_surrogate]
        self.plan = [p for p in config.plan if p.name not in skipped]
        run_notes = [f"{name} skipped: no surrogate model (--transfer-from)" for name in skipped]
        self.keys = {CLEAN: {0.0}, **{p.name: set(p.eps) for p in self.plan}}
        self.record = {
            **config.record(),
            "skipped": skipped,
            "run_notes": run_notes,
            "images": self.n,
            "image_ids_sha256": ids_digest(self.ids),
            "model_sha256": model_fingerprint(self.model),
            "surrogate_sha256": None if self.surrogate is None else model_fingerprint(self.surrogate),
            "num_classes": self.k,
            "label_names": list(names),
            "void_classes": self.void,
            "ignore_index": IGNORE_INDEX,
            **dict(describe),
        }

    def _probe(self) -> int:
        """The model's classes, from one pass on the first readable image (the surrogate's must agree): a model
        that fails is refused before anything is written."""
        for i in range(self.n):
            try:
                image, _ = self.dataset[i]
            except UnreadableImageError:
                continue
            x = torch.as_tensor(image)[None].to(self.dev, self.dtype) / 255
            k = int(first_pass(self.model, x, on=f"image {self.ids[i]}").shape[1])
            if self.surrogate is not None:
                ks = int(first_pass(self.surrogate, x.to(_dtype(self.surrogate)), on=f"image {self.ids[i]}",
                                    name="the surrogate model").shape[1])  # fmt: skip
                if ks != k:
                    raise RobustnessError(f"the surrogate model predicts {ks} classes and the model {k}; a transfer "
                                          "attack needs the same label space", field="surrogate")  # fmt: skip
            return k
        raise RobustnessError(f"none of the {self.n} images can be read")

    def start(self, overwrite: bool) -> list[dict[str, Any]]:
        """Claim the directory, compare or write ``config.json``, read the finished rows (invalid ones removed)."""
        out = self.out
        _claim(out, overwrite)
        old = _own_config(out)
        path = out / RESULTS_FILE
        if old is None and path.exists():
            raise RobustnessError(
                f"{out} holds {RESULTS_FILE} but no {CONFIG_FILE}, so its rows cannot be resumed; replace them with "
                "--overwrite (overwrite=True) or choose another directory"
            )
        if old is not None:
            ignore = list(_FREE)
            if old[CONFIG_KEY].get("surrogate_sha256") is None:  # a surrogate added later: its transfer rows are new
                ignore += list(_SURROGATE)
            diff = rundir.config_diff(old[CONFIG_KEY], self.record, ignore=ignore)
            if diff:
                shown = "; ".join(diff[:3]) + ("; ..." if len(diff) > 3 else "")
                raise RobustnessError(f"{out} holds results of a different configuration ({shown}); replace them "
                                      "with --overwrite (overwrite=True) or choose another directory")  # fmt: skip
        rundir.write_json(out / CONFIG_FILE, {
            "format": CONFIG_FORMAT, CONFIG_KEY: self.record,
            "run": {"batch_size": self.config.batch_size, "device": str(self.dev),
                    "written": time.strftime("%Y-%m-%dT%H:%M:%S%z")},
        })  # fmt: skip
        rows, raw, dropped = read_robustness_rows(path, self.keys, self.k, images=self.n, ids=self.ids)
        if dropped:
            rundir.rewrite_jsonl(path, raw)
        return rows

    def missing(self, rows: Sequence[Mapping[str, Any]]) -> dict[int, dict[str, set[float]]]:
        """Per image, the budgets each evaluation still lacks (none for an unreadable image)."""
        have: dict[int, dict[str, set[float]]] = {}
        unreadable = set()
        for r in rows:
            have.setdefault(int(r["index"]), {}).setdefault(str(r["evaluation"]), set()).add(float(r["eps"]))
            if r["status"] == "unreadable":
                unreadable.add(int(r["index"]))
        out: dict[int, dict[str, set[float]]] = {}
        for i in range(self.n):
            if i in unreadable:
                continue
            got = have.get(i, {})
            lack = {name: eps - got.get(name, set()) for name, eps in self.keys.items()}
            lack = {name: e for name, e in lack.items() if e}
            if lack:
                out[i] = lack
        return out

    def attack(self, rows: Sequence[Mapping[str, Any]]) -> int:
        """Every missing row, batch by batch (``batch_size`` consecutive images among those with missing rows);
        returns the rows written."""
        todo = self.missing(rows)
        total = self.n + sum(len(p.eps) for p in self.plan) * self.n
        resumed = len(rows)
        state = {"done": resumed, "written": 0}
        left = sorted(todo)
        bs = self.config.batch_size
        self._report(RobustnessProgress(resumed, total, resumed))
        cuda = [self.dev.index or 0] if self.dev.type == "cuda" else []
        with torch.random.fork_rng(devices=cuda), frozen(self.model.net), (
            frozen(self.surrogate.net) if self.surrogate is not None else contextlib.nullcontext()
        ):  # fmt: skip
            torch.manual_seed(self.config.seed)  # attacks taken as values that draw from the global RNG
            for s in range(0, len(left), bs):
                self._batch({i: todo[i] for i in left[s : s + bs]}, state, total, resumed)
        return state["written"]

    def _report(self, p: RobustnessProgress) -> None:
        if self.progress is not None:
            self.progress(p)

    def _batch(self, todo: Mapping[int, Mapping[str, set[float]]], state: dict[str, int], total: int,
               resumed: int) -> None:  # fmt: skip
        groups: dict[tuple[int, ...], list[tuple[int, Tensor, Tensor]]] = {}
        results = self.out / RESULTS_FILE
        for i in todo:
            try:
                image, label = self.dataset[i]
            except UnreadableImageError as err:
                log.warning("skipping %s: %s", self.ids[i], err)
                rundir.append_jsonl(results, [{"index": i, "image_id": self.ids[i], "evaluation": CLEAN, "eps": 0,
                                               "status": "unreadable", "error": str(err)[:300]}])  # fmt: skip
                state["done"] += 1 + sum(len(p.eps) for p in self.plan)
                state["written"] += 1
                continue
            image = torch.as_tensor(image)
            truth = torch.as_tensor(label).to(torch.int64)
            if truth.shape != image.shape[-2:]:
                raise DataError(f"image {self.ids[i]} is {tuple(image.shape[-2:])} but its labels are "
                                f"{tuple(truth.shape)}; labels must have the image's size")  # fmt: skip
            groups.setdefault(tuple(image.shape), []).append((i, image, truth))
        for items in groups.values():  # images of one size attacked together
            idx = [i for i, _, _ in items]
            x = torch.stack([im for _, im, _ in items]).to(self.dev, self.dtype) / 255
            truth = torch.stack([t for _, _, t in items]).to(self.dev)
            for name in [CLEAN, *(p.name for p in self.plan)]:
                need = [j for j, i in enumerate(idx) if name in todo[i]]
                if not need:
                    continue
                # images lacking the same budgets go together (a resume after a dropped row may split a batch)
                by_eps: dict[tuple[float, ...], list[int]] = {}
                for j in need:
                    by_eps.setdefault(tuple(sorted(todo[idx[j]][name])), []).append(j)
                for want, js in by_eps.items():
                    rows = self._rows(name, [idx[j] for j in js], x[js], truth[js], list(want))
                    rundir.append_jsonl(self.out / RESULTS_FILE, rows)
                    state["done"] += len(rows)
                    state["written"] += len(rows)
                    self._report(RobustnessProgress(state["done"], total, resumed, name, tuple(want), len(js)))

    def _rows(self, name: str, idx: list[int], x: Tensor, truth: Tensor, eps: list[float]) -> list[dict[str, Any]]:
        """The rows of one evaluation on images ``x`` (B, C, H, W) in [0, 1] at the budgets ``eps`` (levels)."""
        ids = [self.ids[i] for i in idx]
        seeds = [mix_seed(self.config.seed, "robustness", image_id, name) for image_id in ids]
        passes = _Passes()
        t0 = time.perf_counter()
        if name == CLEAN:
            advs = x[None]
        else:
            p = self._planned(name)
            if p.kind == NOISE:
                advs = torch.stack([torch.cat([noise_images(x[j : j + 1], eps=e / 255, seed=seeds[j])
                                               for j in range(len(idx))]) for e in eps])  # fmt: skip
            else:
                assert p.spec is not None
                crafter = self.surrogate if p.on_surrogate else self.model
                assert crafter is not None
                with passes.counting(crafter):
                    advs = _sweep(p, crafter, x.to(_dtype(crafter)), truth, eps, seeds).to(self.dtype)
        seconds = time.perf_counter() - t0
        share = 1 / (len(idx) * len(eps if name != CLEAN else [0]))
        rows = []
        for k, e in enumerate(eps if name != CLEAN else [0.0]):
            adv = advs[k]
            pred = self.model.predict(adv)
            linf = perturbation_norms(adv, x)["linf"].tolist()
            for j, i in enumerate(idx):
                cm = confusion_matrix(pred[j], truth[j], num_classes=self.k, ignore_index=IGNORE_INDEX)
                acc = pixel_accuracy(cm)
                rows.append({
                    "index": i, "image_id": self.ids[i], "evaluation": name, "eps": number(e), "status": "ok",
                    "confusion": sparse_confusion(cm), "accuracy": acc if math.isfinite(acc) else None,
                    "linf": round(float(linf[j]), 6), "forward": passes.forward * share,
                    "backward": passes.backward * share, "time_s": round(seconds * share, 6),
                })  # fmt: skip
        return rows

    def _planned(self, name: str) -> Planned:
        for p in self.plan:
            if p.name == name:
                return p
        raise RobustnessError(f"no evaluation {name!r} in this run")


def _sweep(p: Planned, model: PixelModel, x: Tensor, truth: Tensor, eps: list[float], seeds: list[int]) -> Tensor:
    """The attack of ``p`` on ``x`` at ``eps`` (levels): (K, B, C, H, W), untargeted against ``truth``."""
    from ..attacks import registry

    spec = p.spec
    assert spec is not None
    try:
        return registry.sweep_checked(spec.entry, spec.options, model, x, truth, eps=[e / 255 for e in eps],
                                      targeted=False, ignore_index=IGNORE_INDEX, seed=seeds)  # fmt: skip
    except ConfigError as err:
        raise RobustnessError(f"evaluation {p.name}: {err}") from None


def run_robustness(
    model: Any,
    dataset: Any,
    config: RobustnessConfig,
    out_dir: str | os.PathLike[str],
    *,
    surrogate: Any = None,
    device: str | torch.device | None = None,
    overwrite: bool = False,
    describe: Mapping[str, Any] | None = None,
    progress: Callable[[RobustnessProgress], None] | None = None,
) -> RobustnessRun:
    """Evaluate the robustness of ``model`` on ``dataset`` as ``config`` says, into ``out_dir``; return a
    ``RobustnessRun`` (its summary is ``robustness.json``'s content).

    Args:
        model: a ``PixelModel`` (images in [0, 1] -> logits at input size; an ``nn.Module`` is wrapped), left as
            it was (eval mode and no parameter gradients during the run, the caller's flags restored).
        dataset: items ``(uint8 image (3, H, W), labels (H, W))`` with ground truth (255 = ignore) and
            ``image_id(i)``; unreadable images get one row and are left out of every figure.
        config: what to do (``RobustnessConfig``; budgets in 8-bit levels), checked once when it was made.
        out_dir: the job's directory (created). The run holds its lock from the first check to the last file; a
            directory of another job, or of another configuration, is refused (``overwrite``: replace what earlier
            robustness runs wrote there, and only that). An interrupted run (Ctrl-C, a crash) keeps every row it
            appended; the same call resumes it.
        surrogate: the model the transfer attack is crafted on (None: the transfer evaluation is skipped with a
            note); it must predict the same classes.
        device: where to run (default: the model's device).
        describe: what to record about the model and data in ``config.json`` (the command line puts its specs
            here); compared on resume like the rest.
        progress: called with a ``RobustnessProgress`` at the start and after every attack call (it may raise
            KeyboardInterrupt: the rows written so far are kept).

    Raises:
        RobustnessError: a configuration that is not one, a data set without ground truth or images, a different
            configuration in ``out_dir``; ``RunDirError``: a directory in use, not writable or another job's.
    """
    from ..report.robustness import write_robustness_report
    from .summary import write_robustness_json

    if not str(out_dir).strip():
        raise RobustnessError("out_dir is empty; name the directory the job writes into")
    out = Path(out_dir)
    rundir.check_writable_dir(out, create=False)
    if out.is_dir():
        _check_directory(out)  # before the model runs: a directory of another job is refused at once
    job = _Job(model, dataset, config, out, surrogate, device, describe or {}, progress)
    t0 = time.perf_counter()
    with rundir.RunLock(rundir.check_writable_dir(out), "segattack robustness"):
        rows = job.start(overwrite)
        written = job.attack(rows)
        attack_s = time.perf_counter() - t0
        summary = write_robustness_json(out)
        write_robustness_report(out)
    return RobustnessRun(out, summary, written, len(rows), attack_s)
