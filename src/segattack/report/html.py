"""``report.html``: one self-contained page (images embedded) per experiment directory; and ``write_report``, which
redraws every figure, ``summary.csv`` and the page from the result files alone."""

from __future__ import annotations

import base64
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
from ..rundir import FIGURE1_PREFIX, REPORT_FILE, RESULTS_FILE, read_config, write_text
from .figures import attacks_figure, figure1, figure2
from .summary import MODE_TITLES, attack_sentences, class_phrase, sentences, summarize_results

__all__ = ["write_report", "render_html", "Report"]

log = logging.getLogger(__name__)


class Report:
    """What ``write_report`` produced: the page, the figures, the summary rows and the sentences."""

    def __init__(
        self, html_path: Path, figures: list[Path], summary: list[dict[str, Any]], sentences: list[str]
    ) -> None:
        self.html_path = html_path
        self.figures = figures
        self.summary = summary
        self.sentences = sentences


def _img_tag(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _cell(v: Any, pct: bool = False) -> str:
    if isinstance(v, float):
        if math.isnan(v):
            return "–"
        return f"{100 * v:.1f}" if pct else f"{v:.2f}"
    return html.escape(str(v))


def render_html(
    config: Mapping[str, Any],
    summary: Sequence[Mapping[str, Any]],
    lines: Sequence[str],
    figure2_png: Path | None,
    figure1_pngs: Sequence[Path],
    attacks_png: Path | None = None,
    attack_lines: Sequence[str] = (),
) -> str:
    """The page as a string (images embedded as base64 PNG)."""
    exp = config.get("experiment", {})
    cls = class_phrase(exp.get("class_names", ["person"]))
    untargeted = exp.get("goal") == "untargeted"
    head = (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>segattack report</title><style>"
        "body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}"
        "table{border-collapse:collapse;font-size:90%}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}"
        "th{background:#f3f3f3}img{max-width:100%}pre{background:#f6f6f6;padding:1em;overflow-x:auto;font-size:85%}"
        "</style></head><body>"
    )
    title = "Robustness under attack" if untargeted else f"Hiding {html.escape(cls)} pixels"
    parts = [head, f"<h1>{title}: adversarial examples for semantic segmentation</h1>"]
    if untargeted:
        against = "the clean prediction" if exp.get("reference") == "prediction" else "the ground truth"
        parts.append(
            "<p>Untargeted attacks: each tries to change the prediction away from the labels. eps is the L-inf budget "
            f"in 8-bit levels; <b>accuracy</b> = share of the labelled pixels predicted as {against} (mean ± "
            "population std over images); <b>mIoU</b> from the confusion matrices summed over the data set (the "
            f"Cityscapes rule); eps 0 is the clean model. <b>worst of all</b>: per image, the attack with the lowest "
            "accuracy.</p>"
        )
    else:
        parts.append(
            "<p>Reproduction of Fischer, Kumar, Metzen and Brox (2017), <i>Adversarial Examples for Semantic Image "
            "Segmentation</i>. eps is the L-inf budget in 8-bit levels (eps=10 means 10/255); <b>hidden</b> = share "
            f"of the {html.escape(cls)} pixels of the clean prediction no longer predicted as {html.escape(cls)}; "
            "<b>kept</b> = share of the other pixels whose prediction is unchanged; mean ± population std over images "
            "that contain the class. With several attacks, <b>worst of all</b> takes per image the attack that hid "
            "the most.</p>"
        )
    if lines and not untargeted:
        parts.append("<h2>Results</h2><ul>" + "".join(f"<li>{html.escape(s)}</li>" for s in lines) + "</ul>")
    if attack_lines:
        parts.append("<h2>Attacks compared</h2><ul>" + "".join(f"<li>{html.escape(s)}</li>" for s in attack_lines))
        parts.append("</ul>")
    if attacks_png is not None and attacks_png.exists():
        parts.append(_img_tag(attacks_png, "attacks compared"))
    if figure2_png is not None and figure2_png.exists() and not untargeted:
        parts.append("<h2>Figure 2</h2>" + _img_tag(figure2_png, "Figure 2"))
    parts.append("<h2>Summary per eps and mode</h2><table><tr>")
    if untargeted:
        heads = ["attack", "eps", "images", "mIoU %", "clean mIoU %", "accuracy %", "± std", "PSNR dB", "max L-inf"]
    else:
        heads = [
            "attack", "eps", "mode", "images", "with class", "absent", "all hidden", "unreadable", "hidden %", "± std",
            "kept %", "± std", "target hit %", "PSNR dB", "max L-inf",
        ]  # fmt: skip
    parts.append("".join(f"<th>{h}</th>" for h in heads) + "</tr>")
    for r in summary:
        if untargeted:
            cells = [
                _cell(r.get("attack", "")), _cell(r["eps"]), _cell(r["images"]), _cell(r["miou"], True),
                _cell(r["clean_miou"], True), _cell(r["accuracy_mean"], True), _cell(r["accuracy_std"], True),
                _cell(r["psnr_mean"]), _cell(r["linf_max"]),
            ]  # fmt: skip
        else:
            cells = [
                _cell(r.get("attack", "")), _cell(r["eps"]), _cell(r["mode"]), _cell(r["images"]), _cell(r["ok"]),
                _cell(r["absent"]), _cell(r["all_hidden"]), _cell(r["unreadable"]), _cell(r["fooled_mean"], True),
                _cell(r["fooled_std"], True), _cell(r["preserved_mean"], True), _cell(r["preserved_std"], True),
                _cell(r["target_hit_mean"], True), _cell(r["psnr_mean"]), _cell(r["linf_max"]),
            ]  # fmt: skip
        parts.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    parts.append("</table>")
    modes = exp.get("modes", [])
    parts.append("<p>" + "<br>".join(f"<b>{html.escape(m)}</b>: {html.escape(MODE_TITLES[m])}" for m in modes) + "</p>")
    if figure1_pngs:
        parts.append(f"<h2>Figure 1 (eps = {html.escape(str(exp.get('figure1_eps', '')))})</h2>")
        parts.extend(f"<p>{_img_tag(p, p.stem)}</p>" for p in figure1_pngs)
    parts.append("<h2>Configuration</h2><pre>" + html.escape(json.dumps(config, indent=2)) + "</pre>")
    parts.append("</body></html>\n")
    return "\n".join(parts)


def write_report(out_dir: str | os.PathLike[str]) -> Report:
    """Redraw everything from the result files in ``out_dir``: ``summary.csv``, ``figure2.png/.svg/.pdf``,
    ``figure1_<id>.png`` for every ``figure1_<id>.npz``, and ``report.html``. Never runs a model.

    Raises ``RunDirError`` if ``out_dir`` holds no results. A Figure 1 file that cannot be read is skipped with
    a warning (``segattack run`` on the same directory writes it again).
    """
    out = Path(out_dir)
    if not (out / RESULTS_FILE).is_file():
        raise RunDirError(f"{out} holds no {RESULTS_FILE}: nothing to report (run `segattack run` first)")
    config = read_config(out)
    exp = config.get("experiment", {})
    names = exp.get("class_names", ["person"])
    summary = summarize_results(out)
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
    fig1 = []
    for npz in sorted(out.glob(f"{FIGURE1_PREFIX}*.npz")):
        try:
            fig1.append(figure1(npz))
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:
            log.warning("cannot draw Figure 1 from %s: %s", npz, err)
    lines = sentences(summary, class_names=names) if goal != "untargeted" else []
    page = render_html(config, summary, lines, out / "figure2.png", fig1, attacks_png, lines_a)
    write_text(out / REPORT_FILE, page)
    return Report(out / REPORT_FILE, [*figures, *fig1], summary, [*lines, *lines_a])
