"""What a fitted patch is saved as, and the files of a ``run_patch`` job.

- ``save_patch`` / ``load_patch``: the patch's float values, lossless (``.npz``: float32 + how it was made; no
  pickles);
- ``write_patch_png``: the patch as a lossless 8-bit PNG, with its physical print size and resolution in the PNG's
  metadata when asked for (``PrintSize``, ``print_layout``): the ``pHYs`` chunk (Pillow's ``dpi=``) and text chunks
  ``segattack:print-size``, ``segattack:dpi`` and ``segattack:patch-pixels``;
- ``save_state`` / ``load_state``: the fit's checkpoint (a ``PatchState``, plus the fit's image ids once it is
  finished), read back with ``torch.load(weights_only=True)``;
- ``examples_figure``: a few held-out scenes with the patch, the clean prediction and the prediction with the patch.

>>> parse_print_size("30x20cm")
PrintSize(width=30.0, height=20.0, unit='cm')
>>> print_layout((600, 900), PrintSize(30, 20, "cm"), None)["dpi"]  # 900 pixels over 30 cm
76.2
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .. import rundir
from ..errors import InputError
from .fit import PatchResult, PatchState

__all__ = ["save_patch", "load_patch", "write_patch_png", "save_state", "load_state", "examples_figure",
           "PrintSize", "parse_print_size", "print_layout", "FILE_FORMAT", "PATCH_FILE", "PICTURE_FILE",
           "STATE_FILE", "SUMMARY_FILE", "EXAMPLES_FILE", "PRINT_SIZE_KEY", "DPI_KEY", "PIXELS_KEY"]  # fmt: skip

#: The ``format`` entry of a saved patch and of the fit's checkpoint.
FILE_FORMAT = "segattack-patch/1"
PATCH_FILE = "patch.npz"
PICTURE_FILE = "patch.png"
STATE_FILE = "patch_state.pt"
SUMMARY_FILE = "summary.json"
EXAMPLES_FILE = "examples.png"
#: PNG text chunks written with a print size or DPI.
PRINT_SIZE_KEY = "segattack:print-size"
DPI_KEY = "segattack:dpi"
PIXELS_KEY = "segattack:patch-pixels"
_CM_PER_INCH = 2.54
#: The most pixels a side of a print-resolution PNG may have.
MAX_PRINT_PIXELS = 20000


# -- the patch ------------------------------------------------------------------------------------------------------


def save_patch(result: PatchResult, path: str | os.PathLike[str], *, seed: int) -> Path:
    """Write ``result.patch`` (3, h, w) losslessly as float32 to ``path`` (.npz) with how it was made; ``load_patch``
    gives the same values back, bit for bit."""
    path = Path(path)
    if path.suffix.lower() != ".npz":
        raise InputError(f"the patch is saved as .npz, got {str(path)!r}")
    arrays = {
        "format": np.array(FILE_FORMAT),
        "patch": result.patch.detach().cpu().to(torch.float32).numpy(),
        "goal": np.array(result.goal),
        "class_ids": np.array(result.class_ids, dtype=np.int64),
        "steps": np.array(result.steps),
        "lr": np.array(result.lr),
        "seed": np.array(seed),
        "loss": np.array(result.loss, dtype=np.float64),
        "image_ids": np.array(result.image_ids, dtype=np.str_),
        "skipped_ids": np.array([s[0] for s in result.skipped], dtype=np.str_),
        "skipped_reasons": np.array([s[1] for s in result.skipped], dtype=np.str_),
    }
    with rundir.atomic_open(path) as fh:
        np.savez_compressed(fh, **arrays)  # type: ignore[arg-type]
    return path


def load_patch(path: str | os.PathLike[str]) -> tuple[Tensor, dict[str, Any]]:
    """The patch (3, h, w) float32 in [0, 1] and its metadata from a file ``save_patch`` wrote (no pickles loaded);
    ``InputError`` for a file that is not one, ``DataNotFoundError`` for none."""
    data = rundir.read_npz(path, what="patch", missing="patch", file_format=FILE_FORMAT)
    meta = {k: v.tolist() for k, v in data.items() if k not in ("patch", "format")}
    return torch.from_numpy(data["patch"].astype(np.float32)), meta


def patch_levels(patch: Tensor) -> np.ndarray:
    """(h, w, 3) uint8: the patch rounded to 8-bit levels (what a PNG and a printer take)."""
    return (patch.detach().cpu().double() * 255).round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()


# -- print size and resolution --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PrintSize:
    """A physical print size: width and height (> 0) in ``unit`` ("cm" or "in")."""

    width: float
    height: float
    unit: str

    @property
    def inches(self) -> tuple[float, float]:
        """(width, height) in inches."""
        k = 1.0 if self.unit == "in" else 1 / _CM_PER_INCH
        return self.width * k, self.height * k

    def __str__(self) -> str:
        return f"{self.width:g} x {self.height:g} {self.unit}"


_PRINT_SIZE = re.compile(r"\s*([0-9]*\.?[0-9]+)\s*[x×]\s*([0-9]*\.?[0-9]+)\s*(cm|in|inch|inches|\")\s*", re.I)


def parse_print_size(text: str) -> PrintSize:
    """``"30x20cm"``, ``"12x8in"`` (width x height, then the unit) -> ``PrintSize``; ``InputError`` otherwise."""
    m = _PRINT_SIZE.fullmatch(str(text))
    if m is None:
        raise InputError(f"a print size is WIDTHxHEIGHT and a unit, cm or in (e.g. 30x20cm or 12x8in), got {text!r}")
    w, h = float(m.group(1)), float(m.group(2))
    if not (w > 0 and h > 0 and math.isfinite(w) and math.isfinite(h)):
        raise InputError(f"a print size must be positive, got {text!r}")
    return PrintSize(w, h, "cm" if m.group(3).lower() == "cm" else "in")


def print_layout(patch_hw: tuple[int, int], size: PrintSize | None, dpi: float | None) -> dict[str, Any]:
    """How ``patch.png`` is written for a print: ``pixels`` (h, w) of the PNG, its ``dpi`` and the print ``size``
    (``PrintSize``), or ``{}`` when neither a size nor a DPI is given.

    - a size alone: the patch's own pixels, at the DPI that prints them at that width (its height follows the
      patch's aspect ratio; a size of another aspect ratio is refused);
    - a DPI alone: the patch's own pixels at that DPI (the size follows);
    - both: the patch enlarged by whole-pixel repetition (nearest neighbour, the values stay the patch's levels)
      to width x DPI by height x DPI pixels.
    """
    h, w = patch_hw
    if size is None and dpi is None:
        return {}
    if dpi is not None and (isinstance(dpi, bool) or not isinstance(dpi, int | float) or not 0 < dpi < 1e5
                            or not math.isfinite(dpi)):  # fmt: skip
        raise InputError(f"dpi must be a positive number of dots per inch (e.g. 300), got {dpi!r}")
    if size is None:
        assert dpi is not None
        unit_w, unit_h = w / dpi, h / dpi
        return {
            "pixels": (h, w),
            "dpi": float(dpi),
            "size": PrintSize(round(unit_w * _CM_PER_INCH, 3), round(unit_h * _CM_PER_INCH, 3), "cm"),
        }
    wi, hi = size.inches
    if abs((wi / hi) / (w / h) - 1) > 0.02:
        raise InputError(
            f"the print size {size} has another aspect ratio than the patch ({w}x{h} pixels, width x height); "
            f"give a size of the patch's shape, e.g. {size.width:g}x{size.width * h / w:.3g}{size.unit}"
        )
    if dpi is None:
        return {"pixels": (h, w), "dpi": round(w / wi, 3), "size": size}
    ph, pw = max(1, round(hi * dpi)), max(1, round(wi * dpi))
    if max(ph, pw) > MAX_PRINT_PIXELS:
        raise InputError(f"{size} at {dpi:g} dpi is {pw}x{ph} pixels, more than {MAX_PRINT_PIXELS} a side; "
                         "give a lower DPI")  # fmt: skip
    return {"pixels": (ph, pw), "dpi": float(dpi), "size": size}


def write_patch_png(patch: Tensor, path: str | os.PathLike[str], layout: Mapping[str, Any] | None = None) -> Path:
    """Write ``patch`` (3, h, w) in [0, 1] as a lossless 8-bit PNG (atomically); with a ``print_layout``, at its
    pixels, its DPI in the ``pHYs`` chunk and the print size, DPI and the patch's own pixels as text chunks."""
    from PIL import Image, PngImagePlugin

    path = Path(path)
    img = Image.fromarray(patch_levels(patch))
    kwargs: dict[str, Any] = {}
    if layout:
        ph, pw = layout["pixels"]
        if (ph, pw) != (img.height, img.width):
            img = img.resize((pw, ph), Image.Resampling.NEAREST)
        info = PngImagePlugin.PngInfo()
        info.add_text(PRINT_SIZE_KEY, str(layout["size"]))
        info.add_text(DPI_KEY, f"{layout['dpi']:g}")
        info.add_text(PIXELS_KEY, f"{int(patch.shape[-1])} x {int(patch.shape[-2])}")
        kwargs = {"dpi": (layout["dpi"], layout["dpi"]), "pnginfo": info}
    with rundir.atomic_open(path) as fh:
        img.save(fh, format="PNG", **kwargs)
    return path


# -- the fit's checkpoint -------------------------------------------------------------------------------------------


def save_state(path: Path, state: PatchState, *, image_ids: Sequence[str] | None = None,
               skipped: Sequence[tuple[str, str]] | None = None) -> None:  # fmt: skip
    """Write the fit's state atomically (``image_ids`` and ``skipped`` once the fit is finished)."""
    obj = {"format": FILE_FORMAT, "patch": state.patch, "optimizer": state.optimizer, "step": int(state.step),
           "loss": [float(v) for v in state.loss], "image_ids": None if image_ids is None else list(image_ids),
           "skipped": None if skipped is None else [list(s) for s in skipped]}  # fmt: skip
    with rundir.atomic_open(path) as fh:
        torch.save(obj, fh)


def load_state(path: Path) -> tuple[PatchState, tuple[str, ...] | None, tuple[tuple[str, str], ...] | None] | None:
    """The state ``save_state`` wrote (and the fit's image ids and skipped images, None until it finished); None
    where there is no such file or it cannot be read (a warning is logged by the caller; the fit starts over)."""
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        return None
    except (OSError, RuntimeError, ValueError, EOFError, KeyError):
        return None
    if not isinstance(obj, dict) or obj.get("format") != FILE_FORMAT:
        return None
    state = PatchState(obj["patch"], obj["optimizer"], int(obj["step"]), tuple(float(v) for v in obj["loss"]))
    ids = None if obj.get("image_ids") is None else tuple(str(i) for i in obj["image_ids"])
    skipped = None if obj.get("skipped") is None else tuple((str(a), str(b)) for a, b in obj["skipped"])
    return state, ids, skipped


# -- examples -------------------------------------------------------------------------------------------------------


def _rgb(t: Tensor) -> np.ndarray:
    return (t.detach().cpu().float() * 255).round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()


def examples_figure(shown: Sequence[Mapping[str, Any]], patch: Tensor, path: Path, *, hide_text: str) -> None:
    """Rows of (the scene with the patch, the clean prediction, the prediction with the patch), the patch on top.
    ``shown``: image_id, adv (3, H, W) in [0, 1], pred and pred_adv (H, W), and the image's fitted-patch row."""
    from matplotlib.figure import Figure

    from ..data.labels import colorize

    h, w = (int(v) for v in shown[0]["adv"].shape[-2:])
    n = len(shown)
    fig = Figure(figsize=(3 * 3.2, (n + 1) * 3.2 * h / w + 0.8 * (n + 1)))
    axes = np.atleast_2d(fig.subplots(n + 1, 3))
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0, 0].imshow(patch_levels(patch), interpolation="nearest")
    axes[0, 0].set_title(f"the patch ({int(patch.shape[-1])}x{int(patch.shape[-2])} px)", fontsize=8)
    for ax in axes[0, 1:]:
        ax.axis("off")
    for i, s in enumerate(shown, start=1):
        r = s["row"]
        hid = r.get("hidden")
        said = "no class pixel" if hid is None or hid != hid else f"{100 * hid:.0f}% of {hide_text} hidden"
        panels = [
            (f"{s['image_id']}: with the patch", _rgb(s["adv"])),
            ("prediction (clean)", colorize(s["pred"].cpu().numpy())),
            (f"prediction with the patch\n{said}", colorize(s["pred_adv"].cpu().numpy())),
        ]
        for ax, (title, img) in zip(axes[i], panels, strict=True):
            ax.imshow(img, interpolation="nearest")
            ax.set_title(title, fontsize=8)
    fig.suptitle(f"adversarial patch against {hide_text} on held-out images", fontsize=10)
    fig.tight_layout()
    with rundir.atomic_open(path) as fh:
        fig.savefig(fh, format="png", dpi=100)
