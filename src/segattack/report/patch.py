"""The report page of a patch run (``segattack patch``): one self-contained HTML file drawn from ``summary.json``,
``patch.png`` and ``examples.png`` (inlined), with no model run and no file beside it.

It leads with the headline table (the fitted patch against a random patch of the same size, on held-out images:
mean IoU and accuracy against the clean prediction, the share of the class hidden, the share of the other pixels
kept), then the share of pixels changed by distance from the patch, the rendered scenes (when there are any, with
their definition), the patch and the examples, and the configuration. Rates are shown in percent.
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
from .page import PAGE_CSS, esc, img_tag

#: The patch is shown 256 px wide whatever its pixel size, without smoothing (its pixels are what gets printed).
_CSS = "img.patch{width:256px;height:auto;image-rendering:pixelated}"

__all__ = ["render_patch_html", "write_patch_report", "read_patch_summary", "MEASURE_NAMES"]

SUMMARY_FILE = "summary.json"
#: The per-image measures in the headline, and how the page names them.
MEASURE_NAMES = {
    "miou": "mIoU vs clean prediction",
    "accuracy": "pixel accuracy vs clean prediction",
    "hidden": "class pixels hidden",
    "kept": "other pixels kept",
}
#: The same measures in the rendered scenes, where each column names its reference prediction.
RENDERED_NAMES = {
    "miou": "mIoU vs the reference prediction",
    "accuracy": "pixel accuracy vs the reference prediction",
    "hidden": "class pixels hidden",
    "kept": "other pixels kept",
}
#: What the rendered rows compare (``segattack.patches.run``'s docstring says the same).
RENDERED_DEFINITION = (
    "Rendered scenes: the street generator draws the patch into scenes it never saw pasted, as a poster on a facade "
    "(building) or a billboard beside the road, with the scene's light, haze and occlusions. Each scene is drawn "
    "three times, with the poster's place, size and angle fixed by the scene: with the fitted patch, with the random "
    "patch, and without a poster. Because a poster changes the scene, the fitted patch is measured against the same "
    "scene with the random poster (column 'fitted vs random poster'): mIoU and accuracy of agreement between the two "
    "predictions, the share of the class's pixels in the random-poster prediction no longer predicted as the class "
    "(hidden), and the share of the other pixels unchanged (kept). The column 'random poster vs none' measures the "
    "random poster against the scene without a poster: what putting up any poster changes. Pixels where the "
    "compared images differ (the poster, its frame) never count."
)


def read_patch_summary(out_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """The ``summary.json`` of a patch directory; ``RunDirError`` (naming the fix) if missing or not one."""
    path = Path(out_dir) / SUMMARY_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RunDirError(f"{out_dir} holds no {SUMMARY_FILE}: give the --out of a finished `segattack patch` run "
                          "(run it again to finish an interrupted one)") from None  # fmt: skip
    except NotADirectoryError:
        raise RunDirError(f"{out_dir} is a file; give the --out directory of a `segattack patch` run") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise RunDirError(f"{path} is not valid JSON ({err}); run `segattack patch` on it again") from None
    if not isinstance(data, dict) or not isinstance(data.get("held_out"), dict) or "fitted" not in data["held_out"]:
        raise RunDirError(f"{path} is not a patch summary; run `segattack patch` on it again")
    return data


def _pct(s: Any) -> str:
    v = s.get("mean") if isinstance(s, Mapping) else None
    if not isinstance(v, int | float) or isinstance(v, bool) or not math.isfinite(v):
        return "–"
    sd = s.get("std")
    pm = f" <small>± {100 * sd:.1f}</small>" if isinstance(sd, int | float) and math.isfinite(sd) else ""
    return f"{100 * v:.1f}{pm}"


def _mean(s: Any) -> str:
    v = s.get("mean") if isinstance(s, Mapping) else None
    if not isinstance(v, int | float) or isinstance(v, bool) or not math.isfinite(v):
        return "–"
    return f"{100 * v:.1f}%"


def _table(columns: Sequence[tuple[str, Mapping[str, Any]]], table_id: str,
           names: Mapping[str, str] = MEASURE_NAMES, unit: str = "images") -> str:  # fmt: skip
    head = f"<tr><th class=l>measure (percent, mean ± std over {esc(unit)})</th>" + "".join(
        f"<th>{esc(name)}</th>" for name, _ in columns) + "</tr>"  # fmt: skip
    body = []
    for key, name in names.items():
        cells = "".join(f"<td>{_pct(stats.get(key))}</td>" for _, stats in columns)
        body.append(f"<tr><td class=l>{esc(name)}</td>{cells}</tr>")
    counts = "".join(f"<td>{stats.get('images', 0)}</td>" for _, stats in columns)
    body.append(f"<tr class=group><td class=l>{esc(unit)}</td>{counts}</tr>")
    return f'<div class="scroll"><table id="{table_id}">{head}{"".join(body)}</table></div>'


def _edges(edges: Sequence[Any]) -> list[str]:
    def fmt(v: Any) -> str:
        return "∞" if v is None or (isinstance(v, float) and math.isinf(v)) else f"{float(v):g}"

    return [f"[{fmt(a)}, {fmt(b)})" for a, b in zip(edges, edges[1:], strict=False)]


def _distance(columns: Sequence[tuple[str, Mapping[str, Any]]], edges: Sequence[Any]) -> str:
    labels = _edges(edges)
    head = "<tr><th class=l>distance from the patch (pixels)</th>" + "".join(
        f"<th>{esc(name)}</th>" for name, _ in columns) + "</tr>"  # fmt: skip
    body = []
    for b, label in enumerate(labels):
        cells = "".join(f"<td>{_pct((stats.get('changed_by_distance') or [{}] * len(labels))[b])}</td>"
                        for _, stats in columns)  # fmt: skip
        body.append(f"<tr><td class=l>{esc(label)}</td>{cells}</tr>")
    return f'<div class="scroll"><table id="distance">{head}{"".join(body)}</table></div>'


def _rendered(s: Mapping[str, Any]) -> str:
    r = s.get("rendered") or {}
    if not r:
        return ("<p class=note>No rendered scenes in this run (<code>--rendered N</code> draws N scenes per placement "
                "with the patch in them).</p>")  # fmt: skip
    columns = []
    for place in ("all", "building", "billboard"):
        columns.append((f"{place}: fitted vs random poster", r["rendered"][place]))
        columns.append((f"{place}: random poster vs none", r["rendered-random"][place]))
    return (f"<p class=def>{esc(RENDERED_DEFINITION)}</p>{_table(columns, 'rendered', RENDERED_NAMES, 'scenes')}"
            f"<p class=note>{s.get('rendered_scenes', 0)} scenes per placement (generator split val, seed "
            f"{s.get('render_seed')}); the rows of results.jsonl hold each scene's distance (metres), viewing angle "
            "(degrees, 0 head-on) and visible fraction of the poster.</p>")  # fmt: skip


def _facts(s: Mapping[str, Any]) -> str:
    p = s.get("patch") or {}
    facts: list[tuple[str, Any]] = [
        ("method", s.get("method")),
        ("goal", f"{s.get('goal')} ({'/'.join(s.get('hide_names') or [])})"),
        ("patch", f"{p.get('width')} x {p.get('height')} pixels, placement {p.get('placement')}"
                  + (f" on classes {p.get('region')}" if p.get("region") else "")
                  + (f" at {p.get('at')}" if p.get("at") else "")
                  + (f", tilt {p.get('tilt')}" if p.get("tilt") else "")),
        ("print", f"{s['print']['size']} at {s['print']['dpi']:g} dpi ({s['print']['pixels'][1]} x "
                  f"{s['print']['pixels'][0]} pixels in patch.png)" if s.get("print") else "not asked for"),
        ("fit", f"{s.get('steps')} Adam steps, lr {s.get('lr', 0) * 255:g} levels ({s.get('lr'):.6g} in [0, 1]), "
                f"batches of {s.get('batch_size')}, on {s.get('fit', {}).get('images')} images "
                f"({s.get('fit', {}).get('data', 'the fit data')})"),
        ("loss", f"{s.get('fit', {}).get('loss_first')} -> {s.get('fit', {}).get('loss_last')}"),
        ("weights", ", ".join(f"{k} {v:g}" for k, v in (s.get("weights") or {}).items())),
        ("EOT", "off" if not s.get("eot") else ", ".join(f"{k} {v}" for k, v in s["eot"].items() if v not in ("",))),
        ("held-out data", (s.get("data") or {}).get("data", "the held-out data")),
        ("model", (s.get("model") or {}).get("model", "the model")),
        ("device", s.get("device")),
        ("time", f"fit {s.get('time_s', {}).get('fit')} s, measurement {s.get('time_s', {}).get('measure')} s"),
        ("seed", s.get("seed")),
    ]  # fmt: skip
    return "<dl class=facts>" + "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in facts) + "</dl>"


def render_patch_html(summary: Mapping[str, Any], out_dir: str | os.PathLike[str] | None = None) -> str:
    """The page of ``summary`` (``summary.json``'s content) as one HTML string; ``patch.png`` and ``examples.png``
    of ``out_dir`` are inlined where they exist."""
    s = summary
    held = s["held_out"]
    hide = "/".join(s.get("hide_names") or []) or "the class"
    title = f"Adversarial patch against {hide}"
    columns = [("fitted patch", held["fitted"]), ("random patch", held["random"])]
    figs = ""
    if out_dir is not None:
        out = Path(out_dir)
        for name, caption in (("patch.png", "the fitted patch (lossless, 8-bit)"),
                              ("examples.png", "held-out scenes: with the patch, clean prediction, prediction with "
                                               "the patch")):  # fmt: skip
            if (out / name).is_file():
                tag = img_tag(out / name, caption)
                if name == "patch.png":  # any pixel size (a print layout can be thousands): shown 256 px wide, sharp
                    tag = tag.replace("<img ", '<img class="patch" ', 1)
                figs += f'<figure class="fig">{tag}<figcaption>{esc(caption)}</figcaption></figure>'

    fitted, random = held["fitted"], held["random"]
    lede = (f"{fitted.get('images', 0)} held-out images the patch never saw; each measure compares the prediction "
            "with the patch to the clean prediction of the same image, the patch's own pixels left out. The random "
            "patch has the same size and placement.")  # fmt: skip
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{PAGE_CSS}{_CSS}</style></head><body>"
        f"<h1>{esc(title)}<small>{esc(s.get('method', ''))}; {_mean(fitted.get('hidden'))} of the class hidden "
        f"with the fitted patch, {_mean(random.get('hidden'))} with a random one</small></h1>"
        f'<section class="headline"><p class="lede">{esc(lede)}</p>{_table(columns, "headline")}</section>'
        "<h2 id=distance>Pixels changed by distance from the patch</h2>"
        "<p class=note>Share of pixels whose class changed, per band of Euclidean distance (pixels) from the nearest "
        "patch pixel; – for a band no image has.</p>"
        f"{_distance(columns, s.get('distance_edges') or [])}"
        f"<h2 id=rendered>Rendered scenes</h2>{_rendered(s)}"
        f"<h2 id=figures>The patch and examples</h2>{figs or '<p class=note>no figures</p>'}"
        f"<h2 id=config>Configuration</h2>{_facts(s)}"
        "</body></html>"
    )


def write_patch_report(out_dir: str | os.PathLike[str]) -> Path:
    """Write ``report.html`` (atomically) into a patch directory from its ``summary.json`` and figures."""
    out = Path(out_dir)
    path = out / rundir.REPORT_FILE
    rundir.write_text(path, render_patch_html(read_patch_summary(out), out))
    return path
