"""What a universal perturbation is saved as, and what a ``run_universal`` job writes into its directory.

- ``save_universal`` / ``load_universal``: the perturbation, lossless (``.npz``: levels as int16, or float32 if
  not whole, + how it was made; no pickles), and a picture of it (``.png``, ``perturbation_image``);
- ``write_outputs``: the job's files (``OUTPUTS``), recorded in the directory's manifest before they are written
  (what ``--overwrite`` of another job may remove), an earlier run's ``examples.png`` removed when this one draws
  none.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import rundir
from ..errors import InputError
from .perturbation import UniversalResult, perturbation_image

__all__ = ["save_universal", "load_universal", "write_outputs", "class_names_text", "FILE_FORMAT", "UNIVERSAL_FILE",
           "PICTURE_FILE", "SUMMARY_FILE", "EXAMPLES_FILE", "OUTPUTS"]  # fmt: skip

#: The ``format`` entry of a saved perturbation (``save_universal``).
FILE_FORMAT = "segattack-universal/1"
UNIVERSAL_FILE = "universal.npz"
PICTURE_FILE = "universal.png"
SUMMARY_FILE = "summary.json"
EXAMPLES_FILE = "examples.png"
#: What a job writes, in order (``examples.png`` only with ``examples`` > 0).
OUTPUTS = (UNIVERSAL_FILE, PICTURE_FILE, rundir.RESULTS_FILE, SUMMARY_FILE, EXAMPLES_FILE)


def _arrays(result: UniversalResult) -> dict[str, np.ndarray]:
    pert = result.perturbation.detach().cpu().to(torch.float32)
    levels = (pert * 255).round()
    whole = bool(torch.equal(levels / 255, pert))  # whole levels, and they give back exactly these values
    arrays: dict[str, np.ndarray] = {
        "format": np.array(FILE_FORMAT),
        "eps": np.array(result.eps, dtype=np.float64),
        "step_size": np.array(result.step_size, dtype=np.float64),
        "steps": np.array(result.steps, dtype=np.int64),
        "omega": np.array(result.omega, dtype=np.float64),
        "target": np.array(result.target),
        "class_ids": np.array(result.class_ids, dtype=np.int64),
        "loss": np.array(result.loss, dtype=np.float64),
        "image_ids": np.array(result.image_ids, dtype=np.str_),
        "skipped_ids": np.array([s[0] for s in result.skipped], dtype=np.str_),
        "skipped_reasons": np.array([s[1] for s in result.skipped], dtype=np.str_),
    }
    if whole:
        arrays["levels"] = levels.numpy().astype(np.int16)
    else:  # not whole levels: keep the float32 values themselves
        arrays["perturbation"] = pert.numpy()
    if result.target_map is not None:
        arrays["target_map"] = result.target_map.numpy().astype(np.int64)
    return arrays


def save_universal(result: UniversalResult, path: str | os.PathLike[str]) -> tuple[Path, Path]:
    """Write the perturbation losslessly to ``path`` (.npz: levels as int16, or float32 if not whole, + metadata)
    and a picture of it (``perturbation_image``) next to it as PNG (same stem). Returns (npz path, png path).

    ``load_universal(path)`` gives the same perturbation back, bit for bit.
    """
    from PIL import Image

    path = Path(path)
    if path.suffix.lower() != ".npz":
        raise InputError(f"the perturbation is saved as .npz, got {str(path)!r}")
    arrays = _arrays(result)
    path.parent.mkdir(parents=True, exist_ok=True)
    with rundir.atomic_open(path) as fh:
        np.savez_compressed(fh, **arrays)  # type: ignore[arg-type]
    png = path.with_suffix(".png")
    with rundir.atomic_open(png) as fh:
        Image.fromarray(perturbation_image(result)).save(fh, format="PNG")
    return path, png


def load_universal(path: str | os.PathLike[str]) -> UniversalResult:
    """Read a perturbation written by ``save_universal`` (no pickles are loaded); ``InputError`` (a ValueError) for
    a file that is not one, ``DataNotFoundError`` (a FileNotFoundError) for none."""
    data = rundir.read_npz(path, what="universal perturbation", missing="perturbation", file_format=FILE_FORMAT)
    if "levels" in data:
        perturbation = torch.from_numpy(data["levels"].astype(np.float32)) / 255
    else:
        perturbation = torch.from_numpy(data["perturbation"].astype(np.float32))
    return UniversalResult(
        perturbation=perturbation,
        eps=float(data["eps"]),
        step_size=float(data["step_size"]),
        steps=int(data["steps"]),
        omega=float(data["omega"]),
        target=str(data["target"]),
        class_ids=tuple(int(c) for c in data["class_ids"].tolist()),
        loss=tuple(float(v) for v in data["loss"].tolist()),
        image_ids=tuple(str(s) for s in data["image_ids"].tolist()),
        skipped=tuple(
            (str(i), str(r))
            for i, r in zip(data["skipped_ids"].tolist(), data["skipped_reasons"].tolist(), strict=True)
        ),
        target_map=torch.from_numpy(data["target_map"]) if "target_map" in data else None,
    )


def class_names_text(class_ids: Sequence[int], names: Sequence[str]) -> str:
    """``(11, 12)`` -> ``"person/rider"`` by the model's class names (an id without a name stays a number)."""
    return "/".join(names[c] if 0 <= c < len(names) else str(c) for c in class_ids)


def write_outputs(
    out: Path,
    result: UniversalResult,
    rows: Sequence[Mapping[str, Any]],
    summary: Mapping[str, Any],
    examples: Sequence[Mapping[str, Any]],
    *,
    hide_text: str,
) -> list[str]:
    """Write the job's files into ``out`` (its lock held), recorded in the manifest first; return their names."""
    written = [UNIVERSAL_FILE, PICTURE_FILE, rundir.RESULTS_FILE, SUMMARY_FILE, *([EXAMPLES_FILE] if examples else [])]
    rundir.record_outputs(out, written, kind="universal")  # before writing: what the directory holds of ours is known
    save_universal(result, out / UNIVERSAL_FILE)
    rundir.write_text(out / rundir.RESULTS_FILE,
                      "".join(json.dumps(rundir.json_safe(r), allow_nan=False) + "\n" for r in rows))  # fmt: skip
    rundir.write_json(out / SUMMARY_FILE, summary)
    if examples:
        examples_figure(examples, result, out / EXAMPLES_FILE, hide_text=hide_text)
    else:  # an earlier run's examples are not this run's: never left to be taken for them
        rundir.remove_output(out, EXAMPLES_FILE)
    return written


def _rgb(t: torch.Tensor) -> np.ndarray:
    return (t.detach().cpu().float() * 255).round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()


def examples_figure(shown: Sequence[Mapping[str, Any]], result: UniversalResult, path: Path, *, hide_text: str) -> None:
    """Rows of (clean, clean + xi, prediction, prediction on clean + xi), with the perturbation on top. ``shown``:
    image_id, image, adv (3, H, W) in [0, 1], pred, pred_adv (H, W) and the image's result row."""
    from matplotlib.figure import Figure

    from ..data.labels import colorize

    h, w = result.size
    n = len(shown)
    fig = Figure(figsize=(4 * 3.0, (n + 1) * 3.0 * h / w + 0.8 * (n + 1)))
    axes = np.atleast_2d(fig.subplots(n + 1, 4))
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    eps = result.eps * 255
    axes[0, 0].imshow(perturbation_image(result), interpolation="nearest")
    axes[0, 0].set_title(f"universal perturbation\n(-{eps:g} .. +{eps:g} levels -> black .. white)", fontsize=8)
    for ax in axes[0, 1:]:
        ax.axis("off")
    axes[0, 1].text(0.0, 0.5, f"eps = {eps:g} levels, {result.steps} steps,\nfitted on {len(result.image_ids)} "
                    f"images; target: {result.target}", fontsize=9, va="center",
                    transform=axes[0, 1].transAxes)  # fmt: skip
    for i, s in enumerate(shown, start=1):
        r = s["row"]
        fooled = "no class pixel" if r["fooled"] is None else f"{100 * r['fooled']:.0f}% of class pixels hidden"
        panels = [
            (f"{s['image_id']}: clean", _rgb(s["image"])),
            ("clean + universal perturbation", _rgb(s["adv"])),
            ("prediction (clean)", colorize(s["pred"].cpu().numpy())),
            (f"prediction (perturbed)\n{fooled}", colorize(s["pred_adv"].cpu().numpy())),
        ]
        for ax, (title, img) in zip(axes[i], panels, strict=True):
            ax.imshow(img, interpolation="nearest")
            ax.set_title(title, fontsize=8)
    fig.suptitle(f"universal perturbation hiding {hide_text} on held-out images", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
