"""What the experiment commands share: model/data options, eps and class parsing, the progress bar, and the run."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..errors import SegattackError, UserError

log = logging.getLogger("segattack.cli")

#: The demo's budgets in 8-bit levels: 1..20 as in the paper's Figure 2, with 10 (the paper's Figure 1).
DEFAULT_EPS: tuple[int, ...] = tuple(range(1, 21))
DEFAULT_DATA = "synthetic"
RESTRICT_MODES: dict[str, tuple[str, ...]] = {
    "posthoc": ("full", "posthoc"),
    "during": ("full", "during"),
    "both": ("full", "posthoc", "during"),
    "none": ("full",),
}

EPS_HELP = "L-inf budgets in 8-bit levels, comma-separated (10 means 10/255); the paper's step of 1 level and n = min(eps+4, 1.25 eps) iterations"  # noqa: E501


def parse_eps(text: str | Sequence[float]) -> list[int | float]:
    """``"1,2,4,10"`` -> [1, 2, 4, 10] (8-bit levels); UserError for anything but positive numbers."""
    items = [s.strip() for s in text.split(",")] if isinstance(text, str) else [str(v) for v in text]
    out: list[int | float] = []
    for item in items:
        if not item:
            continue
        try:
            value = float(item)
        except ValueError:
            raise UserError(
                f"eps must be positive numbers of 8-bit levels, e.g. --eps 1,2,4,10; got {item!r}"
            ) from None
        if not value > 0 or value != value or value == float("inf"):
            raise UserError(f"eps must be positive (8-bit levels, e.g. --eps 10), got {item}")
        if value > 255:
            raise UserError(f"eps={item} levels exceeds the 8-bit range 0..255")
        number: int | float = int(value) if value.is_integer() else value
        if number not in out:
            out.append(number)
    if not out:
        raise UserError("no eps given; e.g. --eps 1,2,4,10 (8-bit levels)")
    return sorted(out)


def parse_classes(text: str) -> tuple[int, ...]:
    from ..data.labels import class_ids

    try:
        return class_ids(text)
    except ValueError as err:
        raise UserError(str(err)) from None


def _floats3(text: str, name: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise UserError(f"--{name} takes comma-separated numbers in [0, 1] units, e.g. 0.485,0.456,0.406") from None
    if not values:
        raise UserError(f"--{name} is empty")
    return values


def add_attack_args(g: Any, *, several: bool = True) -> None:
    """``--attack`` and ``--attack-opt`` (and, for experiments, the goal) on an argument group."""
    g.add_argument(
        "--attack",
        default="illm",
        metavar="NAME[,NAME]" if several else "NAME",
        help="registered attack(s): apgd, cospgd, dag, illm (the paper's), pgd, segpgd, worst_case, or one you "
        "registered with segattack.attacks.register"
        + (" (comma-separated: one set of results each)" if several else "")
        + " (default: illm)",
    )
    g.add_argument(
        "--attack-opt",
        action="append",
        default=[],
        metavar="NAME.KEY=VALUE",
        help="an option of one attack, e.g. segpgd.steps=50, apgd.loss=masked-ce, pgd.restarts=3, "
        "worst_case.attacks=apgd:ce+apgd:js; step_size in 8-bit levels like eps (repeatable)",
    )


def parse_attacks(names: str, opts: Sequence[str], *, single: bool = False) -> list[Any]:
    """``--attack``/``--attack-opt`` -> ``AttackSpec``s; UserError (one line) for unknown attacks and options."""
    from ..attacks import registry
    from ..pipeline import AttackSpec

    wanted = [n.strip() for n in names.split(",") if n.strip()]
    if not wanted:
        raise UserError(f"--attack names no attack; available: {', '.join(registry.available())}")
    if single and len(wanted) > 1:
        raise UserError(f"this command takes one attack, got {names!r}; `segattack run` compares several")
    for n in wanted:
        if n not in registry.available():
            raise UserError(f"unknown attack {n!r}; available: {', '.join(registry.available())}")
    if len(set(wanted)) != len(wanted):
        raise UserError(f"--attack lists an attack twice: {names!r}")
    options: dict[str, dict[str, Any]] = {n: {} for n in wanted}
    for item in opts:
        head, eq, text = item.partition("=")
        name, dot, key = head.strip().partition(".")
        if not eq or not dot or not name or not key:
            raise UserError(f"--attack-opt takes NAME.KEY=VALUE, e.g. segpgd.steps=50; got {item!r}")
        if name not in options:
            raise UserError(f"--attack-opt {item!r} names attack {name!r}, which --attack does not run ({names})")
        try:
            value = registry.parse_option(name, key, text)
        except ValueError as err:
            raise UserError(str(err)) from None
        if key == "step_size":
            if not 0 < value <= 255:
                raise UserError(f"--attack-opt {name}.step_size is in 8-bit levels (1 = 1/255), got {text}")
            value = value / 255
        options[name][key] = value
    try:
        return [AttackSpec(n, options[n]) for n in wanted]
    except (TypeError, ValueError) as err:
        raise UserError(str(err)) from None


def add_model_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model")
    g.add_argument(
        "--model",
        metavar="SPEC",
        default=None,
        help="zoo:NAME (a shipped model, or zoo:PATH/NAME.json), or module.path:callable returning a torch.nn.Module "
        "(the current directory is importable); default: the shipped default model",
    )
    g.add_argument("--weights", metavar="FILE", help="state dict for a module:callable model (.safetensors, .pt, .pth)")
    g.add_argument(
        "--mean", metavar="R,G,B", help="normalisation mean in [0, 1] units for module:callable (default: ImageNet's)"
    )
    g.add_argument(
        "--std", metavar="R,G,B", help="normalisation std in [0, 1] units for module:callable (default: ImageNet's)"
    )
    g.add_argument(
        "--num-classes",
        type=int,
        metavar="K",
        default=None,
        help="output classes the model must have (default: 19, the Cityscapes train ids; zoo models: their card)",
    )
    g.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default: cpu)")


def parse_device(text: str, option: str = "--device") -> str:
    """``cpu``, ``cuda``, ``cuda:N`` (or ``mps`` where present) checked against this machine; UserError otherwise.

    >>> parse_device("cpu")
    'cpu'
    """
    import torch

    try:
        dev = torch.device(text)
    except (RuntimeError, ValueError):
        raise UserError(f"{option} {text!r} is not a device; use cpu, cuda or cuda:N") from None
    if dev.type == "cpu":
        return str(dev)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise UserError(f"{option} {text}: CUDA is not available here; use {option} cpu")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise UserError(f"{option} {text}: this machine has {torch.cuda.device_count()} CUDA device(s)")
        return str(dev)
    if dev.type == "mps" and torch.backends.mps.is_available():
        return str(dev)
    raise UserError(f"{option} {text}: segattack runs on cpu or cuda[:N] (a {dev.type} device cannot run the attack)")


def check_out_dir(path: str) -> None:
    """An output directory that can be written (nothing is created yet); one-line error otherwise."""
    from ..rundir import check_writable_dir

    check_writable_dir(path, create=False)


def build_model(args: argparse.Namespace) -> tuple[Any, dict[str, Any]]:
    """The model the options name, and its description for the run's configuration."""
    from ..specs import default_model_name, load_model, parse_model_spec

    args.device = parse_device(args.device)
    try:
        spec = args.model or f"zoo:{default_model_name()}"
        ms = parse_model_spec(spec)
        num_classes = args.num_classes if args.num_classes is not None or ms.kind == "zoo" else 19
        model = load_model(
            ms,
            weights=args.weights,
            mean=_floats3(args.mean, "mean") if args.mean else None,
            std=_floats3(args.std, "std") if args.std else None,
            num_classes=num_classes,
            device=args.device,
        )
    except SegattackError:
        raise
    except ValueError as err:  # PixelModel's checks on mean/std/num_classes
        raise UserError(f"--model {args.model or 'default'}: {err}") from None
    describe = {
        "model": str(ms),
        "weights": str(Path(args.weights).resolve()) if args.weights else None,
        "num_classes": model.num_classes,
    }
    return model, describe


def add_data_args(p: argparse.ArgumentParser, *, default: str = DEFAULT_DATA) -> None:
    g = p.add_argument_group("data")
    g.add_argument(
        "--data",
        metavar="SPEC",
        default=default,
        help="synthetic[:N] (embedded street scenes, validation split, N images, default 20), cityscapes:PATH[:SPLIT] "
        f"(official layout, split val by default) or folder:PATH (any images); default: {default}",
    )
    g.add_argument(
        "--size",
        metavar="HxW",
        default=None,
        help="resize images to H x W pixels (default: synthetic 256x512, files as they are)",
    )
    g.add_argument(
        "--labels",
        metavar="DIR",
        default=None,
        help="with folder:PATH, a folder of ground-truth PNGs (Cityscapes train ids, 255 = ignore) named like the "
        "images; only `eval` uses ground truth, attacks take their targets from the prediction",
    )


def build_data(spec: str, size_text: str | None, labels: str | None = None) -> tuple[Any, dict[str, Any]]:
    from ..specs import load_data, parse_data_spec, parse_size

    ds = parse_data_spec(spec)
    size = parse_size(size_text)
    data = load_data(ds, size=size, labels=labels)
    shown = str(ds)
    if ds.path is not None:
        shown = shown.replace(ds.path, str(Path(ds.path).expanduser().resolve()), 1)
    describe: dict[str, Any] = {"data": shown, "size": list(size) if size else None}
    if labels is not None:
        describe["labels"] = str(Path(labels).expanduser().resolve())
    return data, describe


class ProgressBar:
    """A tqdm bar over images with ETA on a terminal; on anything else, a log line per image (with --verbose)."""

    def __init__(self, desc: str, header: str = "") -> None:
        self.desc = desc
        self.header = header
        self.bar: Any = None
        self.skipped: dict[str, int] = {}

    def __call__(self, p: Any) -> None:
        if self.bar is None:  # the start: the configuration has been accepted
            from tqdm import tqdm

            if self.header:
                print(self.header, file=sys.stderr, flush=True)

            self.bar = tqdm(
                total=p.total,
                initial=p.done,
                desc=self.desc,
                unit="img",
                disable=not sys.stderr.isatty(),
            )
            if p.resumed:
                self.bar.write(f"resuming: {p.resumed} of {p.total} images already done", file=sys.stderr)
            return
        self.bar.update(p.done - self.bar.n)
        if p.status and p.status != "ok":
            self.skipped[p.status] = self.skipped.get(p.status, 0) + 1
            self.bar.set_postfix_str(", ".join(f"{n} {k.replace('_', ' ')}" for k, n in self.skipped.items()))
        log.info("image %d/%d %s: %s", p.done, p.total, p.image_id, p.status)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def format_duration(seconds: float) -> str:
    """``83.2`` -> ``"1 min 23 s"``."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    m, s = divmod(int(round(seconds)), 60)
    return f"{m} min {s:02d} s" if m < 60 else f"{m // 60} h {m % 60:02d} min"


def run_and_report(
    *,
    model: Any,
    data: Any,
    describe: dict[str, Any],
    class_ids: tuple[int, ...],
    eps: list[int | float],
    modes: tuple[str, ...],
    attacks: Sequence[Any] = (),
    goal: str = "hide",
    out: str,
    batch_size: int,
    limit: int | None,
    save_images: bool,
    figure1: int,
    overwrite: bool,
    device: str,
    check_memory: bool = True,
    echo: Callable[[str], None] = print,
) -> list[str]:
    """Run the experiment with a progress bar, redraw the report, print where things are; return the sentences."""
    from ..attacks import registry
    from ..data.labels import CLASS_NAMES
    from ..experiment import run_experiment
    from ..pipeline import AttackSpec
    from ..report import write_report

    if batch_size < 1:
        raise UserError(f"--batch-size must be at least 1, got {batch_size}")
    if limit is not None and limit < 1:
        raise UserError(f"--limit must be at least 1, got {limit}")
    if figure1 < 0:
        raise UserError(f"--figure1 must be 0 or more, got {figure1}")
    n = len(data) if limit is None else min(limit, len(data))
    specs = list(attacks) or [AttackSpec("illm")]
    names = ", ".join(CLASS_NAMES[c] if c < len(CLASS_NAMES) else str(c) for c in class_ids)
    sweeps = 1 + ("during" in modes)
    what = f"hiding {names}" if goal == "hide" else "untargeted attacks"
    lines = [f"{what} in {n} images of {describe['data']} with {describe['model']} on {device}"]
    lines.append(f"eps {','.join(map(str, eps))} (8-bit levels), modes {'+'.join(modes)}")
    for spec in specs:
        p = registry.plan(spec.name, eps, **spec.options)
        lines.append(f"  {p.note}" + (f", x{sweeps} (restricted during the attack)" if sweeps > 1 else ""))
    header = "\n".join(lines)
    bar = ProgressBar("attacking", header)
    t0 = time.perf_counter()
    try:
        run_experiment(
            model,
            data,
            class_ids=class_ids if goal == "hide" else None,
            eps_levels=eps,
            attacks=specs,
            goal=goal,
            modes=modes,
            out_dir=out,
            batch_size=batch_size,
            limit=limit,
            save_images=save_images,
            device=device,
            figure1_ids=figure1,
            overwrite=overwrite,
            check_memory=check_memory,
            describe=describe,
            progress=bar,
        )
    finally:
        bar.close()
    attack_s = time.perf_counter() - t0
    report = write_report(out)
    total = time.perf_counter() - t0
    counts = report.summary[0] if report.summary else {}
    skipped = {k: counts.get(k, 0) for k in ("absent", "all_hidden", "unreadable") if counts.get(k, 0)}
    note = (" (" + ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in skipped.items()) + ")") if skipped else ""
    held = f"contain {names}" if goal == "hide" else "attacked"
    print(
        f"done in {format_duration(total)} (attack {format_duration(attack_s)}); {counts.get('ok', 0)} of {n} images "
        f"{held}{note}",
        file=sys.stderr,
    )
    rel = os.path.relpath(out)
    shown = rel if not rel.startswith("..") else out
    figure = "figure2.png" if goal == "hide" else "attacks.png"
    print(f"results: {shown}/  report.html  summary.csv  {figure}  results.jsonl", file=sys.stderr)
    for line in report.sentences:
        echo(line)
    return report.sentences
