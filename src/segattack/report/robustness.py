"""The report page of a robustness run (``segattack robustness``): one self-contained HTML file drawn from
``robustness.json`` alone (no model runs, no file beside it).

It leads with the headline table (per budget: clean, the worst case in mIoU and accuracy, and every attack), then
the sanity checks (PASS/FAIL with their numbers), the minimal-eps curve (an inline SVG), the checks' own
evaluations, the cost and the configuration. Budgets are shown in 8-bit levels, rates in percent.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .. import rundir
from ..errors import RunDirError
from .page import PAGE_CSS, esc

__all__ = ["render_robustness_html", "write_robustness_report", "read_robustness_json", "pct", "ROBUSTNESS_CSS"]

ROBUSTNESS_FILE = "robustness.json"
#: Styles of this page on top of the shared sheet: check badges and the curve.
ROBUSTNESS_CSS = (
    ".badge{display:inline-block;min-width:4.2em;text-align:center;border-radius:4px;padding:0 6px;font-weight:700;"
    "font-size:.85em}.badge.PASS{background:#dff3e0;color:#1b5e20}.badge.FAIL{background:#fde0e0;color:#8b0000}"
    ".badge.SKIPPED{background:#eee;color:#555}ul.checks{list-style:none;padding:0}ul.checks li{margin:.45em 0}"
    "ul.checks .nums{display:block;margin-left:5.2em;font-size:.82em;color:#666}"
    "td.worst,th.worst{background:#fff4e5}svg.curve{background:#fff;border:1px solid #e2e2e2;max-width:100%}"
)


def read_robustness_json(out_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """The ``robustness.json`` of a robustness directory; ``RunDirError`` (naming the fix) if it is missing or not
    a robustness summary."""
    path = Path(out_dir) / ROBUSTNESS_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RunDirError(f"{out_dir} holds no {ROBUSTNESS_FILE}: give the --out of a finished `segattack "
                                 "robustness` run (run it again to finish an interrupted one)") from None  # fmt: skip
    except NotADirectoryError:
        raise RunDirError(f"{out_dir} is a file; give the --out directory of a `segattack robustness` run") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise RunDirError(f"{path} is not valid JSON ({err}); run `segattack robustness` on it again") from None
    if not isinstance(data, dict) or not isinstance(data.get("robust"), list) or "clean" not in data:
        raise RunDirError(f"{path} is not a robustness summary; run `segattack robustness` on it again")
    return data


def pct(v: Any) -> str:
    """A fraction as a percent with one decimal, ``–`` for none."""
    if not isinstance(v, int | float) or isinstance(v, bool) or not math.isfinite(v):
        return "–"
    return f"{100 * v:.1f}"


def _lv(e: Any) -> str:
    return f"{float(e):g}" if isinstance(e, int | float) else esc(e)


def _headline(s: Mapping[str, Any]) -> str:
    robust: Sequence[Mapping[str, Any]] = s["robust"]
    names: list[str] = []
    for r in robust:
        for n, v in r["by_evaluation"].items():
            if v.get("kind") in ("white-box", "black-box", "transfer") and n not in names:
                names.append(n)
    head = ("<tr><th class=l rowspan=2>eps</th><th colspan=2>clean</th><th class=worst colspan=2>worst case</th>"
            + "".join(f"<th colspan=2>{esc(n)}</th>" for n in names) + "</tr><tr>"
            + "<th>mIoU</th><th>acc.</th>" * (2 + len(names)) + "</tr>")  # fmt: skip
    body = []
    clean = s["clean"]
    for r in robust:
        w = r.get("worst") or {}
        cells = [f"<td class=l>{_lv(r['eps'])}</td>", f"<td>{pct(clean['miou'])}</td>",
                 f"<td>{pct(clean['accuracy'])}</td>", f"<td class=worst><b>{pct(w.get('miou'))}</b></td>",
                 f"<td class=worst><b>{pct(w.get('accuracy'))}</b></td>"]  # fmt: skip
        for n in names:
            v = r["by_evaluation"].get(n) or {}
            cells += [f"<td>{pct(v.get('miou'))}</td>", f"<td>{pct(v.get('accuracy'))}</td>"]
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f'<div class="scroll"><table id="headline">{head}{"".join(body)}</table></div>'


def _checks(s: Mapping[str, Any]) -> str:
    items = []
    for c in s.get("checks") or ():
        nums = ", ".join(f"{esc(k)} {esc(_short(v))}" for k, v in (c.get("numbers") or {}).items())
        badge = f'<span class="badge {esc(c["status"])}">{esc(c["status"])}</span>'
        extra = f'<span class="nums">{nums}</span>' if nums else ""
        items.append(f"<li>{badge} <b>{esc(c['name'])}</b>: {esc(c['detail'])}{extra}</li>")
    return '<ul class="checks">' + "".join(items) + "</ul>"


def _short(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, list):
        return "[" + ", ".join(_short(x) for x in v) + "]"
    return str(v)


def curve_svg(
    points: Sequence[Mapping[str, Any]],
    *,
    fixed: Sequence[Mapping[str, Any]] = (),
    width: int = 520,
    height: int = 240,
) -> str:
    """An SVG of accuracy and mIoU (percent) against eps (levels): two step lines (the minimal-eps curve), axes and
    ticks, and the fixed-eps worst case as dots of the same colours (``fixed``: ``eps``, ``accuracy``, ``miou``)."""
    pts = [p for p in points if p.get("accuracy") is not None]
    if not pts:
        return ""
    x_max = max(float(p["eps"]) for p in [*pts, *fixed]) or 1.0
    left, right, top, bottom = 44, 12, 26, 34

    def x(e: float) -> float:
        return left + (width - left - right) * e / x_max

    def y(v: float) -> float:
        return top + (height - top - bottom) * (1 - v)

    def line(key: str, colour: str) -> str:
        coords = []
        prev = None
        for p in pts:
            v = p.get(key)
            if v is None:
                continue
            if prev is not None:
                coords.append(f"{x(float(p['eps'])):.1f},{y(prev):.1f}")
            coords.append(f"{x(float(p['eps'])):.1f},{y(float(v)):.1f}")
            prev = float(v)
        return f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{" ".join(coords)}"/>'

    def dots(key: str, colour: str) -> str:
        return "".join(
            f'<circle cx="{x(float(f["eps"])):.1f}" cy="{y(float(f[key])):.1f}" r="4" fill="{colour}">'
            f"<title>fixed-eps worst case, {key} {100 * float(f[key]):.1f}% at eps {float(f['eps']):g}</title></circle>"
            for f in fixed
            if f.get(key) is not None
        )

    ticks = []
    for v in (0, 0.25, 0.5, 0.75, 1.0):
        ticks.append(f'<line x1="{left}" x2="{width - right}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#eee"/>')
        ticks.append(f'<text x="{left - 4}" y="{y(v) + 4:.1f}" text-anchor="end" font-size="11">{100 * v:.0f}%</text>')
    for k in range(5):
        e = x_max * k / 4
        ticks.append(
            f'<text x="{x(e):.1f}" y="{height - bottom + 14}" text-anchor="middle" font-size="11">{e:g}</text>'
        )
    return (f'<svg class="curve" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" role="img" aria-label="accuracy and mIoU against eps">'
            + "".join(ticks)
            + f'<text x="{(left + width - right) / 2:.0f}" y="{height - 4}" text-anchor="middle" font-size="11">'
            "eps (8-bit levels)</text>"
            + line("accuracy", "#1f77b4") + line("miou", "#d62728") + dots("accuracy", "#1f77b4")
            + dots("miou", "#d62728")
            + f'<text x="{width - right - 60}" y="14" text-anchor="end" font-size="11" fill="#1f77b4">'
            "accuracy</text>"
            + f'<text x="{width - right}" y="14" text-anchor="end" font-size="11" fill="#d62728">mIoU</text>'
            "</svg>")  # fmt: skip


def _curve(s: Mapping[str, Any]) -> str:
    c = s.get("minimal_eps_curve")
    if not c:
        return "<p class=note>No minimal-norm attack ran, so there is no minimal-eps curve.</p>"
    fixed = [{"eps": r["eps"], "accuracy": r["worst"].get("accuracy"), "miou": r["worst"].get("miou")}
             for r in s.get("robust") or [] if r.get("worst")]  # fmt: skip
    return (f"<p class=note>{esc(c['evaluation'])}: at each eps an image counts with its adversarial image where the "
            f"attack's perturbation is at most eps, else with the clean one. Median L-inf norm "
            f"{float(c['median_linf']):.2f} levels (cap {_lv(c['cap'])}). Lines: the curve; dots: the fixed-eps "
            f"worst case at each budget.</p>" + curve_svg(c["points"], fixed=fixed))  # fmt: skip


def _diagnostics(s: Mapping[str, Any]) -> str:
    rows = []
    for r in s["robust"]:
        for n, v in r["by_evaluation"].items():
            if v.get("kind") in ("noise", "fewer-steps"):
                rows.append(f"<tr><td class=l>{esc(n)}</td><td class=l>{esc(v['kind'])}</td><td>{_lv(r['eps'])}</td>"
                            f"<td>{pct(v.get('miou'))}</td><td>{pct(v.get('accuracy'))}</td></tr>")  # fmt: skip
        wb = r.get("white_box")
        if wb:
            rows.append(f"<tr><td class=l>white-box worst case</td><td class=l>white-box</td><td>{_lv(r['eps'])}</td>"
                        f"<td>{pct(wb.get('miou'))}</td><td>{pct(wb.get('accuracy'))}</td></tr>")  # fmt: skip
    for v in s.get("large_eps") or ():
        rows.append(f"<tr><td class=l>{esc(v['evaluation'])}</td><td class=l>large-eps</td><td>{_lv(v['eps'])}</td>"
                    f"<td>{pct(v.get('miou'))}</td><td>{pct(v.get('accuracy'))}</td></tr>")  # fmt: skip
    if not rows:
        return ""
    return ("<div class=scroll><table><tr><th class=l>evaluation</th><th class=l>kind</th><th>eps</th><th>mIoU</th>"
            "<th>acc.</th></tr>" + "".join(rows) + "</table></div>")  # fmt: skip


def _cost(s: Mapping[str, Any]) -> str:
    c = s["cost"]
    rows = "".join(f"<tr><td class=l>{esc(n)}</td><td>{v['forward']:g}</td><td>{v['backward']:g}</td>"
                   f"<td>{v['seconds']:.1f}</td></tr>" for n, v in c["by_evaluation"].items())  # fmt: skip
    return (f"<p>{c['passes_per_image']:g} forward and backward passes and {c['seconds_per_image']:.2f} s per image "
            f"({c['forward']:g} forward, {c['backward']:g} backward, {c['seconds']:.1f} s over {c['images']} images; "
            "passes counted by hooks on the network that crafted each image).</p>"
            "<div class=scroll><table><tr><th class=l>evaluation</th><th>forward</th><th>backward</th><th>s</th></tr>"
            f"{rows}</table></div>")  # fmt: skip


def _facts(s: Mapping[str, Any]) -> str:
    im = s["images"]
    facts = [("protocol", s["protocol"]), ("model", s.get("model", "–")), ("data", s.get("data", "–")),
             ("images", f"{im['complete']} of {im['run']} measured" + (f", {im['unreadable']} unreadable"
                                                                      if im["unreadable"] else "")
              + ("" if s.get("complete") else f", {im['partial']} unfinished: run the command again to finish")),
             ("eps", ", ".join(_lv(e) for e in s["eps"]) + " (8-bit levels)")]  # fmt: skip
    if s.get("surrogate"):
        facts.append(("surrogate", s["surrogate"]))
    evs = "; ".join(
        f"{e['name']} ({e['kind']}: {e.get('attack') or 'uniform noise'}"
        + (f" {json.dumps(e.get('options'))}" if e.get("options") else "")
        + ")"
        for e in s["evaluations"]
    )
    facts.append(("evaluations", evs))
    for note in s.get("notes") or ():
        facts.append(("note", note))
    return "<dl class=facts>" + "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in facts) + "</dl>"


def render_robustness_html(summary: Mapping[str, Any]) -> str:
    """The page of ``summary`` (``robustness.json``'s content) as one HTML string."""
    s = summary
    fails = [c for c in s.get("checks") or () if c["status"] == "FAIL"]
    verdict = (f"{len(fails)} sanity check{'s' if len(fails) != 1 else ''} failed: read the numbers with care"
               if fails else "no sanity check failed")  # fmt: skip
    title = f"Robustness of {s.get('model', 'the model')}"
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{PAGE_CSS}{ROBUSTNESS_CSS}</style></head><body>"
        f"<h1>{esc(title)}<small>{esc(s['protocol'])} protocol on {esc(s.get('data', 'the data'))}, "
        f"{s['images']['complete']} images; {esc(verdict)}</small></h1>"
        '<section class="headline"><p class="lede">Mean IoU and mean per-image pixel accuracy (percent) on clean '
        "images and under attack at each L-inf eps (8-bit levels). The worst case takes, per image, the attack with "
        "the lowest accuracy (accuracy) and, for mIoU, SEA's greedy choice of the attack per image that lowers the "
        "data set's mIoU most.</p>"
        f"{_headline(s)}</section>"
        f"<h2 id=checks>Sanity checks</h2>{_checks(s)}"
        f"<h2 id=curve>Minimal-eps curve</h2>{_curve(s)}"
        f"<h2 id=diagnostics>The checks' evaluations</h2>{_diagnostics(s)}"
        f"<h2 id=cost>Cost</h2>{_cost(s)}"
        f"<h2 id=config>Configuration</h2>{_facts(s)}"
        "</body></html>"
    )


def write_robustness_report(out_dir: str | os.PathLike[str]) -> Path:
    """Write ``report.html`` (atomically) into a robustness directory from its ``robustness.json``."""
    out = Path(out_dir)
    path = out / rundir.REPORT_FILE
    rundir.write_text(path, render_robustness_html(read_robustness_json(out)))
    return path
