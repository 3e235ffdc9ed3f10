"""The sections of an experiment's ``report.html`` as HTML fragments: the headline, the facts block (model, data,
attack, cost, run) and the tables (the summary per eps and mode, survival after image transforms), with the small
cell formatters they share.

``segattack.report.html`` assembles the page from these; each function reads only the summary rows and the
configuration it is given, and returns a string of HTML (``""`` where there is nothing to show).
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from typing import Any

from ..formatting import duration, num
from .page import esc
from .summary import WORST, attack_time, headline

__all__ = [
    "MODE_SHORT",
    "cell",
    "pm",
    "levels",
    "stat",
    "vanish_stat",
    "headline_hide",
    "headline_untargeted",
    "passes_sentence",
    "sweep_total",
    "facts",
    "summary_table",
    "vanish_cell",
    "ssim_cell",
    "survival_table",
]


def cell(v: Any, pct: bool = False) -> str:
    """A table cell's text: a float with two decimals (``pct``: as a percentage, one decimal), ``–`` for NaN, anything
    else as escaped text."""
    if isinstance(v, float):
        if math.isnan(v):
            return "–"
        return f"{100 * v:.1f}" if pct else f"{v:.2f}"
    return html.escape(str(v))


def pm(mean: Any, std: Any) -> str:
    """``97.9 <small>± 4.8</small>`` (percent), ``–`` for NaN."""
    if not isinstance(mean, float | int) or math.isnan(mean):
        return "–"
    s = "" if not isinstance(std, float | int) or math.isnan(std) else f" <small>± {100 * std:.1f}</small>"
    return f"{100 * mean:.1f}{s}"


def levels(eps: Any) -> str:
    """An eps in 8-bit levels as short text (``10``, ``0.5``); a value that is not a number, escaped as it is."""
    e = num(eps)
    return esc(eps) if math.isnan(e) else f"{e:g}"


#: The short name of each restriction mode, as the headline, the facts and the tables show it.
MODE_SHORT = {"full": "whole image", "posthoc": "restricted post hoc", "during": "restricted during"}


def stat(value: Any, std: Any, label: str, cls: str = "") -> str:
    """One large statistic of the headline: ``value`` as a percentage, ``± std`` where it is a number, and ``label``
    below; ``""`` where ``value`` is NaN. ``cls`` colours it (``hidden``, ``kept``)."""
    v = num(value)
    if math.isnan(v):
        return ""
    s = num(std)
    spread = "" if math.isnan(s) else f'<span class="pm">± {100 * s:.1f}</span>'
    return (
        f'<div class="stat {cls}"><span class="v">{100 * v:.1f}%</span>{spread}'
        f'<span class="k">{html.escape(label)}</span></div>'
    )


def vanish_stat(r: Mapping[str, Any], who: str) -> str:
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


def headline_hide(
    summary: Sequence[Mapping[str, Any]], cls: str, lines: Sequence[str], who: str = "persons", threshold: Any = 0.95
) -> str:
    """The headline of the hiding goal: per mode at the eps nearest 10, the share of ``cls`` pixels hidden, of the
    background kept and of ``who`` (the instances) that vanish at ``threshold``, the image counts and the definitions;
    without an attacked image, the first of ``lines`` (or a plain sentence) instead."""
    head = headline(summary, goal="hide")
    rows: Mapping[str, Mapping[str, Any]] = head.get("rows", {})
    if not rows or not any(r.get("fooled_count") for r in rows.values()):
        text = lines[0] if lines else f"no image with {cls} pixels was attacked"
        return f'<section class="headline"><p class="none">{html.escape(text[:1].upper() + text[1:])}.</p></section>'
    eps = levels(head["eps"])
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
            + stat(r["fooled_mean"], r["fooled_std"], f"of {cls} pixels hidden", "hidden")
            + stat(r["preserved_mean"], r["preserved_std"], "of background kept", "kept")
            + vanish_stat(r, who)
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


def headline_untargeted(summary: Sequence[Mapping[str, Any]], against: str) -> str:
    """The headline of the untargeted goal: mIoU and pixel accuracy under attack and clean at the eps nearest 10
    (the worst of all attacks where there are several), measured ``against`` the labels or the clean prediction."""
    head = headline(summary, goal="untargeted")
    row = head.get("rows", {}).get("full")
    if row is None or not row.get("accuracy_count"):
        return '<section class="headline"><p class="none">No image was attacked.</p></section>'
    eps = levels(head["eps"])
    who = "the worst of all attacks, per image" if head["attack"] == WORST else f"attack {head['attack']}"
    stats = (
        stat(row["miou"], math.nan, "mIoU under attack", "hidden")
        + stat(row["clean_miou"], math.nan, "mIoU of the clean model", "kept")
        + stat(row["accuracy_mean"], row["accuracy_std"], "pixel accuracy under attack", "hidden")
        + stat(row["clean_accuracy_mean"], row["clean_accuracy_std"], "clean pixel accuracy", "kept")
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


def passes_sentence(exp: Mapping[str, Any]) -> str:
    """``Passes per image (forward+backward): ...``: per attack and eps, from the experiment's recorded ``passes``
    (and ``sweeps``); ``""`` where the configuration records none."""
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
            text += " at eps " + " / ".join(levels(e) for e in eps)
        elif len(eps) == 1:
            text += f" at eps {levels(eps[0])}"
        total = sweep_total(sweeps.get(name), eps)
        if total:
            text += f", {html.escape(total)}"
        out.append(text)
    if not out:
        return ""
    during = ""
    if "during" in exp.get("modes", []):
        during = " The restriction during the attack runs each attack once more."
    return "Passes per image (forward+backward): " + "; ".join(out) + "." + during


def sweep_total(sweep: Any, eps: Sequence[Any]) -> str:
    """``15 in all: the budgets share a prefix`` where the attack's sweep shares one (``illm``); else ``""``. From
    the run's ``config.json`` (``sweeps``, written by the experiment); a run written without it says nothing here."""
    if not isinstance(sweep, Mapping) or not sweep.get("shared") or len(eps) < 2:
        return ""
    forward = sweep.get("forward")
    return f"{forward} in all (the budgets share a prefix)" if isinstance(forward, int) else ""


def facts(config: Mapping[str, Any], rows: Sequence[Mapping[str, Any]], cls: str) -> str:
    """The facts block (``<dl class="facts">``): the model, the data, the attacks, the cost (the result ``rows``'
    time and the passes) and the run's device, batch, seed and versions, from ``config.json``."""
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
        modes = ", ".join(MODE_SHORT.get(m, m) for m in exp.get("modes", []))
        items.append(("Attack", ", ".join(descr) + f"; eps {', '.join(levels(e) for e in eps)} levels" + f"; {modes}"))
    seconds, attacked = attack_time(rows)
    cost = []
    if attacked:
        cost.append(
            f"<b>{duration(seconds)}</b> for {attacked} image{'s' if attacked != 1 else ''} "
            f"({duration(seconds / attacked)} per image, every eps and mode; the rows' <code>time_s</code> summed, "
            "loading the model not counted)"
        )
    passes = passes_sentence(exp)
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


def summary_table(summary: Sequence[Mapping[str, Any]], untargeted: bool) -> str:
    """The summary table, one row per attack, eps and mode (``summarize_results``'s rows): hidden, kept, vanish and
    the counts for the hiding goal, mIoU and accuracy for the ``untargeted`` one."""
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
                f'<td class="l">{esc(r.get("attack", ""))}</td>', f"<td>{cell(r['eps'])}</td>",
                f"<td>{cell(r['images'])}</td>", f"<td>{cell(r['miou'], True)}</td>",
                f"<td>{cell(r['clean_miou'], True)}</td>", f"<td>{pm(r['accuracy_mean'], r['accuracy_std'])}</td>",
                f"<td>{cell(r['psnr_mean'])}</td>", f"<td>{cell(r['linf_max'])}</td>",
            ]  # fmt: skip
        else:
            cells = [
                f"<td>{cell(r['eps'])}</td>", f'<td class="l">{esc(MODE_SHORT.get(r["mode"], r["mode"]))}</td>',
                f"<td>{pm(r['fooled_mean'], r['fooled_std'])}</td>",
                f"<td>{pm(r['preserved_mean'], r['preserved_std'])}</td>", f"<td>{vanish_cell(r)}</td>",
                f"<td>{cell(r['target_hit_mean'], True)}</td>", f"<td>{cell(r['images'])}</td>",
                f"<td>{cell(r['ok'])}</td>", f"<td>{cell(r['absent'])}</td>", f"<td>{cell(r['all_hidden'])}</td>",
                f"<td>{cell(r['unreadable'])}</td>", f"<td>{cell(r['psnr_mean'])}</td>",
                f"<td>{ssim_cell(r.get('ssim_mean'))}</td>", f"<td>{cell(r['linf_max'])}</td>",
            ]  # fmt: skip
            if several:
                cells.insert(0, f'<td class="l">{esc(r.get("attack", ""))}</td>')
        out.append(f"<tr{group}>" + "".join(cells) + "</tr>")
    out.append("</tbody></table></div>")
    return "".join(out)


def vanish_cell(r: Mapping[str, Any]) -> str:
    """``30.0 <small>12/40</small>``: the pooled share of instances that vanish, ``–`` without instances."""
    n = num(r.get("instances"))
    if math.isnan(n) or n <= 0:
        return "–"
    h = num(r.get("instances_hidden"))
    return f"{100 * h / n:.1f} <small>{int(h)}/{int(n)}</small>"


def ssim_cell(v: Any) -> str:
    """An SSIM with four decimals, ``–`` where it is missing or NaN."""
    x = num(v)
    return "–" if math.isnan(x) else f"{x:.4f}"


def survival_table(survival: Sequence[Mapping[str, Any]]) -> str:
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
            f'<td class="l">{esc(MODE_SHORT.get(r["mode"], r["mode"]))}</td>'
            f"<td>{pm(r['fooled_mean'], r['fooled_std'])}</td><td>{pm(r['preserved_mean'], r['preserved_std'])}</td>"
            f"<td>{vanish_cell(r)}</td><td>{cell(r['fooled_count'])}</td><td>{cell(r['psnr_mean'])}</td>"
            f"<td>{ssim_cell(r.get('ssim_mean'))}</td></tr>"
        )
    out.append("</tbody></table></div>")
    by = "" if len({r["attack"] for r in survival}) < 2 else f", attack {esc(first)}"
    return f"<p>At <b>eps = {levels(e10)}</b>{by}:</p>" + "".join(out)
