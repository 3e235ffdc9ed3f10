"""The robustness job's figures from its files alone (``config.json`` and ``results.jsonl``): nothing here runs a
model.

Measures (every figure over the same images: those with every row of the run, unreadable ones left out):

- mIoU: per-class IoU = TP / (TP + FP + FN) from the confusion matrices summed over the images, averaged over the
  classes present (a void output class left out, as ``segattack.evaluate``); accuracy: the mean over images of each
  image's pixel accuracy (SEA's ``aAcc``), pixels labelled 255 left out;
- per budget, every evaluation's mIoU and accuracy, and the worst case over the attacks of ``WORST_CASE_KINDS``
  (white-box, black-box, transfer) in SEA's two kinds: for accuracy, per image the attack with the lowest accuracy;
  for mIoU, the greedy data-set-level choice of ``segattack.metrics.worst_case_miou`` (Croce et al. 2024, Sec. 3.6),
  with the mIoU of the per-image accuracy choice beside it; also the worst case over the white-box attacks alone;
- the minimal-eps curve (where a minimal-norm attack ran): at each budget e, every image counts with its
  adversarial image where the attack's perturbation (its measured L-inf norm) is at most e, else with its clean one;
- the cost: the passes (counted) and seconds of every evaluation, in all and per image;
- the sanity checks (``segattack.robustness.sanity``), each PASS, FAIL or SKIPPED with its numbers.

Budgets are 8-bit levels; rates fractions in [0, 1]; ``null`` where a figure has no image.
"""

from __future__ import annotations

import math
import os
import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from .. import rundir
from ..errors import RunDirError
from ..metrics import dense_confusion, mean_iou, worst_case_miou
from ..rundir import RESULTS_FILE
from . import sanity
from .protocol import BLACK_BOX, CLEAN, FEWER_STEPS, LARGE, MINIMAL_NORM, NOISE, TRANSFER, WHITE_BOX, WORST_CASE_KINDS
from .run import CONFIG_KEY, ROBUSTNESS_FILE, read_robustness_rows

__all__ = ["summarize_robustness", "summarize_rows", "write_robustness_json", "read_run", "SUMMARY_FORMAT"]

SUMMARY_FORMAT = 1


def read_run(out_dir: str | os.PathLike[str]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A robustness directory's record (``config.json``'s ``robustness``) and its valid rows."""
    out = Path(out_dir)
    config = rundir.read_config(out)
    record = config.get(CONFIG_KEY)
    if not isinstance(record, dict):
        raise RunDirError(f"{out} holds no robustness run ({rundir.CONFIG_FILE} has no '{CONFIG_KEY}'); "
                                 "give the --out of a `segattack robustness` run")  # fmt: skip
    rows, _, _ = read_robustness_rows(out / RESULTS_FILE, _keys(record), int(record["num_classes"]),
                                      images=int(record["images"]))  # fmt: skip
    return record, rows


def _evaluations(record: Mapping[str, Any]) -> list[dict[str, Any]]:
    skipped = set(record.get("skipped") or ())
    return [dict(e) for e in record.get("evaluations") or () if e["name"] not in skipped]


def _keys(record: Mapping[str, Any]) -> dict[str, set[float]]:
    return {CLEAN: {0.0}, **{e["name"]: {float(x) for x in e["eps"]} for e in _evaluations(record)}}


def _num(v: float) -> float | None:
    return v if math.isfinite(v) else None


def _nanmean(t: Tensor) -> float:
    keep = ~t.isnan()
    return float(t[keep].mean()) if bool(keep.any()) else math.nan


class _Table:
    """The rows of the complete images, as tensors: confusion matrices (N, K, K) and accuracies (N,) per key."""

    def __init__(self, record: Mapping[str, Any], rows: Sequence[Mapping[str, Any]]) -> None:
        self.k = int(record["num_classes"])
        self.void = list(record.get("void_classes") or ())
        keys = _keys(record)
        by_image: dict[int, dict[tuple[str, float], Mapping[str, Any]]] = {}
        unreadable: set[int] = set()
        for r in rows:
            if r["status"] == "unreadable":
                unreadable.add(int(r["index"]))
                continue
            by_image.setdefault(int(r["index"]), {})[(str(r["evaluation"]), float(r["eps"]))] = r
        want = {(name, e) for name, eps in keys.items() for e in eps}
        self.images = sorted(i for i, got in by_image.items() if i not in unreadable and want <= got.keys())
        self.unreadable = len(unreadable)
        self.partial = len([i for i in by_image if i not in unreadable and i not in self.images])
        self.rows = by_image

    def cms(self, name: str, eps: float) -> Tensor:
        if not self.images:
            return torch.zeros(0, self.k, self.k, dtype=torch.int64)
        return torch.stack(
            [dense_confusion(self.rows[i][(name, float(eps))]["confusion"], self.k) for i in self.images]
        )

    def accs(self, name: str, eps: float) -> Tensor:
        return torch.tensor([math.nan if (a := self.rows[i][(name, float(eps))]["accuracy"]) is None else float(a)
                             for i in self.images], dtype=torch.float64)  # fmt: skip

    def linf(self, name: str, eps: float) -> list[float]:
        return [float(self.rows[i][(name, float(eps))]["linf"]) for i in self.images]

    def miou(self, cms: Tensor) -> float:
        return mean_iou(cms.sum(0), exclude=self.void) if len(cms) else math.nan

    def figures(self, name: str, eps: float) -> dict[str, float | None]:
        return {"miou": _num(self.miou(self.cms(name, eps))), "accuracy": _num(_nanmean(self.accs(name, eps)))}


def _worst(t: _Table, names: Sequence[str], eps: float, seed: int) -> dict[str, Any] | None:
    """SEA's worst case at ``eps`` over the evaluations ``names``: per image for accuracy, greedy for mIoU."""
    if not names or not t.images:
        return None
    cms = torch.stack([t.cms(n, eps) for n in names])  # (L, N, K, K)
    accs = torch.stack([t.accs(n, eps) for n in names])  # (L, N)
    worst_acc = torch.where(accs.isnan(), torch.full_like(accs, math.inf), accs).amin(0)
    worst_acc = torch.where(worst_acc.isinf(), torch.full_like(worst_acc, math.nan), worst_acc)
    greedy = worst_case_miou(cms, exclude=t.void, seed=seed)
    flipped = torch.where(accs.isnan(), torch.full_like(accs, math.inf), accs).flip(0)
    by_acc = (len(names) - 1) - flipped.argmin(0)
    by_acc_miou = t.miou(cms[by_acc, torch.arange(len(t.images))])
    return {
        "attacks": list(names),
        "accuracy": _num(_nanmean(worst_acc)),
        "miou": _num(greedy.miou),
        "miou_per_image_accuracy": _num(by_acc_miou),
        "greedy_rounds": greedy.rounds,
        "chosen": {n: int((greedy.choice == j).sum()) for j, n in enumerate(names)},
    }


def _curve(t: _Table, ev: Mapping[str, Any], budgets: Sequence[float]) -> dict[str, Any] | None:
    """The minimal-eps curve of the minimal-norm evaluation ``ev`` (run once per image at its cap)."""
    if not t.images:
        return None
    cap = float(ev["eps"][0])
    norms = t.linf(ev["name"], cap)
    adv_cms, clean_cms = t.cms(ev["name"], cap), t.cms(CLEAN, 0.0)
    adv_acc, clean_acc = t.accs(ev["name"], cap), t.accs(CLEAN, 0.0)
    grid = sorted({0.0, cap, *(float(b) for b in budgets if b <= cap), *(round(n, 2) for n in norms if n <= cap)})
    points = []
    for g in grid:
        inside = torch.tensor([n <= g + 1e-3 for n in norms])
        acc = torch.where(inside, adv_acc, clean_acc)
        cms = torch.where(inside[:, None, None], adv_cms, clean_cms)
        points.append({"eps": g, "accuracy": _num(_nanmean(acc)), "miou": _num(t.miou(cms)),
                       "images_within": int(inside.sum())})  # fmt: skip
    return {"evaluation": ev["name"], "cap": cap, "median_linf": statistics.median(norms), "points": points}


def _cost(record: Mapping[str, Any], rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Counted passes and seconds of every evaluation, over every row written (the cost paid)."""
    per: dict[str, dict[str, float]] = {}
    images: set[int] = set()
    for r in rows:
        if r["status"] != "ok":
            continue
        images.add(int(r["index"]))
        c = per.setdefault(str(r["evaluation"]), {"forward": 0.0, "backward": 0.0, "seconds": 0.0})
        c["forward"] += float(r["forward"])
        c["backward"] += float(r["backward"])
        c["seconds"] += float(r["time_s"])
    total = {k: sum(c[k] for c in per.values()) for k in ("forward", "backward", "seconds")}
    n = max(len(images), 1)
    return {
        "images": len(images),
        "forward": round(total["forward"], 3), "backward": round(total["backward"], 3),
        "seconds": round(total["seconds"], 3),
        "passes_per_image": round((total["forward"] + total["backward"]) / n, 3),
        "seconds_per_image": round(total["seconds"] / n, 4),
        "by_evaluation": {k: {m: round(v, 3) for m, v in c.items()} for k, c in per.items()},
    }  # fmt: skip


def _checks(t: _Table, evs: Sequence[Mapping[str, Any]], robust: Sequence[Mapping[str, Any]],
            clean: Mapping[str, Any], curve: Mapping[str, Any] | None) -> list[dict[str, Any]]:  # fmt: skip
    def acc(name: str, e: float) -> float:
        return _nanmean(t.accs(name, e)) if t.images else math.nan

    def worst(kind: str) -> dict[float, float]:
        return {float(r["eps"]): float(r[kind]["accuracy"]) for r in robust
                if r.get(kind) and r[kind]["accuracy"] is not None}  # fmt: skip

    out: list[sanity.Check] = []
    large = [e for e in evs if e["kind"] == LARGE]
    if large:
        e_large = float(large[0]["eps"][0])
        out.append(sanity.large_eps_check(acc(large[0]["name"], e_large), eps=e_large))
    else:
        out.append(sanity.skipped("accuracy near 0 at a large eps", "no large-eps evaluation ran"))
    short = [e for e in evs if e["kind"] == FEWER_STEPS]
    if short:
        s = short[0]
        longer = next(e for e in evs if e["name"] == s["shorter_of"])
        e0 = float(s["eps"][0])
        out.append(sanity.steps_check(acc(s["name"], e0), acc(longer["name"], e0),
                                      short_steps=s["options"].get("steps"), long_steps=longer["options"].get("steps"),
                                      eps=e0))  # fmt: skip
    else:
        out.append(sanity.skipped("more iterations never help the model", "no shorter run of a white-box attack"))
    white = worst("white_box")
    for kind, title in ((BLACK_BOX, "black-box weaker than white-box"), (TRANSFER, "transfer weaker than white-box")):
        found = [e for e in evs if e["kind"] == kind]
        if not found:
            why = "no surrogate model (--transfer-from)" if kind == TRANSFER else "no black-box attack ran"
            out.append(sanity.skipped(title, why))
            continue
        ev = found[0]
        out.append(sanity.weaker_check(title, ev["name"], {float(e): acc(ev["name"], float(e)) for e in ev["eps"]},
                                       white))  # fmt: skip
    noise = [e for e in evs if e["kind"] == NOISE]
    clean_acc = clean["accuracy"] if clean["accuracy"] is not None else math.nan
    if noise:
        out.append(sanity.noise_check(clean_acc, {float(e): acc(noise[0]["name"], float(e)) for e in noise[0]["eps"]},
                                      worst("worst")))  # fmt: skip
    else:
        out.append(sanity.skipped("noise of the same eps is harmless", "no noise evaluation ran"))
    if curve is not None:
        at = {float(p["eps"]): float(p["accuracy"]) for p in curve["points"] if p["accuracy"] is not None}
        out.append(sanity.curve_check({e: at[e] for e in worst("worst") if e in at}, worst("worst"),
                                      clean=None if math.isnan(clean_acc) else clean_acc))  # fmt: skip
    else:
        out.append(sanity.skipped("minimal-norm curve consistent with the fixed-eps worst case",
                                  "no minimal-norm attack ran"))  # fmt: skip
    return [c.as_dict() for c in out]


def summarize_rows(record: Mapping[str, Any], rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """``robustness.json``'s content from a run's record and rows (module docstring)."""
    t = _Table(record, rows)
    evs = _evaluations(record)
    budgets = [float(e) for e in record["eps_levels"]]
    seed = int(record.get("seed", 0))
    clean = t.figures(CLEAN, 0.0)
    robust = []
    for e in budgets:
        at = [ev for ev in evs if e in {float(x) for x in ev["eps"]}]
        attacks = [ev["name"] for ev in at if ev["kind"] in WORST_CASE_KINDS]
        robust.append({
            "eps": e,
            "worst": _worst(t, attacks, e, seed),
            "white_box": _worst(t, [ev["name"] for ev in at if ev["kind"] == WHITE_BOX], e, seed),
            "by_evaluation": {ev["name"]: {"kind": ev["kind"], **t.figures(ev["name"], e)} for ev in at},
        })  # fmt: skip
    minimal = [ev for ev in evs if ev["kind"] == MINIMAL_NORM]
    curve = _curve(t, minimal[0], budgets) if minimal else None
    large = [
        {"evaluation": ev["name"], "eps": float(x), **t.figures(ev["name"], float(x))}
        for ev in evs if ev["kind"] == LARGE for x in ev["eps"]
    ]  # fmt: skip
    describe = {k: record.get(k) for k in ("model", "data", "size", "surrogate") if record.get(k) is not None}
    return {
        "format": SUMMARY_FORMAT,
        "units": "eps in 8-bit levels (2 means 2/255); mIoU and accuracy as fractions in [0, 1]",
        "protocol": record["protocol"],
        "eps": budgets,
        **describe,
        "images": {
            "run": int(record["images"]),
            "complete": len(t.images),
            "unreadable": t.unreadable,
            "partial": t.partial,
        },  # fmt: skip
        "complete": len(t.images) + t.unreadable == int(record["images"]),
        "evaluations": [
            {
                k: ev.get(k)
                for k in ("name", "kind", "attack", "options", "eps", "shorter_of")
                if ev.get(k) is not None or k == "attack"
            }
            for ev in evs
        ],  # fmt: skip
        "skipped": list(record.get("skipped") or ()),
        "notes": [*(record.get("notes") or ()), *(record.get("run_notes") or ())],
        "clean": clean,
        "robust": robust,
        "large_eps": large,
        "minimal_eps_curve": curve,
        "cost": _cost(record, rows),
        "checks": _checks(t, evs, robust, clean, curve),
    }


def summarize_robustness(out_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """``summarize_rows`` of a robustness directory's files."""
    record, rows = read_run(out_dir)
    return summarize_rows(record, rows)


def write_robustness_json(out_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """Write ``robustness.json`` (atomically) from the directory's files; return its content."""
    summary = summarize_robustness(out_dir)
    rundir.write_json(Path(out_dir) / ROBUSTNESS_FILE, summary)
    return summary
