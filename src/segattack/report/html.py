"""``report.html``: one self-contained page (images embedded) per experiment directory; and ``write_report``, which
redraws every figure, ``summary.csv`` and the page from the result files alone.

The page, top to bottom: the headline (hidden and kept at the eps nearest 10, whole image and restricted, the share
of persons that vanish entirely, and the number of images; for the untargeted goal mIoU and accuracy under attack),
the model, the data and the run's cost, Figure 2, the attacks compared (with several), survival after image
transforms (where the run measured it), the summary table per eps and mode, Figure 1, the gallery of per-image
thumbnails (worst first) and the configuration. Everything is inline (images as ``data:`` URIs, CSS in a
``<style>``, no script, no font or file from elsewhere), and the layout follows the width of the screen.

The sections themselves (headline, facts, tables) are drawn by ``segattack.report.sections``; this module assembles
them with the figures and their captions.
"""

from __future__ import annotations

import html
import json
import logging
import os
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..errors import RunDirError
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
from .page import PAGE_CSS, img_tag
from .sections import MODE_SHORT, facts, headline_hide, headline_untargeted, summary_table, survival_table
from .summary import (
    MODE_TITLES,
    NO_TRANSFORM,
    attack_sentences,
    class_phrase,
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
        headline_untargeted(summary, against)
        if untargeted
        else headline_hide(summary, cls, lines, plural(names), exp.get("instance_threshold", 0.95)),
        facts(config, rows, cls),
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
        parts.append(survival_table(survival))
        parts.append(
            '<p class="note"><b>jpeg:Q</b>: JPEG at quality Q; <b>resize:F</b>: down by F and back up; <b>blur:S</b>: '
            "Gaussian blur, sigma S px; <b>noise:N</b>: Gaussian noise of std N levels (the same draw on the clean "
            "and the adversarial image). PSNR and SSIM: T(adversarial) against T(clean).</p>"
        )
    parts.append('<h2 id="summary">Summary per eps and mode</h2>')
    parts.append(summary_table(summary, untargeted))
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
                f"<b>{html.escape(MODE_SHORT.get(m, m))}</b>: {html.escape(MODE_TITLES[m])}<br>"
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
