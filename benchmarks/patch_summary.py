"""Tables and a figure from several ``segattack patch`` runs, read from their files alone (issue 25).

For every run directory: its settings (model, patch size and share of the image, placement, EOT, lr, steps) and, on
the held-out images, the fitted patch against a random patch of the same size and place (class pixels hidden, other
pixels kept, mIoU of agreement with the clean prediction), the fit's time; and, where the run drew rendered scenes,
the fitted poster against the random poster in the same scene. With ``--figure``, the rendered scenes of one run
(``--rendered-from``): hidden share and mIoU drop against the poster's distance, viewing angle and apparent size.
With ``--scenes``, a picture of that run's patch drawn by the generator into scenes of the same seed the run used
(billboards with the largest posters): the scene, the prediction with a random poster, with the fitted one.

Run:  python benchmarks/patch_summary.py runs/p25/* --figure docs/images/patch-rendered.png \\
          --rendered-from runs/p25/d64-lr4
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def _pct(v: dict[str, Any] | None) -> str:
    if not v or v.get("mean") is None:
        return "–"
    return f"{100 * v['mean']:.1f} ± {100 * v['std']:.1f}"


def _rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (path / "results.jsonl").read_text().splitlines() if line.strip()]


def describe(path: Path) -> dict[str, Any]:
    config = json.loads((path / "config.json").read_text())
    p = config["patch"]
    s = json.loads((path / "summary.json").read_text())
    h, w = p["size"] if p["size"] else (None, None)
    ih, iw = p["image_size"]
    names = p.get("label_names") or []
    region = [names[c] if c < len(names) else str(c) for c in p["region"]]
    place = "on " + ",".join(region) if region else p["placement"]
    place += f", tilt {p['tilt']:g}" if p["tilt"] else ""
    eot = "off" if not p["eot"] else "on" + (f" + {p['transforms']}" if p["transforms"] else "")
    return {"name": path.name, "model": p["model"]["model"].removeprefix("zoo:"),
            "patch": f"{h}x{w} ({100 * h * w / (ih * iw):.1f}%)" if h else "?", "place": place, "eot": eot,
            "lr": f"{255 * p['lr']:g}", "steps": p["steps"], "summary": s,
            "terms": f"{p['tv_weight']:g}, {p['nps_weight']:g}"}  # fmt: skip


def table(runs: list[dict[str, Any]]) -> str:
    heads = ["run", "model", "patch (share)", "placement", "EOT", "lr (levels)", "TV, NPS weights", "hidden: fitted",
             "hidden: random",
             "mIoU agreement: fitted", "mIoU agreement: random", "rendered: hidden", "rendered: mIoU"]  # fmt: skip
    lines = ["| " + " | ".join(heads) + " |", "|" + "---|" * len(heads)]
    for r in runs:
        held = r["summary"]["held_out"]
        rendered = ((r["summary"].get("rendered") or {}).get("rendered") or {}).get("all") or {}
        cells = [r["name"], r["model"], r["patch"], r["place"], r["eot"], r["lr"], r["terms"],
                 _pct(held["fitted"]["hidden"]), _pct(held["random"]["hidden"]),
                 _pct(held["fitted"]["miou"]), _pct(held["random"]["miou"]),
                 _pct(rendered.get("hidden")), _pct(rendered.get("miou"))]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def figure(path: Path, out: Path) -> None:
    rows = [r for r in _rows(path) if r.get("evaluation") == "rendered" and r.get("status") == "ok"]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    for placement, marker in (("building", "o"), ("billboard", "^")):
        sel = [r for r in rows if r["drawn_as"] == placement and r.get("hidden") is not None]
        for ax, key, label in ((axes[0], "distance", "distance (m)"), (axes[1], "angle", "viewing angle (degrees)"),
                               (axes[2], "poster_pixels", "visible poster pixels")):  # fmt: skip
            ax.scatter([r[key] for r in sel], [100 * r["hidden"] for r in sel], marker=marker, alpha=0.7,
                       label=f"{placement}: hidden")  # fmt: skip
            ax.scatter([r[key] for r in sel], [100 * (1 - r["miou"]) for r in sel], marker=marker, alpha=0.4,
                       facecolors="none", edgecolors="C3", label=f"{placement}: 1 - mIoU agreement")  # fmt: skip
            ax.set_xlabel(label)
    axes[2].set_xscale("symlog", linthresh=100)
    for ax in axes:
        ax.set_ylabel("percent")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle(f"{path.name}: the fitted poster against a random poster in the same rendered scene", fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=100)


def scenes(path: Path, out: Path, n: int = 3) -> None:
    """The ``n`` rendered billboard scenes of run ``path`` with the largest visible poster: the scene with the fitted
    poster, the prediction with a random poster of the same size and with the fitted one."""
    import torch

    from segattack.data.labels import colorize
    from segattack.data.synthetic import render_with_poster
    from segattack.patches.export import load_patch
    from segattack.patches.run import RENDER_SEED, random_patch
    from segattack.specs import load_model, parse_model_spec

    config = json.loads((path / "config.json").read_text())["patch"]
    rows = [r for r in _rows(path) if r.get("evaluation") == "rendered" and r.get("drawn_as") == "billboard"]
    rows.sort(key=lambda r: -r["poster_pixels"])
    picks = sorted({r["index"] for r in rows[:n]})
    patch, _ = load_patch(path / "patch.npz")
    model = load_model(parse_model_spec(config["model"]["model"]))
    size = tuple(config["image_size"])
    count = max(picks) + 1
    fitted, _, info = render_with_poster(patch, count, size, seed=RENDER_SEED, placement="billboard")
    rand, _, _ = render_with_poster(
        random_patch(tuple(patch.shape), int(config["seed"])), count, size, seed=RENDER_SEED, placement="billboard"
    )
    fig, axes = plt.subplots(len(picks), 3, figsize=(13, 2.4 * len(picks)), squeeze=False)
    with torch.no_grad():
        for row, i in zip(axes, picks, strict=True):
            pf = model.predict(fitted[i : i + 1].float() / 255)[0]
            pr = model.predict(rand[i : i + 1].float() / 255)[0]
            row[0].imshow(fitted[i].permute(1, 2, 0).numpy())
            row[0].set_title(
                f"scene {i}: fitted poster at {info[i].distance:.0f} m, {info[i].angle:.0f} deg", fontsize=8
            )
            row[1].imshow(colorize(pr.numpy()))
            row[1].set_title("prediction with a random poster", fontsize=8)
            row[2].imshow(colorize(pf.numpy()))
            row[2].set_title("prediction with the fitted poster", fontsize=8)
            for ax in row:
                ax.axis("off")
    fig.suptitle(f"{path.name}: the patch drawn into rendered scenes ({config['model']['model']})", fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=100)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dirs", nargs="+", type=Path)
    ap.add_argument("--figure", type=Path)
    ap.add_argument("--rendered-from", type=Path)
    ap.add_argument("--scenes", type=Path, help="a picture of rendered billboard scenes of --rendered-from")
    args = ap.parse_args()
    runs = [describe(d) for d in args.dirs if (d / "summary.json").is_file()]
    print(table(runs))
    if args.figure:
        figure(args.rendered_from or args.dirs[0], args.figure)
        print(f"wrote {args.figure}")
    if args.scenes:
        scenes(args.rendered_from or args.dirs[0], args.scenes)
        print(f"wrote {args.scenes}")


if __name__ == "__main__":
    main()
