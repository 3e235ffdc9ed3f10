"""``report.html``: one self-contained page (images embedded) per experiment directory; and ``write_report``, which
redraws every figure, ``summary.csv`` and the page from the result files alone.

The page, top to bottom: the headline (hidden and kept at the eps nearest 10, whole image and restricted, the share
of persons that vanish entirely, and the number of images; for the untargeted goal mIoU and accuracy under attack),
the model, the data and the run's cost, Figure 2, the attacks compared (with several), survival after image
transforms (where the run measured it), the summary table per eps and mode, Figure 1, the gallery of per-image
thumbnails (worst first) and the configuration. Everything is inline (images as ``data:`` URIs, CSS in a
``<style>``, no script, no font or file from elsewhere), and the layout follows the width of the screen.
"""

from __future__ import annotations

import html
import json
import logging
import math
import os
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..errors import RunDirError
from ..formatting import duration, num
from ..rundir import (
    FIGURE1_PREFIX,
    FIGURE_STEMS,
    FIGURE_SUFFIXES,
    KINDS,
    REPORT_FILE,
    RESULTS_FILE,
    SUMMARY_FILE,
    SURVIVAL_FILE,
    directory_kind,
    read_checked,
    read_config,
    record_outputs,
    rows_of_attacks,
    write_text,
)
from .figures import attacks_figure, figure1, figure2, survival_figure
from .gallery import GALLERY_CSS, GalleryItem, gallery_html, read_gallery
from .page import PAGE_CSS, esc, img_tag
from .summary import (
    MODE_TITLES,
    NO_TRANSFORM,
    WORST,
    attack_sentences,
    attack_time,
    class_phrase,
    headline,
    plural,
    sentences,
    summarize_results,
    summarize_survival,
    survival_sentences,
)

__all__ = ["write_report", "render_html", "Report", "SURVIVAL_STEM"]

#: The survival figure's file stem in an experiment directory (``survival.png``/``.svg``).
SURVIVAL_STEM = "survival"

log = logging.getLogger(__name__)


class Report:
    """What ``write_report`` produced: the page, the figures, the summary rows, the sentences and the gallery."""

    def __init__(
        self,
        html_path: Path,
        figures: list[Path],
        summary: list[dict[str, Any]],
        sentences: list[str],
        gallery: list[GalleryItem] | None = None,
        *,
        survival: list[dict[str, Any]] | None = None,
        survival_sentences: list[str] | None = None,
        dropped_rows: str | None = None,
    ) -> None:
        self.html_path = html_path
        self.figures = figures
        self.summary = summary
        self.sentences = sentences
        self.gallery = gallery or []
        #: the survival summary (``summarize_survival``; empty without transforms) and one sentence per transform
        self.survival = survival or []
        self.survival_sentences = survival_sentences or []
        #: what was dropped from results.jsonl as invalid or duplicate (``RowCheck.message``), None if nothing
        self.dropped_rows = dropped_rows


def _cell(v: Any, pct: bool = False) -> str:
    if isinstance(v, float):
        if math.isnan(v):
            return "–"
        return f"{100 * v:.1f}" if pct else f"{v:.2f}"
    return html.escape(str(v))


def _pm(mean: Any, std: Any) -> str:
    """``97.9 <small>± 4.8</small>`` (percent), ``–`` for NaN."""
    if not isinstance(mean, float | int) or math.isnan(mean):
        return "–"
    s = "" if not isinstance(std, float | int) or math.isnan(std) else f" <small>± {100 * std:.1f}</small>"
    return f"{100 * mean:.1f}{s}"


def _levels(eps: Any) -> str:
    e = num(eps)
    return esc(eps) if math.isnan(e) else f"{e:g}"


_MODE_SHORT = {"full": "whole image", "posthoc": "restricted post hoc", "during": "restricted during"}


def _stat(value: Any, std: Any, label: str, cls: str = "") -> str:
    v = num(value)
    if math.isnan(v):
        return ""
    s = num(std)
    pm = "" if math.isnan(s) else f'<span class="pm">± {100 * s:.1f}</span>'
    return (
        f'<div class="stat {cls}"><span class="v">{100 * v:.1f}%</span>{pm}'
        f'<span class="k">{html.escape(label)}</span></div>'
    )


def _vanish_stat(r: Mapping[str, Any], who: str) -> str:
    """The pooled share of instances that vanish entirely, with the counts (``""`` without instance counts)."""
    n = num(r.get("instances"))
    if math.isnan(n) or n <= 0:
        return ""
    h = num(r.get("instances_hidden"))
    gt = num(r.get("gt_instances"))
    extra = ""
    if not math.isnan(gt) and gt > 0:
        extra = f"; ground truth {100 * num(r.get('gt_instances_hidden')) / gt:.1f}% of {int(gt)}"
    return (
        f'<div class="stat vanish"><span class="v">{100 * h / n:.1f}%</span><span class="pm">{int(h)} of {int(n)}'
        f'</span><span class="k">of {html.escape(who)} vanish entirely{html.escape(extra)}</span></div>'
    )


def _headline_hide(
    summary: Sequence[Mapping[str, Any]], cls: str, lines: Sequence[str], who: str = "persons", threshold: Any = 0.95
) -> str:
    head = headline(summary, goal="hide")
    rows: Mapping[str, Mapping[str, Any]] = head.get("rows", {})
    if not rows or not any(r.get("fooled_count") for r in rows.values()):
        text = lines[0] if lines else f"no image with {cls} pixels was attacked"
        return f'<section class="headline"><p class="none">{html.escape(text[:1].upper() + text[1:])}.</p></section>'
    eps = _levels(head["eps"])
    by = "" if len({r.get("attack") for r in summary}) <= 1 else f", attack <b>{esc(head['attack'])}</b>"
    parts = [
        '<section class="headline" id="headline">',
        f'<p class="lede">At <b>eps = {eps}</b> ({eps}/255 in L-inf){by}:</p><div class="modes">',
    ]
    for mode, r in rows.items():
        title = {"full": "whole image", "posthoc": f"restricted to {cls} pixels (post hoc)"}.get(
            mode, f"restricted to {cls} pixels during the attack"
        )
        if not r.get("fooled_count"):
            parts.append(f'<div class="mode"><h3>{html.escape(title)}</h3><p>no image with {esc(cls)} pixels</p>')
            parts.append("</div>")
            continue
        parts.append(
            f'<div class="mode"><h3>{html.escape(title)}</h3><div class="stats">'
            + _stat(r["fooled_mean"], r["fooled_std"], f"of {cls} pixels hidden", "hidden")
            + _stat(r["preserved_mean"], r["preserved_std"], "of background kept", "kept")
            + _vanish_stat(r, who)
            + "</div></div>"
        )
    parts.append("</div>")
    first = next(iter(rows.values()))
    n_ok = int(first.get("fooled_count") or 0)
    apart = [
        f"{first.get(k, 0)} {what}"
        for k, what in (("absent", f"without {cls}"), ("all_hidden", f"all {cls}"), ("unreadable", "unreadable"))
        if first.get(k)
    ]
    tail = f" ({', '.join(apart)}: counted apart)" if apart else ""
    parts.append(
        f'<p class="count"><b>{n_ok}</b> image{"s" if n_ok != 1 else ""} with {esc(cls)} pixels, of '
        f"{first.get('images', n_ok)}{html.escape(tail)}; mean ± population std over images.</p>"
    )
    parts.append(
        '<p class="def"><b>hidden</b>: share of the pixels the model predicts as '
        f"{esc(cls)} on the clean image that it no longer predicts as {esc(cls)} on the adversarial one. "
        "<b>kept</b>: share of the other pixels whose prediction is unchanged. "
        f"<b>vanish entirely</b>: {esc(who)} (connected regions of {esc(cls)} in the clean prediction, "
        f"8-connected) of which at least {100 * num(threshold):g}% of the pixels are hidden, pooled over the images "
        "(all hidden / all found). eps is the L-inf budget in 8-bit levels. Reproduction of Fischer, Kumar, "
        "Metzen and Brox (2017), <i>Adversarial Examples for Semantic Image Segmentation</i>.</p></section>"
    )
    return "".join(parts)


def _headline_untargeted(summary: Sequence[Mapping[str, Any]], against: str) -> str:
    head = headline(summary, goal="untargeted")
    row = head.get("rows", {}).get("full")
    if row is None or not row.get("accuracy_count"):
        return '<section class="headline"><p class="none">No image was attacked.</p></section>'
    eps = _levels(head["eps"])
    who = "the worst of all attacks, per image" if head["attack"] == WORST else f"attack {head['attack']}"
    stats = (
        _stat(row["miou"], math.nan, "mIoU under attack", "hidden")
        + _stat(row["clean_miou"], math.nan, "mIoU of the clean model", "kept")
        + _stat(row["accuracy_mean"], row["accuracy_std"], "pixel accuracy under attack", "hidden")
        + _stat(row["clean_accuracy_mean"], row["clean_accuracy_std"], "clean pixel accuracy", "kept")
    )
    n = int(row["accuracy_count"])
    return (
        f'<section class="headline" id="headline"><p class="lede">At <b>eps = {eps}</b> ({eps}/255 in L-inf), '
        f'{html.escape(who)}:</p><div class="stats">{stats}</div><p class="count"><b>{n}</b> '
        f"image{'s' if n != 1 else ''}, against {html.escape(against)}; accuracy: mean ± population std over "
        "images.</p>"
        '<p class="def">Untargeted attacks: each tries to change the prediction away from the labels. eps is the '
        f"L-inf budget in 8-bit levels; <b>accuracy</b> = share of the labelled pixels predicted as {against}; "
        "<b>mIoU</b> from the confusion matrices summed over the data set (the Cityscapes rule). <b>worst of "
        "all</b>: per image, the attack with the lowest accuracy.</p></section>"
    )


def _passes(exp: Mapping[str, Any]) -> str:
    passes = exp.get("passes")
    eps = exp.get("eps_levels") or []
    if not isinstance(passes, Mapping) or not passes:
        return ""
    recorded = exp.get("sweeps")
    sweeps: Mapping[str, Any] = recorded if isinstance(recorded, Mapping) else {}
    out = []
    for name, per_eps in passes.items():
        if not isinstance(per_eps, list):
            continue
        text = f"<b>{esc(name)}</b> " + " / ".join(esc(p) for p in per_eps)
        if len(eps) == len(per_eps) and len(eps) > 1:
            text += " at eps " + " / ".join(_levels(e) for e in eps)
        elif len(eps) == 1:
            text += f" at eps {_levels(eps[0])}"
        total = _sweep_total(sweeps.get(name), eps)
        if total:
            text += f", {html.escape(total)}"
        out.append(text)
    if not out:
        return ""
    during = ""
    if "during" in exp.get("modes", []):
        during = " The restriction during the attack runs each attack once more."
    return "Passes per image (forward+backward): " + "; ".join(out) + "." + during


def _sweep_total(sweep: Any, eps: Sequence[Any]) -> str:
    """``15 in all: the budgets share a prefix`` where the attack's sweep shares one (``illm``); else ``""``. From
    the run's ``config.json`` (``sweeps``, written by the experiment); a run written without it says nothing here."""
    if not isinstance(sweep, Mapping) or not sweep.get("shared") or len(eps) < 2:
        return ""
    forward = sweep.get("forward")
    return f"{forward} in all (the budgets share a prefix)" if isinstance(forward, int) else ""


def _facts(config: Mapping[str, Any], rows: Sequence[Mapping[str, Any]], cls: str) -> str:
    exp: Mapping[str, Any] = config.get("experiment", {})
    run: Mapping[str, Any] = config.get("run", {}) or {}
    items: list[tuple[str, str]] = []
    model = exp.get("model")
    sha = exp.get("model_sha256")
    model_txt = f"<code>{esc(model)}</code>" if model else "given from Python"
    if exp.get("weights"):
        model_txt += f", weights <code>{esc(exp['weights'])}</code>"
    if sha:
        model_txt += f' <span class="sub">(sha256 {esc(str(sha)[:12])}…)</span>'
    items.append(("Model", model_txt))
    data = exp.get("data")
    data_txt = f"<code>{esc(data)}</code>, " if data else ""
    n = exp.get("images")
    data_txt += f"{esc(n)} images" if n is not None else "images"
    size = exp.get("size")
    if isinstance(size, list) and len(size) == 2:
        data_txt += f" at {esc(size[0])}×{esc(size[1])}"
    if exp.get("goal") != "untargeted":
        ids = exp.get("class_ids", [])
        data_txt += f"; hiding <b>{esc(cls)}</b>" + (f" (train id {', '.join(esc(i) for i in ids)})" if ids else "")
    items.append(("Data", data_txt))
    attacks = [a for a in exp.get("attacks", []) if isinstance(a, Mapping)]
    if attacks:
        descr = []
        for a in attacks:
            opts = ", ".join(f"{esc(k)}={esc(v)}" for k, v in (a.get("options") or {}).items())
            descr.append(f"<b>{esc(a.get('name'))}</b>" + (f" ({opts})" if opts else ""))
        eps = exp.get("eps_levels") or []
        modes = ", ".join(_MODE_SHORT.get(m, m) for m in exp.get("modes", []))
        items.append(("Attack", ", ".join(descr) + f"; eps {', '.join(_levels(e) for e in eps)} levels" + f"; {modes}"))
    seconds, attacked = attack_time(rows)
    cost = []
    if attacked:
        cost.append(
            f"<b>{duration(seconds)}</b> for {attacked} image{'s' if attacked != 1 else ''} "
            f"({duration(seconds / attacked)} per image, every eps and mode; the rows' <code>time_s</code> summed, "
            "loading the model not counted)"
        )
    passes = _passes(exp)
    if passes:
        cost.append(passes)
    if cost:
        items.append(("Cost", "<br>".join(cost)))
    if run:
        bits = []
        if run.get("device"):
            bits.append(f"device <b>{esc(run['device'])}</b>")
        if run.get("batch_size") is not None:
            bits.append(f"batch {esc(run['batch_size'])}")
        if run.get("seed") is not None:
            bits.append(f"seed {esc(run['seed'])}")
        versions = run.get("versions") or {}
        if isinstance(versions, Mapping) and versions:
            bits.append(" ".join(f"{esc(k)} {esc(v)}" for k, v in versions.items()))
        if run.get("written"):
            bits.append(f'<span class="sub">written {esc(run["written"])}</span>')
        if bits:
            items.append(("Run", " · ".join(bits)))
    return '<dl class="facts">' + "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in items) + "</dl>"


def _table(summary: Sequence[Mapping[str, Any]], untargeted: bool) -> str:
    several = len({r.get("attack") for r in summary}) > 1
    if untargeted:
        heads = ["attack", "eps", "images", "mIoU %", "clean mIoU %", "accuracy %", "PSNR&nbsp;dB", "max L&#8209;inf"]
    else:
        heads = [
            "eps", "mode", "hidden %", "kept %", "vanish %", "target hit %", "images", "with class", "absent",
            "all hidden", "unreadable", "PSNR&nbsp;dB", "SSIM", "max L&#8209;inf",
        ]  # fmt: skip
        if several:
            heads.insert(0, "attack")
    left = {"attack", "mode"}
    out = ['<div class="scroll"><table><thead><tr>']
    out.append("".join(f'<th class="l">{h}</th>' if h in left else f"<th>{h}</th>" for h in heads))
    out.append("</tr></thead><tbody>")
    prev: tuple[Any, Any] | None = None
    for r in summary:
        key = (r.get("attack"), None if untargeted else r["eps"])
        group = ' class="group"' if prev is not None and key != prev else ""
        prev = key
        if untargeted:
            cells = [
                f'<td class="l">{esc(r.get("attack", ""))}</td>', f"<td>{_cell(r['eps'])}</td>",
                f"<td>{_cell(r['images'])}</td>", f"<td>{_cell(r['miou'], True)}</td>",
                f"<td>{_cell(r['clean_miou'], True)}</td>", f"<td>{_pm(r['accuracy_mean'], r['accuracy_std'])}</td>",
                f"<td>{_cell(r['psnr_mean'])}</td>", f"<td>{_cell(r['linf_max'])}</td>",
            ]  # fmt: skip
        else:
            cells = [
                f"<td>{_cell(r['eps'])}</td>", f'<td class="l">{esc(_MODE_SHORT.get(r["mode"], r["mode"]))}</td>',
                f"<td>{_pm(r['fooled_mean'], r['fooled_std'])}</td>",
                f"<td>{_pm(r['preserved_mean'], r['preserved_std'])}</td>", f"<td>{_vanish_cell(r)}</td>",
                f"<td>{_cell(r['target_hit_mean'], True)}</td>", f"<td>{_cell(r['images'])}</td>",
                f"<td>{_cell(r['ok'])}</td>", f"<td>{_cell(r['absent'])}</td>", f"<td>{_cell(r['all_hidden'])}</td>",
                f"<td>{_cell(r['unreadable'])}</td>", f"<td>{_cell(r['psnr_mean'])}</td>",
                f"<td>{_ssim_cell(r.get('ssim_mean'))}</td>", f"<td>{_cell(r['linf_max'])}</td>",
            ]  # fmt: skip
            if several:
                cells.insert(0, f'<td class="l">{esc(r.get("attack", ""))}</td>')
        out.append(f"<tr{group}>" + "".join(cells) + "</tr>")
    out.append("</tbody></table></div>")
    return "".join(out)


def _vanish_cell(r: Mapping[str, Any]) -> str:
    """``30.0 <small>12/40</small>``: the pooled share of instances that vanish, ``–`` without instances."""
    n = num(r.get("instances"))
    if math.isnan(n) or n <= 0:
        return "–"
    h = num(r.get("instances_hidden"))
    return f"{100 * h / n:.1f} <small>{int(h)}/{int(n)}</small>"


def _ssim_cell(v: Any) -> str:
    x = num(v)
    return "–" if math.isnan(x) else f"{x:.4f}"


def _survival_table(survival: Sequence[Mapping[str, Any]]) -> str:
    """Survival at the eps nearest 10: per transform and mode, hidden, kept and vanish (first attack)."""
    if not survival:
        return ""
    first = survival[0]["attack"]
    rows = [r for r in survival if r["attack"] == first]
    eps = sorted({r["eps"] for r in rows}, key=float)
    e10 = min(eps, key=lambda e: (abs(float(e) - 10), -float(e)))
    out = ['<div class="scroll"><table><thead><tr><th class="l">transform</th><th class="l">mode</th>'
           "<th>hidden %</th><th>kept %</th><th>vanish %</th><th>images</th><th>PSNR&nbsp;dB</th><th>SSIM</th>"
           "</tr></thead><tbody>"]  # fmt: skip
    prev = None
    for r in rows:
        if r["eps"] != e10:
            continue
        group = ' class="group"' if prev is not None and r["transform"] != prev else ""
        prev = r["transform"]
        out.append(
            f'<tr{group}><td class="l">{esc(r["transform"])}</td>'
            f'<td class="l">{esc(_MODE_SHORT.get(r["mode"], r["mode"]))}</td>'
            f"<td>{_pm(r['fooled_mean'], r['fooled_std'])}</td><td>{_pm(r['preserved_mean'], r['preserved_std'])}</td>"
            f"<td>{_vanish_cell(r)}</td><td>{_cell(r['fooled_count'])}</td><td>{_cell(r['psnr_mean'])}</td>"
            f"<td>{_ssim_cell(r.get('ssim_mean'))}</td></tr>"
        )
    out.append("</tbody></table></div>")
    by = "" if len({r["attack"] for r in survival}) < 2 else f", attack {esc(first)}"
    return f"<p>At <b>eps = {_levels(e10)}</b>{by}:</p>" + "".join(out)


def render_html(
    config: Mapping[str, Any],
    summary: Sequence[Mapping[str, Any]],
    lines: Sequence[str],
    figure2_png: Path | None,
    figure1_pngs: Sequence[Path],
    attacks_png: Path | None = None,
    attack_lines: Sequence[str] = (),
    *,
    rows: Sequence[Mapping[str, Any]] = (),
    figure1_captions: Mapping[Path, str] | None = None,
    gallery: Sequence[GalleryItem] = (),
    gallery_limit: int | None = None,
    survival_png: Path | None = None,
    survival: Sequence[Mapping[str, Any]] = (),
    survival_lines: Sequence[str] = (),
) -> str:
    """The page as a string (images embedded as base64 PNG, no script, nothing fetched from elsewhere).

    ``lines`` and ``attack_lines`` are the sentences of ``sentences`` and ``attack_sentences``; ``rows`` the result
    rows (for the run's wall time); ``figure1_captions`` a caption per Figure 1 PNG (the image id, and the reason it
    was chosen where its npz gives one); ``gallery`` the cards of ``read_gallery`` (at most ``gallery_limit``, by
    default ``gallery.GALLERY_LIMIT``); ``survival_png``, ``survival`` and ``survival_lines`` the survival figure,
    summary and sentences (``summarize_survival``, ``survival_sentences``)."""
    exp = config.get("experiment", {})
    names = exp.get("class_names", ["person"])
    cls = class_phrase(names)
    untargeted = exp.get("goal") == "untargeted"
    against = "the clean prediction" if exp.get("reference") == "prediction" else "the ground truth"
    title = "Robustness under attack" if untargeted else f"Hiding {html.escape(cls)} pixels"
    show_fig2 = figure2_png is not None and figure2_png.exists() and not untargeted
    show_attacks = bool(attack_lines) or (attacks_png is not None and attacks_png.exists())
    fig1 = [p for p in figure1_pngs if p.exists()]
    attacks = list(dict.fromkeys(r.get("attack") for r in summary))
    several = len(attacks) > 1
    show_survival = bool(survival) and not untargeted
    sections = [
        ("figure2", "Figure 2", show_fig2),
        ("attacks", "Attacks compared", show_attacks),
        ("survival", "Survival", show_survival),
        ("summary", "Summary", True),
        ("figure1", "Figure 1", bool(fig1)),
        ("gallery", "Gallery", bool(gallery)),
        ("config", "Configuration", True),
    ]
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>segattack report: {title}</title><style>{PAGE_CSS}{GALLERY_CSS}</style></head><body>",
        f"<h1>{title}<small>adversarial examples for semantic segmentation · segattack report</small></h1>",
        "<nav>" + "".join(f'<a href="#{a}">{t}</a>' for a, t, show in sections if show) + "</nav>",
        _headline_untargeted(summary, against)
        if untargeted
        else _headline_hide(summary, cls, lines, plural(names), exp.get("instance_threshold", 0.95)),
        _facts(config, rows, cls),
    ]
    if show_fig2 and figure2_png is not None:
        parts.append(
            f'<h2 id="figure2">Figure 2</h2><figure class="fig">{img_tag(figure2_png, "Figure 2")}<figcaption>'
            f"Share of {html.escape(cls)} pixels hidden (dark red) and of background kept (grey) against eps, mean "
            "and ± 1 std over images: perturbation on the whole image (left) and restricted to the "
            f"{html.escape(cls)} pixels (right)"
            + (f"; attack {html.escape(str(attacks[0]))} (the others: <a href='#attacks'>below</a>)" if several else "")
            + ".</figcaption></figure>"
        )
    if show_attacks:
        parts.append('<h2 id="attacks">Attacks compared</h2>')
        if attack_lines:
            parts.append('<ul class="words">' + "".join(f"<li>{html.escape(s)}</li>" for s in attack_lines) + "</ul>")
        if attacks_png is not None and attacks_png.exists():
            parts.append(f'<figure class="fig">{img_tag(attacks_png, "attacks compared")}</figure>')
    if show_survival:
        transforms = [t for t in dict.fromkeys(r["transform"] for r in survival) if t != NO_TRANSFORM]
        parts.append('<h2 id="survival">Survival after image transforms</h2>')
        if survival_lines:
            parts.append('<ul class="words">' + "".join(f"<li>{html.escape(s)}</li>" for s in survival_lines) + "</ul>")
        if survival_png is not None and survival_png.exists():
            parts.append(
                f'<figure class="fig">{img_tag(survival_png, "survival")}<figcaption>Every adversarial image '
                f"measured again after {html.escape(', '.join(transforms))}: share of {html.escape(cls)} pixels "
                "hidden (solid) and of background kept (dashed), mean over images, against eps; black: without a "
                "transform. After a transform T, hidden and kept are measured against the model's prediction on "
                "T(clean), so a transform that changes the clean prediction too is not counted as the attack's "
                "failure.</figcaption></figure>"
            )
        parts.append(_survival_table(survival))
        parts.append(
            '<p class="note"><b>jpeg:Q</b>: JPEG at quality Q; <b>resize:F</b>: down by F and back up; <b>blur:S</b>: '
            "Gaussian blur, sigma S px; <b>noise:N</b>: Gaussian noise of std N levels (the same draw on the clean "
            "and the adversarial image). PSNR and SSIM: T(adversarial) against T(clean).</p>"
        )
    parts.append('<h2 id="summary">Summary per eps and mode</h2>')
    parts.append(_table(summary, untargeted))
    modes = exp.get("modes", [])
    if untargeted:
        parts.append(
            '<p class="note"><b>accuracy</b>: mean over images, ± the population std; <b>mIoU</b>: from the '
            "confusion matrices summed over the data set; <b>worst of all</b>: per image, the attack with the lowest "
            "accuracy.</p>"
        )
    else:
        parts.append(
            '<p class="note">'
            + "".join(
                f"<b>{html.escape(_MODE_SHORT.get(m, m))}</b>: {html.escape(MODE_TITLES[m])}<br>"
                for m in modes
                if m in MODE_TITLES
            )
            + "<b>hidden</b>, <b>kept</b>: means over the images with the class, ± the population std; <b>vanish</b>: "
            f"{html.escape(plural(names))} hidden entirely / found, pooled over the images; <b>SSIM</b>: mean "
            "structural similarity to the original (1 = identical; 11 px Gaussian window, sigma 1.5); <b>with "
            "class</b>: images attacked; <b>absent</b>, <b>all hidden</b>, <b>unreadable</b>: counted apart, never "
            "averaged in."
            + (" <b>worst of all</b>: per image, the attack that hid the most." if several else "")
            + "</p>"
        )
    words = [*lines] if not untargeted else []
    if words:
        parts.append(
            '<details><summary>The same in sentences</summary><ul class="words">'
            + "".join(f"<li>{html.escape(s)}</li>" for s in words)
            + "</ul></details>"
        )
    if fig1:
        captions = figure1_captions or {}
        parts.append(
            f'<h2 id="figure1">Figure 1 <small>(eps = {html.escape(str(exp.get("figure1_eps", "")))})</small></h2>'
        )
        for p in fig1:
            cap = captions.get(p) or p.stem.removeprefix(FIGURE1_PREFIX)
            parts.append(
                f'<figure class="fig">{img_tag(p, p.stem)}<figcaption>{html.escape(cap)}</figcaption></figure>'
            )
    if gallery:
        first = gallery[0]
        parts.append(
            f'<h2 id="gallery">Gallery <small>(eps = {first.eps:g}, {html.escape(first.attack)}, whole image; '
            "worst first)</small></h2>"
        )
        kw = {} if gallery_limit is None else {"limit": gallery_limit}
        parts.append(gallery_html(gallery, class_names=names, **kw))
    parts.append(
        '<h2 id="config">Configuration</h2><details><summary><code>config.json</code></summary><pre>'
        + html.escape(json.dumps(config, indent=2))
        + "</pre></details>"
    )
    parts.append("</body></html>\n")
    return "\n".join(parts)


def _figure1_caption(npz: Path) -> str:
    """``<image id>: <reason>`` from a ``figure1_<id>.npz`` (its ``reason`` where it gives one), else the id."""
    import numpy as np

    image_id = npz.stem.removeprefix(FIGURE1_PREFIX)
    reason = ""
    try:
        with np.load(npz) as z:
            if "image_id" in z.files:
                image_id = str(z["image_id"])
            if "reason" in z.files:
                r = z["reason"]
                reason = r.item().decode("utf-8", "replace") if r.dtype.kind == "S" else str(r)
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        pass
    return f"{image_id}: {reason.strip()}" if reason.strip() else image_id


def write_report(out_dir: str | os.PathLike[str], *, log_dropped: bool = True) -> Report:
    """Redraw everything from the result files in ``out_dir``: ``summary.csv``, ``figure2.png/.svg/.pdf``,
    ``figure1_<id>.png`` for every ``figure1_<id>.npz``, and ``report.html`` (with the gallery of the thumbnails
    under ``thumbs/`` where the run wrote them). Never runs a model.

    Raises ``RunDirError`` if ``out_dir`` holds no results, or the output of another kind of job. The rows are
    checked against the row schema and the configuration (``segattack.rundir.rows``): invalid and duplicate rows are
    left out, and what was dropped is logged as a warning (unless ``log_dropped=False``) and kept in
    ``Report.dropped_rows``. A Figure 1 file that cannot be read is skipped with a warning (``segattack run`` on the
    same directory writes it again). What it writes is recorded in the directory's manifest first.
    """
    out = Path(out_dir)
    kind = directory_kind(out)
    if kind not in (None, "run"):
        raise RunDirError(f"{out} holds the output of `{KINDS[kind]}`, not of `segattack run`: nothing for "
                          "`segattack report` to draw")  # fmt: skip
    if not (out / RESULTS_FILE).is_file():
        raise RunDirError(f"{out} holds no {RESULTS_FILE}: nothing to report (run `segattack run` first)")
    config = read_config(out)
    exp = config.get("experiment", {})
    names = exp.get("class_names", ["person"])
    checked = read_checked(out)
    dropped = checked.message()
    if dropped is not None and log_dropped:
        log.warning("%s: %s", out, dropped)
    rows = rows_of_attacks(checked.rows, exp)
    figure_files = [stem + suffix for stem in FIGURE_STEMS for suffix in FIGURE_SUFFIXES]
    figure1_files = [p.with_suffix(".png").name for p in out.glob(f"{FIGURE1_PREFIX}*.npz")]
    record_outputs(out, [SUMMARY_FILE, SURVIVAL_FILE, REPORT_FILE, *figure_files, *figure1_files], kind="run")
    summary = summarize_results(out, rows=rows)
    goal = exp.get("goal", "hide")
    attack_names = {r.get("attack") for r in summary}
    figures: list[Path] = []
    if goal != "untargeted":
        figures += figure2(summary, out / "figure2", class_names=names)
    attacks_png = None
    lines_a: list[str] = []
    if goal == "untargeted" or len(attack_names) > 1:
        figures += attacks_figure(summary, out / "attacks", goal=goal, class_names=names)
        attacks_png = out / "attacks.png"
        lines_a = attack_sentences(summary, goal=goal, class_names=names, reference=exp.get("reference"))
    fig1: list[Path] = []
    captions: dict[Path, str] = {}
    for npz in sorted(out.glob(f"{FIGURE1_PREFIX}*.npz")):
        try:
            png = figure1(npz)
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:
            log.warning("cannot draw Figure 1 from %s: %s", npz, err)
            continue
        fig1.append(png)
        captions[png] = _figure1_caption(npz)
    lines = sentences(summary, class_names=names) if goal != "untargeted" else []
    plain = [r for r in rows if not r.get("transform")]
    gallery = read_gallery(out, plain) if goal != "untargeted" else []
    survival = summarize_survival(
        rows, eps_levels=exp.get("eps_levels"), modes=exp.get("modes"),
        attacks=[a["name"] for a in exp.get("attacks", [])], transforms=exp.get("survive"),
    )  # fmt: skip
    lines_s: list[str] = []
    survival_png = out / f"{SURVIVAL_STEM}.png"
    if survival and goal != "untargeted":
        figures += survival_figure(survival, out / SURVIVAL_STEM, class_names=names)
        lines_s = survival_sentences(survival, class_names=names)
    else:
        for suffix in (".png", ".svg"):  # left from an earlier run with transforms
            (out / f"{SURVIVAL_STEM}{suffix}").unlink(missing_ok=True)
    page = render_html(
        config, summary, lines, out / "figure2.png", fig1, attacks_png, lines_a,
        rows=plain, figure1_captions=captions, gallery=gallery, survival_png=survival_png, survival=survival,
        survival_lines=lines_s,
    )  # fmt: skip
    write_text(out / REPORT_FILE, page)
    return Report(
        out / REPORT_FILE, [*figures, *fig1], summary, [*lines, *lines_a], gallery,
        survival=survival, survival_sentences=lines_s, dropped_rows=dropped,
    )  # fmt: skip
