"""``summary.json`` of the patch job: means and standard deviations over the held-out images (fitted against
random) and over the rendered scenes (per placement), with the settings that made the patch."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from .. import __version__, rundir
from ..metrics import summarize
from .evaluate import DISTANCE_EDGES
from .fit import PatchResult
from .rendered import RENDER_PLACEMENTS, RENDER_SEED, RENDERED

__all__ = ["METHOD", "HELD_OUT", "MEASURES", "stats", "summarise", "hide_names"]

METHOD = "adversarial patch (Nesti, Rossolini, Nair, Biondi and Buttazzo, WACV 2022)"
#: The held-out evaluations (``run``'s module docstring).
HELD_OUT = ("fitted", "random")
#: The per-image measures averaged in ``summary.json``.
MEASURES = ("miou", "accuracy", "hidden", "kept")


def stats(rows: Sequence[Mapping[str, Any]], evaluation: str) -> dict[str, Any]:
    mine = [r for r in rows if r["evaluation"] == evaluation and r["status"] != "unreadable"]

    def summary(values: Sequence[Any]) -> dict[str, Any]:
        s = summarize([math.nan if v is None else float(v) for v in values])
        return {"mean": rundir.json_safe(s.mean), "std": rundir.json_safe(s.std), "count": s.count}

    out: dict[str, Any] = {m: summary([r.get(m) for r in mine]) for m in MEASURES}
    bins = len(DISTANCE_EDGES) - 1
    out["changed_by_distance"] = [summary([(r.get("changed_by_distance") or [None] * bins)[b] for r in mine])
                                  for b in range(bins)]  # fmt: skip
    out["images"] = len(mine)
    out["status"] = {s: sum(r["status"] == s for r in rows if r["evaluation"] == evaluation)
                     for s in ("ok", "absent", "no_place", "unreadable")}  # fmt: skip
    return out


def summarise(job: Any, result: PatchResult, rows: Sequence[Mapping[str, Any]], layout: Mapping[str, Any],
             describe: Mapping[str, Any], times: tuple[float, float]) -> dict[str, Any]:  # fmt: skip
    c = job.config
    rendered: dict[str, Any] = {}
    if job.rendered:
        for ev in RENDERED:
            rendered[ev] = {"all": stats(rows, ev)}
            for p in RENDER_PLACEMENTS:
                rendered[ev][p] = stats([r for r in rows if r.get("placement") == p], ev)
    hide = hide_names(job)
    return {
        "method": METHOD,
        "goal": c.goal,
        "hide": list(job.classes),
        "hide_names": hide,
        "units": "rates as fractions in [0, 1]; lr in [0, 1] units (x 255 for 8-bit levels); distances in pixels "
        "(held-out) and metres (rendered scenes)",
        "held_out": {ev: stats(rows, ev) for ev in HELD_OUT},
        "distance_edges": [rundir.json_safe(e) for e in DISTANCE_EDGES],
        "rendered": rendered,
        "rendered_scenes": job.rendered,
        "render_seed": RENDER_SEED,
        "patch": {
            "height": int(result.patch.shape[-2]),
            "width": int(result.patch.shape[-1]),
            "placement": c.placement,
            "size": c.size,
            "tilt": c.tilt,
            "region": list(c.region),
            "at": c.at,
        },  # fmt: skip
        "print": {}
        if not layout
        else {"size": str(layout["size"]), "dpi": layout["dpi"], "pixels": list(layout["pixels"])},  # fmt: skip
        "eot": None
        if not c.eot
        else {
            k: getattr(c, k)
            for k in (
                "shift",
                "scale_min",
                "scale_max",
                "rotation",
                "perspective",
                "brightness",
                "contrast",
                "noise",
                "transforms",
            )
        },  # fmt: skip
        "steps": c.steps,
        "lr": c.lr,
        "batch_size": c.batch_size,
        "weights": {"adv": c.adv_weight, "tv": c.tv_weight, "nps": c.nps_weight},
        "colours": c.colours,
        "seed": c.seed,
        "fit": {
            **dict(describe.get("fit", {})),
            "images": len(result.image_ids),
            "skipped": [list(s) for s in result.skipped],
            "loss_first": rundir.json_safe(result.loss[0]) if result.loss else None,
            "loss_last": rundir.json_safe(result.loss[-1]) if result.loss else None,
        },  # fmt: skip
        "data": dict(describe.get("data", {})),
        "model": dict(describe.get("model", {})),
        "device": str(job.dev),
        "time_s": {"fit": round(times[0], 3), "measure": round(times[1], 3)},
        "versions": {"segattack": __version__, "torch": torch.__version__},
    }


def hide_names(job: Any) -> list[str]:
    """The names of the classes the job hides (``job.names``; an id where the model names none)."""
    return [job.names[i] if 0 <= i < len(job.names) else str(i) for i in job.classes]
