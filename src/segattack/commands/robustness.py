"""``segattack robustness``: one robustness evaluation of a model (clean and robust mIoU and accuracy per eps, the
worst case, the minimal-eps curve, black-box and transfer numbers, sanity checks), resumable, into ``--out``.

eps is in 8-bit levels (``--eps 2,4,8`` means 2/255, 4/255, 8/255), like every eps on the command line.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from ..errors import SegattackError, UserError
from ._common import (
    add_data_args,
    add_eps_arg,
    add_model_args,
    build_data,
    build_model,
    build_named,
    check_model_args,
    check_out_dir,
    format_duration,
    parse_eps,
)

DEFAULT_DATA = "synthetic:20"
DEFAULT_EPS = "2,4,8"
#: The command-line option of each ``RobustnessConfig`` field, to name it in a refusal.
OPTIONS = {"eps": "--eps", "protocol": "--protocol", "attacks": "--attack", "seed": "--seed", "limit": "--limit",
           "batch_size": "--batch-size", "surrogate": "--transfer-from"}  # fmt: skip
PROTOCOL_HELP = (
    "sea: the reference (the attack sea once per loss masked-balanced-ce, masked-ce, js at 300 iterations; square with "
    "1000 queries; alma_prox; transfer; the checks); quick: a first look (APGD with masked-ce and js at 50 "
    "iterations, fewer queries); custom: the attacks of --attack (default: %(default)s)"
)


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "robustness",
        help="clean and robust mIoU/accuracy per eps under a protocol of attacks, the worst case, sanity checks "
        "(eps in 8-bit levels; resumable)",
        description="Evaluate a model's robustness against the ground truth (255 = ignore): clean mIoU and "
        "accuracy, then under every attack of --protocol at every --eps (8-bit levels), the worst case over the "
        "attacks (per image for accuracy, SEA's greedy data-set-level choice for mIoU), the minimal-eps curve, the "
        "black-box and transfer numbers, and sanity checks (PASS/FAIL with their numbers). Writes config.json, "
        "results.jsonl (one row per image, evaluation and eps), robustness.json and report.html into --out; the same "
        "command resumes an interrupted run.",
    )
    add_model_args(p)
    add_data_args(p, default=DEFAULT_DATA)
    add_eps_arg(p, default=DEFAULT_EPS, paper=False)
    p.add_argument("--protocol", default="sea", metavar="NAME", help=PROTOCOL_HELP)
    p.add_argument(
        "--attack",
        default=None,
        metavar="NAME[,NAME]",
        help="the custom protocol's attacks, comma-separated: registered names, NAME:LOSS for an attack's loss (e.g. "
        "pgd,apgd:masked-ce,apgd:js); square counts as the black-box attack, alma_prox as the minimal-norm one",
    )
    p.add_argument(
        "--attack-opt",
        action="append",
        default=[],
        metavar="NAME.KEY=VALUE",
        help="an option of one --attack entry (apgd:js.steps=20) or of every entry of one attack (apgd.steps=20); "
        "step_size in 8-bit levels like eps (repeatable)",
    )
    p.add_argument(
        "--transfer-from",
        metavar="SPEC",
        default=None,
        help="a surrogate model (a --model SPEC: zoo:NAME, module.path:callable, hf:ID) on which the transfer attack "
        "is crafted; without it the transfer evaluation is skipped with a note",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of every random draw (default: 0)")
    p.add_argument("--limit", type=int, default=None, metavar="N", help="only the first N images")
    p.add_argument("--batch-size", type=int, default=4, metavar="N", help="images attacked at once (default: 4)")
    p.add_argument("--out", required=True, metavar="DIR",
                   help="output directory (resumed when it holds this configuration; another is refused)")  # fmt: skip
    p.add_argument("--overwrite", action="store_true",
                   help="replace what earlier robustness runs wrote into --out (and only that)")  # fmt: skip
    p.set_defaults(func=run)


def parse_custom(names: str | None, opts: list[str], protocol: str) -> tuple[Any, ...]:
    """``--attack``/``--attack-opt`` -> the custom protocol's ``AttackSpec``s; UserError (one line) otherwise."""
    from ..attacks import registry
    from ..attacks.registry import AttackError
    from ..pipeline import AttackSpec
    from ..robustness.protocol import PROTOCOLS

    if protocol not in PROTOCOLS:
        return ()  # refused by the configuration, naming --protocol
    if protocol != "custom":
        if names is not None or opts:
            raise UserError(f"--attack and --attack-opt list the attacks of --protocol custom; the {protocol} "
                            "protocol names its own")  # fmt: skip
        return ()
    items = [s.strip() for s in (names or "").split(",") if s.strip()]
    if not items:
        raise UserError("--protocol custom needs --attack, e.g. --attack pgd,apgd:js")
    options: dict[str, dict[str, Any]] = {}
    for item in items:
        name, _, loss = item.partition(":")
        if name not in registry.available():
            raise UserError(f"--attack: unknown attack {name!r}; available attacks: {', '.join(registry.available())}")
        if item in options:
            raise UserError(f"--attack lists {item} twice; give each attack once")
        options[item] = {"loss": loss} if loss else {}
    for text in opts:
        head, eq, value = text.partition("=")
        entry, dot, key = head.strip().rpartition(".")
        if not eq or not dot or not entry or not key:
            raise UserError(f"--attack-opt takes NAME.KEY=VALUE, e.g. apgd:js.steps=20; got {text!r}")
        targets = [i for i in items if i == entry or i.partition(":")[0] == entry]
        if not targets:
            raise UserError(f"--attack-opt {text!r} names {entry!r}, which --attack does not list ({names})")
        try:
            parsed = registry.parse_option(entry.partition(":")[0], key, value)
        except ValueError as err:
            raise UserError(f"--attack-opt: {err}") from None
        if key == "step_size":
            if not 0 < parsed <= 255:
                raise UserError(f"--attack-opt {entry}.step_size is in 8-bit levels (1 = 1/255), got {value}")
            parsed = parsed / 255
        for t in targets:
            options[t][key] = parsed
    try:
        return tuple(AttackSpec(i.partition(":")[0], options[i]) for i in items)
    except AttackError as err:
        raise UserError(f"--attack: {err}") from None


def _config(args: argparse.Namespace) -> Any:
    from ..robustness import RobustnessConfig

    attacks = parse_custom(args.attack, args.attack_opt, args.protocol)
    return build_named(RobustnessConfig, {
        "eps": tuple(parse_eps(args.eps)), "protocol": args.protocol, "attacks": attacks, "seed": args.seed,
        "limit": args.limit, "batch_size": args.batch_size,
    }, OPTIONS)  # fmt: skip


def _surrogate(spec: str | None, device: str) -> tuple[Any, str | None]:
    from ..specs import load_model, parse_model_spec

    if spec is None:
        return None, None
    try:
        ms = parse_model_spec(spec)
        return load_model(ms, device=device), str(ms)
    except SegattackError as err:  # the same loader as --model: say which option it was
        raise UserError(f"--transfer-from: {err}") from err


class _Bar:
    """The run's progress bar (rows done), with the header printed when the run starts."""

    def __init__(self, header: str) -> None:
        self.header = header
        self.bar: Any = None

    def __call__(self, p: Any) -> None:
        from tqdm import tqdm

        if self.bar is None:
            print(self.header + (f"; {p.resumed} of {p.total} rows done before" if p.resumed else ""),
                  file=sys.stderr, flush=True)  # fmt: skip
            self.bar = tqdm(total=p.total, initial=p.done, unit="row", desc="evaluating",
                            disable=not sys.stderr.isatty())  # fmt: skip
        self.bar.update(p.done - self.bar.n)
        if p.evaluation:
            self.bar.set_postfix_str(f"{p.evaluation} eps {','.join(f'{e:g}' for e in p.eps)}")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def run(args: argparse.Namespace) -> int:
    from ..robustness import run_robustness

    check_out_dir(args.out)  # before any data or model is loaded
    config = _config(args)
    check_model_args(args)
    data, data_desc = build_data(args.data, args.size, args.labels)
    model, model_desc = build_model(args)
    surrogate, surrogate_spec = _surrogate(args.transfer_from, args.device)
    describe = {**model_desc, **data_desc, "surrogate": surrogate_spec}
    n = len(data) if config.limit is None else min(config.limit, len(data))
    header = (f"robustness of {model_desc['model']} on {n} images of {data_desc['data']} ({args.device}): "
              f"{config.protocol} protocol, eps {','.join(f'{e:g}' for e in config.eps)} (8-bit levels), "
              f"{len(config.plan)} evaluations")  # fmt: skip
    bar = _Bar(header)
    try:
        done = run_robustness(model, data, config, args.out, surrogate=surrogate, device=args.device,
                              overwrite=args.overwrite, describe=describe, progress=bar)  # fmt: skip
    finally:
        bar.close()
    _print(done, Path(args.out))
    return 0


def _pct(v: Any) -> str:
    return "n/a" if v is None else f"{100 * v:.1f}%"


def _print(done: Any, out: Path) -> None:
    """Where things are (stderr), the headline per eps and the checks (stdout)."""
    s = done.summary
    rel = os.path.relpath(out)
    print(f"done in {format_duration(done.attack_s)}: {done.computed} rows computed, {done.resumed} found finished",
          file=sys.stderr)  # fmt: skip
    print(f"results: {rel if not rel.startswith('..') else out}/  report.html  robustness.json  results.jsonl",
          file=sys.stderr)  # fmt: skip
    for note in s.get("notes") or ():
        print(f"note: {note}", file=sys.stderr)
    print(f"clean: mIoU {_pct(s['clean']['miou'])}, accuracy {_pct(s['clean']['accuracy'])} "
          f"({s['images']['complete']} images)")  # fmt: skip
    for r in s["robust"]:
        w = r.get("worst") or {}
        print(f"eps {r['eps']:g}: worst-case mIoU {_pct(w.get('miou'))}, accuracy {_pct(w.get('accuracy'))} "
              f"over {len(w.get('attacks') or ())} attacks")  # fmt: skip
    for c in s.get("checks") or ():
        print(f"{c['status']:7s} {c['name']}: {c['detail']}")
