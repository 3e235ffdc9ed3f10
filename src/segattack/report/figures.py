"""The paper's figures, drawn from result files alone; no model is run. Figures are matplotlib ``Figure`` objects
drawn without pyplot, so importing this module chooses no backend and leaves the caller's matplotlib as it was.

- ``figure2``: mean and standard deviation over images of the percentage of class pixels fooled (dark red) and of
  background pixels preserved (light grey) against eps, for the perturbation on the whole image (left) and
  restricted to the class pixels (right), as Fischer et al. (2017), Figure 2.
- ``attacks_figure``: one curve per attack on shared axes: hidden and kept against eps (hide goal), or mIoU and
  pixel accuracy under attack against eps (untargeted goal).
- ``figure1``: the 11 panels of Fischer et al. (2017), Figure 1, for one image, from its ``figure1_<id>.npz``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
from matplotlib.artist import Artist
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from ..data.labels import CLASS_NAMES, colorize
from ..rundir import atomic_open
from .summary import class_phrase

__all__ = ["figure2", "figure1", "panels_figure", "attacks_figure", "FOOLED_COLOR", "PRESERVED_COLOR"]

FOOLED_COLOR = "#8b0000"  # dark red, as the paper
PRESERVED_COLOR = "#a9a9a9"  # light grey, as the paper
_METADATA = {"svg": {"Date": None}, "pdf": {"CreationDate": None, "ModDate": None}, "png": {}}


def _save(fig: Figure, stem: Path, formats: Sequence[str]) -> list[Path]:
    paths = []
    for fmt in formats:
        path = stem.with_suffix(f".{fmt}")
        with matplotlib.rc_context({"svg.hashsalt": "segattack"}), atomic_open(path) as fh:  # stable svg ids
            fig.savefig(fh, format=fmt, dpi=150, bbox_inches="tight", metadata=_METADATA.get(fmt, {}))
        paths.append(path)
    return paths


def _curve(ax: Any, rows: Sequence[Mapping[str, Any]], metric: str, color: str, style: str, label: str) -> None:
    pts = [(float(r["eps"]), r[f"{metric}_mean"], r[f"{metric}_std"]) for r in rows]
    pts = [p for p in pts if not math.isnan(p[1])]
    if not pts:
        return
    eps = np.array([p[0] for p in pts])
    mean = 100 * np.array([p[1] for p in pts])
    std = 100 * np.array([p[2] for p in pts])
    ax.fill_between(eps, np.clip(mean - std, 0, 100), np.clip(mean + std, 0, 100), color=color, alpha=0.25, lw=0)
    ax.plot(eps, mean, style, color=color, lw=2, marker="o", ms=3.5, label=label)


def figure2(
    summary: Sequence[Mapping[str, Any]],
    out_stem: str | os.PathLike[str],
    *,
    class_names: Sequence[str] = ("person",),
    formats: Sequence[str] = ("png", "svg", "pdf"),
) -> list[Path]:
    """Draw Figure 2 from summary rows (``summarize_results``) into ``<out_stem>.png/.svg/.pdf``; returns the paths.

    Left: mode ``full``. Right: ``posthoc`` (solid) and ``during`` (dashed) when present. Lines are means over images,
    bands +- one (population) standard deviation; eps in 8-bit levels. With several attacks, the first one's rows.
    """
    cls = class_phrase(class_names)
    first = next((r["attack"] for r in summary if "attack" in r), None)
    summary = [r for r in summary if r.get("attack", first) == first]
    fig = Figure(figsize=(10, 4))
    axes = fig.subplots(1, 2, sharey=True)
    panels = [
        (axes[0], ["full"], "noise on the entire image"),
        (axes[1], ["posthoc", "during"], f"noise restricted to {cls} pixels"),
    ]
    eps_all = sorted({float(r["eps"]) for r in summary})
    for ax, modes, title in panels:
        drawn = False
        for mode in modes:
            rows = sorted((r for r in summary if r["mode"] == mode), key=lambda r: float(r["eps"]))
            if not rows:
                continue
            style = "--" if mode == "during" else "-"
            suffix = {"full": "", "posthoc": " (post hoc)", "during": " (during attack)"}[mode]
            _curve(ax, rows, "preserved", PRESERVED_COLOR, style, f"background preserved{suffix}")
            _curve(ax, rows, "fooled", FOOLED_COLOR, style, f"{cls} pixels fooled{suffix}")
            drawn = True
        ax.set_title(title)
        ax.set_xlabel("eps (L-inf budget, 8-bit levels)")
        ax.set_ylim(0, 101)
        if eps_all:
            ax.set_xlim(0, max(eps_all) + 0.5)
            if len(eps_all) <= 12:
                ax.set_xticks(eps_all, [f"{e:g}" for e in eps_all])
        ax.grid(True, alpha=0.3)
        if drawn:
            handles, labels = ax.get_legend_handles_labels()
            handles.append(Patch(color="0.5", alpha=0.25))
            labels.append("± 1 std over images")
            ax.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, -0.2), fontsize=8, ncol=2)
        else:
            ax.text(0.5, 0.5, "not run", ha="center", va="center", transform=ax.transAxes, color="0.4")
    axes[0].set_ylabel("pixels (%)")
    n = max((int(r.get("fooled_count", 0)) for r in summary), default=0)
    fig.suptitle(f"Hiding {cls}: mean and std over {n} images")
    fig.tight_layout()
    return _save(fig, Path(out_stem), formats)


def attacks_figure(
    summary: Sequence[Mapping[str, Any]],
    out_stem: str | os.PathLike[str],
    *,
    goal: str = "hide",
    class_names: Sequence[str] = ("person",),
    formats: Sequence[str] = ("png", "svg"),
) -> list[Path]:
    """Compare attacks on shared axes (one colour per attack; the worst case over them in black).

    Hide goal: left, hidden (solid) and kept (dashed) for the perturbation on the whole image; right, restricted
    post hoc when run. Untargeted: left, mIoU under attack; right, mean pixel accuracy; eps 0 is the clean model.
    """
    from .summary import WORST

    cls = class_phrase(class_names)
    attacks = list(dict.fromkeys(r["attack"] for r in summary))
    colours = matplotlib.colormaps["tab10"]
    fig = Figure(figsize=(11, 4.2))
    axes = fig.subplots(1, 2, sharey=True)

    def colour(n: int, a: str) -> Any:
        return "black" if a == WORST else colours(n % 10)

    def look(a: str) -> dict[str, Any]:  # the worst case underneath, wide and faint, so equal curves stay visible
        return {"lw": 5, "alpha": 0.3, "zorder": 1} if a == WORST else {"lw": 2, "zorder": 2}

    eps_all = sorted({float(r["eps"]) for r in summary})
    if goal == "untargeted":
        for n, a in enumerate(attacks):
            rows = sorted(
                (r for r in summary if r["attack"] == a and r["mode"] == "full"), key=lambda r: float(r["eps"])
            )
            if not rows:
                continue
            for ax, key, clean in ((axes[0], "miou", "clean_miou"), (axes[1], "accuracy_mean", "clean_accuracy_mean")):
                xs = [0.0] + [float(r["eps"]) for r in rows]
                ys = [100 * rows[0][clean]] + [100 * r[key] for r in rows]
                ax.plot(xs, ys, "-", color=colour(n, a), marker="o", ms=3.5, label=a, **look(a))
        axes[0].set_title("mIoU under attack")
        axes[1].set_title("pixel accuracy under attack (mean over images)")
        axes[0].set_ylabel("%")
    else:
        panels = [
            (axes[0], "full", "noise on the entire image"),
            (axes[1], "posthoc", f"noise restricted to {cls} pixels"),
        ]
        for ax, mode, title in panels:
            drawn = False
            for n, a in enumerate(attacks):
                rows = sorted(
                    (r for r in summary if r["attack"] == a and r["mode"] == mode), key=lambda r: float(r["eps"])
                )
                pts = [(float(r["eps"]), r["fooled_mean"], r["preserved_mean"]) for r in rows if r["fooled_count"]]
                if not pts:
                    continue
                xs = [p[0] for p in pts]
                ax.plot(xs, [100 * p[1] for p in pts], "-", color=colour(n, a), marker="o", ms=3.5, **look(a),
                        label=f"{a}: hidden")  # fmt: skip
                ax.plot(xs, [100 * p[2] for p in pts], "--", color=colour(n, a), marker="s", ms=3, **look(a),
                        label=f"{a}: kept")  # fmt: skip
                drawn = True
            ax.set_title(title)
            if not drawn:
                ax.text(0.5, 0.5, "not run", ha="center", va="center", transform=ax.transAxes, color="0.4")
        axes[0].set_ylabel(f"{cls} pixels hidden / background kept (%)")
    for ax in axes:
        ax.set_xlabel("eps (L-inf budget, 8-bit levels)")
        ax.set_ylim(0, 101)
        ax.grid(True, alpha=0.3)
        if eps_all:
            ax.set_xlim(-0.3, max(eps_all) + 0.5)
    handles, labels = axes[0].get_legend_handles_labels()
    if not handles:
        handles, labels = axes[1].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(4, max(1, len(labels))), fontsize=8,
               bbox_to_anchor=(0.5, -0.02))  # fmt: skip
    fig.suptitle("Attacks compared" + (" (untargeted)" if goal == "untargeted" else f" (hiding {cls})"))
    fig.tight_layout(rect=(0, 0.08 + 0.04 * math.ceil(len(labels) / 4), 1, 1))
    return _save(fig, Path(out_stem), formats)


def _noise(adv: np.ndarray, image: np.ndarray) -> np.ndarray:
    """Perturbation shown as the paper does: 0.5 + 8 * noise (in [0, 1] units), clipped."""
    d = (adv.astype(np.float64) - image.astype(np.float64)) / 255
    return np.clip(0.5 + 8 * d, 0, 1)


def _difference(pred: np.ndarray, other: np.ndarray, hidden: np.ndarray) -> np.ndarray:
    """White where the predictions agree, dark red where a class pixel changed (wanted), black elsewhere."""
    out = np.full((*pred.shape, 3), 255, np.uint8)
    changed = pred != other
    out[changed & hidden] = (139, 0, 0)
    out[changed & ~hidden] = (0, 0, 0)
    return out


def panels_figure(data: Mapping[str, Any], *, title: str | None = None) -> Figure:
    """The 11 panels of the paper's Figure 1 from arrays (as saved in ``figure1_<id>.npz``):

    ``image``, ``adv``, ``adv_restricted`` (H, W, 3) uint8; ``target``, ``pred``, ``pred_adv``, ``pred_restricted``
    (H, W) class ids; ``class_ids``; ``eps`` (levels). Layout: left column original / target / prediction, middle
    the perturbation on the whole image, right the perturbation restricted to the class pixels.
    """
    image, adv, adv_r = data["image"], data["adv"], data["adv_restricted"]
    pred = np.asarray(data["pred"])
    hidden = np.isin(pred, np.asarray(data["class_ids"]))
    pred_adv, pred_r = np.asarray(data["pred_adv"]), np.asarray(data["pred_restricted"])

    def changed(p: np.ndarray) -> str:
        n = int(hidden.sum())
        fooled = 100 * float((hidden & ~np.isin(p, data["class_ids"])).sum()) / max(n, 1)
        kept = 100 * float(((p == pred) & ~hidden).sum()) / max(int((~hidden).sum()), 1)
        return f"{fooled:.0f}% hidden, {kept:.1f}% kept"

    panels: list[tuple[int, int, str, np.ndarray | None]] = [
        (0, 0, "(a) original image", image),
        (0, 1, "(b) adv. example", adv),
        (0, 2, "(c) adv. restricted", adv_r),
        (1, 1, "(d) adv. noise (×8)", _noise(adv, image)),
        (1, 2, "(e) adv. restricted noise (×8)", _noise(adv_r, image)),
        (2, 0, "(f) adv. target", colorize(data["target"])),
        (2, 1, "(g) pred. on adv.", colorize(pred_adv)),
        (2, 2, "(h) pred. on restricted adv.", colorize(pred_r)),
        (3, 0, "(i) prediction", colorize(pred)),
        (3, 1, f"(j) pred. vs. pred. on adv.\n{changed(pred_adv)}", _difference(pred, pred_adv, hidden)),
        (3, 2, f"(k) pred. vs. pred. rest. adv.\n{changed(pred_r)}", _difference(pred, pred_r, hidden)),
    ]
    h, w = pred.shape
    fig = Figure(figsize=(3 * 3.4, 4 * 3.4 * h / w + 1.6))
    axes = fig.subplots(4, 3)
    axes[1, 0].axis("off")
    for r, c, name, img in panels:
        axes[r, c].imshow(img, interpolation="nearest")
        axes[r, c].set_title(name, fontsize=9)
        axes[r, c].set_xticks([])
        axes[r, c].set_yticks([])
    present = sorted(set(np.unique(pred).tolist()) | set(np.unique(pred_adv).tolist()))
    handles: list[Artist] = [
        Patch(color=np.asarray(colorize(np.array([[k]])))[0, 0] / 255, label=_name(k)) for k in present if k < 255
    ]
    handles += [
        Line2D([], [], ls="", marker="s", color="#8b0000", label="(j,k) class pixel changed"),
        Line2D([], [], ls="", marker="s", color="black", label="(j,k) other pixel changed"),
    ]
    axes[1, 0].legend(handles=handles, loc="center", fontsize=7, frameon=False, ncol=1)
    if title is None:
        cls = class_phrase([_name(int(k)) for k in np.atleast_1d(data["class_ids"])])
        eps = float(data["eps"])
        attack = str(data.get("attack", "illm"))
        by = "" if attack == "illm" else f" with {attack}"
        title = f"{data.get('image_id', '')}: hiding {cls}{by} at eps = {eps:g} levels ({eps:g}/255)"
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def _name(k: int) -> str:
    return CLASS_NAMES[k] if 0 <= k < len(CLASS_NAMES) else str(k)


def figure1(npz_path: str | os.PathLike[str], out_path: str | os.PathLike[str] | None = None) -> Path:
    """Draw Figure 1 for one image from its ``figure1_<id>.npz`` into ``out_path`` (default: same stem, ``.png``)."""
    npz_path = Path(npz_path)
    with np.load(npz_path) as z:
        data = {k: z[k] for k in z.files}
    data["image_id"] = str(data.get("image_id", npz_path.stem))
    fig = panels_figure(data)
    out = Path(out_path) if out_path is not None else npz_path.with_suffix(".png")
    with atomic_open(out) as fh:
        fig.savefig(fh, format="png", dpi=120, bbox_inches="tight")
    return out
