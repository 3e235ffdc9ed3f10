"""Figures of one or more ``segattack robustness`` runs, from their ``robustness.json`` alone (issue 24).

Per run one panel: pixel accuracy (percent) against eps (8-bit levels) with

- the minimal-eps curve of the minimal-norm attack (a step line: at each eps an image counts with its adversarial
  image where that attack's perturbation is at most eps, else with its clean image);
- the fixed-eps worst case (per image over every attack of the protocol) at each budget, as dots;
- each single attack at each budget, as small markers (white-box, black-box, transfer, noise);
- the large-budget check's point.

Run:  python benchmarks/plot_robustness.py docs/robustness-runs/sea-at4 docs/robustness-runs/sea-clean \\
          --out docs/images/robustness-curves.png
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

_MARKERS = {"white-box": "o", "black-box": "s", "transfer": "^", "noise": "x"}


def panel(ax: Any, s: dict[str, Any], title: str) -> None:
    curve = s.get("minimal_eps_curve")
    if curve:
        pts = [p for p in curve["points"] if p.get("accuracy") is not None]
        label = f"minimal-eps curve ({curve['evaluation']}, median {curve['median_linf']:.2f} levels)"
        ax.step([p["eps"] for p in pts], [100 * p["accuracy"] for p in pts], where="post", color="#1f77b4", label=label)
    xs = [r["eps"] for r in s["robust"]]
    ax.plot(xs, [100 * r["worst"]["accuracy"] for r in s["robust"]], "o", color="#d62728", markersize=9,
            label="fixed-eps worst case", zorder=5)  # fmt: skip
    seen: set[str] = set()
    for r in s["robust"]:
        for v in r["by_evaluation"].values():
            kind = v["kind"]
            if kind not in _MARKERS:
                continue
            label = kind if kind not in seen else None
            seen.add(kind)
            ax.plot(r["eps"], 100 * v["accuracy"], _MARKERS[kind], color="#555", markersize=5, alpha=0.7, label=label)
    for p in s.get("large_eps") or ():
        ax.plot(p["eps"], 100 * p["accuracy"], "D", color="#2ca02c", label="large-eps check")
    ax.axhline(100 * s["clean"]["accuracy"], color="#999", linestyle=":", linewidth=1, label="clean")
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("eps (8-bit levels)")
    ax.set_ylabel("pixel accuracy (%)")
    ax.set_ylim(-2, 100)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=3, frameon=False)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dirs", nargs="+", type=Path, help="directories holding robustness.json")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    fig, axes = plt.subplots(1, len(args.dirs), figsize=(6 * len(args.dirs), 5.0), squeeze=False)
    for ax, d in zip(axes[0], args.dirs, strict=True):
        s = json.loads((d / "robustness.json").read_text())
        panel(ax, s, f"{s['model']}: {s['protocol']} protocol, {s['images']['complete']} images")
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
