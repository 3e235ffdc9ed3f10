"""``segattack compare``: the paper's experiment for several models on the same images, and the transfer matrix."""

from __future__ import annotations

import argparse
import math
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

from ..errors import ConfigError, UserError
from ..rundir import check_kind
from ._common import (
    RESTRICT_MODES,
    add_attack_args,
    add_data_args,
    add_eps_arg,
    add_fast_path_args,
    add_hide_arg,
    build_config,
    build_data,
    build_model,
    check_class_text,
    check_model_args,
    check_out_dir,
    class_text,
    format_duration,
    model_label_names,
    parse_attacks,
    parse_classes,
    parse_device,
    parse_eps,
)
from .progress import RunProgress

_LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "compare",
        help="run the experiment for several models on the same images and measure how their adversarial "
        "examples transfer; resumable; writes a comparison report",
        description="For every model of --models: the experiment of Fischer et al. (2017) (as `segattack run`) into "
        "DIR/models/<name>/ and its clean mIoU on the same images; then the transfer matrix: the adversarial images "
        "crafted on each model at --transfer-eps (whole image) predicted by every model, hidden and kept measured "
        "against that model's own clean prediction (the diagonal is white-box). Writes compare.png/.svg, "
        "transfer.png, transfer.csv, transfer.jsonl, clean.json and report.html into --out. Run the same command "
        "again to resume. eps is in 8-bit levels: --eps 10 means 10/255.",
    )
    add_data_args(p)
    g = p.add_argument_group("models")
    g.add_argument(
        "--models",
        required=True,
        metavar="[NAME=]SPEC,...",
        help="two or more models, comma-separated: zoo:NAME, zoo:PATH/NAME.json, hf:ID_OR_DIR or "
        "module.path:callable, each optionally named NAME=SPEC (default name: the model's file or zoo name); all "
        "must predict the same classes",
    )
    g.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default: cpu)")
    add_fast_path_args(g)
    a = p.add_argument_group("attack")
    add_attack_args(a, several=False)
    add_hide_arg(a)
    add_eps_arg(a)
    a.add_argument(
        "--transfer-eps",
        default=None,
        metavar="E",
        help="the budget of the transfer matrix in 8-bit levels, one of --eps (default: 10, or the --eps nearest 10)",
    )
    a.add_argument(
        "--restrict",
        choices=tuple(RESTRICT_MODES),
        default="posthoc",
        help="besides the whole image, restrict the perturbation to the class pixels afterwards (posthoc, the "
        "paper's), during the optimisation (during), both, or none (default: posthoc); the transfer matrix uses "
        "the whole image",
    )
    o = p.add_argument_group("run")
    o.add_argument("--out", required=True, metavar="DIR", help="output directory (resumed if it holds this comparison)")
    o.add_argument("--batch-size", type=int, default=4, metavar="N", help="images attacked at once (default: 4)")
    o.add_argument("--limit", type=int, default=None, metavar="N", help="only the first N images (default: all)")
    o.add_argument("--seed", type=int, default=0, help="seed of torch's generators for the run (default: 0)")
    o.add_argument(
        "--figure1", type=int, default=0, metavar="N",
        help="draw the paper's Figure 1 for N representative images in each model's report (default: 0)",
    )  # fmt: skip
    o.add_argument(
        "--overwrite", action="store_true", help="replace a comparison of a different configuration in --out (and "
        "the models' experiments there)",
    )  # fmt: skip
    o.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")
    p.set_defaults(func=run)


def default_name(spec: str) -> str:
    """The name a model goes by when ``--models`` gives none: ``zoo:NAME`` -> NAME, ``zoo:DIR/NAME.json`` -> NAME,
    ``hf:ORG/NAME`` or ``hf:DIR`` -> its last part, ``module:callable`` -> callable.

    >>> default_name("zoo:runs/a/export/deeplab-w4.json"), default_name("hf:nvidia/segformer-b0"), default_name("m:f")
    ('deeplab-w4', 'segformer-b0', 'f')
    """
    head, _, tail = spec.strip().partition(":")
    if head in ("zoo", "hf"):
        name = Path(tail.rstrip("/")).name
        return name[: -len(".json")] if head == "zoo" and name.endswith(".json") else name
    return tail.rsplit(".", 1)[-1]


def parse_models(text: str) -> list[tuple[str, str]]:
    """``--models`` -> [(name, spec)]; UserError for fewer than 2, a spec given twice, or two models of one name.

    >>> parse_models("zoo:a,b=zoo:x/a.json")
    [('a', 'zoo:a'), ('b', 'zoo:x/a.json')]
    """
    items = [s.strip() for s in text.split(",") if s.strip()]
    out: list[tuple[str, str]] = []
    for item in items:
        head, eq, rest = item.partition("=")
        if eq and _LABEL.match(head.strip()) and ":" not in head:
            name, spec = head.strip(), rest.strip()
            if not spec:
                raise UserError(f"--models {item!r} names no model after '='; e.g. --models a=zoo:NAME,b=zoo:OTHER")
        else:
            name, spec = default_name(item), item
        out.append((name, spec))
    if len(out) < 2:
        raise UserError(
            f"--models needs at least 2 models to compare, got {len(out)} ({text!r}); e.g. --models zoo:A,zoo:B "
            "(`segattack run` measures one model)"
        )
    specs = [s for _, s in out]
    for s in specs:
        if specs.count(s) > 1:
            raise UserError(f"--models lists {s} twice; give each model once")
    names = [n for n, _ in out]
    for n in names:
        if names.count(n) > 1:
            clash = [s for m, s in out if m == n]
            raise UserError(
                f"--models: {' and '.join(clash)} are both named {n!r}; name them, e.g. --models "
                f"{n}-1={clash[0]},{n}-2={clash[1]}"
            )
    return out


def parse_transfer_eps(text: str | None, eps: list[int | float]) -> int | float:
    """``--transfer-eps``: one of ``eps`` (8-bit levels), checked by the library's ``transfer_budget`` before any
    model loads; without it the budget nearest 10."""
    from ..experiment.compare import transfer_budget
    from ..experiment.config import number

    value: float | None = None
    if text is not None:
        try:
            value = float(text)
        except ValueError:
            raise UserError(
                f"--transfer-eps takes a number of 8-bit levels, e.g. --transfer-eps 10; got {text!r}"
            ) from None
    try:
        return number(transfer_budget(eps, value))
    except ConfigError as err:
        raise UserError(f"--transfer-eps: {err}") from None


def _model_namespace(spec: str, device: str, fast: argparse.Namespace | None = None) -> argparse.Namespace:
    """The options ``build_model`` reads, for one model of ``--models`` (no per-model weights or normalisation;
    the fast-path options of ``fast`` apply to every model)."""
    return argparse.Namespace(
        model=spec, weights=None, mean=None, std=None, bgr=False, num_classes=None, class_names=None, device=device,
        amp=getattr(fast, "amp", None), channels_last=getattr(fast, "channels_last", False),
        compile=getattr(fast, "compile", False),
    )  # fmt: skip


class _Bars:
    """Progress on standard error: a ``RunProgress`` per model's experiment, then a bar (on a terminal) or a line
    per model for the transfer."""

    def __init__(self) -> None:
        self.bar: Any = None
        self.tqdm: Any = None
        self.key: tuple[str, str | None] | None = None

    def __call__(self, p: Any) -> None:
        key = (p.stage, p.model)
        if key != self.key:
            self.close()
            self.key = key
            if p.stage == "experiment":
                self.bar = RunProgress(f"{p.model}", f"experiment of {p.model}")
            elif p.stage == "transfer":
                from tqdm import tqdm

                if sys.stderr.isatty():
                    self.tqdm = tqdm(total=p.total, initial=p.done, desc=f"transfer from {p.model}", unit="img",
                                     dynamic_ncols=True)  # fmt: skip
                else:
                    print(f"transfer: attacking on {p.model} ({p.done} of {p.total} images done before), predicting "
                          "with every model", file=sys.stderr)  # fmt: skip
            elif p.stage == "clean":
                print(f"clean mIoU of {p.model}", file=sys.stderr)
        if p.stage == "experiment" and self.bar is not None and p.experiment is not None:
            self.bar(p.experiment)
        elif p.stage == "transfer" and self.tqdm is not None:
            self.tqdm.update(p.done - self.tqdm.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        if self.tqdm is not None:
            self.tqdm.close()
            self.tqdm = None


def _table(result: Any, cls: str) -> list[str]:
    """The short table printed at the end: per model clean mIoU, hidden and kept; then the transfer matrix."""
    rep = result.report
    eps = result.transfer_eps
    width = max(12, *(len(m) for m in result.models))
    lines = [f"{'model':<{width}}  clean mIoU  hidden@{eps:g}  kept@{eps:g}"]
    for m in result.models:
        cell = rep.matrix[(m, m)]
        miou = result.clean_miou.get(m)
        f, k = cell["fooled_mean"], cell["preserved_mean"]
        lines.append(
            f"{m:<{width}}  {'n/a' if miou is None else f'{100 * miou:.1f}%':>10}  "
            f"{'–' if math.isnan(f) else f'{100 * f:.1f}%':>{8 + len(f'{eps:g}')}}  "
            f"{'–' if math.isnan(k) else f'{100 * k:.1f}%':>{6 + len(f'{eps:g}')}}"
        )
    lines.append("")
    lines.append(f"transfer at eps {eps:g}, % of {cls} pixels hidden (rows: crafted on, columns: predicted by)")
    col = max(8, *(len(m) for m in result.models))
    lines.append(" " * width + "".join(f"  {m:>{col}}" for m in result.models))
    for a in result.models:
        cells = []
        for b in result.models:
            v = rep.matrix[(a, b)]["fooled_mean"]
            cells.append(f"  {'–' if math.isnan(v) else f'{100 * v:.1f}':>{col}}")
        lines.append(f"{a:<{width}}" + "".join(cells))
    return lines


def run(args: argparse.Namespace) -> int:
    from ..experiment.compare import compare_models

    check_class_text(args.hide)
    pairs = parse_models(args.models)
    eps = parse_eps(args.eps)
    teps = parse_transfer_eps(args.transfer_eps, eps)
    check_out_dir(args.out)
    check_kind(args.out, "compare")  # before any model is loaded: never a run's or a universal's directory
    device = parse_device(args.device)
    namespaces = {name: _model_namespace(s, device, args) for name, s in pairs}
    for ns in namespaces.values():
        check_model_args(ns)  # every spec's form, before any data or model is loaded
    data, describe = build_data(args.data, args.size, args.labels)
    models: dict[str, Any] = {}
    model_describe: dict[str, dict[str, Any]] = {}
    for name, ns in namespaces.items():
        models[name], model_describe[name] = build_model(ns)
    counts = {name: m.num_classes for name, m in models.items()}
    if len(set(counts.values())) > 1:
        listed = ", ".join(f"{n} ({s}) {counts[n]}" for n, s in pairs)
        raise UserError(f"--models predict different numbers of classes: {listed}; compare models with one label space")
    hidden = {name: parse_classes(args.hide, model_label_names(m)) for name, m in models.items()}
    if len(set(hidden.values())) > 1:
        listed = ", ".join(f"{n} {list(v)}" for n, v in hidden.items())
        raise UserError(
            f"--hide {args.hide} names different class ids in the models' class names ({listed}); hide by id"
        )
    class_ids = next(iter(hidden.values()))
    first = next(iter(models.values()))
    config = build_config(
        eps=eps, classes=class_ids, attacks=parse_attacks(args.attack, args.attack_opt, single=True),
        modes=RESTRICT_MODES[args.restrict], figure1=args.figure1, limit=args.limit, batch_size=args.batch_size,
        seed=args.seed,
    )  # fmt: skip
    spec = config.attacks[0]
    names = class_text(class_ids, model_label_names(first))
    n = len(data) if args.limit is None else min(args.limit, len(data))
    print(
        f"comparing {len(models)} models ({', '.join(models)}) hiding {names} in {n} images of {describe['data']} on "
        f"{device}; eps {','.join(map(str, eps))} (8-bit levels), transfer at {teps:g}, attack {spec.name}",
        file=sys.stderr,
    )
    bars = _Bars() if args.progress else None
    t0 = time.perf_counter()
    try:
        result = compare_models(
            models, data, config, args.out, transfer_eps=teps, device=device, overwrite=args.overwrite,
            describe=describe, model_describe=model_describe, progress=bars,
        )  # fmt: skip
    finally:
        if bars is not None:
            bars.close()
    rel = os.path.relpath(args.out)
    shown = rel if not rel.startswith("..") else args.out
    print(f"done in {format_duration(time.perf_counter() - t0)}", file=sys.stderr)
    print(f"results: {shown}/  report.html  compare.png  transfer.png  transfer.csv  models/", file=sys.stderr)
    for line in _table(result, names.replace(", ", "/")):
        print(line)
    return 0
