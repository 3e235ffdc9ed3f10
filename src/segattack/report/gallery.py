"""Per-image thumbnails for the report's gallery: written while a run attacks an image, read back by the report.

A report never runs a model, so the pictures of the gallery have to be written by the run itself: for every attacked
image (at the Figure-1 budget, perturbation on the whole image) ``segattack.experiment.outputs.write_thumbnails``
stores four small PNGs,

    DIR/thumbs/<output_name(image_id)>/image.png      the original image
    DIR/thumbs/<output_name(image_id)>/adv.png        the adversarial image
    DIR/thumbs/<output_name(image_id)>/pred.png       the clean prediction, in Cityscapes colours
    DIR/thumbs/<output_name(image_id)>/pred_adv.png   the prediction on the adversarial image

downscaled to at most ``max_width`` pixels wide (aspect kept; label maps by nearest neighbour, so no colour is
blended). ``read_gallery`` pairs them with the result rows and sorts the images worst first (lowest share of class
pixels hidden); ``gallery_html`` draws them as a grid of cards. An image without its four thumbnails (older runs, a
run stopped while writing them) is left out of the gallery.
"""

from __future__ import annotations

import html
import logging
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..data.labels import colorize
from ..formatting import num, pct
from ..rundir import (
    DEFAULT_ATTACK,
    THUMB_CLASSES_KEY,
    THUMB_KINDS,
    THUMBS_DIR,
    read_config,
    thumbnail_dir,
)
from .page import data_uri

__all__ = [
    "THUMBS_DIR",
    "THUMB_KINDS",
    "GALLERY_LIMIT",
    "GALLERY_CSS",
    "GalleryItem",
    "thumbnail_dir",
    "read_gallery",
    "gallery_html",
]

log = logging.getLogger(__name__)

#: At most this many cards are drawn by default (the worst images); every thumbnail stays on disk.
GALLERY_LIMIT = 60
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@dataclass
class GalleryItem:
    """One card of the gallery: an image's numbers (from its result row) and its thumbnails."""

    image_id: str
    index: int
    attack: str
    eps: float
    fooled: float  # share of the class pixels hidden, in [0, 1]
    preserved: float  # share of the other pixels whose prediction is unchanged, in [0, 1]
    class_pixels: int
    paths: dict[str, Path] = field(default_factory=dict)  # kind (THUMB_KINDS) -> PNG
    classes: dict[int, str] = field(default_factory=dict)  # classes in either prediction: id -> name


def _nearest10(values: Sequence[float]) -> float | None:
    return min(values, key=lambda e: (abs(e - 10), -e)) if values else None


def _is_png(path: Path) -> bool:
    try:
        data = path.read_bytes()
    except OSError:
        return False
    return data.startswith(_PNG_SIGNATURE) and b"IEND" in data[-16:]


def _read_classes(path: Path) -> dict[int, str]:
    from PIL import Image

    try:
        with Image.open(path) as im:
            text = getattr(im, "text", {}).get(THUMB_CLASSES_KEY, "")
    except (OSError, ValueError):
        return {}
    out: dict[int, str] = {}
    for part in str(text).split(";"):
        k, sep, name = part.partition("=")
        if sep and k.strip().lstrip("-").isdigit():
            out[int(k)] = name
    return out


def read_gallery(
    out_dir: str | os.PathLike[str],
    rows: Sequence[Mapping[str, Any]],
    *,
    eps: float | None = None,
    attack: str | None = None,
    mode: str = "full",
) -> list[GalleryItem]:
    """The gallery of an experiment directory: the rows of attacked images (status ``ok``) at budget ``eps``
    (default: the configuration's ``figure1_eps``, else the eps of the rows nearest 10), for ``attack`` (default:
    the run's first attack) and ``mode``, each paired with its thumbnails under ``DIR/thumbs/``; sorted worst first
    (lowest ``fooled``, then lowest ``preserved``, then image index). An image whose four thumbnails are not all
    there (or not PNG files) is left out. Reads files only."""
    out = Path(out_dir)
    if not (out / THUMBS_DIR).is_dir():
        return []
    experiment: Mapping[str, Any] = {}
    try:
        experiment = read_config(out).get("experiment", {})
    except Exception:  # noqa: BLE001 - a gallery without a configuration still pairs rows and thumbnails
        experiment = {}
    if attack is None:
        names = [str(a["name"]) for a in experiment.get("attacks", []) if isinstance(a, Mapping) and a.get("name")]
        attack = names[0] if names else next((str(r.get("attack") or DEFAULT_ATTACK) for r in rows), DEFAULT_ATTACK)
    name: str = attack
    chosen = [r for r in rows if str(r.get("attack") or DEFAULT_ATTACK) == name and r.get("mode") == mode]
    if eps is None:
        fig_eps = num(experiment.get("figure1_eps"))
        row_eps = sorted({num(r.get("eps")) for r in chosen} - {math.nan})
        eps = fig_eps if not math.isnan(fig_eps) and fig_eps in row_eps else _nearest10(row_eps)
    if eps is None:
        return []
    items: list[GalleryItem] = []
    seen: set[str] = set()
    for r in chosen:
        image_id = str(r.get("image_id", r.get("index", "")))
        if r.get("status") != "ok" or num(r.get("eps")) != float(eps) or image_id in seen:
            continue
        folder = thumbnail_dir(out, image_id)
        paths = {kind: folder / f"{kind}.png" for kind in THUMB_KINDS}
        if not all(p.is_file() for p in paths.values()):
            continue
        if not all(_is_png(p) for p in paths.values()):
            log.warning("skipping the thumbnails of %s in %s: not all are PNG files", image_id, folder)
            continue
        seen.add(image_id)
        items.append(
            GalleryItem(
                image_id=image_id,
                index=int(r.get("index", -1)),
                attack=name,
                eps=float(eps),
                fooled=num(r.get("fooled")),
                preserved=num(r.get("preserved")),
                class_pixels=int(num(r.get("class_pixels")) if not math.isnan(num(r.get("class_pixels"))) else 0),
                paths=paths,
                classes=_read_classes(paths["pred"]) | _read_classes(paths["pred_adv"]),
            )
        )

    def low(v: float) -> float:
        return -1.0 if math.isnan(v) else v

    items.sort(key=lambda it: (low(it.fooled), low(it.preserved), it.index, it.image_id))
    return items


def _hex(k: int) -> str:
    r, g, b = (int(c) for c in colorize(np.array([[k]]))[0, 0])
    return f"#{r:02x}{g:02x}{b:02x}"


#: CSS of the gallery (``gallery_html`` leaves it out; the report's page carries it).
GALLERY_CSS = (
    ".gallery{display:grid;grid-template-columns:repeat(auto-fill,minmax(min(100%,310px),1fr));gap:12px;margin:0;"
    "padding:0;"
    "list-style:none}"
    ".card{border:1px solid #ddd;border-radius:8px;overflow:hidden;background:#fff}"
    ".card .thumbs{display:grid;grid-template-columns:1fr 1fr;gap:2px;background:#eee}"
    ".card figure{margin:0;position:relative}.card figure img{display:block;width:100%;height:auto}"
    ".card figcaption{position:absolute;left:0;bottom:0;background:rgba(0,0,0,.5);color:#fff;font-size:10px;"
    "line-height:1.35;padding:0 4px;border-top-right-radius:4px;white-space:nowrap}"
    ".card .nums{padding:6px 8px 7px;font-size:13px;line-height:1.45}.card .nums b{font-size:15px}"
    ".card .id{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:12px;color:#555;overflow-wrap:anywhere}"
    ".card .bar{height:4px;background:#e4e4e4}.card .bar span{display:block;height:100%;background:#8b0000}"
    ".legend{display:flex;flex-wrap:wrap;gap:4px 12px;font-size:12px;margin:0 0 10px;padding:0;list-style:none}"
    ".legend i{display:inline-block;width:11px;height:11px;border:1px solid #999;margin-right:4px;"
    "vertical-align:-1px}"
)


def gallery_html(
    items: Sequence[GalleryItem],
    *,
    class_names: Sequence[str] = ("person",),
    limit: int | None = GALLERY_LIMIT,
) -> str:
    """The gallery as HTML: a legend of the classes present, then a grid of cards (the four thumbnails, inlined as
    ``data:`` URIs, with hidden %, kept %, class pixels and the image id), in the order of ``items``; at most
    ``limit`` cards (all with ``None``), with a note saying how many were left out. ``""`` without items. Style:
    ``GALLERY_CSS``."""
    if not items:
        return ""
    cls = html.escape("/".join(class_names) if class_names else "class")
    shown = list(items) if limit is None else list(items)[: max(0, limit)]
    classes: dict[int, str] = {}
    for it in shown:
        classes.update(it.classes)
    parts: list[str] = []
    if classes:
        parts.append(
            '<ul class="legend">'
            + "".join(
                f'<li><i style="background:{_hex(k)}"></i>{html.escape(classes[k])}</li>' for k in sorted(classes)
            )
            + "</ul>"
        )
    parts.append('<ul class="gallery">')
    for it in shown:
        figs = "".join(
            f'<figure><img alt="{html.escape(f"{it.image_id}: {cap}")}" '
            f'width="{_png_size(it.paths[kind])[0]}" height="{_png_size(it.paths[kind])[1]}" '
            f'src="{data_uri(it.paths[kind])}"><figcaption>{html.escape(cap)}</figcaption></figure>'
            for kind, cap in THUMB_KINDS.items()
        )
        width = 0.0 if math.isnan(it.fooled) else max(0.0, min(100.0, 100 * it.fooled))
        hidden, kept = pct(it.fooled, missing="–"), pct(it.preserved, missing="–")
        parts.append(
            f'<li class="card"><div class="thumbs">{figs}</div>'
            f'<div class="bar" title="{cls} pixels hidden: {hidden}"><span style="width:{width:.1f}%">'
            f'</span></div><div class="nums"><b>{hidden}</b> {cls} pixels hidden<br>'
            f"<b>{kept}</b> background kept<br>{it.class_pixels:,} {cls} pixels in the clean "
            f'prediction<div class="id">{html.escape(it.image_id)}</div></div></li>'
        )
    parts.append("</ul>")
    if len(shown) < len(items):
        parts.append(
            f'<p class="note">The {len(shown)} images with the fewest {cls} pixels hidden are shown, of '
            f"{len(items)}; the thumbnails of all of them are in <code>{THUMBS_DIR}/</code>.</p>"
        )
    return "\n".join(parts)


def _png_size(path: Path) -> tuple[int, int]:
    """Width and height from a PNG's IHDR chunk (so the page reserves the space before the image is decoded)."""
    with open(path, "rb") as fh:
        head = fh.read(24)
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
