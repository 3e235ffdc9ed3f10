"""``segattack train --init zoo:NAME``: the network options not given come from the init's card."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from segattack.cli import build_parser, main
from segattack.commands.train import NETWORK_DEFAULTS, network_options

pytestmark = pytest.mark.usefixtures("one_thread")


def options(*argv: str) -> dict:
    return network_options(build_parser().parse_args(["train", "--out", "x", *argv]))


def test_without_init_the_defaults() -> None:
    assert options() == NETWORK_DEFAULTS
    assert options("--arch", "deeplabv3", "--width", "0.5")["width"] == 0.5


def test_init_fills_what_is_not_given() -> None:
    got = options("--init", "zoo:fcn2s-synth-w8-r32")
    assert got == {"arch": "fcn8s", "width": 0.125, "batch_norm": True, "dropout": 0.1, "output_stride": 2,
                   "refine": 32, "refine2": 24}  # fmt: skip
    assert options("--init", "zoo:fcn2s-synth-w8-r32", "--refine2", "32")["refine2"] == 32  # given: kept
    assert options("--init", "zoo:deeplabv3-synth")["arch"] == "deeplabv3"


def test_an_unreadable_init_is_left_to_its_own_check(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert options("--init", "zoo:no-such-model") == NETWORK_DEFAULTS
    code = main(["train", "--init", "zoo:no-such-model", "--steps", "1", "--out", str(tmp_path / "t")])
    err = capsys.readouterr().err
    assert code == 2 and "no-such-model" in err


def test_fine_tuning_the_default_needs_only_its_name(tmp_path: Path) -> None:
    out = tmp_path / "ft"
    argv = ["train", "--init", "zoo:fcn2s-synth-w8-r32", "--adversarial", "pgd", "--adv-eps", "4", "--adv-steps", "1",
            "--steps", "1", "--batch-size", "1", "--train-images", "1", "--val-images", "1", "--adv-val-images", "1",
            "--crop", "32x64", "--size", "32x64", "--out", str(out), "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    card = json.loads((out / "model.json").read_text())
    shipped = json.loads((Path(__file__).resolve().parents[1] / "src/segattack/zoo/weights/fcn2s-synth-w8-r32.json")
                         .read_text())  # fmt: skip
    assert card["arch"] == shipped["arch"] and card["arch_kwargs"] == shipped["arch_kwargs"]
