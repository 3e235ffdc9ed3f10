"""What a run writes besides its rows: 8-bit images of tensors, the adversarial images (``save_images``) and the
thumbnails the report's gallery shows (a report never runs a model, so the run draws them):

    DIR/thumbs/<output_name(image_id)>/image.png      the original image
    DIR/thumbs/<output_name(image_id)>/adv.png        the adversarial image
    DIR/thumbs/<output_name(image_id)>/pred.png       the clean prediction, in Cityscapes colours
    DIR/thumbs/<output_name(image_id)>/pred_adv.png   the prediction on the adversarial image

at the Figure-1 budget (perturbation on the whole image), downscaled to at most ``max_width`` pixels wide (aspect
kept; label maps by nearest neighbour, so no colour is blended); ``segattack.report.gallery`` reads them back.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, PngImagePlugin
from torch import Tensor

from ..data.labels import CLASS_NAMES, colorize
from ..errors import InputError
from ..pipeline import BatchOutcome
from ..rundir import THUMB_CLASSES_KEY, THUMB_KINDS, atomic_open, output_name, thumbnail_dir
from .config import number

__all__ = ["to_uint8", "labels_np", "save_png", "save_adversarial_images", "write_thumbnails", "write_run_thumbnails"]


def to_uint8(x: Tensor, clean: Tensor | None = None, eps_levels: float | None = None) -> np.ndarray:
    """(3, H, W) in [0, 1] -> (H, W, 3) uint8 (exact for 8-bit images and whole-level budgets).

    With ``clean`` and a fractional ``eps_levels``, the perturbation is rounded toward ``clean`` so that the 8-bit
    image stays within floor(eps) levels of it (plain rounding could move a pixel 3 levels for eps 2.6).

    >>> clean = torch.full((3, 1, 1), 100 / 255)
    >>> int(to_uint8(clean + 2.6 / 255)[0, 0, 0]), int(to_uint8(clean + 2.6 / 255, clean, 2.6)[0, 0, 0])
    (103, 102)
    """
    levels = (x.detach() * 255).round()
    if clean is not None and eps_levels is not None and not float(eps_levels).is_integer():
        base = (clean.detach() * 255).round()
        bound = math.floor(eps_levels)
        levels = base + torch.trunc(x.detach() * 255 - base).clamp(-bound, bound)
    return levels.clamp(0, 255).to(torch.uint8).permute(1, 2, 0).cpu().numpy()


def labels_np(x: Tensor, num_classes: int) -> np.ndarray:
    return x.detach().cpu().numpy().astype(np.uint8 if num_classes <= 256 else np.int32)


def save_png(path: Path, image: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(path) as fh:
        Image.fromarray(image).save(fh, format="PNG")


def save_adversarial_images(
    folder: Path, outcome: BatchOutcome, xs: Tensor, image_ids: Sequence[str], *, eps: Sequence[float],
    modes: Sequence[str],
) -> None:  # fmt: skip
    """Every adversarial image of ``outcome`` as a lossless PNG: ``folder/eps<E>/<mode>/<output_name(id)>.png``
    (``eps`` in levels, in the order of the outcome's budgets)."""
    for k, e in enumerate(eps):
        for m in modes:
            for n, iid in enumerate(image_ids):
                path = folder / f"eps{number(e)}" / m / f"{output_name(iid)}.png"
                save_png(path, to_uint8(outcome.advs[m][k, n], xs[n], e))


def write_run_thumbnails(
    out: Path, image_ids: Sequence[str], xs: Tensor, ps: Tensor, outcome: BatchOutcome, *, k: int, num_classes: int,
    label_names: Sequence[str],
) -> None:  # fmt: skip
    """The gallery's thumbnails of a batch: original, adversarial, prediction and prediction on the adversarial
    image at budget index ``k`` (whole image)."""
    for n, iid in enumerate(image_ids):
        write_thumbnails(
            out, iid, image=to_uint8(xs[n]), adv=to_uint8(outcome.advs["full"][k, n]),
            pred=labels_np(ps[n], num_classes), pred_adv=labels_np(outcome.preds["full"][k, n], num_classes),
            label_names=label_names,
        )  # fmt: skip


def _image_array(name: str, a: Any) -> np.ndarray:
    arr = np.asarray(a)
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.shape[0] < 1 or arr.shape[1] < 1:
        raise InputError(f"write_thumbnails: {name} must be an (H, W, 3) uint8 image, got shape {arr.shape}")
    if arr.dtype != np.uint8:
        raise InputError(f"write_thumbnails: {name} must be uint8 (8-bit levels), got {arr.dtype}")
    return arr


def _label_array(name: str, a: Any, shape: tuple[int, ...]) -> np.ndarray:
    arr = np.asarray(a)
    if arr.shape != shape:
        raise InputError(f"write_thumbnails: {name} must be an (H, W) label map of shape {shape}, got {arr.shape}")
    if not np.issubdtype(arr.dtype, np.integer):
        raise InputError(f"write_thumbnails: {name} must hold integer class ids, got {arr.dtype}")
    return arr


def _thumb_size(h: int, w: int, max_width: int) -> tuple[int, int]:
    if w <= max_width:
        return w, h
    return max_width, max(1, round(h * max_width / w))


def _classes_text(labels: Sequence[np.ndarray], names: Sequence[str]) -> str:
    present = sorted(set().union(*(np.unique(x).tolist() for x in labels)))
    return ";".join(f"{k}={names[k] if 0 <= k < len(names) else k}" for k in present if k != 255)


def write_thumbnails(
    out_dir: str | os.PathLike[str],
    image_id: str,
    *,
    image: Any,
    adv: Any,
    pred: Any,
    pred_adv: Any,
    label_names: Sequence[str] | None = None,
    max_width: int = 256,
) -> dict[str, Path]:
    """Write the four gallery thumbnails of one image under ``DIR/thumbs/<output_name(image_id)>/``.

    ``image`` and ``adv`` are (H, W, 3) uint8 arrays, ``pred`` and ``pred_adv`` (H, W) integer class ids (as in
    ``figure1_<id>.npz``); predictions are drawn in Cityscapes colours (``segattack.data.labels.colorize``).
    Everything is downscaled to at most ``max_width`` pixels wide, keeping the aspect ratio (images with a box
    filter, label maps by nearest neighbour). ``label_names`` (class names by id; the Cityscapes names by default)
    name the classes present, which the prediction PNGs carry for the gallery's legend. Each file is written
    atomically; returns ``{kind: path}`` for the kinds of ``THUMB_KINDS``.
    """
    if isinstance(max_width, bool) or not isinstance(max_width, int) or max_width < 1:
        raise InputError(f"write_thumbnails: max_width must be a positive integer, got {max_width!r}")
    img = _image_array("image", image)
    adv_a = _image_array("adv", adv)
    if adv_a.shape != img.shape:
        raise InputError(f"write_thumbnails: adv has shape {adv_a.shape}, the image {img.shape}")
    h, w = img.shape[:2]
    labels = [_label_array("pred", pred, (h, w)), _label_array("pred_adv", pred_adv, (h, w))]
    size = _thumb_size(h, w, max_width)
    info = PngImagePlugin.PngInfo()
    info.add_text(THUMB_CLASSES_KEY, _classes_text(labels, label_names if label_names is not None else CLASS_NAMES))
    pictures: dict[str, tuple[Any, PngImagePlugin.PngInfo | None]] = {}
    for kind, arr in (("image", img), ("adv", adv_a)):
        pil = Image.fromarray(np.ascontiguousarray(arr))
        pictures[kind] = (pil.resize(size, Image.Resampling.BOX) if size != (w, h) else pil, None)
    for kind, lab in zip(("pred", "pred_adv"), labels, strict=True):
        pil = Image.fromarray(np.ascontiguousarray(colorize(lab)))
        pictures[kind] = (pil.resize(size, Image.Resampling.NEAREST) if size != (w, h) else pil, info)
    folder = thumbnail_dir(out_dir, image_id)
    folder.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    for kind in THUMB_KINDS:
        pil, meta = pictures[kind]
        path = folder / f"{kind}.png"
        with atomic_open(path) as fh:
            # zlib level 1: 12 ms per image's four thumbnails instead of 67 ms with optimize=True, 8% larger files
            pil.save(fh, format="PNG", compress_level=1, pnginfo=meta)
        paths[kind] = path
    return paths
