"""Aggregate result rows per (eps, mode) and say what they mean in a sentence. Reads result files only."""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..experiment import MODES, STATUSES, read_config, read_rows
from ..metrics import summarize

__all__ = [
    "summarize_results",
    "summarize_rows",
    "write_summary_csv",
    "sentences",
    "class_phrase",
    "SUMMARY_METRICS",
    "MODE_TITLES",
]

#: Per-image quantities summarised per (eps, mode): mean, std (population), count, missing.
SUMMARY_METRICS = ("fooled", "preserved", "target_hit", "psnr")

MODE_TITLES = {
    "full": "perturbation on the whole image",
    "posthoc": "perturbation restricted to the class pixels afterwards (post hoc)",
    "during": "perturbation restricted to the class pixels during the optimisation",
}


def _num(v: Any) -> float:
    return math.nan if v is None else float(v)


def summarize_rows(
    rows: Sequence[Mapping[str, Any]], *, eps_levels: Sequence[float] | None = None, modes: Sequence[str] | None = None
) -> list[dict[str, Any]]:
    """One summary row per (eps, mode), eps ascending and modes in ``MODES`` order.

    Each holds ``eps``, ``mode``, ``images`` (rows for that budget and mode), the image counts per status
    (``ok``, ``absent``, ``all_hidden``, ``unreadable``), ``<metric>_mean/_std/_count/_missing`` for ``SUMMARY_METRICS``
    (rates as fractions in [0, 1], PSNR in dB; std is the population std over images, as ``segattack.summarize``),
    and ``linf_max`` (levels; never above eps).
    """
    eps_all = sorted({float(r["eps"]) for r in rows} | {float(e) for e in eps_levels or ()})
    modes_all = [m for m in MODES if m in ({str(r["mode"]) for r in rows} | set(modes or ()))]
    groups: dict[tuple[float, str], list[Mapping[str, Any]]] = {(e, m): [] for e in eps_all for m in modes_all}
    for r in rows:
        groups.setdefault((float(r["eps"]), str(r["mode"])), []).append(r)
    out: list[dict[str, Any]] = []
    for (e, m), rs in groups.items():
        row: dict[str, Any] = {"eps": int(e) if e.is_integer() else e, "mode": m, "images": len(rs)}
        for status in STATUSES:
            row[status] = sum(1 for r in rs if r.get("status") == status)
        for metric in SUMMARY_METRICS:
            s = summarize([_num(r.get(metric)) for r in rs])
            row[f"{metric}_mean"], row[f"{metric}_std"] = s.mean, s.std
            row[f"{metric}_count"], row[f"{metric}_missing"] = s.count, s.missing
        linf = [_num(r.get("linf")) for r in rs]
        finite = [v for v in linf if not math.isnan(v)]
        row["linf_max"] = max(finite) if finite else math.nan
        out.append(row)
    return out


def summarize_results(out_dir: str | os.PathLike[str], *, write_csv: bool = True) -> list[dict[str, Any]]:
    """Summarise ``results.jsonl`` of an experiment directory per (eps, mode) (see ``summarize_rows``); write
    ``summary.csv`` next to it unless ``write_csv=False``."""
    out = Path(out_dir)
    rows = read_rows(out)
    experiment: Mapping[str, Any] = {}
    if (out / "config.json").exists():
        experiment = read_config(out).get("experiment", {})
    summary = summarize_rows(rows, eps_levels=experiment.get("eps_levels"), modes=experiment.get("modes"))
    if write_csv:
        write_summary_csv(summary, out / "summary.csv")
    return summary


def write_summary_csv(summary: Sequence[Mapping[str, Any]], path: str | os.PathLike[str]) -> Path:
    """Write summary rows as CSV (NaN as an empty cell); returns the path."""
    path = Path(path)
    fields = list(summary[0].keys()) if summary else ["eps", "mode", "images"]
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        for row in summary:
            writer.writerow({k: ("" if isinstance(v, float) and math.isnan(v) else _fmt(v)) for k, v in row.items()})
    os.replace(tmp, path)
    return path


def _fmt(v: Any) -> Any:
    return f"{v:.6g}" if isinstance(v, float) else v


def _pct(mean: float, std: float) -> str:
    return f"{100 * mean:.1f}% ± {100 * std:.1f}"


def class_phrase(class_names: Sequence[str]) -> str:
    """``["person"]`` -> ``"person"``; ``["person", "rider"]`` -> ``"person/rider"``."""
    return "/".join(class_names) if class_names else "class"


def sentences(summary: Sequence[Mapping[str, Any]], *, class_names: Sequence[str] = ("person",)) -> list[str]:
    """One sentence per eps a person can read, e.g. ``"at eps=10, 87.1% ± 6.0 of person pixels hidden, 98.2% ± 0.9
    of background kept (20 images); restricted to person pixels (post hoc): 61.0% ± 9.5 hidden, 100.0% ± 0.0
    kept"``. The first mode present leads; the others follow briefly."""
    cls = class_phrase(class_names)
    if summary and not any(r["fooled_count"] for r in summary):
        return [f"no image has {cls} pixels in the model's clean prediction: there was nothing to hide"]
    by_eps: dict[Any, list[Mapping[str, Any]]] = {}
    for row in summary:
        by_eps.setdefault(row["eps"], []).append(row)
    labels = {"full": "", "posthoc": f"restricted to {cls} pixels (post hoc)", "during": "restricted during the attack"}
    out: list[str] = []
    for eps, rows in by_eps.items():
        rows = sorted(rows, key=lambda r: MODES.index(r["mode"]))
        parts: list[str] = []
        for n, r in enumerate(rows):
            if not r["fooled_count"]:
                parts.append(f"{labels[r['mode']] or 'whole image'}: no image with {cls} pixels")
                continue
            fooled = _pct(r["fooled_mean"], r["fooled_std"])
            kept = _pct(r["preserved_mean"], r["preserved_std"])
            if n == 0:
                lead = f"{fooled} of {cls} pixels hidden, {kept} of background kept ({r['fooled_count']} images)"
                parts.append(lead if r["mode"] == "full" else f"{labels[r['mode']]}: {lead}")
            else:
                parts.append(f"{labels[r['mode']]}: {fooled} hidden, {kept} kept")
        out.append(f"at eps={eps}, " + "; ".join(parts))
    return out
