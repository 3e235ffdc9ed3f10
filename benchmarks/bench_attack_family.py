"""Every registered attack: strength and speed on the shipped model, measured in one run.

1. Speed: per attack, wall time of one call divided by (its documented passes x the model's own forward+backward
   time, measured in the same run, interleaved). Goal: <= 1.25 on the shipped small model.
2. Strength on ``--images`` synthetic validation scenes, for every attack at every eps (8-bit levels):
   - targeted hide-person (the paper's goal): hidden and kept (whole image), mean over images with persons;
   - untargeted: mIoU and mean pixel accuracy under attack against the ground truth;
   with each attack's gradient passes and seconds. By default every iterative attack gets the same number of steps
   (``--steps``, 20), so the comparison is at (nearly) equal passes; worst_case runs four APGD losses.

Results go to stdout as a table and, with ``--json OUT``, to a JSON file that is rewritten after every attack (a
long run keeps what it finished).

Run:  python benchmarks/bench_attack_family.py [--images 20] [--size 256x512] [--eps 2,4,8] [--steps 20]
      [--attacks illm,pgd,...] [--quick] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import time
from typing import Any

import torch

import segattack as sa
from segattack.attacks import registry
from segattack.metrics import confusion_matrix, mean_iou, pixel_accuracy
from segattack.targets import hidden_mask

PERSON = 11


def _options(name: str, steps: int) -> dict[str, Any]:
    entry = registry.info(name)
    return {"steps": steps} if name != "illm" and "steps" in entry.defaults else {}


def speed(
    model: sa.PixelModel, x: torch.Tensor, names: list[str], steps: int, repeats: int, eps: int = 8
) -> dict[str, Any]:
    """Per attack: wall time of one call / (its backward passes x the model's forward+backward time + its extra
    forward passes x the model's forward time), both measured right before the call (interleaved, median)."""
    pred = model.predict(x)
    target = sa.hide_class_target(pred, class_id=PERSON) if bool((pred == PERSON).any()) else pred

    def pass_once() -> None:
        adv = x.clone().requires_grad_(True)
        loss = torch.nn.functional.cross_entropy(model(adv, check=False), target, reduction="sum")
        torch.autograd.grad(loss, adv)

    def forward_once() -> None:
        with torch.no_grad():
            model(x, check=False).argmax(1)

    def timed(fn: Any, n: int) -> float:
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        return (time.perf_counter() - t0) / n

    pass_once()  # warm-up
    out: dict[str, Any] = {}
    for name in names:
        opts = _options(name, steps)
        targeted = name == "illm"
        labels = target if targeted else pred
        c = registry.cost(name, eps=eps / 255, **opts)
        fn = registry.get(name)
        ratios, per_pass, per_fwd = [], [], []
        for _ in range(repeats):
            per_pass.append(timed(pass_once, 3))
            per_fwd.append(timed(forward_once, 3))
            t0 = time.perf_counter()
            fn(model, x, labels, eps=eps / 255, targeted=targeted, **opts)
            attack_s = time.perf_counter() - t0
            ratios.append(attack_s / (c.backward * per_pass[-1] + (c.forward - c.backward) * per_fwd[-1]))
        out[name] = {
            "forward": c.forward, "backward": c.backward, "exact": c.exact, "ratio": statistics.median(ratios),
            "pass_s": statistics.median(per_pass), "forward_s": statistics.median(per_fwd),
        }  # fmt: skip
        bound = "" if c.exact else " (dag: bound; it may stop early)"
        ratio = out[name]["ratio"]
        print(f"speed {name:10s} forward {c.forward:4d} backward {c.backward:4d}  ratio {ratio:.3f}{bound}", flush=True)
    return out


def strength(
    model: sa.PixelModel, data: Any, names: list[str], eps: list[int], steps: int, batch: int, save: Any
) -> dict[str, Any]:
    images = torch.stack([data[i][0] for i in range(len(data))]).float() / 255
    truth = torch.stack([torch.as_tensor(data[i][1]) for i in range(len(data))])
    pred = model.predict(images, batch_size=batch)
    has = hidden_mask(pred, (PERSON,)).flatten(1).any(1)
    k = 19
    clean_cm = sum(confusion_matrix(pred[i], truth[i], num_classes=k) for i in range(len(data)))
    results: dict[str, Any] = {"clean_miou": mean_iou(clean_cm), "clean_accuracy": pixel_accuracy(clean_cm)}
    for name in names:
        opts = _options(name, steps)
        fn = registry.get(name)
        per: dict[str, Any] = {}
        for e in eps:
            row: dict[str, Any] = {"passes": registry.cost(name, eps=e / 255, **opts).backward}
            torch.manual_seed(e)  # random starts depend on (attack, eps) only, not on the order attacks run in
            t0 = time.perf_counter()
            fooled, kept = [], []
            for s in range(0, len(data), batch):
                idx = [i for i in range(s, min(len(data), s + batch)) if bool(has[i])]
                if not idx:
                    continue
                xb, pb = images[idx], pred[idx]
                target = sa.hide_class_target(pb, class_id=PERSON)
                adv = fn(model, xb, target, eps=e / 255, targeted=True, **opts)
                m = sa.hiding_metrics(pb, model.predict(adv), class_id=PERSON, target=target)
                fooled += m.fooled.tolist()
                kept += m.preserved.tolist()
            row["hide_s"] = round(time.perf_counter() - t0, 2)
            row["hidden"] = sa.summarize(fooled).mean
            row["kept"] = sa.summarize(kept).mean
            row["hide_images"] = len(fooled)
            if name != "illm":
                torch.manual_seed(1000 + e)
                t0 = time.perf_counter()
                cm = torch.zeros(k, k, dtype=torch.int64)
                accs = []
                for s in range(0, len(data), batch):
                    xb, tb = images[s : s + batch], truth[s : s + batch]
                    adv = fn(model, xb, tb, eps=e / 255, targeted=False, **opts)
                    pa = model.predict(adv)
                    for j in range(len(xb)):
                        c = confusion_matrix(pa[j], tb[j], num_classes=k)
                        cm += c
                        accs.append(pixel_accuracy(c))
                row["untargeted_s"] = round(time.perf_counter() - t0, 2)
                row["miou"] = mean_iou(cm)
                row["accuracy"] = sa.summarize(accs).mean
            per[str(e)] = row
            fmt = lambda v: "  -  " if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * v:5.1f}"  # noqa: E731
            print(
                f"strength {name:10s} eps {e:2d}: hidden {fmt(row['hidden'])} kept {fmt(row['kept'])} | mIoU "
                f"{fmt(row.get('miou'))} acc {fmt(row.get('accuracy'))} | passes {row['passes']} | "
                f"{row['hide_s']} s + {row.get('untargeted_s', 0)} s",
                flush=True,
            )
        results[name] = per
        save(results)
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=20)
    ap.add_argument("--size", default="256x512")
    ap.add_argument("--eps", default="2,4,8", help="budgets in 8-bit levels")
    ap.add_argument("--steps", type=int, default=20, help="steps of every iterative attack except illm (paper's)")
    ap.add_argument("--attacks", default=",".join(registry.available()))
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--skip-speed", action="store_true")
    ap.add_argument("--skip-strength", action="store_true")
    ap.add_argument("--width", type=float, default=None,
                    help="speed only: a random FCN8s at this width (1.0 = the paper's FCN8s-VGG16) instead of the "
                    "shipped model")  # fmt: skip
    ap.add_argument("--speed-size", default=None, help="HxW of the speed images (default: --size)")
    ap.add_argument("--quick", action="store_true", help="4 images at 64x128, eps 2,8, 3 steps (seconds; for CI)")
    ap.add_argument("--json")
    args = ap.parse_args()
    if args.quick:
        args.images, args.size, args.eps, args.steps, args.repeats = 4, "64x128", "2,8", 3, 1
    h, w = (int(v) for v in args.size.split("x"))
    names = [n for n in args.attacks.split(",") if n]
    eps = [int(e) for e in args.eps.split(",")]
    torch.manual_seed(0)
    model = sa.zoo.load(sa.zoo.DEFAULT_MODEL)
    data = sa.data.SyntheticStreets(split="val", size=(h, w), length=args.images, seed=0)
    report: dict[str, Any] = {
        "model": sa.zoo.DEFAULT_MODEL, "images": args.images, "size": [h, w], "eps_levels": eps,
        "steps": args.steps, "torch": torch.__version__, "threads": torch.get_num_threads(),
        "machine": platform.machine(),
    }  # fmt: skip

    def save(part: dict[str, Any] | None = None) -> None:
        if part is not None:
            report["strength"] = part
        if args.json:
            with open(args.json, "w", encoding="utf-8") as fh:
                json.dump(report, fh, indent=2, default=float)

    if not args.skip_speed:
        sh, sw = (int(v) for v in (args.speed_size or args.size).split("x"))
        x = sa.data.SyntheticStreets(split="val", size=(sh, sw), length=1, seed=0)[0][0][None].float() / 255
        speed_model = model
        if args.width is not None:
            net = sa.zoo.FCN8s(19, width=args.width).eval()
            speed_model = sa.PixelModel(net, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225), num_classes=19)
            report["speed_model"] = f"FCN8s width {args.width} (random weights)"
        report["speed_size"] = [sh, sw]
        report["speed"] = speed(speed_model, x, names, args.steps, args.repeats)
        save()
    if not args.skip_strength:
        strength(model, data, names, eps, args.steps, args.batch, save)
    save()


if __name__ == "__main__":
    main()
