"""An image's rows depend on nothing but the configuration and the image: not on its batch, not on an interruption and
resume, not on the other attacks of the run (every random draw is seeded from the run's seed and the image id).
torchrun's process count is checked in tests/test_distributed.py."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import pytest

import segattack as sa
from segattack.experiment import ExperimentConfig, Progress, read_rows, run_experiment

from .models_for_cli import ListDataset, street_image, tiny_fcn

#: Attacks with random starts (and one without), a few steps each.
ATTACKS = ("pgd", "apgd", "illm")
OPTIONS = {"pgd": {"steps": 3}, "apgd": {"steps": 3}, "illm": {}}


def data(n: int = 5) -> ListDataset:
    return ListDataset([street_image(i) for i in range(n)])


def config(**kw: Any) -> ExperimentConfig:
    attacks = [sa.pipeline.AttackSpec(a, OPTIONS[a]) for a in kw.pop("attacks", ATTACKS)]
    return ExperimentConfig(**{"eps": (2, 4), "classes": (11,), "attacks": attacks, "figure1": 0, **kw})


def rows(out: Path, attack: str | None = None) -> list[str]:
    """Rows without their timing, as canonical JSON, sorted."""
    kept = [r for r in read_rows(out) if attack is None or r["attack"] == attack]
    return sorted(json.dumps({k: (None if v != v else v) for k, v in r.items() if k != "time_s"}) for r in kept)


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("det") / "ref"
    run_experiment(tiny_fcn(), data(), config(batch_size=2), out)
    return out


def test_rows_do_not_depend_on_the_batch(reference: Path, tmp_path: Path) -> None:
    for size in (1, 3):
        run_experiment(tiny_fcn(), data(), config(batch_size=size), tmp_path / f"b{size}")
        assert rows(tmp_path / f"b{size}") == rows(reference), size


def test_a_resumed_run_equals_an_uninterrupted_one(reference: Path, tmp_path: Path) -> None:
    out = tmp_path / "resumed"

    def stop_after_two(p: Progress) -> None:
        if p.done >= 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_experiment(tiny_fcn(), data(), config(batch_size=1), out, progress=stop_after_two)
    assert 0 < len(read_rows(out)) < len(read_rows(reference))
    run_experiment(tiny_fcn(), data(), config(batch_size=1), out)
    assert rows(out) == rows(reference)


def test_an_attack_s_rows_do_not_depend_on_the_other_attacks(reference: Path, tmp_path: Path) -> None:
    run_experiment(tiny_fcn(), data(), config(batch_size=2, attacks=("apgd",)), tmp_path / "alone")
    assert rows(tmp_path / "alone") == rows(reference, "apgd")


def test_the_seed_decides_the_random_draws(reference: Path, tmp_path: Path) -> None:
    run_experiment(tiny_fcn(), data(), config(batch_size=2, seed=1), tmp_path / "seed1")
    assert rows(tmp_path / "seed1", "illm") == rows(reference, "illm")  # no random draw
    assert rows(tmp_path / "seed1", "pgd") != rows(reference, "pgd")


def test_attacks_taken_as_values_run_and_are_recorded(tmp_path: Path) -> None:
    def nudge(model: Any, images: Any, labels: Any, *, eps: float, targeted: bool, mask: Any = None) -> Any:
        return (images - eps).clamp(0, 1)

    js = functools.partial(sa.attacks.pgd, loss="js", steps=2)
    cfg = ExperimentConfig(eps=(2,), classes=(11,), attacks=(js, nudge), figure1=0, modes=("full", "posthoc"))
    run_experiment(tiny_fcn(), data(2), cfg, tmp_path / "values")
    found = {r["attack"] for r in read_rows(tmp_path / "values")}
    assert found == {"pgd", f"{__name__}.test_attacks_taken_as_values_run_and_are_recorded.<locals>.nudge"}
    recorded = json.loads((tmp_path / "values" / "config.json").read_text())["experiment"]["attacks"]
    assert recorded[0] == {"name": "pgd", "options": {"loss": "js", "steps": 2}}
    assert recorded[1]["callable"] is True
