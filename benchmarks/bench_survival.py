"""Survival of the paper's adversarial examples under image transforms, with and without expectation over
transformation (EOT, Athalye et al. 2018), at the same eps, in one run.

Two experiments on the same synthetic validation scenes with the shipped model, both measured with ``survive=`` (each
adversarial image re-measured after every transform, against the prediction on the identically transformed clean
image): the paper's ``illm``, and ``illm`` with ``eot=`` the same transforms (``eot_samples`` draws per step, so
``eot_samples`` times the passes). Printed and written (``--json``): hidden and kept (whole image) per transform and
eps for both, and the gain in hidden.

Run:  python benchmarks/bench_survival.py [--model NAME | --model PATH/NAME.json] [--images 10] [--size 256x512]
      [--eps 4,10] [--transforms jpeg:75,jpeg:50,resize:0.5,blur:1,noise:2] [--eot-samples 4] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import segattack as sa
from segattack.experiment import ExperimentConfig, run_experiment
from segattack.pipeline import AttackSpec
from segattack.specs import SpecError, load_model

PERSON = 11


def survival_table(out: Path) -> dict[str, dict[str, dict[str, float]]]:
    """transform ("none" for the plain rows) -> eps -> mean hidden / kept over the images with persons (mode full)."""
    sums: dict[tuple[str, str], list[float]] = {}
    for line in (out / "results.jsonl").read_text().splitlines():
        r = json.loads(line)
        if r["status"] != "ok" or r["mode"] != "full" or r["fooled"] is None:
            continue
        key = (r["transform"] or "none", str(r["eps"]))
        acc = sums.setdefault(key, [0.0, 0.0, 0.0])
        acc[0] += r["fooled"]
        acc[1] += r["preserved"]
        acc[2] += 1
    table: dict[str, dict[str, dict[str, float]]] = {}
    for (t, e), (f, p, n) in sorted(sums.items()):
        table.setdefault(t, {})[e] = {"hidden": f / n, "kept": p / n, "images": n}
    return table


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=sa.zoo.DEFAULT_MODEL, help="a zoo name or an exported NAME.json")
    p.add_argument("--images", type=int, default=10)
    p.add_argument("--size", type=lambda s: tuple(int(v) for v in s.split("x")), default=(256, 512))
    p.add_argument("--eps", type=lambda s: [int(v) for v in s.split(",")], default=[4, 10])
    p.add_argument("--transforms", default="jpeg:75,jpeg:50,resize:0.5,blur:1,noise:2")
    p.add_argument("--eot-samples", type=int, default=4)
    p.add_argument("--json", default=None, metavar="OUT")
    args = p.parse_args()

    try:
        model = load_model(f"zoo:{args.model}").eval()
    except SpecError as err:
        p.error(str(err))
    data = sa.data.SyntheticStreets(split="val", size=args.size, length=args.images, seed=0)
    attacks = {
        "illm": AttackSpec("illm"),
        "illm+eot": AttackSpec("illm", {"eot": args.transforms, "eot_samples": args.eot_samples}),
    }
    result: dict[str, Any] = {"model": args.model, "images": args.images, "size": list(args.size), "eps": args.eps,
                              "transforms": args.transforms, "eot_samples": args.eot_samples, "runs": {}}  # fmt: skip
    root = Path(tempfile.mkdtemp(prefix="bench_survival_"))
    try:
        for name, spec in attacks.items():
            t = time.perf_counter()
            out = run_experiment(
                model,
                data,
                ExperimentConfig(
                    classes=PERSON, eps=args.eps, attacks=[spec], modes=("full",), figure1=0, survive=args.transforms
                ),
                root / name,
            )
            result["runs"][name] = {"wall_s": round(time.perf_counter() - t, 1), "table": survival_table(out)}
    finally:
        shutil.rmtree(root, ignore_errors=True)

    plain, eot = result["runs"]["illm"]["table"], result["runs"]["illm+eot"]["table"]
    print(f"{args.model}, {args.images} scenes at {args.size[0]}x{args.size[1]}, whole image; hidden / kept (%), "
          f"illm vs illm + EOT ({args.eot_samples} draws per step over {args.transforms})")  # fmt: skip
    header = "| transform | " + " | ".join(f"eps {e}: illm | eps {e}: illm + EOT" for e in args.eps) + " |"
    print(header)
    print("|---" * (1 + 2 * len(args.eps)) + "|")
    for t in ["none", *args.transforms.split(",")]:
        name = sa.transforms.parse_transforms(t)[0].name if t != "none" else "none"
        cells = []
        for e in map(str, args.eps):
            for table in (plain, eot):
                c = table.get(name, {}).get(e)
                cells.append("-" if c is None else f"{100 * c['hidden']:.1f} / {100 * c['kept']:.1f}")
        print(f"| {name} | " + " | ".join(cells) + " |")
    gains = [eot[t][e]["hidden"] - plain[t][e]["hidden"] for t in plain if t != "none" for e in plain[t]]
    mean_gain = sum(gains) / len(gains) if gains else math.nan
    result["mean_gain_hidden_under_transforms"] = mean_gain
    print(f"mean gain in hidden under the transforms: {100 * mean_gain:+.1f} points; wall illm "
          f"{result['runs']['illm']['wall_s']} s, illm + EOT {result['runs']['illm+eot']['wall_s']} s")  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
