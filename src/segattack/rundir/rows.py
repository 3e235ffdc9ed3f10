"""The result rows of an experiment (``results.jsonl``): their schema, checked in one place whenever rows are read.

``check_rows`` is the one check, used by the report (``read_rows``, ``load_results``) and by a resumed run
(``parse_results``). A row is kept only when:

- it is a JSON object with ``index`` (a whole number >= 0), ``eps`` (a finite number >= 0, in 8-bit levels),
  ``mode`` (one of ``MODES``) and ``status`` (one of ``STATUSES``);
- ``image_id``, ``attack`` and ``transform`` are strings where present (``attack`` and ``transform`` may be null);
- the measures of ``NUMERIC_FIELDS`` are finite numbers or null (NaN and infinity are written as null, so a NaN
  read back is a damaged row), the counts of ``COUNT_FIELDS`` whole numbers >= 0 or null, the confusion matrices
  lists or null;
- with the experiment's configuration (``config.json``'s ``experiment``): its eps lies in ``eps_levels``, its mode
  in ``modes``, its transform in ``survive``, its index below ``images``;
- no earlier row has its key (index, attack, eps, mode, transform): a duplicate is dropped, the first row kept.

What is dropped is counted by reason (``RowCheck.dropped``) and said in one line (``RowCheck.message``), e.g.
``dropped 3 rows of results.jsonl (2 duplicates, 1 with fooled not a number)``; a resumed run attacks the images of
dropped rows again.
"""

from __future__ import annotations

import logging
import math
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .files import jsonl_lines
from .layout import CONFIG_FILE, RESULTS_FILE, read_config

__all__ = [
    "MODES",
    "STATUSES",
    "ROW_FIELDS",
    "NUMERIC_FIELDS",
    "COUNT_FIELDS",
    "DEFAULT_ATTACK",
    "RowCheck",
    "check_rows",
    "row_problem",
    "normalise_row",
    "parse_results",
    "load_results",
    "read_rows",
    "read_checked",
    "rows_of_attacks",
]

log = logging.getLogger(__name__)

MODES = ("full", "posthoc", "during")
STATUSES = ("ok", "absent", "all_hidden", "unreadable")
#: The fields of every result row, in order: the measures, the ``transform`` of a survival row (null for the plain
#: rows), SSIM and the instance counts (``segattack.instances.instance_fields()``). A data set with ground-truth
#: instances adds ``instance_fields("gt_instances")`` after them (``segattack.experiment.row_fields``).
ROW_FIELDS = (
    "image_id", "index", "attack", "eps", "mode", "steps", "fooled", "preserved", "target_hit", "class_pixels",
    "accuracy", "clean_accuracy", "confusion", "clean_confusion",
    "linf", "l2", "mean_abs", "psnr", "time_s", "status",
    "transform", "ssim",
    "instances", "instances_hidden", "instances_small", "instances_small_hidden", "instances_medium",
    "instances_medium_hidden", "instances_large", "instances_large_hidden",
)  # fmt: skip
#: Row fields read back as float, ``null`` -> NaN.
NUMERIC_FIELDS = (
    "fooled", "preserved", "target_hit", "accuracy", "clean_accuracy", "linf", "l2", "mean_abs", "psnr", "time_s",
    "ssim",
)  # fmt: skip
#: Row fields that count (pixels, steps, instances): whole numbers >= 0 or null.
COUNT_FIELDS = (
    "steps", "class_pixels", "instances", "instances_hidden", "instances_small", "instances_small_hidden",
    "instances_medium", "instances_medium_hidden", "instances_large", "instances_large_hidden",
)  # fmt: skip
#: The paper's attack: the attack of rows written before rows named theirs, and the command line's default (the
#: registry's ``segattack.attacks.registry.DEFAULT_ATTACK``, defined beside the attacks, is the same name; a test
#: keeps them equal: this module and the command line must not import the attacks and torch).
DEFAULT_ATTACK = "illm"
_DUPLICATE = "duplicate"


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _is_count(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def row_problem(row: Any, experiment: Mapping[str, Any] | None = None) -> str | None:
    """Why ``row`` is not a valid result row (``"with fooled not a number"``, ...), None for a valid one. With
    ``experiment`` (``config.json``'s ``experiment``) the row must also belong to that configuration."""
    if not isinstance(row, dict):
        return "not a JSON object"
    for key in ("index", "eps", "mode", "status"):
        if key not in row:
            return f"without {key}"
    if not _is_count(row["index"]):
        return "with index not a whole number >= 0"
    eps = row["eps"]
    if not _is_number(eps) or not math.isfinite(eps) or eps < 0:
        return "with eps not a number >= 0"
    if row["mode"] not in MODES:
        return "with an unknown mode"
    if row["status"] not in STATUSES:
        return "with an unknown status"
    for key in ("image_id",):
        if key in row and not isinstance(row[key], str):
            return f"with {key} not a string"
    for key in ("attack", "transform"):
        if row.get(key) is not None and not isinstance(row[key], str):
            return f"with {key} not a string"
    for key in NUMERIC_FIELDS:
        v = row.get(key)
        if v is not None and not _is_number(v):
            return f"with {key} not a number"
        if v is not None and not math.isfinite(v):
            return f"with {key} not finite"
    for key in COUNT_FIELDS:
        v = row.get(key)
        if v is not None and not _is_count(v):
            return f"with {key} not a whole number >= 0"
    for key in ("confusion", "clean_confusion"):
        if row.get(key) is not None and not isinstance(row[key], list):
            return f"with {key} not a list"
    if experiment:
        return _config_problem(row, experiment)
    return None


def _config_problem(row: Mapping[str, Any], experiment: Mapping[str, Any]) -> str | None:
    eps_levels = experiment.get("eps_levels")
    if isinstance(eps_levels, list) and all(_is_number(e) for e in eps_levels):
        if float(row["eps"]) not in {float(e) for e in eps_levels}:
            return "at an eps outside the configuration"
    modes = experiment.get("modes")
    if isinstance(modes, list) and row["mode"] not in modes:
        return "of a mode outside the configuration"
    survive = experiment.get("survive")
    if isinstance(survive, list) and row.get("transform") and row["transform"] not in survive:
        return "of a transform outside the configuration"
    images = experiment.get("images")
    if _is_count(images) and row["index"] >= images:
        return "of an image index outside the configuration"
    return None


def _key(row: Mapping[str, Any]) -> tuple[int, str, float, str, str]:
    return (int(row["index"]), str(row.get("attack") or DEFAULT_ATTACK), float(row["eps"]), str(row["mode"]),
            str(row.get("transform") or ""))  # fmt: skip


def normalise_row(row: dict[str, Any]) -> dict[str, Any]:
    """A row as read back: ``null`` numeric fields become NaN, a missing attack the default one."""
    for key in NUMERIC_FIELDS:
        if key in row and row[key] is None:
            row[key] = math.nan
    if not row.get("attack"):
        row["attack"] = DEFAULT_ATTACK
    return row


@dataclass
class RowCheck:
    """What ``check_rows`` kept and dropped: the valid rows (normalised, in file order), their raw lines, the
    number of rows dropped per reason, and whether the last line was torn (a crash while writing it)."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    raw: list[bytes] = field(default_factory=list)
    dropped: Counter[str] = field(default_factory=Counter)
    torn: bool = False

    @property
    def changed(self) -> bool:
        """Whether anything was dropped (the file then differs from ``raw``)."""
        return self.torn or bool(self.dropped)

    def message(self, name: str = RESULTS_FILE) -> str | None:
        """``"dropped 3 rows of results.jsonl (2 duplicates, 1 with fooled not a number)"``; None when nothing was
        dropped."""
        if not self.changed:
            return None
        parts = []
        for reason, n in sorted(self.dropped.items(), key=lambda kv: (-kv[1], kv[0])):
            parts.append(f"{n} duplicate{'s' if n > 1 else ''}" if reason == _DUPLICATE else f"{n} {reason}")
        if self.torn:
            parts.append("1 incomplete last line")
        total = sum(self.dropped.values()) + int(self.torn)
        return f"dropped {total} row{'s' if total != 1 else ''} of {name} ({', '.join(parts)})"


def check_rows(data: bytes, experiment: Mapping[str, Any] | None = None) -> RowCheck:
    """Check the lines of a ``results.jsonl`` (its bytes) against the row schema (module docstring)."""
    result = RowCheck()
    result.torn, lines = jsonl_lines(data)
    seen: set[tuple[int, str, float, str, str]] = set()
    for _, line, row in lines:
        problem = row_problem(row, experiment) if row is not None else "not JSON"
        if problem is None:
            key = _key(row)
            if key in seen:
                problem = _DUPLICATE
            seen.add(key)
        if problem is not None:
            result.dropped[problem] += 1
            continue
        result.rows.append(normalise_row(row))
        result.raw.append(line)
    return result


def load_results(path: str | os.PathLike[str], experiment: Mapping[str, Any] | None = None) -> RowCheck:
    """The checked rows of a ``results.jsonl`` (``check_rows``; a missing file reads as empty). Says nothing: the
    caller reports ``RowCheck.message()``. The file is left as it is."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        return RowCheck()
    return check_rows(data, experiment)


def parse_results(
    path: str | os.PathLike[str], experiment: Mapping[str, Any] | None = None
) -> tuple[list[dict[str, Any]], list[bytes], bool]:
    """Rows of a ``results.jsonl`` (checked and normalised), their raw lines, and whether anything was dropped;
    what was dropped is logged as a warning."""
    result = load_results(path, experiment)
    message = result.message(Path(path).name)
    if message is not None:
        log.warning("%s: %s", path, message)
    return result.rows, result.raw, result.changed


def _experiment(out: Path) -> dict[str, Any] | None:
    if not (out / CONFIG_FILE).is_file():
        return None
    experiment = read_config(out).get("experiment")
    return experiment if isinstance(experiment, dict) else None


def read_rows(out_dir: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The valid rows of ``results.jsonl`` (checked against the schema and, where the directory has one, its
    ``config.json``; ``null`` read back as NaN for numeric fields); what is dropped is logged as a warning.
    Read-only: the file is left as it is."""
    out = Path(out_dir)
    return parse_results(out / RESULTS_FILE, _experiment(out))[0]


def read_checked(out_dir: str | os.PathLike[str]) -> RowCheck:
    """``load_results`` of an experiment directory against its configuration (if it has one), without logging."""
    out = Path(out_dir)
    return load_results(out / RESULTS_FILE, _experiment(out))


def rows_of_attacks(rows: Sequence[dict[str, Any]], experiment: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """The rows of the attacks ``experiment`` (``config.json``'s) runs; the rows an earlier run of the directory
    left for other attacks (its ``kept_attacks``: finished work, never deleted) stay in the file but are not this
    run's to report. All rows where the experiment lists no attacks."""
    listed = (experiment or {}).get("attacks")
    if not isinstance(listed, list) or not listed:
        return list(rows)
    names = {a.get("name") for a in listed if isinstance(a, Mapping)}
    return [r for r in rows if (r.get("attack") or DEFAULT_ATTACK) in names]
