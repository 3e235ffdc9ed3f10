"""Aggregate result rows per (eps, mode) and say what they mean in a sentence. Reads result files only.

The plain rows (no ``transform``) make ``summary.csv``; the survival rows (``transform`` set: the adversarial images
measured again after an image transform) make ``survival.csv``, one block per transform with the plain rows as
transform ``none``. Instance counts are pooled over the data set: ``instances_vanished`` = the sum of
``instances_hidden`` over the images / the sum of ``instances`` (persons that vanish entirely, out of all persons).
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..data.labels import is_void
from ..formatting import num, pct
from ..instances import SIZE_BINS, vanished_share
from ..metrics import dense_confusion, mean_iou, summarize
from ..rundir import (
    CONFIG_FILE,
    DEFAULT_ATTACK,
    MODES,
    STATUSES,
    SUMMARY_FILE,
    atomic_open,
    read_config,
    read_rows,
    rows_of_attacks,
)

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
    "SURVIVAL_FILE",
    "NO_TRANSFORM",
    "INSTANCE_PREFIXES",
    "summarize_survival",
    "survival_sentences",
    "plural",
]

#: Per-image quantities summarised per (attack, eps, mode): mean, std (population), count, missing.
SUMMARY_METRICS = ("fooled", "preserved", "target_hit", "accuracy", "clean_accuracy", "psnr", "ssim")
#: The survival summary of an experiment directory (rows with a ``transform``), beside ``summary.csv``.
SURVIVAL_FILE = "survival.csv"
#: The name the survival summary gives the plain rows (no transform).
NO_TRANSFORM = "none"
#: Instance counts pooled in the summary: from the clean prediction, and from the ground truth where there is one.
INSTANCE_PREFIXES = ("instances", "gt_instances")
#: The name of the summary rows that take, per image, the strongest of the attacks run (``worst_rows``).
WORST = "worst of all"

MODE_TITLES = {
    "full": "perturbation on the whole image",
    "posthoc": "perturbation restricted to the class pixels afterwards (post hoc)",
    "during": "perturbation restricted to the class pixels during the optimisation",
}


def _nan_low(v: Any) -> float:
    x = num(v)
    return -1.0 if math.isnan(x) else x


def _miou(rows: Sequence[Mapping[str, Any]], key: str, num_classes: int | None, void: Sequence[int] = ()) -> float:
    """mIoU from the summed per-image confusion matrices (sparse triples under ``key``); NaN without any."""
    triples = [t for r in rows if r.get(key) for t in r[key]]
    if not triples:
        return math.nan
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
        if ok and any(not math.isnan(num(r.get("accuracy"))) for r in ok):
            pick = min(ok, key=lambda r: num(r.get("accuracy")) if not math.isnan(num(r.get("accuracy"))) else 2.0)
        elif ok:
            pick = max(ok, key=lambda r: (_nan_low(r.get("fooled")), _nan_low(r.get("preserved"))))
        else:
            pick = rs[0]
        out.append({**pick, "attack": WORST, "from_attack": pick.get("attack")})
    return out


def _count(v: Any) -> int | None:
    """A row's instance count, or None where it has none (null, NaN, missing: rows of older runs)."""
    if isinstance(v, bool) or not isinstance(v, int | float) or math.isnan(float(v)):
        return None
    return int(v)


def _pooled(rs: Sequence[Mapping[str, Any]], prefix: str) -> dict[str, float]:
    """Instance counts summed over the rows that have them: ``<prefix>``, ``<prefix>_hidden``, ``<prefix>_vanished``
    (hidden / all) and the same per size bin; NaN where no row has them (ground truth the data set lacks)."""
    out: dict[str, float] = {}
    for key in (prefix, *(f"{prefix}_{b}" for b in SIZE_BINS)):
        pairs = [(_count(r.get(key)), _count(r.get(f"{key}_hidden"))) for r in rs]
        have = [(n, h) for n, h in pairs if n is not None and h is not None]
        total = sum(n for n, _ in have) if have else math.nan
        hidden = sum(h for _, h in have) if have else math.nan
        out[key], out[f"{key}_hidden"] = total, hidden
        out[f"{key}_vanished"] = vanished_share(hidden, total) if have else math.nan
    return out


def _transform_of(row: Mapping[str, Any]) -> str | None:
    t = row.get("transform")
    return str(t) if t else None


def summarize_rows(
    rows: Sequence[Mapping[str, Any]],
    *,
    eps_levels: Sequence[float] | None = None,
    modes: Sequence[str] | None = None,
    attacks: Sequence[str] | None = None,
    num_classes: int | None = None,
    void_classes: Sequence[int] = (),
    transform: str | None = None,
) -> list[dict[str, Any]]:
    """One summary row per (attack, eps, mode): attacks in the order given (then any others), eps ascending, modes
    in ``MODES`` order; with two or more attacks, also the per-image worst case over them (attack ``WORST``).

    Each holds ``attack``, ``eps``, ``mode``, ``images`` (rows for that budget and mode), the image counts per status
    (``ok``, ``absent``, ``all_hidden``, ``unreadable``), ``<metric>_mean/_std/_count/_missing`` for
    ``SUMMARY_METRICS`` (rates as fractions in [0, 1], PSNR in dB, SSIM in [-1, 1]; std is the population std over
    images, as ``segattack.summarize``), ``miou`` and ``clean_miou`` (from the summed confusion matrices of the
    untargeted goal; NaN otherwise), ``linf_max`` (levels; never above eps for the plain rows), and the instance
    counts pooled over the images (``_pooled``): ``instances``, ``instances_hidden``, ``instances_vanished`` (their
    ratio: the share of persons that vanish entirely), the same per size bin (``instances_small...``) and from the
    ground truth (``gt_instances...``; NaN without it).

    Only the rows of ``transform`` are summarised: None (default) the plain rows, else the survival rows of that
    transform (e.g. ``"jpeg:75"``).
    """
    rows = [r for r in rows if _transform_of(r) == transform]
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
            s = summarize([num(r.get(metric)) for r in rs])
            row[f"{metric}_mean"], row[f"{metric}_std"] = s.mean, s.std
            row[f"{metric}_count"], row[f"{metric}_missing"] = s.count, s.missing
        row["miou"] = _miou(rs, "confusion", num_classes, void_classes)
        row["clean_miou"] = _miou(rs, "clean_confusion", num_classes, void_classes)
        linf = [num(r.get("linf")) for r in rs]
        finite = [v for v in linf if not math.isnan(v)]
        row["linf_max"] = max(finite) if finite else math.nan
        for prefix in INSTANCE_PREFIXES:
            row.update(_pooled([r for r in rs if r.get("status") == "ok"], prefix))
        out.append(row)
    return out


def summarize_survival(
    rows: Sequence[Mapping[str, Any]],
    *,
    eps_levels: Sequence[float] | None = None,
    modes: Sequence[str] | None = None,
    attacks: Sequence[str] | None = None,
    transforms: Sequence[str] | None = None,
) -> list[dict[str, Any]]:
    """The survival summary: ``summarize_rows`` of the plain rows (``transform`` ``NO_TRANSFORM``) and of each
    transform's rows (in the order of ``transforms``, then any others), each row led by its ``transform``; empty when
    no row has a transform. Single attacks only (no worst case over attacks)."""
    names = list(dict.fromkeys([*(transforms or ()), *(t for r in rows if (t := _transform_of(r)) is not None)]))
    if not names:
        return []
    out: list[dict[str, Any]] = []
    for t in [None, *names]:
        part = [r for r in rows if _transform_of(r) == t]
        for a in dict.fromkeys(str(r.get("attack") or DEFAULT_ATTACK) for r in part):
            mine = [r for r in part if str(r.get("attack") or DEFAULT_ATTACK) == a]
            for row in summarize_rows(mine, eps_levels=eps_levels, modes=modes, attacks=[a], transform=t):
                out.append({"transform": t or NO_TRANSFORM, **row})
    order = {a: n for n, a in enumerate(attacks or ())}
    return sorted(out, key=lambda r: order.get(r["attack"], len(order)))  # stable: transforms in order per attack


def summarize_results(
    out_dir: str | os.PathLike[str], *, write_csv: bool = True, rows: Sequence[Mapping[str, Any]] | None = None
) -> list[dict[str, Any]]:
    """Summarise ``results.jsonl`` of an experiment directory per (eps, mode) (see ``summarize_rows``); write
    ``summary.csv`` next to it unless ``write_csv=False``. The rows are read with ``read_rows`` (checked against the
    row schema and the configuration; what is dropped is logged) unless given as ``rows``, already read so."""
    out = Path(out_dir)
    experiment: Mapping[str, Any] = {}
    if (out / CONFIG_FILE).exists():
        experiment = read_config(out).get("experiment", {})
    if rows is None:
        rows = rows_of_attacks(read_rows(out), experiment)
    configured: dict[str, Any] = {  # the eps, modes and attacks of the configuration, for both summaries
        "eps_levels": experiment.get("eps_levels"),
        "modes": experiment.get("modes"),
        "attacks": [a["name"] for a in experiment.get("attacks", [])],
    }
    summary = summarize_rows(
        rows,
        **configured,
        num_classes=experiment.get("num_classes"),
        void_classes=[i for i, name in enumerate(experiment.get("label_names") or []) if is_void(str(name))],
    )
    if write_csv:
        write_summary_csv(summary, out / SUMMARY_FILE)
        survival = summarize_survival(rows, **configured, transforms=experiment.get("survive"))
        if survival:
            write_summary_csv(survival, out / SURVIVAL_FILE)
        else:
            (out / SURVIVAL_FILE).unlink(missing_ok=True)  # left from an earlier run with transforms
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


def class_phrase(class_names: Sequence[str]) -> str:
    """``["person"]`` -> ``"person"``; ``["person", "rider"]`` -> ``"person/rider"``."""
    return "/".join(class_names) if class_names else "class"


def sentences(summary: Sequence[Mapping[str, Any]], *, class_names: Sequence[str] = ("person",)) -> list[str]:
    """One sentence per eps a person can read, for the first attack in ``summary``, e.g. ``"at eps=10, 87.1% ± 6.0
    of person pixels hidden, 98.2% ± 0.9 of background kept, 30.0% (12 of 40) of persons vanish entirely (20
    images); restricted to person pixels (post hoc): 61.0% ± 9.5 hidden, 100.0% ± 0.0 kept, 10.0% (4 of 40)
    vanish"``. The first mode present leads; the others follow briefly. The instances are pooled over the images
    (left out where the rows have no instance counts)."""
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
            fooled = pct(r["fooled_mean"], r["fooled_std"])
            kept = pct(r["preserved_mean"], r["preserved_std"])
            v = _vanish(r)
            if n == 0:
                gone = f", {v} of {plural(class_names)} vanish entirely" if v else ""
                lead = f"{fooled} of {cls} pixels hidden, {kept} of background kept{gone} ({r['fooled_count']} images)"
                parts.append(lead if r["mode"] == "full" else f"{labels[r['mode']]}: {lead}")
            else:
                parts.append(f"{labels[r['mode']]}: {fooled} hidden, {kept} kept" + (f", {v} vanish" if v else ""))
        out.append(f"at eps={eps}, " + "; ".join(parts))
    return out


def plural(class_names: Sequence[str]) -> str:
    """What the instances of the hidden class(es) are called: ``["person"]`` -> ``"persons"``, ``["person",
    "rider"]`` -> ``"person/rider instances"``.

    >>> plural(["person"]), plural(["bus"]), plural(["person", "rider"])
    ('persons', 'bus instances', 'person/rider instances')
    """
    if len(class_names) == 1 and class_names[0] and not class_names[0].endswith("s"):
        return f"{class_names[0]}s"
    return f"{class_phrase(class_names)} instances"


def _vanish(row: Mapping[str, Any], prefix: str = "instances") -> str | None:
    """``"30.0% (12 of 40)"``, or None without instances."""
    n, h = num(row.get(prefix)), num(row.get(f"{prefix}_hidden"))
    if math.isnan(n) or n <= 0:
        return None
    return f"{100 * h / n:.1f}% ({int(h)} of {int(n)})"


def survival_sentences(survival: Sequence[Mapping[str, Any]], *, class_names: Sequence[str] = ("person",)) -> list[str]:
    """One sentence per transform at the eps nearest 10, first attack, whole image (else the first mode run):
    ``"after jpeg:75, 41.0% ± 12.0 of person pixels stay hidden (91.0% without), 99.1% ± 0.5 of background kept;
    12.5% (5 of 40) of persons vanish"``, hidden and kept measured against the prediction of the transformed clean
    image."""
    if not survival:
        return []
    cls, who = class_phrase(class_names), plural(class_names)
    first = survival[0]["attack"]
    rows = [r for r in survival if r["attack"] == first]
    modes = [m for m in MODES if any(r["mode"] == m for r in rows)]
    mode = "full" if "full" in modes else modes[0]
    e10 = _nearest10(rows)
    at = {r["transform"]: r for r in rows if r["eps"] == e10 and r["mode"] == mode}
    base = at.get(NO_TRANSFORM)
    out: list[str] = []
    for t, r in at.items():
        if t == NO_TRANSFORM or not r["fooled_count"]:
            continue
        without = f" ({100 * base['fooled_mean']:.1f}% without)" if base and base["fooled_count"] else ""
        text = (
            f"after {t}, {pct(r['fooled_mean'], r['fooled_std'])} of {cls} pixels stay hidden{without}, "
            f"{pct(r['preserved_mean'], r['preserved_std'])} of background kept"
        )
        v = _vanish(r)
        if v:
            text += f"; {v} of {who} vanish"
        out.append(f"at eps={e10}" + ("" if mode == "full" else f" ({mode})") + f", {text}")
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
                f"eps={r['eps']}: mIoU {100 * r['miou']:.1f}%, accuracy {pct(r['accuracy_mean'], r['accuracy_std'])}"
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
            f"{a} at eps={e10}: {pct(row['fooled_mean'], row['fooled_std'])} of {cls} pixels hidden, "
            f"{pct(row['preserved_mean'], row['preserved_std'])} of background kept ({row['fooled_count']} images)"
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
        t = num(r.get("time_s"))
        if math.isnan(t) or t <= 0:
            continue
        per_image.setdefault(r.get("index", r.get("image_id")), set()).add(t)
    return sum(sum(ts) for ts in per_image.values()), len(per_image)
