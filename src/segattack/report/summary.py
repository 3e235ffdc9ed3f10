"""Aggregate result rows per (eps, mode) and say what they mean in a sentence. Reads result files only."""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..data.labels import is_void
from ..metrics import summarize
from ..rundir import CONFIG_FILE, DEFAULT_ATTACK, MODES, STATUSES, SUMMARY_FILE, atomic_open, read_config, read_rows

__all__ = [
    "summarize_results",
    "summarize_rows",
    "write_summary_csv",
    "sentences",
    "class_phrase",
    "SUMMARY_METRICS",
    "MODE_TITLES",
    "WORST",
    "worst_rows",
    "attack_sentences",
    "headline",
    "attack_time",
]

#: Per-image quantities summarised per (attack, eps, mode): mean, std (population), count, missing.
SUMMARY_METRICS = ("fooled", "preserved", "target_hit", "accuracy", "clean_accuracy", "psnr")
#: The name of the summary rows that take, per image, the strongest of the attacks run (``worst_rows``).
WORST = "worst of all"

MODE_TITLES = {
    "full": "perturbation on the whole image",
    "posthoc": "perturbation restricted to the class pixels afterwards (post hoc)",
    "during": "perturbation restricted to the class pixels during the optimisation",
}


def _num(v: Any) -> float:
    return math.nan if v is None else float(v)


def _nan_low(v: Any) -> float:
    x = _num(v)
    return -1.0 if math.isnan(x) else x


def _miou(
    rows: Sequence[Mapping[str, Any]], key: str, num_classes: int | None, void: Sequence[int] = ()
) -> float:
    """mIoU from the summed per-image confusion matrices (sparse triples under ``key``); NaN without any."""
    triples = [t for r in rows if r.get(key) for t in r[key]]
    if not triples:
        return math.nan
    from ..metrics import mean_iou
    from ..pipeline import dense_confusion

    k = num_classes or 1 + max(max(int(t[0]), int(t[1])) for t in triples)
    return mean_iou(dense_confusion(triples, k), exclude=[v for v in void if v < k])


def worst_rows(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Per image, eps and mode, the row of the strongest attack: the lowest ``accuracy`` (untargeted goal) or the
    highest ``fooled`` share, ties broken by ``preserved`` (hide goal), renamed to attack ``WORST``; a row of another
    status is kept as it is."""
    groups: dict[tuple[Any, ...], list[Mapping[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["index"], float(r["eps"]), r["mode"]), []).append(r)
    out: list[dict[str, Any]] = []
    for rs in groups.values():
        ok = [r for r in rs if r.get("status") == "ok"]
        if ok and any(not math.isnan(_num(r.get("accuracy"))) for r in ok):
            pick = min(ok, key=lambda r: _num(r.get("accuracy")) if not math.isnan(_num(r.get("accuracy"))) else 2.0)
        elif ok:
            pick = max(ok, key=lambda r: (_nan_low(r.get("fooled")), _nan_low(r.get("preserved"))))
        else:
            pick = rs[0]
        out.append({**pick, "attack": WORST, "from_attack": pick.get("attack")})
    return out


def summarize_rows(
    rows: Sequence[Mapping[str, Any]],
    *,
    eps_levels: Sequence[float] | None = None,
    modes: Sequence[str] | None = None,
    attacks: Sequence[str] | None = None,
    num_classes: int | None = None,
    void_classes: Sequence[int] = (),
) -> list[dict[str, Any]]:
    """One summary row per (attack, eps, mode): attacks in the order given (then any others), eps ascending, modes
    in ``MODES`` order; with two or more attacks, also the per-image worst case over them (attack ``WORST``).

    Each holds ``attack``, ``eps``, ``mode``, ``images`` (rows for that budget and mode), the image counts per status
    (``ok``, ``absent``, ``all_hidden``, ``unreadable``), ``<metric>_mean/_std/_count/_missing`` for
    ``SUMMARY_METRICS`` (rates as fractions in [0, 1], PSNR in dB; std is the population std over images, as
    ``segattack.summarize``), ``miou`` and ``clean_miou`` (from the summed confusion matrices of the untargeted
    goal; NaN otherwise) and ``linf_max`` (levels; never above eps).
    """
    names = list(attacks or ())
    for r in rows:
        a = str(r.get("attack") or DEFAULT_ATTACK)
        if a not in names:
            names.append(a)
    if len(names) > 1:
        rows = [*rows, *worst_rows(rows)]
        names.append(WORST)
    eps_all = sorted({float(r["eps"]) for r in rows} | {float(e) for e in eps_levels or ()})
    modes_all = [m for m in MODES if m in ({str(r["mode"]) for r in rows} | set(modes or ()))]
    groups: dict[tuple[str, float, str], list[Mapping[str, Any]]] = {
        (a, e, m): [] for a in names for e in eps_all for m in modes_all
    }
    for r in rows:
        groups.setdefault((str(r.get("attack") or DEFAULT_ATTACK), float(r["eps"]), str(r["mode"])), []).append(r)
    out: list[dict[str, Any]] = []
    for (a, e, m), rs in groups.items():
        row: dict[str, Any] = {"attack": a, "eps": int(e) if e.is_integer() else e, "mode": m, "images": len(rs)}
        for status in STATUSES:
            row[status] = sum(1 for r in rs if r.get("status") == status)
        for metric in SUMMARY_METRICS:
            s = summarize([_num(r.get(metric)) for r in rs])
            row[f"{metric}_mean"], row[f"{metric}_std"] = s.mean, s.std
            row[f"{metric}_count"], row[f"{metric}_missing"] = s.count, s.missing
        row["miou"] = _miou(rs, "confusion", num_classes, void_classes)
        row["clean_miou"] = _miou(rs, "clean_confusion", num_classes, void_classes)
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
    if (out / CONFIG_FILE).exists():
        experiment = read_config(out).get("experiment", {})
    summary = summarize_rows(
        rows,
        eps_levels=experiment.get("eps_levels"),
        modes=experiment.get("modes"),
        attacks=[a["name"] for a in experiment.get("attacks", [])],
        num_classes=experiment.get("num_classes"),
        void_classes=[i for i, name in enumerate(experiment.get("label_names") or []) if is_void(str(name))],
    )
    if write_csv:
        write_summary_csv(summary, out / SUMMARY_FILE)
    return summary


def write_summary_csv(summary: Sequence[Mapping[str, Any]], path: str | os.PathLike[str]) -> Path:
    """Write summary rows as CSV (NaN as an empty cell); returns the path."""
    path = Path(path)
    fields = list(summary[0].keys()) if summary else ["eps", "mode", "images"]
    with atomic_open(path, "w") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        for row in summary:
            writer.writerow({k: ("" if isinstance(v, float) and math.isnan(v) else _fmt(v)) for k, v in row.items()})
    return path


def _fmt(v: Any) -> Any:
    return f"{v:.6g}" if isinstance(v, float) else v


def _pct(mean: float, std: float) -> str:
    return f"{100 * mean:.1f}% ± {100 * std:.1f}"


def class_phrase(class_names: Sequence[str]) -> str:
    """``["person"]`` -> ``"person"``; ``["person", "rider"]`` -> ``"person/rider"``."""
    return "/".join(class_names) if class_names else "class"


def sentences(summary: Sequence[Mapping[str, Any]], *, class_names: Sequence[str] = ("person",)) -> list[str]:
    """One sentence per eps a person can read, for the first attack in ``summary``, e.g. ``"at eps=10, 87.1% ± 6.0
    of person pixels hidden, 98.2% ± 0.9 of background kept (20 images); restricted to person pixels (post hoc):
    61.0% ± 9.5 hidden, 100.0% ± 0.0 kept"``. The first mode present leads; the others follow briefly."""
    cls = class_phrase(class_names)
    first = next((r["attack"] for r in summary if "attack" in r), None)
    summary = [r for r in summary if r.get("attack", first) == first]
    if summary and not any(r["fooled_count"] for r in summary):
        counts = summary[0]
        reasons = []
        if counts.get("all_hidden"):
            reasons.append(
                f"{counts['all_hidden']} predicted as {cls} in every pixel (no other class to hide {cls} behind)"
            )
        if counts.get("absent"):
            reasons.append(f"{counts['absent']} without {cls} pixels in the model's clean prediction")
        if counts.get("unreadable"):
            reasons.append(f"{counts['unreadable']} unreadable")
        if not counts.get("all_hidden") and not counts.get("unreadable"):
            return [f"no image has {cls} pixels in the model's clean prediction: there was nothing to hide"]
        return [f"no image could be attacked: of {counts.get('images', 0)} images, " + ", ".join(reasons)]
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


def _nearest10(summary: Sequence[Mapping[str, Any]]) -> Any:
    eps = sorted({r["eps"] for r in summary}, key=float)
    return min(eps, key=lambda e: (abs(float(e) - 10), -float(e))) if eps else None


def attack_sentences(
    summary: Sequence[Mapping[str, Any]],
    *,
    goal: str = "hide",
    class_names: Sequence[str] = ("person",),
    reference: str | None = None,
) -> list[str]:
    """One sentence per attack comparing the attacks: hide goal, at the eps nearest 10 (whole image); untargeted,
    mIoU and pixel accuracy under attack at every eps."""
    cls = class_phrase(class_names)
    attacks = list(dict.fromkeys(r["attack"] for r in summary if "attack" in r))
    out: list[str] = []
    if goal == "untargeted":
        against = "the clean prediction" if reference == "prediction" else "the ground truth"
        for a in attacks:
            rows = sorted(
                (r for r in summary if r["attack"] == a and r["mode"] == "full"), key=lambda r: float(r["eps"])
            )
            if not rows:
                continue
            parts = [
                f"eps={r['eps']}: mIoU {100 * r['miou']:.1f}%, accuracy {_pct(r['accuracy_mean'], r['accuracy_std'])}"
                for r in rows
            ]
            clean = rows[0]
            out.append(
                f"{a}: " + "; ".join(parts) + f" (clean: mIoU {100 * clean['clean_miou']:.1f}%, accuracy "
                f"{100 * clean['clean_accuracy_mean']:.1f}%; {clean['accuracy_count']} images, against {against})"
            )
        return out
    e10 = _nearest10(summary)
    for a in attacks:
        row = next((r for r in summary if r["attack"] == a and r["eps"] == e10 and r["mode"] == "full"), None)
        if row is None or not row["fooled_count"]:
            continue
        out.append(
            f"{a} at eps={e10}: {_pct(row['fooled_mean'], row['fooled_std'])} of {cls} pixels hidden, "
            f"{_pct(row['preserved_mean'], row['preserved_std'])} of background kept ({row['fooled_count']} images)"
        )
    return out


def headline(summary: Sequence[Mapping[str, Any]], *, goal: str = "hide") -> dict[str, Any]:
    """What a report leads with: the budget (eps nearest 10, the larger on a tie), the attack, and the summary row of
    every mode at that budget (``rows``: mode -> summary row, in ``MODES`` order).

    Hide goal: the first attack (the one ``sentences`` and Figure 2 show). Untargeted: the per-image worst case
    over the attacks when several ran (``WORST``), else the one attack. ``{}`` for an empty summary.
    """
    if not summary:
        return {}
    attacks = list(dict.fromkeys(r.get("attack", DEFAULT_ATTACK) for r in summary))
    attack = WORST if goal == "untargeted" and WORST in attacks else attacks[0]
    rows = [r for r in summary if r.get("attack", DEFAULT_ATTACK) == attack]
    eps = _nearest10(rows)
    by_mode = {r["mode"]: r for r in sorted(rows, key=lambda r: MODES.index(r["mode"])) if r["eps"] == eps}
    return {"eps": eps, "attack": attack, "rows": by_mode}


def attack_time(rows: Sequence[Mapping[str, Any]]) -> tuple[float, int]:
    """The run's attack wall time in seconds from the rows' ``time_s``, and the number of images it covers.

    ``time_s`` is an image's share of its batch's wall time (every budget, mode and attack of that batch), written
    on each of the image's rows; so per image the distinct values are summed (a resumed run that added an attack
    adds its own share), then over images. Rows without a time (NaN) or of images not attacked (0) add nothing.
    """
    per_image: dict[Any, set[float]] = {}
    for r in rows:
        t = _num(r.get("time_s"))
        if math.isnan(t) or t <= 0:
            continue
        per_image.setdefault(r.get("index", r.get("image_id")), set()).add(t)
    return sum(sum(ts) for ts in per_image.values()), len(per_image)
