"""`segattack run` options: `--seed` (every random draw, recorded in config.json, kept by a resume), and
`--attack transfer`, refused naming the commands that take a surrogate."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from segattack.cli import main

from .models_for_cli import one_line_error

pytestmark = pytest.mark.usefixtures("one_thread")

ARGS = ["run", "--goal", "untargeted", "--attack", "pgd", "--attack-opt", "pgd.steps=2", "--data", "synthetic:1",
        "--size", "32x64", "--eps", "4", "--figure1", "0"]  # fmt: skip


def rows(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]


def test_the_seed_draws_the_random_start_and_a_resume_keeps_it(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    one, two, again = tmp_path / "one", tmp_path / "two", tmp_path / "again"
    assert main([*ARGS, "--seed", "1", "--out", str(one)]) == 0
    assert main([*ARGS, "--seed", "2", "--out", str(two)]) == 0
    assert main([*ARGS, "--seed", "1", "--out", str(again)]) == 0
    assert json.loads((one / "config.json").read_text())["run"]["seed"] == 1
    assert rows(one)[0]["l2"] != rows(two)[0]["l2"]  # another random start
    assert rows(one)[0]["l2"] == rows(again)[0]["l2"]  # the same seed, the same rows
    err = one_line_error([*ARGS, "--seed", "2", "--out", str(one)], capsys)
    assert "seed 1" in err and "--seed 1" in err
    assert main([*ARGS, "--seed", "1", "--out", str(one)]) == 0  # the same seed resumes
    assert len(rows(one)) == 1


def test_attack_transfer_names_the_commands_that_take_a_surrogate(tmp_path: Path, capsys) -> None:
    err = one_line_error(["run", "--goal", "untargeted", "--attack", "pgd,transfer", "--out", str(tmp_path / "t")],
                         capsys)  # fmt: skip
    assert "--transfer-from" in err and "segattack compare" in err
    assert not (tmp_path / "t").exists()
