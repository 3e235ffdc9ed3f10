"""The results-format page of the documentation names every field a run writes, so that it cannot fall behind."""

from __future__ import annotations

import json
from pathlib import Path

from segattack.instances import instance_fields
from segattack.rundir.rows import ROW_FIELDS

PAGE = Path(__file__).resolve().parents[1] / "docs" / "reference" / "results.md"


def _walk(value: object, prefix: str = "") -> list[str]:
    if not isinstance(value, dict):
        return [prefix]
    return [key for k, v in value.items() for key in _walk(v, f"{prefix}{k}.")]


def test_every_row_field_is_documented() -> None:
    text = PAGE.read_text()
    fields = [*ROW_FIELDS, *instance_fields("gt_instances"), "gt_instances_missed"]
    missing = [f for f in fields if f"`{f}`" not in text]
    assert not missing, f"docs/reference/results.md does not document the row fields {missing}"


def test_every_config_field_of_a_run_is_documented(tmp_path: Path) -> None:
    from segattack.cli import main

    out = tmp_path / "run"
    argv = ["run", "--data", "synthetic:1", "--size", "32x64", "--eps", "1", "--figure1", "0", "--out", str(out)]
    assert main(argv) == 0
    config = json.loads((out / "config.json").read_text())
    text = PAGE.read_text()
    missing = sorted(key for key in (k.rstrip(".") for k in _walk(config)) if not _documented(key, text))
    assert not missing, f"docs/reference/results.md does not document the config.json fields {missing}"


def _documented(key: str, text: str) -> bool:
    """``experiment.passes.illm`` is documented by ``experiment.passes`` (a mapping keyed by attack name, and
    ``run.versions.torch`` by ``run.versions``); a top-level key (``format``) by itself."""
    parts = key.split(".")
    return any(f"`{'.'.join(parts[:n])}`" in text or f"`{'.'.join(parts[:n])}," in text
               for n in range(len(parts), min(2, len(parts)) - 1, -1))  # fmt: skip
