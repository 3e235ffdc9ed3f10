"""The paper's figures, drawn from result files alone; no model is run. Figures are matplotlib ``Figure`` objects
drawn without pyplot, so importing this module chooses no backend and leaves the caller's matplotlib as it was.

- ``figure2``: mean and standard deviation over images of the percentage of class pixels fooled (dark red) and of
  background pixels preserved (light grey) against eps, for the perturbation on the whole image (left) and
  restricted to the class pixels (right), as Fischer et al. (2017), Figure 2.
- ``attacks_figure``: one curve per attack on shared axes: hidden and kept against eps (hide goal), or mIoU and
  pixel accuracy under attack against eps (untargeted goal).
- ``survival_figure``: hidden (solid) and kept (dashed) against eps after each image transform (one colour per
  transform), with the untransformed curve in black: how much of the attack survives JPEG, resizing, blur, noise.
- ``figure1``: the 11 panels of Fischer et al. (2017), Figure 1, for one image, from its ``figure1_<id>.npz``,
  in the colours and names of the model's classes (``label_colors``), with why the image was chosen.
"""

from __future__ import annotations

import hashlib
import math
import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
from matplotlib.artist import Artist
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from ..data.labels import CLASS_COLORS, CLASS_NAMES, IGNORE_INDEX, is_void, label_names
from ..rundir import DEFAULT_ATTACK, atomic_open
from .summary import NO_TRANSFORM, WORST, class_phrase

__all__ = [
    "figure2", "figure1", "panels_figure", "attacks_figure", "survival_figure", "label_colors", "FOOLED_COLOR",
    "PRESERVED_COLOR", "save_figure",
]  # fmt: skip

FOOLED_COLOR = "#8b0000"  # dark red, as the paper
PRESERVED_COLOR = "#a9a9a9"  # light grey, as the paper
_METADATA = {"svg": {"Date": None}, "pdf": {"CreationDate": None, "ModDate": None}, "png": {}}


def save_figure(fig: Figure, stem: Path, formats: Sequence[str]) -> list[Path]:
    """Write ``fig`` as ``stem.<format>`` for each of ``formats`` (``"png"``, ``"svg"``, ``"pdf"``), atomically and
    byte for byte reproducible (no dates, stable SVG ids); the paths written."""
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
    return save_figure(fig, Path(out_stem), formats)


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
    return save_figure(fig, Path(out_stem), formats)


def survival_figure(
    survival: Sequence[Mapping[str, Any]],
    out_stem: str | os.PathLike[str],
    *,
    class_names: Sequence[str] = ("person",),
    formats: Sequence[str] = ("png", "svg"),
) -> list[Path]:
    """Survival against eps from the survival summary (``summarize_survival``), first attack: one panel per mode run
    (whole image; restricted post hoc; restricted during), hidden (solid, circles) and kept (dashed, thin) per
    transform in its own colour, the untransformed attack in black underneath. Means over images; hidden and kept
    after a transform T are measured against the prediction of T(clean)."""
    cls = class_phrase(class_names)
    first = survival[0]["attack"] if survival else None
    rows_all = [r for r in survival if r["attack"] == first]
    modes = [m for m in ("full", "posthoc", "during") if any(r["mode"] == m for r in rows_all)] or ["full"]
    transforms = list(dict.fromkeys(r["transform"] for r in rows_all))
    others = [t for t in transforms if t != NO_TRANSFORM]
    colours = matplotlib.colormaps["tab10"]
    fig = Figure(figsize=(5.2 * len(modes) + 0.6, 4.4))
    axes = np.atleast_1d(fig.subplots(1, len(modes), sharey=True))
    titles = {"full": "noise on the entire image", "posthoc": f"restricted to {cls} pixels (post hoc)",
              "during": f"restricted to {cls} pixels (during)"}  # fmt: skip
    eps_all = sorted({float(r["eps"]) for r in rows_all})
    for ax, mode in zip(axes, modes, strict=True):
        for t in [NO_TRANSFORM, *others]:
            rows = sorted((r for r in rows_all if r["transform"] == t and r["mode"] == mode and r["fooled_count"]),
                          key=lambda r: float(r["eps"]))  # fmt: skip
            if not rows:
                continue
            xs = [float(r["eps"]) for r in rows]
            colour: Any
            look: dict[str, Any]
            if t == NO_TRANSFORM:
                colour, label, look = "black", "no transform", {"lw": 3.5, "alpha": 0.55, "zorder": 1}
            else:
                colour, label, look = colours(others.index(t) % 10), t, {"lw": 1.8, "zorder": 2}
            ax.plot(xs, [100 * r["fooled_mean"] for r in rows], "-", color=colour, marker="o", ms=3.5, label=label,
                    **look)  # fmt: skip
            ax.plot(xs, [100 * r["preserved_mean"] for r in rows], "--", color=colour, lw=1.0,
                    alpha=0.55 if t == NO_TRANSFORM else 0.8, zorder=look["zorder"])  # fmt: skip
        ax.set_title(titles[mode])
        ax.set_xlabel("eps (L-inf budget, 8-bit levels)")
        ax.set_ylim(0, 101)
        ax.grid(True, alpha=0.3)
        if eps_all:
            ax.set_xlim(0, max(eps_all) + 0.5)
            if len(eps_all) <= 12:
                ax.set_xticks(eps_all, [f"{e:g}" for e in eps_all])
    axes[0].set_ylabel(f"{cls} pixels hidden / background kept (%)")
    handles, labels = axes[0].get_legend_handles_labels()
    handles += [Line2D([], [], color="0.3", ls="-", marker="o", ms=3.5), Line2D([], [], color="0.3", ls="--", lw=1)]
    labels += [f"{cls} pixels hidden", "background kept"]
    fig.legend(handles, labels, loc="lower center", ncol=min(5, len(labels)), fontsize=8, bbox_to_anchor=(0.5, 0.0))
    rows_n = math.ceil(len(labels) / min(5, len(labels)))
    n = max((int(r.get("fooled_count", 0)) for r in rows_all), default=0)
    fig.suptitle(f"Does hiding {cls} survive image transforms? Mean over {n} images; after a transform T, against "
                 "the prediction on T(clean)", fontsize=10)  # fmt: skip
    fig.tight_layout(rect=(0, 0.05 + 0.045 * rows_n, 1, 1))
    return save_figure(fig, Path(out_stem), formats)


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


_CITYSCAPES_COLORS = {n: c for n, c in zip(CLASS_NAMES, CLASS_COLORS, strict=True)}


def _hashed_color(name: str) -> tuple[int, int, int]:
    """A colour of its own for a class name, from its SHA-256, kept away from black and white."""
    b = hashlib.sha256(name.encode("utf-8")).digest()
    r, g, bl = (40 + v * 176 // 255 for v in b[:3])
    return (r, g, bl)


def label_colors(label_names: Sequence[str]) -> np.ndarray:
    """(K, 3) uint8 colours for the classes named ``label_names`` (in output order).

    A Cityscapes name (any case, ``_`` for a space) takes its Cityscapes colour; a void class (``void``,
    ``unlabeled``, ``unlabelled``, ``ignore``) is black; the other classes take matplotlib's ``tab20`` colours in
    order, then a colour from a hash of their name. The same names always give the same colours.

    >>> label_colors(["person", "void", "cat"]).tolist()
    [[220, 20, 60], [0, 0, 0], [31, 119, 180]]
    """
    tab = matplotlib.colormaps["tab20"]
    out = np.zeros((len(label_names), 3), np.uint8)
    others = 0
    for k, name in enumerate(label_names):
        key = str(name).strip().lower().replace("_", " ")
        if is_void(name):
            continue
        if key in _CITYSCAPES_COLORS:
            out[k] = _CITYSCAPES_COLORS[key]
        elif others < tab.N:
            out[k] = np.round(np.asarray(tab(others)[:3]) * 255).astype(np.uint8)
            others += 1
        else:
            out[k] = _hashed_color(str(name))
    return out


def _colorize(label: np.ndarray, colors: np.ndarray) -> np.ndarray:
    """(H, W) class ids -> (H, W, 3) uint8 in ``colors``; ids outside them (ignore, 255) black."""
    label = np.asarray(label).astype(np.int64)
    inside = (label >= 0) & (label < len(colors))
    out = np.zeros((*label.shape, 3), np.uint8)
    out[inside] = colors[label[inside]]
    return out


def _figure1_names(data: Mapping[str, Any], present: Sequence[int]) -> list[str]:
    """The class names of a Figure 1 file: its ``label_names``, or (files written before they were recorded) the
    Cityscapes names, with plain indices for ids beyond them (but 255, ignore)."""
    if "label_names" in data:
        return [str(n) for n in np.atleast_1d(data["label_names"]).tolist()]
    names = list(label_names(None))
    top = max((k for k in present if k != IGNORE_INDEX), default=-1)
    return names + [str(k) for k in range(len(names), top + 1)]


def _legend_handles(names: Sequence[str], colors: np.ndarray, present: Sequence[int]) -> list[Artist]:
    handles: list[Artist] = []
    seen: set[tuple[str, tuple[int, ...]]] = set()
    for k in present:
        if not 0 <= k < len(names):
            continue
        label = "void" if is_void(names[k]) else names[k]
        key = (label, tuple(int(v) for v in colors[k]))
        if key in seen:
            continue
        seen.add(key)
        handles.append(Patch(facecolor=colors[k] / 255, edgecolor="0.6", linewidth=0.5, label=label))
    handles += [
        Line2D([], [], ls="", marker="s", color="#8b0000", label="(j,k) class pixel changed"),
        Line2D([], [], ls="", marker="s", color="black", label="(j,k) other pixel changed"),
    ]
    return handles


_LEGEND_FONT = 7
_LEGEND_PAD = 0.12  # inches between the legend and the figure's bottom edge, and between it and the grid


def _crowded(fig: Figure, renderer: Any) -> bool:
    """Whether a panel's title runs into another panel (tight_layout lays out cells, and images with a fixed aspect
    sit inside them, so a figure too short for its titles can still overlap)."""
    axes = [ax for ax in fig.axes if ax.axison]
    boxes = [ax.get_window_extent(renderer) for ax in axes]
    for ax in axes:
        title = ax.title.get_window_extent(renderer)
        if any(other is not ax and title.overlaps(box) for other, box in zip(axes, boxes, strict=True)):
            return True
    return False


def _legend_below(fig: Figure, handles: list[Artist], height: float) -> None:
    """Put the legend below the whole grid, as many columns as fit the figure's width, and make the figure taller
    by what it needs (measured with the Agg renderer), so that it overlaps no panel and no title; the grid itself
    grows while a title runs into a panel."""
    canvas = fig.canvas if isinstance(fig.canvas, FigureCanvasAgg) else FigureCanvasAgg(fig)
    renderer = canvas.get_renderer()
    width_px = fig.get_figwidth() * fig.dpi * 0.98
    ncol = len(handles)
    while True:
        legend = fig.legend(handles=handles, loc="lower center", ncol=ncol, fontsize=_LEGEND_FONT, frameon=False,
                            bbox_to_anchor=(0.5, 0.0), borderaxespad=0.0)  # fmt: skip
        box = legend.get_window_extent(renderer)
        if box.width <= width_px or ncol == 1:
            break
        legend.remove()
        ncol = max(1, min(ncol - 1, int(ncol * width_px / box.width)))
    reserve = box.height / fig.dpi + 2 * _LEGEND_PAD
    for _ in range(8):
        total = height + reserve
        fig.set_size_inches(fig.get_figwidth(), total)
        legend.set_bbox_to_anchor((0.5, _LEGEND_PAD / total), transform=fig.transFigure)
        with warnings.catch_warnings():  # "cannot make Axes height small enough": grown below
            warnings.simplefilter("ignore", UserWarning)
            fig.tight_layout(rect=(0, reserve / total, 1, 1))
        canvas.draw()
        if not _crowded(fig, canvas.get_renderer()):
            break
        height += 0.4


def panels_figure(data: Mapping[str, Any], *, title: str | None = None) -> Figure:
    """The 11 panels of the paper's Figure 1 from arrays (as saved in ``figure1_<id>.npz``):

    ``image``, ``adv``, ``adv_restricted`` (H, W, 3) uint8; ``target``, ``pred``, ``pred_adv``, ``pred_restricted``
    (H, W) class ids; ``class_ids``; ``eps`` (levels); optional ``label_names`` (the names of all the model's
    classes; the Cityscapes names by default), ``reason`` (why the image was chosen, a second title line),
    ``image_id`` and ``attack``. Layout: left column original / target / prediction, middle the perturbation on
    the whole image, right the perturbation restricted to the class pixels; the legend of the classes present
    below the grid.
    """
    image, adv, adv_r = data["image"], data["adv"], data["adv_restricted"]
    pred = np.asarray(data["pred"])
    class_ids = np.atleast_1d(np.asarray(data["class_ids"]))
    hidden = np.isin(pred, class_ids)
    pred_adv, pred_r = np.asarray(data["pred_adv"]), np.asarray(data["pred_restricted"])
    target = np.asarray(data["target"])
    present = sorted(
        set(np.unique(pred).tolist()) | set(np.unique(pred_adv).tolist()) | set(np.unique(pred_r).tolist())
        | set(np.unique(target).tolist())
    )  # fmt: skip
    names = _figure1_names(data, present)
    colors = label_colors(names)

    def changed(p: np.ndarray) -> str:
        n = int(hidden.sum())
        fooled = 100 * float((hidden & ~np.isin(p, class_ids)).sum()) / max(n, 1)
        kept = 100 * float(((p == pred) & ~hidden).sum()) / max(int((~hidden).sum()), 1)
        return f"{fooled:.1f}% hidden, {kept:.1f}% kept"  # as the title: 99.5% is not 100%

    panels: list[tuple[int, int, str, np.ndarray | None]] = [
        (0, 0, "(a) original image", image),
        (0, 1, "(b) adv. example", adv),
        (0, 2, "(c) adv. restricted", adv_r),
        (1, 1, "(d) adv. noise (×8)", _noise(adv, image)),
        (1, 2, "(e) adv. restricted noise (×8)", _noise(adv_r, image)),
        (2, 0, "(f) adv. target", _colorize(target, colors)),
        (2, 1, "(g) pred. on adv.", _colorize(pred_adv, colors)),
        (2, 2, "(h) pred. on restricted adv.", _colorize(pred_r, colors)),
        (3, 0, "(i) prediction", _colorize(pred, colors)),
        (3, 1, f"(j) pred. vs. pred. on adv.\n{changed(pred_adv)}", _difference(pred, pred_adv, hidden)),
        (3, 2, f"(k) pred. vs. pred. rest. adv.\n{changed(pred_r)}", _difference(pred, pred_r, hidden)),
    ]
    if title is None:
        cls = class_phrase([names[int(k)] if 0 <= int(k) < len(names) else str(int(k)) for k in class_ids])
        eps = float(data["eps"])
        attack = str(data.get("attack", DEFAULT_ATTACK))
        by = "" if attack == DEFAULT_ATTACK else f" with {attack}"
        title = f"{data.get('image_id', '')}: hiding {cls}{by} at eps = {eps:g} levels ({eps:g}/255)"
        reason = str(data["reason"]) if "reason" in data else ""
        if reason:
            title += f"\n{reason}"
    h, w = pred.shape
    height = 4 * 3.4 * h / w + 1.6 + 0.3 * title.count("\n")  # each further title line: room, or panels crowd
    fig = Figure(figsize=(3 * 3.4, height))
    FigureCanvasAgg(fig)
    axes = fig.subplots(4, 3)
    axes[1, 0].axis("off")  # the paper's empty cell (its legend goes below the grid, where any number fits)
    for r, c, name, img in panels:
        axes[r, c].imshow(img, interpolation="nearest")
        axes[r, c].set_title(name, fontsize=9)
        axes[r, c].set_xticks([])
        axes[r, c].set_yticks([])
    fig.suptitle(title)
    _legend_below(fig, _legend_handles(names, colors, present), height)
    return fig


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
