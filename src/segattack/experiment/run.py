"""``run_experiment``: one run of the experiment on a directory, which it owns (the lock, the distributed session,
``config.json``, resume), with its batches through ``loop.BatchRunner`` and Figure 1 once the results are known."""

from __future__ import annotations

import contextlib
import logging
import math
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .. import distributed, rundir
from ..models import frozen, model_fingerprint
from ..pipeline import HideGoal, UntargetedGoal
from ..report import write_report
from ..rundir import DEFAULT_ATTACK, RESULTS_FILE, RunLock
from .config import (
    ExperimentConfig,
    ExperimentError,
    RunOptions,
    check_config_file,
    ids_digest,
    number,
    resolve_label_names,
    sweep_record,
    write_config_file,
)
from .figure1 import figure1_eps, pick_figure1, remove_figure1
from .loop import BatchRunner, RowKey, prepare_results
from .reading import Batch, check_memory, default_read_workers, image_id_of, probe_model, read_batches

__all__ = ["run_experiment", "RunResult", "Progress"]

log = logging.getLogger(__name__)


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


@dataclass(frozen=True)
class RunResult:
    """What ``run_experiment`` returns: the directory (a path-like: ``Path(result)`` works), the wall time of the
    run before its report (checks, attacks, Figure 1), and with ``RunOptions(report=True)`` the report process 0
    wrote (None on the other processes)."""

    out_dir: Path
    attack_s: float
    report: Any = None

    def __fspath__(self) -> str:
        return os.fspath(self.out_dir)


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


def run_experiment(
    model: Any,
    dataset: Any,
    config: ExperimentConfig,
    out_dir: str | os.PathLike[str],
    *,
    device: str | torch.device | None = None,
    overwrite: bool = False,
    describe: Mapping[str, Any] | None = None,
    progress: Callable[[Progress], None] | None = None,
    options: RunOptions | None = None,
) -> RunResult:
    """Run the experiment ``config`` (``ExperimentConfig``: goal, classes, eps in levels, attacks, modes, ...) over
    ``dataset`` into ``out_dir``; return a ``RunResult`` (its ``out_dir`` and timings).

    Args:
        model: a ``PixelModel`` (images in [0, 1] -> logits at input size).
        dataset: items ``(uint8 image (3, H, W), label)`` with ``image_id(i)`` (the ``segattack.data`` contract).
        config: what to do, checked once when it was made.
        out_dir: the run directory (created; the package docstring lists its files). The run holds its lock from
            the first check to the last file; a directory of another kind or of another configuration is refused
            (``overwrite``: replace what earlier runs there wrote, and only that).
        device: where to run (default: the model's device). Under ``torchrun`` every process takes its own.
        describe: extra configuration to record and compare (the command line puts its data and model specs here).
        progress: called with a ``Progress`` at the start and after every image (it may raise KeyboardInterrupt;
            finished rows are kept; Figure 1 is then left for the next complete run).
        options: how it runs (``RunOptions``: memory check, pipelining, reading processes, the report).

    Raises:
        ExperimentError: a model whose classes do not fit, Figure 1 ids the data set does not have, or a different
            configuration in ``out_dir`` (without ``overwrite``); ``RunDirError``: a directory in use or of another
            kind; ``ResourceError``: a run the device cannot hold.
    """
    if not isinstance(config, ExperimentConfig):
        raise ExperimentError(f"config must be an ExperimentConfig, got {type(config).__name__}; build one with "
                              "segattack.experiment.ExperimentConfig(eps=..., classes=...)")  # fmt: skip
    opts = options if options is not None else RunOptions()
    out = Path(out_dir)
    if not str(out_dir).strip():
        raise ExperimentError("out_dir is empty; name the directory the run writes into")
    n = len(dataset) if config.limit is None else min(config.limit, len(dataset))
    if n == 0:
        raise ExperimentError("the data set holds no images")
    dev = torch.device(device) if device is not None else getattr(model, "device", torch.device("cpu"))
    t0 = time.perf_counter()
    with distributed.session(dev) as w:  # torchrun: one process per device, the images shared among them
        dev = distributed.local_device(dev, w)
        error: Exception | None = None
        run: _Run | None = None
        try:  # every process checks its own device (memory) and model; an error on any stops all of them
            model = model.to(dev)
            run = _Run(model, dataset, config, out, n, dev, w, describe or {}, progress, opts)
        except Exception as err:
            error = err
        w.agree(error)
        assert run is not None
        report = None
        with contextlib.ExitStack() as stack:
            # rank 0 alone checks and writes config.json, prepares results.jsonl and holds the directory's lock
            done: dict[int, set[str]] | None = None
            kept_rows: list[dict[str, Any]] = []
            if w.main:
                try:
                    stack.enter_context(RunLock(rundir.check_writable_dir(out), "segattack run"))
                    done, kept_rows = run.start(overwrite)
                except Exception as err:
                    error = err
            w.agree(error)
            run.attack(w.broadcast(done), kept_rows)
            w.barrier()  # every image's rows are in results.jsonl
            if w.main:
                run.finish()
            attack_s = time.perf_counter() - t0
            if w.main:
                if opts.report:
                    report = write_report(out)
    return RunResult(out, attack_s, report)


class _Run:
    """One run of the experiment on ``out``: made by every process (its checks before anything is written),
    ``start`` (configuration, resume; rank 0), ``attack`` (this process's share of the images not done), ``finish``
    (Figure 1; rank 0, once every process is done)."""

    def __init__(
        self, model: Any, dataset: Any, config: ExperimentConfig, out: Path, n: int, dev: torch.device,
        world: distributed.World, describe: Mapping[str, Any], progress: Callable[[Progress], None] | None,
        options: RunOptions,
    ) -> None:  # fmt: skip
        self.config, self.dataset, self.out, self.n, self.dev, self.world = config, dataset, out, n, dev, world
        self.progress = progress if world.main else None
        self.ids = ids = [image_id_of(dataset, i) for i in range(n)]
        if len(set(ids)) != len(ids):
            raise ExperimentError("the data set's image ids are not unique; result rows could not be told apart")
        if not isinstance(config.figure1, int):
            known = set(ids)
            unknown = [i for i in config.figure1 if i not in known]
            if unknown:
                shown = ", ".join(sorted(ids)[:3]) + (", ..." if len(ids) > 3 else "")
                raise ExperimentError(f"figure1 names images the data set does not have: {unknown[:5]}; its ids: "
                                      f"{shown}")  # fmt: skip
        if options.check_memory:
            check_memory(model, dataset, n, ids, dev, batch_size=config.batch_size, n_eps=len(config.eps),
                         n_modes=len(config.modes or ()))  # fmt: skip
        num_classes = probe_model(model, dataset, n, config.classes, ids, dev)
        names = resolve_label_names(config.label_names, model, num_classes)
        self.experiment = self._record(model, dataset, describe, num_classes, names)
        self.overlap = dev.type == "cuda" if options.overlap is None else bool(options.overlap)
        self.read_workers = default_read_workers(dev) if options.read_workers is None else options.read_workers
        self.fig_eps = figure1_eps(config.eps)
        self.lead_mode = "full" if "full" in (config.modes or ()) else (config.modes or ("full",))[0]
        self.runner = BatchRunner(model, dev, config, out, num_classes, self.experiment["reference"], names,
                                  gt_instances=bool(self.experiment["gt_instances"]))  # fmt: skip

    def _record(
        self, model: Any, dataset: Any, describe: Mapping[str, Any], num_classes: int, names: Sequence[str]
    ) -> dict[str, Any]:
        """The experiment as ``config.json`` records it and a resume compares it."""
        c = self.config
        untargeted = isinstance(c.goal_obj, UntargetedGoal)
        reference = ("truth" if getattr(dataset, "has_labels", True) else "prediction") if untargeted else None
        return {
            "goal": c.goal,
            "class_ids": list(c.classes),
            "class_names": [names[k] for k in c.classes],
            "eps_levels": [number(e) for e in c.eps],
            "attacks": [a.describe() for a in c.attacks],
            "passes": {a.name: [a.passes(e) for e in c.eps01] for a in c.attacks},
            "sweeps": {a.name: sweep_record(a, c.eps) for a in c.attacks},
            "reference": reference,
            "modes": list(c.modes or ()),
            "images": self.n,
            "limit": c.limit,
            "image_ids_sha256": ids_digest(self.ids),
            "model_sha256": model_fingerprint(model),
            "figure1_eps": number(figure1_eps(c.eps)),
            "instance_threshold": c.instance_threshold,
            "survive": [t.name for t in c.survive],
            "gt_instances": bool(getattr(dataset, "has_instances", False)),
            **dict(describe),
            "num_classes": num_classes,
            "label_names": list(names),
        }

    def _keys(self, attacks: Iterable[str]) -> dict[str, set[RowKey]]:
        """The row keys a complete (image, attack) group has, for each of ``attacks`` (by name)."""
        ts = ["", *(t.name for t in self.config.survive)]
        modes = self.config.modes or ()
        return {a: {(float(e), m, a, t) for e in self.config.eps for m in modes for t in ts} for a in attacks}

    def start(self, overwrite: bool) -> tuple[dict[int, set[str]], list[dict[str, Any]]]:
        """Check and write the configuration, prepare results.jsonl: the attacks done per image, the rows kept
        (those of attacks this run does not run included: finished work is never deleted)."""
        out, c = self.out, self.config
        reusable, earlier = check_config_file(out, self.experiment, overwrite, seed=c.seed)
        names = [a.name for a in c.attacks]
        rundir.record_outputs(out, rundir.run_files(self.ids, attacks=names, eps_levels=list(c.eps),
                                                    modes=c.modes or (), save_images=c.save_images),
                              kind="run")  # fmt: skip
        done, kept = prepare_results(out / RESULTS_FILE, self.ids, self._keys([*reusable, *earlier]))
        still = {str(r["attack"]) for r in kept} & set(earlier)
        if still:
            self.experiment["kept_attacks"] = [earlier[a] for a in sorted(still)]
            log.info("rows of %s from earlier runs kept (not run now)", ", ".join(sorted(still)))
        write_config_file(out, self.experiment, {
            "batch_size": c.batch_size, "device": str(self.dev), "processes": self.world.size,
            "save_images": c.save_images, "figure1": c.figure1 if isinstance(c.figure1, int) else list(c.figure1),
            "seed": c.seed,
        })  # fmt: skip
        return done, [r for r in kept if str(r["attack"]) in names]

    def attack(self, done: Mapping[int, set[str]], kept_rows: Sequence[Mapping[str, Any]]) -> None:
        """Attack this process's share of the images not done: the batches of the images left (``batch_size``
        consecutive ones each), dealt out to the processes in turn (all of them in a single process), appending
        each image's rows as it is finished."""
        n, ids, w, c = self.n, self.ids, self.world, self.config
        names = [a.name for a in c.attacks]
        missing = {i: [a for a in names if a not in done.get(i, set())] for i in range(n)}
        left = [i for i in range(n) if missing[i]]
        resumed = n - len(left)
        batches = [left[s : s + c.batch_size] for s in range(0, len(left), c.batch_size)]
        mine = batches[w.rank :: w.size]
        total = resumed + sum(len(b) for b in mine)  # rank 0's progress: the images done before and its share
        log.info("%d images (%d done before), eps %s levels, modes %s", n, resumed, self.experiment["eps_levels"],
                 "+".join(c.modes or ()))  # fmt: skip
        if w.many:
            log.info("process %d of %d: %d of the %d images left", w.rank, w.size, total - resumed, len(left))
        for a in c.attacks:
            log.info("%s", a.plan_note(c.eps01))
        keys = ("fooled", "preserved") if isinstance(c.goal_obj, HideGoal) else ("accuracy",)
        means = _RunningMeans(c.attacks[0].name, self.fig_eps, self.lead_mode, keys)
        means.add(kept_rows)
        count = resumed
        progress = self.progress

        def report(image_id: str | None = None, status: str | None = None, rows: Sequence[dict[str, Any]] = ()) -> None:
            if progress is not None:
                progress(Progress(count, total, resumed, image_id, status, tuple(rows), number(self.fig_eps),
                                  means.means(), len(means.images)))  # fmt: skip

        report()
        results = self.out / RESULTS_FILE
        append = distributed.append_rows if w.many else rundir.append_jsonl

        def emit(todo: Mapping[int, list[str]], per_image: Mapping[int, list[dict[str, Any]]]) -> None:
            nonlocal count
            for i in todo:
                append(results, per_image[i])  # image by image: a crash loses at most the batches in flight
            for i in todo:
                count += 1
                means.add(per_image[i])
                report(ids[i], str(per_image[i][0]["status"]), per_image[i])

        todos = [{i: missing[i] for i in batch} for batch in mine]
        runner = self.runner
        net = getattr(runner.model, "net", runner.model)
        still = frozen(net) if isinstance(net, torch.nn.Module) else contextlib.nullcontext()
        cuda = [self.dev.index or 0] if self.dev.type == "cuda" else []
        reads = read_batches(self.dataset, todos, ids, assemble=runner.assemble, workers=self.read_workers,
                             with_instances=runner.gt_instances)  # fmt: skip
        # frozen for the whole run (eval mode, no parameter gradients; restored at the end): every pass would
        # freeze it anyway, and the pipelined run's two threads then find nothing to set or restore. The global
        # RNG is seeded for attacks taken as values that draw from it; the built-in ones draw per image.
        with torch.random.fork_rng(devices=cuda), still, contextlib.closing(reads):  # type: ignore[type-var]
            torch.manual_seed(c.seed)
            if self.overlap and len(todos) > 1:
                self._pipelined(todos, reads, emit)
            else:
                for todo, batch in zip(todos, reads, strict=True):
                    runner.attack(batch, ids)
                    emit(todo, runner.measure(batch))

    def _pipelined(
        self,
        todos: Sequence[Mapping[int, list[str]]],
        reads: Iterator[Batch],
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

            def read_and_prepare() -> Batch:  # on the reader thread: reading, prediction, targets, instances
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
        c = self.config
        if not isinstance(c.goal_obj, HideGoal):
            remove_figure1(self.out, keep=set())
            return
        cuda = [self.dev.index or 0] if self.dev.type == "cuda" else []
        with torch.random.fork_rng(devices=cuda):
            torch.manual_seed(c.seed)
            n = self.n
            rows = [
                r for r in rundir.parse_results(self.out / RESULTS_FILE)[0]
                if 0 <= int(r["index"]) < n and not r.get("transform")
            ]  # fmt: skip
            picks = pick_figure1(
                c.figure1, rows, self.ids, attack=c.attacks[0].name, eps=self.fig_eps, mode=self.lead_mode,
                class_names=self.experiment["class_names"], pixels=lambda i: self.runner.pixels_of(self.dataset, i),
            )  # fmt: skip
            rundir.record_outputs(self.out, [rundir.figure1_path("", p.image_id).name for p in picks], kind="run")
            self.runner.figure1.update(self.dataset, picks)
