"""Attack strength at equal passes, untargeted against the ground truth, on a (robust or clean) model (issue 23).

For a model (``--model zoo:NAME`` or ``zoo:PATH/NAME.json``) on ``--images`` synthetic validation scenes, at every eps
(8-bit levels) and every iteration budget (``--iters``, default 20 and 100): clean, ``pgd``, ``segpgd``, ``cospgd``
(with its own fixed step 0.01, and again with pgd's step rule 2.5 eps / steps, to tell the loss from the step),
``apgd`` with each loss, ``dag`` (clipped to eps), ``worst_case`` (SEA's four APGD losses, ``iters // 4`` steps each)
and ``sea`` (three losses, ``iters // 3`` steps each, radii 2, 1.5, 1 eps), each with

- mIoU from the confusion matrices summed over the images, and pixel accuracy (mean over images);
- forward and backward passes per image, *counted* by hooks on the network (not taken from the cost model);
- seconds (wall time of the attack calls).

Equal passes: every iterative attack runs ``iters`` steps (pgd, segpgd, cospgd: iters backward passes; apgd: iters + 1;
dag: at most iters, it stops early); ``worst_case`` runs its four APGD members at ``iters // 4`` steps each, so that
its backward passes are about ``iters`` too. The row ``worst of N apgd`` is the per-image worst case over the N
``apgd:LOSS`` rows above it (``--apgd-losses``; the same rule as ``worst_case``: the member with the lowest pixel
accuracy, the latest on a tie), at N times the passes: what ``worst_case`` with ``iters`` steps per member would
give, at no extra cost.
Every seeded attack gets one seed per image (its index), the same for every attack, eps and budget.

Writes a JSON (``--json``), a figure (``--figure``: robust mIoU against eps, one line per attack, one panel per
budget) and prints a markdown table.

Run:  python benchmarks/bench_robustness.py --model zoo:fcn2s-synth-w8-r32 --images 4 --size 128x256 --iters 20 \\
          --json /work/runs/bench-robustness-clean.json --figure /work/runs/bench-robustness-clean.png
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

import segattack as sa
from segattack.attacks import registry
from segattack.metrics import confusion_matrix, mean_iou, pixel_accuracy
from segattack.specs import load_model

#: ``apgd``'s losses in the table (``--apgd-losses``); SEA's own three are masked-balanced-ce, masked-ce and js.
APGD_LOSSES = ("ce", "balanced-ce", "masked-ce", "masked-balanced-ce", "js")
#: An option value resolved per eps: pgd's default step size, 2.5 eps / steps (Madry et al. 2018).
PGD_RULE = "pgd's rule"


@dataclass
class PassCounter:
    """Forward and backward passes through a network, per image: forward hooks add the batch size of every call,
    and a gradient hook on a forward's output adds it again when a backward pass goes through that output."""

    forward: int = 0
    backward: int = 0
    handles: list[Any] = field(default_factory=list)

    def attach(self, net: nn.Module) -> PassCounter:
        def hook(_: nn.Module, inputs: tuple[Any, ...], output: Any) -> None:
            b = int(inputs[0].shape[0])
            self.forward += b
            if isinstance(output, Tensor) and output.requires_grad:
                output.register_hook(lambda g: self._backward(b))

        self.handles.append(net.register_forward_hook(hook))
        return self

    def _backward(self, b: int) -> None:
        self.backward += b

    def reset(self) -> None:
        self.forward = self.backward = 0


def worst_of_apgd(losses: tuple[str, ...]) -> str:
    """The name of the row of the per-image worst case over the ``apgd:LOSS`` rows."""
    return f"worst of {len(losses)} apgd"


def attack_rows(iters: int, losses: tuple[str, ...] = APGD_LOSSES) -> list[tuple[str, str, dict[str, Any]]]:
    """(row name, registered attack, options) at ``iters`` iterations each, in the order of the table."""
    rows: list[tuple[str, str, dict[str, Any]]] = [(n, n, {"steps": iters}) for n in ("pgd", "segpgd", "cospgd")]
    # cospgd's own default step is a fixed 0.01 (2.55 levels, larger than eps 2): the same loss with pgd's step rule
    rows.append(("cospgd, pgd's step", "cospgd", {"steps": iters, "step_size": PGD_RULE}))
    rows += [(f"apgd:{loss}", "apgd", {"steps": iters, "loss": loss}) for loss in losses]
    rows.append(("dag", "dag", {"steps": iters}))
    rows.append(("worst_case", "worst_case", {"steps": max(1, iters // 4)}))
    # SEA (Croce et al. 2024): three losses with the shrinking radius, iters // 3 iterations each (equal passes)
    rows.append(("sea", "sea", {"steps": max(4, iters // 3)}))
    return rows


def per_image_accuracy(cms: list[Tensor]) -> list[float]:
    return [pixel_accuracy(c) for c in cms]


def summarise(cms: list[Tensor], k: int) -> dict[str, float]:
    total = torch.stack(cms).sum(0) if cms else torch.zeros(k, k, dtype=torch.int64)
    accs = per_image_accuracy(cms)
    return {"miou": mean_iou(total), "accuracy": sum(accs) / len(accs)}


def worst_of(rows: list[list[Tensor]]) -> list[Tensor]:
    """Per image, the confusion matrix of the row with the lowest pixel accuracy (the latest on a tie, as
    ``worst_case``'s ``Best``)."""
    out = []
    for per_row in zip(*rows, strict=True):
        pick = per_row[0]
        for c in per_row[1:]:
            if pixel_accuracy(c) <= pixel_accuracy(pick):
                pick = c
        out.append(pick)
    return out


def run(
    model: sa.PixelModel,
    images: Tensor,
    truth: Tensor,
    *,
    eps_levels: list[int],
    iters: list[int],
    batch: int,
    only: set[str] | None,
    losses: tuple[str, ...] = APGD_LOSSES,
    save: Callable[[dict[str, Any]], None],
) -> dict[str, Any]:
    k = int(model.num_classes or 19)
    n = len(images)
    counter = PassCounter().attach(model.net)
    pred = model.predict(images, batch_size=batch)
    clean_cms = [confusion_matrix(pred[i], truth[i], num_classes=k) for i in range(n)]
    results: dict[str, Any] = {"clean": summarise(clean_cms, k), "attacks": {}}
    for budget in iters:
        per_budget: dict[str, Any] = {}
        results["attacks"][str(budget)] = per_budget
        apgd_cms: dict[int, list[list[Tensor]]] = {e: [] for e in eps_levels}
        for row, name, opts in attack_rows(budget, losses):
            if only is not None and row not in only and name not in only:
                continue
            fn = registry.get(name)
            seeded = registry.info(name).seeded
            per_eps: dict[str, Any] = {}
            for e in eps_levels:
                cms: list[Tensor] = []
                fwd = bwd = 0
                seconds = 0.0
                for s in range(0, n, batch):
                    xb, tb = images[s : s + batch], truth[s : s + batch]
                    extra: dict[str, Any] = {"seed": list(range(s, s + len(xb)))} if seeded else {}
                    counter.reset()
                    t0 = time.perf_counter()
                    kw = dict(opts)
                    if kw.get("step_size") == PGD_RULE:
                        kw["step_size"] = 2.5 * e / 255 / kw["steps"]
                    adv = fn(model, xb, tb, eps=e / 255, targeted=False, **kw, **extra)
                    seconds += time.perf_counter() - t0
                    fwd, bwd = fwd + counter.forward, bwd + counter.backward
                    assert float((adv - xb).abs().max()) <= e / 255 + 1e-6, (row, e)
                    pa = model.predict(adv, batch_size=batch)
                    cms += [confusion_matrix(pa[j], tb[j], num_classes=k) for j in range(len(xb))]
                if name == "apgd":
                    apgd_cms[e].append(cms)
                per_eps[str(e)] = {
                    **summarise(cms, k), "forward": fwd / n, "backward": bwd / n, "seconds": round(seconds, 2),
                }  # fmt: skip
                r = per_eps[str(e)]
                print(
                    f"iters {budget:3d} {row:16s} eps {e:2d}: mIoU {100 * r['miou']:5.1f} acc "
                    f"{100 * r['accuracy']:5.1f} | passes fwd {r['forward']:.0f} bwd {r['backward']:.0f} | "
                    f"{r['seconds']} s",
                    flush=True,
                )
            per_budget[row] = {"attack": name, "options": opts, "eps": per_eps}
            save(results)
        if all(len(apgd_cms[e]) == len(losses) > 1 for e in eps_levels):
            per_eps = {}
            for e in eps_levels:
                members = [per_budget[f"apgd:{loss}"]["eps"][str(e)] for loss in losses]
                per_eps[str(e)] = {
                    **summarise(worst_of(apgd_cms[e]), k),
                    "forward": sum(m["forward"] for m in members) + len(members),
                    "backward": sum(m["backward"] for m in members),
                    "seconds": round(sum(m["seconds"] for m in members), 2),
                }
            per_budget[worst_of_apgd(losses)] = {
                "attack": f"apgd ({len(losses)} losses, per-image worst)",
                "options": {"steps": budget},
                "eps": per_eps,
            }
            save(results)
    return results


def markdown(report: dict[str, Any]) -> str:
    eps = report["eps_levels"]
    res = report["results"]
    head = ["attack", "iters", "passes/image fwd, bwd"] + [f"mIoU eps {e}" for e in eps]
    head += [f"acc eps {e}" for e in eps] + ["seconds"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    clean = res["clean"]
    lines.append(
        "| clean | - | 1, 0 | " + " | ".join([f"{100 * clean['miou']:.1f}"] * len(eps)) + " | "
        + " | ".join([f"{100 * clean['accuracy']:.1f}"] * len(eps)) + " | - |"
    )  # fmt: skip
    for budget, rows in res["attacks"].items():
        for row, data in rows.items():
            per = [data["eps"][str(e)] for e in eps]
            fwd = sorted({round(p["forward"]) for p in per})
            bwd = sorted({round(p["backward"]) for p in per})
            span = lambda v: str(v[0]) if len(v) == 1 else f"{v[0]}-{v[-1]}"  # noqa: E731
            cells = [row, budget, f"{span(fwd)}, {span(bwd)}"]
            cells += [f"{100 * p['miou']:.1f}" for p in per] + [f"{100 * p['accuracy']:.1f}" for p in per]
            cells.append(f"{sum(p['seconds'] for p in per):.0f}")
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def figure(report: dict[str, Any], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    eps = report["eps_levels"]
    budgets = list(report["results"]["attacks"])
    fig, axes = plt.subplots(1, len(budgets), figsize=(6 * len(budgets), 5), sharey=True, squeeze=False)
    clean = 100 * report["results"]["clean"]["miou"]
    model = report["model"].removeprefix("zoo:")
    model = Path(model).stem if model.endswith(".json") else model
    colours = plt.get_cmap("tab20").colors
    for ax, budget in zip(axes[0], budgets, strict=True):
        for i, (row, data) in enumerate(report["results"]["attacks"][budget].items()):
            ys = [clean] + [100 * data["eps"][str(e)]["miou"] for e in eps]
            style = "--" if row.startswith("worst of") else "-"
            ax.plot([0, *eps], ys, style, marker="o", ms=4, color=colours[i % len(colours)], label=row)
        ax.set_title(f"{model}: {budget} iterations", fontsize=10)
        ax.set_xlabel("eps (8-bit levels)")
        ax.set_xticks([0, *eps])
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("mIoU under attack (%)")
    axes[0][-1].legend(fontsize=8, loc="center left", bbox_to_anchor=(1.02, 0.5))
    fig.suptitle(f"untargeted vs ground truth, {report['images']} scenes at {report['size'][0]}x{report['size'][1]}")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=f"zoo:{sa.zoo.DEFAULT_MODEL}", help="zoo:NAME or zoo:PATH/NAME.json")
    ap.add_argument("--images", type=int, default=8, help="synthetic validation scenes (seed 0)")
    ap.add_argument("--size", default="128x256", help="HxW of the scenes")
    ap.add_argument("--eps", default="2,4,8", help="budgets in 8-bit levels")
    ap.add_argument("--iters", default="20,100", help="iteration budgets (equal passes per image)")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--attacks", default=None, help="only these rows or attacks (e.g. pgd,apgd,worst_case)")
    ap.add_argument("--apgd-losses", default=",".join(APGD_LOSSES), help="apgd's losses (one row each)")
    ap.add_argument("--json", default=None, help="write the results here (rewritten after every attack)")
    ap.add_argument("--figure", default=None, help="write the figure here (PNG)")
    ap.add_argument("--replot", default=None, metavar="JSON", help="only draw --figure from a JSON this script wrote")
    args = ap.parse_args()
    if args.replot:
        figure(json.loads(Path(args.replot).read_text(encoding="utf-8")), args.figure or args.replot[:-5] + ".png")
        return
    h, w = (int(v) for v in args.size.split("x"))
    eps_levels = [int(e) for e in args.eps.split(",")]
    iters = [int(i) for i in args.iters.split(",")]
    only = set(args.attacks.split(",")) if args.attacks else None
    torch.manual_seed(0)
    model = load_model(args.model)
    data = sa.data.SyntheticStreets(split="val", size=(h, w), length=args.images, seed=0)
    images = torch.stack([data[i][0] for i in range(len(data))]).float() / 255
    truth = torch.stack([torch.as_tensor(data[i][1]) for i in range(len(data))]).long()
    report: dict[str, Any] = {
        "model": args.model, "images": args.images, "size": [h, w], "eps_levels": eps_levels, "iters": iters,
        "date": datetime.date.today().isoformat(), "torch": torch.__version__, "threads": torch.get_num_threads(),
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "accuracy": "pixel accuracy, mean over images; mIoU from the summed confusion matrices",
    }  # fmt: skip

    def save(results: dict[str, Any]) -> None:
        report["results"] = results
        if args.json:
            Path(args.json).write_text(json.dumps(report, indent=2, default=float), encoding="utf-8")

    t0 = time.perf_counter()
    run(
        model,
        images,
        truth,
        eps_levels=eps_levels,
        iters=iters,
        batch=args.batch,
        only=only,
        losses=tuple(args.apgd_losses.split(",")),
        save=save,
    )
    report["total_seconds"] = round(time.perf_counter() - t0, 1)
    save(report["results"])
    if args.figure:
        figure(report, args.figure)
    print()
    print(f"{report['date']}, {report['machine']}, torch {report['torch']} ({report['threads']} threads): "
          f"{args.model}, {args.images} scenes at {h}x{w}, {report['total_seconds']} s")  # fmt: skip
    print(markdown(report))


if __name__ == "__main__":
    main()
