"""The report of a model comparison (``segattack compare``), drawn from its files alone; no model is run.

A comparison directory (written by ``segattack.compare.compare_models``) holds ``compare.json`` (the configuration
and the models), ``models/<name>/`` (one experiment directory per model), ``clean.json`` (each model's clean mIoU)
and ``transfer.jsonl`` (per source model and image, hidden and kept on every target model). From them:

- ``compare.png/.svg``: hidden (left) and kept (right) against eps, one colour per model, one line style per mode
  (solid: whole image, dashed: restricted post hoc, dotted: restricted during the attack); clean mIoU in the legend;
- ``transfer.png`` and ``transfer.csv``: the transfer matrix at the transfer budget, rows = the model the adversarial
  images were crafted on (source), columns = the model that predicts them (target), the diagonal = white-box;
- ``report.html``: one self-contained page with both figures, the matrix as a table and one sentence per model.

Transfer measures use the target's own clean prediction as the reference: hidden = share of the pixels the target
predicts as the class on the clean image that it no longer predicts as the class on the adversarial one; kept =
share of the target's other pixels whose prediction is unchanged (``segattack.metrics.hiding_metrics``).
"""

from __future__ import annotations

import csv
import html
import json
import logging
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle

from ..errors import RunDirError
from ..formatting import num, pct
from ..metrics import summarize
from ..rundir import DEFAULT_ATTACK, MODES, REPORT_FILE, atomic_open, read_jsonl, write_text
from .figures import save_figure
from .page import PAGE_CSS, esc, img_tag
from .summary import class_phrase, summarize_results

__all__ = [
    "COMPARE_FILE",
    "CLEAN_FILE",
    "TRANSFER_FILE",
    "TRANSFER_CSV",
    "MODELS_DIR",
    "CompareReport",
    "read_compare_config",
    "is_transfer_row",
    "read_transfer_rows",
    "transfer_matrix",
    "compare_figure",
    "transfer_figure",
    "write_transfer_csv",
    "compare_sentences",
    "render_compare_html",
    "write_compare_report",
]

log = logging.getLogger(__name__)

COMPARE_FILE = "compare.json"
CLEAN_FILE = "clean.json"
TRANSFER_FILE = "transfer.jsonl"
TRANSFER_CSV = "transfer.csv"
MODELS_DIR = "models"
#: Files the compare report writes, as stems (``compare`` as .png and .svg, ``transfer`` as .png).
COMPARE_STEMS = ("compare", "transfer")
_STYLES = {"full": "-", "posthoc": "--", "during": ":"}
_MODE_WORDS = {"full": "whole image", "posthoc": "restricted post hoc", "during": "restricted during the attack"}
_TRANSFER_KEYS = frozenset({"source", "index", "image_id", "status", "targets"})


@dataclass(frozen=True)
class CompareReport:
    """What ``write_compare_report`` produced.

    ``matrix[(source, target)]``: a cell of ``transfer_matrix``; ``summaries[name]``: the summary rows of the model's
    experiment (``summarize_results``); ``clean[name]``: clean mIoU in [0, 1] or None (no ground truth).
    """

    html_path: Path
    figures: list[Path]
    csv_path: Path
    sentences: list[str]
    models: list[str]
    matrix: dict[tuple[str, str], dict[str, Any]]
    summaries: dict[str, list[dict[str, Any]]]
    clean: dict[str, float | None]
    transfer_eps: float


def read_compare_config(out_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """``compare.json`` of a comparison directory (``RunDirError`` if missing or not a JSON object)."""
    path = Path(out_dir) / COMPARE_FILE
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RunDirError(f"{out_dir} holds no {COMPARE_FILE}: is it a `segattack compare` directory?") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise RunDirError(f"{path} is not valid JSON ({err}); rerun the comparison with --overwrite") from None
    if not isinstance(config, dict) or not isinstance(config.get("models"), list):
        raise RunDirError(f"{path} must hold a JSON object with a list of models; rerun with --overwrite")
    return config


def is_transfer_row(row: Any) -> bool:
    return isinstance(row, dict) and _TRANSFER_KEYS <= row.keys() and isinstance(row["targets"], dict)


def read_transfer_rows(out_dir: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The rows of ``transfer.jsonl`` (a torn or corrupt line skipped with a warning); read-only."""
    return read_jsonl(Path(out_dir) / TRANSFER_FILE, accept=is_transfer_row)[0]


def transfer_matrix(
    rows: Sequence[Mapping[str, Any]], models: Sequence[str], *, models_sha256: str | None = None
) -> dict[tuple[str, str], dict[str, Any]]:
    """Cells ``(source, target)`` over the rows of ``transfer.jsonl`` of the current models.

    Each cell: ``source``, ``target``, ``white_box`` (source == target), ``images`` (rows of the source),
    ``attacked`` (status ``ok``), ``fooled_mean/_std/_count`` and ``preserved_mean/_std/_count`` over the attacked
    images (fractions; std is the population std; an image without the class in the target's clean prediction has
    no ``fooled`` and is left out of it). ``models_sha256``: only rows written for these models count.
    """
    per: dict[str, list[Mapping[str, Any]]] = {m: [] for m in models}
    seen: set[tuple[str, int]] = set()
    for r in rows:
        src = str(r.get("source"))
        if src not in per or (models_sha256 is not None and r.get("models_sha256") != models_sha256):
            continue
        key = (src, int(r["index"]))
        if key in seen:
            continue
        seen.add(key)
        per[src].append(r)
    cells: dict[tuple[str, str], dict[str, Any]] = {}
    for a in models:
        ok = [r for r in per[a] if r.get("status") == "ok"]
        for b in models:
            vals = [r["targets"].get(b) or {} for r in ok]
            fooled = summarize([num(v.get("fooled")) for v in vals])
            kept = summarize([num(v.get("preserved")) for v in vals])
            cells[(a, b)] = {
                "source": a, "target": b, "white_box": a == b, "images": len(per[a]), "attacked": len(ok),
                "fooled_mean": fooled.mean, "fooled_std": fooled.std, "fooled_count": fooled.count,
                "preserved_mean": kept.mean, "preserved_std": kept.std, "preserved_count": kept.count,
            }  # fmt: skip
    return cells


def _lead_rows(summary: Sequence[Mapping[str, Any]], attack: str, eps: float) -> dict[str, Mapping[str, Any]]:
    """Summary rows at ``eps`` by mode, for ``attack``."""
    return {
        str(r["mode"]): r
        for r in summary
        if str(r.get("attack") or DEFAULT_ATTACK) == attack and float(r["eps"]) == float(eps)
    }


def _model_label(name: str, miou: float | None) -> str:
    return f"{name} (clean mIoU {pct(miou)})" if miou is not None else f"{name} (clean mIoU n/a)"


def compare_figure(
    summaries: Mapping[str, Sequence[Mapping[str, Any]]],
    clean: Mapping[str, float | None],
    out_stem: str | os.PathLike[str],
    *,
    attack: str = DEFAULT_ATTACK,
    class_names: Sequence[str] = ("person",),
    formats: Sequence[str] = ("png", "svg"),
) -> list[Path]:
    """Hidden (left) and kept (right) against eps (8-bit levels) for every model on shared axes: one colour per
    model, solid = whole image, dashed = restricted post hoc, dotted = restricted during; means over images.
    Writes ``<out_stem>.png`` and ``.svg``; returns the paths."""
    cls = class_phrase(class_names)
    colours = matplotlib.colormaps["tab10"]
    fig = Figure(figsize=(11.5, 4.6))
    ax_f, ax_p = fig.subplots(1, 2, sharex=True)
    eps_all: set[float] = set()
    kept_low = 100.0
    modes_drawn: list[str] = []
    model_handles: list[Line2D] = []
    for n, (name, summary) in enumerate(summaries.items()):
        colour = colours(n % 10)
        for mode in MODES:
            rows = sorted(
                (r for r in summary if str(r.get("attack") or DEFAULT_ATTACK) == attack and r["mode"] == mode),
                key=lambda r: float(r["eps"]),
            )
            pts = [(float(r["eps"]), num(r["fooled_mean"]), num(r["preserved_mean"])) for r in rows]
            pts = [p for p in pts if not math.isnan(p[1])]
            if not pts:
                continue
            if mode not in modes_drawn:
                modes_drawn.append(mode)
            xs = [p[0] for p in pts]
            eps_all.update(xs)
            style = _STYLES.get(mode, "-")
            ax_f.plot(xs, [100 * p[1] for p in pts], style, color=colour, lw=2, marker="o", ms=3.5)
            kept = [100 * p[2] for p in pts if not math.isnan(p[2])]
            if kept:
                kept_low = min(kept_low, *kept)
                ax_p.plot([p[0] for p in pts if not math.isnan(p[2])], kept, style, color=colour, lw=2, marker="s",
                          ms=3)  # fmt: skip
        model_handles.append(Line2D([], [], color=colour, lw=2.5, label=_model_label(name, clean.get(name))))
    ax_f.set_title(f"{cls} pixels hidden")
    ax_f.set_ylabel(f"% of {cls} pixels of the clean prediction")
    ax_f.set_ylim(0, 101)
    ax_p.set_title("background kept")
    ax_p.set_ylabel("% of the other pixels unchanged")
    low = 0.0 if kept_low < 10 else 5 * math.floor((kept_low - 2) / 5)
    ax_p.set_ylim(low, 100.5)
    for ax in (ax_f, ax_p):
        ax.set_xlabel("eps (L-inf budget, 8-bit levels)")
        ax.grid(True, alpha=0.3)
        if eps_all:
            ax.set_xlim(0, max(eps_all) + 0.5)
            if len(eps_all) <= 12:
                ax.set_xticks(sorted(eps_all), [f"{e:g}" for e in sorted(eps_all)])
        else:
            ax.text(0.5, 0.5, f"no image with {cls} pixels", ha="center", va="center", transform=ax.transAxes,
                    color="0.4")  # fmt: skip
    style_handles = [Line2D([], [], color="0.2", lw=2, ls=_STYLES[m], label=_MODE_WORDS[m]) for m in modes_drawn]
    ncol = min(3, max(1, len(model_handles)))
    legend_rows = math.ceil(len(model_handles) / ncol)
    fig.legend(handles=model_handles, loc="lower center", ncol=ncol, fontsize=8.5, frameon=False,
               bbox_to_anchor=(0.5, 0.055))  # fmt: skip
    if style_handles:
        fig.legend(handles=style_handles, loc="lower center", ncol=len(style_handles), fontsize=8.5, frameon=False,
                   bbox_to_anchor=(0.5, 0.0))  # fmt: skip
    fig.suptitle(f"Hiding {cls}: {len(summaries)} models compared ({attack}; mean over images)")
    fig.tight_layout(rect=(0, 0.1 + 0.045 * legend_rows, 1, 1))
    return save_figure(fig, Path(out_stem), formats)


def transfer_figure(
    matrix: Mapping[tuple[str, str], Mapping[str, Any]],
    models: Sequence[str],
    out_stem: str | os.PathLike[str],
    *,
    eps: float,
    class_names: Sequence[str] = ("person",),
    formats: Sequence[str] = ("png",),
) -> list[Path]:
    """Two annotated heatmaps, hidden (left, dark red) and kept (right, grey) in %: rows = the model the adversarial
    images were crafted on, columns = the model predicting them; the white-box diagonal is outlined."""
    cls = class_phrase(class_names)
    n = len(models)
    side = max(2.6, 0.95 * n + 1.4)
    fig = Figure(figsize=(2 * side + 1.2, 0.8 * side + 1.2))
    axes = fig.subplots(1, 2)
    kept_all = [num(matrix[(a, b)]["preserved_mean"]) for a in models for b in models]
    kept_fin = [v for v in kept_all if not math.isnan(v)]
    kept_lo = min(50.0, 10 * math.floor(10 * min(kept_fin))) if kept_fin else 50.0
    panels = [
        (axes[0], "fooled", f"{cls} pixels hidden (%)", "Reds", 0.0),
        (axes[1], "preserved", "background kept (%)", "Greys", kept_lo),
    ]
    for ax, key, title, cmap_name, vmin in panels:
        values = np.array([[100 * num(matrix[(a, b)][f"{key}_mean"]) for b in models] for a in models])
        cmap = matplotlib.colormaps[cmap_name].with_extremes(bad="#f0f0f0")
        im = ax.imshow(np.ma.masked_invalid(values), cmap=cmap, vmin=vmin, vmax=100, aspect="equal")
        for i, a in enumerate(models):
            for j, b in enumerate(models):
                cell = matrix[(a, b)]
                v = values[i, j]
                if math.isnan(v):
                    ax.text(j, i, "–", ha="center", va="center", color="0.45", fontsize=10)
                    continue
                dark = (v - vmin) / max(1e-9, 100 - vmin) > 0.55
                s = num(cell[f"{key}_std"])
                sub = "" if math.isnan(s) else f"\n± {100 * s:.1f}"
                ax.text(j, i, f"{v:.1f}{sub}", ha="center", va="center", fontsize=9 if n <= 5 else 7,
                        color="white" if dark else "black", linespacing=1.1)  # fmt: skip
            ax.add_patch(Rectangle((i - 0.5, i - 0.5), 1, 1, fill=False, lw=2.2, ec="#1f4e9c"))
        ax.set_xticks(range(n), models, rotation=30 if max(map(len, models)) > 8 else 0, ha="right" if max(
            map(len, models)) > 8 else "center", fontsize=8.5)  # fmt: skip
        ax.set_yticks(range(n), models, fontsize=8.5)
        ax.set_xlabel("predicted by (target)")
        ax.set_ylabel("crafted on (source)")
        ax.set_title(title, fontsize=10.5)
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    fig.suptitle(f"Transfer at eps = {eps:g}: adversarial images of the row's model, predicted by the column's "
                 "(outlined: white-box)", fontsize=10.5)  # fmt: skip
    fig.tight_layout()
    return save_figure(fig, Path(out_stem), formats)


_CSV_FIELDS = (
    "source", "target", "white_box", "eps", "images", "attacked", "fooled_mean", "fooled_std", "fooled_count",
    "preserved_mean", "preserved_std", "preserved_count",
)  # fmt: skip


def write_transfer_csv(
    matrix: Mapping[tuple[str, str], Mapping[str, Any]],
    models: Sequence[str],
    path: str | os.PathLike[str],
    *,
    eps: float,
) -> Path:
    """``transfer.csv``: one line per (source, target) cell, n x n lines, rates as fractions in [0, 1] (NaN as an
    empty cell), eps in 8-bit levels."""
    path = Path(path)
    with atomic_open(path, "w") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(_CSV_FIELDS))
        writer.writeheader()
        for a in models:
            for b in models:
                cell = {**matrix[(a, b)], "eps": f"{eps:g}"}
                writer.writerow({
                    k: ("" if isinstance(v, float) and math.isnan(v) else f"{v:.6g}" if isinstance(v, float) else v)
                    for k, v in ((k, cell[k]) for k in _CSV_FIELDS)
                })  # fmt: skip
    return path


def compare_sentences(
    models: Sequence[str],
    summaries: Mapping[str, Sequence[Mapping[str, Any]]],
    clean: Mapping[str, float | None],
    matrix: Mapping[tuple[str, str], Mapping[str, Any]],
    *,
    attack: str,
    eps: float,
    class_names: Sequence[str] = ("person",),
) -> list[str]:
    """One sentence per model, e.g. ``"deeplabv3-synth: clean mIoU 71.2%; at eps 10 hides 93.1 ± 4.0% of person
    pixels while keeping 97.9% of the background; its examples transfer to fcn2s-synth-w8-r32 hiding 20.4%."``"""
    cls = class_phrase(class_names)
    out = []
    for a in models:
        miou = clean.get(a)
        parts = [f"{a}: clean mIoU {pct(miou)}" + ("" if miou is not None else " (no ground truth)")]
        row = _lead_rows(summaries.get(a, ()), attack, eps).get("full")
        if row is None or not row.get("fooled_count"):
            parts.append(f"at eps {eps:g} no image had {cls} pixels to hide")
        else:
            f, s = num(row["fooled_mean"]), num(row["fooled_std"])
            parts.append(
                f"at eps {eps:g} hides {100 * f:.1f} ± {100 * s:.1f}% of {cls} pixels while keeping "
                f"{pct(row['preserved_mean'])} of the background"
            )
        others = [b for b in models if b != a and not math.isnan(num(matrix[(a, b)]["fooled_mean"]))]
        others.sort(key=lambda b: -num(matrix[(a, b)]["fooled_mean"]))
        if others:
            parts.append(
                "its examples transfer "
                + ", ".join(f"to {b} hiding {pct(matrix[(a, b)]['fooled_mean'])}" for b in others)
            )
        out.append("; ".join(parts) + ".")
    return out


def _cell_html(cell: Mapping[str, Any]) -> str:
    f, s, p = num(cell["fooled_mean"]), num(cell["fooled_std"]), num(cell["preserved_mean"])
    if math.isnan(f):
        return "<td>–</td>"
    std = "" if math.isnan(s) else f" <small>± {100 * s:.1f}</small>"
    kept = "" if math.isnan(p) else f"<br><small>kept {100 * p:.1f}</small>"
    cls = ' class="wb"' if cell["white_box"] else ""
    return f"<td{cls}><b>{100 * f:.1f}</b>{std}{kept}</td>"


def render_compare_html(
    config: Mapping[str, Any],
    models: Sequence[str],
    summaries: Mapping[str, Sequence[Mapping[str, Any]]],
    clean: Mapping[str, float | None],
    matrix: Mapping[tuple[str, str], Mapping[str, Any]],
    lines: Sequence[str],
    compare_png: Path | None,
    transfer_png: Path | None,
) -> str:
    """The comparison page as a string (images embedded, no script), in the style of ``report.html``."""
    cmp: Mapping[str, Any] = config.get("compare", {})
    names = cmp.get("class_names") or ["person"]
    cls = class_phrase(names)
    attack = str((cmp.get("attack") or {}).get("name") or DEFAULT_ATTACK)
    eps = num(cmp.get("transfer_eps"))
    dirs = {m["name"]: m.get("dir") for m in config.get("models", []) if isinstance(m, Mapping)}
    specs = {m["name"]: m.get("spec") for m in config.get("models", []) if isinstance(m, Mapping)}
    title = f"Hiding {html.escape(cls)} pixels: {len(models)} models compared"
    css = PAGE_CSS + "td.wb{outline:2px solid #1f4e9c;outline-offset:-2px}"
    sections = [("models", "Models"), ("curves", "Hidden and kept"), ("transfer", "Transfer"), ("config", "Config")]
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>segattack compare: {title}</title><style>{css}</style></head><body>",
        f"<h1>{title}<small>adversarial examples for semantic segmentation · segattack compare</small></h1>",
        "<nav>" + "".join(f'<a href="#{a}">{t}</a>' for a, t in sections) + "</nav>",
        '<section class="headline" id="headline"><p class="lede">At <b>eps = '
        f"{eps:g}</b> ({eps:g}/255 in L-inf), attack <b>{esc(attack)}</b>, on "
        f"<code>{esc(cmp.get('data') or 'the data set given from Python')}</code> ({esc(cmp.get('images', '?'))} "
        'images):</p><ul class="words">' + "".join(f"<li>{html.escape(s)}</li>" for s in lines) + "</ul>"
        '<p class="def"><b>hidden</b>: share of the pixels the model predicts as '
        f"{esc(cls)} on the clean image that it no longer predicts as {esc(cls)} on the adversarial one; "
        "<b>kept</b>: share of its other pixels whose prediction is unchanged; means ± population std over the "
        "images with the class. <b>Transfer</b>: the adversarial images crafted on one model (whole image), "
        "predicted by another, against that model's own clean prediction. Reproduction of Fischer, Kumar, Metzen "
        "and Brox (2017), <i>Adversarial Examples for Semantic Image Segmentation</i>.</p></section>",
    ]
    heads = ["model", "spec", "clean mIoU %", "hidden %", "kept %", "hidden % (post hoc)", "kept % (post hoc)",
             "images with class", "report"]  # fmt: skip
    parts.append(f'<h2 id="models">Models <small>(eps = {eps:g})</small></h2><div class="scroll"><table><thead><tr>')
    parts.append("".join(f'<th class="l">{h}</th>' if h in ("model", "spec") else f"<th>{h}</th>" for h in heads))
    parts.append("</tr></thead><tbody>")
    for m in models:
        rows = _lead_rows(summaries.get(m, ()), attack, eps)
        full, post = rows.get("full", {}), rows.get("posthoc", {})

        def pm(r: Mapping[str, Any], key: str) -> str:
            v, s = num(r.get(f"{key}_mean")), num(r.get(f"{key}_std"))
            if math.isnan(v):
                return "–"
            return f"{100 * v:.1f}" + ("" if math.isnan(s) else f" <small>± {100 * s:.1f}</small>")

        miou = clean.get(m)
        link = dirs.get(m)
        report = f'<a href="{esc(link)}/{REPORT_FILE}">{esc(link)}/</a>' if link else "–"
        parts.append(
            f'<tr><td class="l"><b>{esc(m)}</b></td><td class="l"><code>{esc(specs.get(m) or "–")}</code></td>'
            f"<td>{'–' if miou is None else f'{100 * miou:.1f}'}</td><td>{pm(full, 'fooled')}</td>"
            f"<td>{pm(full, 'preserved')}</td><td>{pm(post, 'fooled')}</td><td>{pm(post, 'preserved')}</td>"
            f"<td>{esc(full.get('ok', '–'))}</td><td class='l'>{report}</td></tr>"
        )
    parts.append("</tbody></table></div>")
    parts.append(
        '<p class="note"><b>clean mIoU</b>: against the ground truth of these images (Cityscapes rule: IoU per class '
        "over the data set, mean over the classes present). Each model's own report (Figure 2, summary per eps, "
        "gallery) is in its experiment directory.</p>"
    )
    parts.append('<h2 id="curves">Hidden and kept against eps</h2>')
    if compare_png is not None and compare_png.exists():
        parts.append(
            f'<figure class="fig">{img_tag(compare_png, "models compared")}<figcaption>Share of {html.escape(cls)} '
            "pixels hidden (left) and of background kept (right) against eps, mean over images; one colour per "
            "model (its clean mIoU in the legend), solid: perturbation on the whole image, dashed: restricted to "
            f"the {html.escape(cls)} pixels afterwards.</figcaption></figure>"
        )
    parts.append(f'<h2 id="transfer">Transfer <small>(eps = {eps:g}, whole image)</small></h2>')
    if transfer_png is not None and transfer_png.exists():
        parts.append(
            f'<figure class="fig">{img_tag(transfer_png, "transfer matrix")}<figcaption>Rows: the model the '
            "adversarial images were crafted on; columns: the model predicting them, measured against its own "
            "clean prediction. The outlined diagonal is the white-box attack.</figcaption></figure>"
        )
    parts.append('<div class="scroll"><table><thead><tr><th class="l">crafted on \\ predicted by</th>')
    parts.append("".join(f"<th>{esc(b)}</th>" for b in models) + "<th>images attacked</th></tr></thead><tbody>")
    for a in models:
        cells = "".join(_cell_html(matrix[(a, b)]) for b in models)
        parts.append(f'<tr><td class="l"><b>{esc(a)}</b></td>{cells}<td>{matrix[(a, a)]["attacked"]}</td></tr>')
    parts.append("</tbody></table></div>")
    parts.append(
        f'<p class="note">Each cell: % of the target\'s {html.escape(cls)} pixels hidden ± population std over '
        "the images attacked on the source, and % of its background kept. Outlined: white-box (for a "
        "deterministic attack equal to the model's own experiment at this eps). Also in <code>transfer.csv</code>."
        "</p>"
    )
    parts.append(
        '<h2 id="config">Configuration</h2><details><summary><code>compare.json</code></summary><pre>'
        + html.escape(json.dumps(config, indent=2))
        + "</pre></details></body></html>\n"
    )
    return "\n".join(parts)


def _read_clean(out: Path, models: Mapping[str, str]) -> dict[str, float | None]:
    """Clean mIoU per model from ``clean.json`` (None where the model's entry is missing, stale or has none)."""
    try:
        data = json.loads((out / CLEAN_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        data = {}
    entries = data.get("models", {}) if isinstance(data, dict) else {}
    clean: dict[str, float | None] = {}
    for name, sha in models.items():
        e = entries.get(name) if isinstance(entries, dict) else None
        v = num(e.get("miou")) if isinstance(e, dict) and e.get("sha256") == sha else math.nan
        clean[name] = None if math.isnan(v) else v
    return clean


def write_compare_report(out_dir: str | os.PathLike[str]) -> CompareReport:
    """Redraw ``compare.png/.svg``, ``transfer.png``, ``transfer.csv`` and ``report.html`` of a comparison directory
    from its files alone (never runs a model). ``RunDirError`` if it holds no comparison."""
    out = Path(out_dir)
    config = read_compare_config(out)
    cmp: Mapping[str, Any] = config.get("compare", {})
    entries = [m for m in config["models"] if isinstance(m, Mapping) and "name" in m]
    models = [str(m["name"]) for m in entries]
    shas = {str(m["name"]): str(m.get("sha256")) for m in entries}
    names = cmp.get("class_names") or ["person"]
    attack = str((cmp.get("attack") or {}).get("name") or DEFAULT_ATTACK)
    eps = num(cmp.get("transfer_eps"))
    summaries: dict[str, list[dict[str, Any]]] = {}
    for m in entries:
        d = out / str(m.get("dir"))
        try:
            summaries[str(m["name"])] = summarize_results(d, write_csv=False)
        except RunDirError as err:
            log.warning("model %s: its experiment cannot be read (%s); left out of the curves", m["name"], err)
            summaries[str(m["name"])] = []
    clean = _read_clean(out, shas)
    matrix = transfer_matrix(read_transfer_rows(out), models, models_sha256=config.get("models_sha256"))
    figures = compare_figure(summaries, clean, out / "compare", attack=attack, class_names=names)
    figures += transfer_figure(matrix, models, out / "transfer", eps=eps, class_names=names)
    csv_path = write_transfer_csv(matrix, models, out / TRANSFER_CSV, eps=eps)
    lines = compare_sentences(models, summaries, clean, matrix, attack=attack, eps=eps, class_names=names)
    page = render_compare_html(config, models, summaries, clean, matrix, lines, out / "compare.png",
                               out / "transfer.png")  # fmt: skip
    write_text(out / REPORT_FILE, page)
    return CompareReport(out / REPORT_FILE, figures, csv_path, lines, models, matrix, summaries, clean, eps)
