"""Hostile model cards, export names and directories, and Ctrl-C in commands that do not resume: each case ends
in one line (exit 2) or a true message (exit 130), never a traceback, and nothing is read or written outside the
folders it belongs to."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file
from torch import Tensor, nn

import segattack as sa
from segattack import zoo
from segattack.cli import main
from segattack.errors import ModelError
from segattack.train import TrainConfig
from segattack.zoo import ModelCard

from .models_for_cli import one_line_error

ROOT = Path(__file__).resolve().parents[1]
S = ["--data", "synthetic:1", "--size", "32x64"]
#: A training run that would take a few seconds: the refusals below must come before it.
TRAIN = ["--width", "0.0625", "--steps", "2", "--batch-size", "1", "--crop", "24x48", "--size", "32x64",
         "--train-images", "2", "--val-images", "1", "--val-every", "0", "--device", "cpu",
         "--no-progress"]  # fmt: skip


def _tiny_card(folder: Path, name: str = "m") -> Path:
    net = zoo.FCN8s(19, width=0.0625)
    return zoo.save_model(net, folder / name, arch="fcn8s", arch_kwargs={"width": 0.0625}, mean=(0.5, 0.5, 0.5),
                          std=(0.25, 0.25, 0.25), num_classes=19)  # fmt: skip


def _edited(card: Path, **fields: Any) -> Path:
    data = json.loads(card.read_text())
    data.update(fields)
    card.write_text(json.dumps(data))
    return card


# -- corrupt weights ----------------------------------------------------------------------------------------------


@pytest.fixture()
def corrupt_card(tmp_path: Path) -> Path:
    """A card whose weights file has a corrupt safetensors header, with the file's true SHA-256 (the checksum passes:
    the header is what fails)."""
    card = _tiny_card(tmp_path / "corrupt")
    weights = tmp_path / "corrupt" / "m.safetensors"
    weights.write_bytes(b"\xff" * 64)
    return _edited(card, sha256=hashlib.sha256(weights.read_bytes()).hexdigest())


def test_a_corrupt_safetensors_header_in_a_card_is_one_line(
    corrupt_card: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    weights = str(corrupt_card.parent / "m.safetensors")
    err = one_line_error(["eval", "--model", f"zoo:{corrupt_card}", *S], capsys)
    assert "cannot read weights file" in err and weights in err and str(corrupt_card) in err
    err = one_line_error(["train", "--init", f"zoo:{corrupt_card}", "--out", str(tmp_path / "t"), *TRAIN], capsys)
    assert "cannot read weights file" in err and weights in err
    assert not (tmp_path / "t").exists()
    with pytest.raises(ModelError, match="cannot read weights file"):
        zoo.load("m", weights_dir=corrupt_card.parent)


def test_weights_and_cards_share_one_reader(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--weights FILE.safetensors and a card's weights give the same words for the same corrupt header."""
    bad = tmp_path / "w.safetensors"
    bad.write_bytes(b"\xff" * 64)
    err = one_line_error(["eval", "--model", "tests.models_for_cli:tiny_fcn_module", "--weights", str(bad), *S],
                         capsys)  # fmt: skip
    assert f"cannot read weights file {str(bad)!r}: Error while deserializing" in err


# -- card fields of the wrong type or value -----------------------------------------------------------------------


BAD_FIELDS = [
    ("num_classes", None, "num_classes must be a positive integer"),
    ("num_classes", 0, "num_classes must be a positive integer"),
    ("num_classes", True, "num_classes must be a positive integer"),
    ("mean", 5, "mean must be a list of per-channel means"),
    ("mean", [0.5, 0.5, 300], "mean must be a list of per-channel means in [0, 1]"),
    ("std", "0.2", "std must be a list of positive"),
    ("std", [0.2, 0.2, 0], "std must be a list of positive"),
    ("std", [0.2, 0.2], "mean has 3 values but std 2"),
    ("arch_kwargs", [1, 2], "arch_kwargs must be a JSON object"),
    ("arch", 7, "names architecture 7"),
    ("sha256", 123, "sha256 must be the SHA-256"),
    ("sha256", "abc", "sha256 must be the SHA-256"),
    ("weights", 7, "weights must be the file name"),
    ("description", ["a"], "description must be a string"),
    ("class_names", "person", "class_names must be a list of strings"),
    ("training", "yes", "training must be a JSON object"),
    ("training", {"image_size": "256x512"}, "training.image_size must be [height, width]"),
    ("format", 2, "has format 2, newer than"),
]


@pytest.mark.parametrize(("field", "value", "phrase"), BAD_FIELDS, ids=[f"{f}={v!r}" for f, v, _ in BAD_FIELDS])
def test_card_fields_of_the_wrong_type_are_one_line(
    field: str, value: object, phrase: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    card = _edited(_tiny_card(tmp_path), **{field: value})
    err = one_line_error(["eval", "--model", f"zoo:{card}", *S], capsys)
    assert str(card) in err and phrase in err
    with pytest.raises(ModelError, match=r"^model card .*m\.json") as info:
        ModelCard.read(card)
    assert phrase in str(info.value)


def test_a_bad_card_is_one_line_for_train_init(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    card = _edited(_tiny_card(tmp_path), mean=5)
    err = one_line_error(["train", "--init", f"zoo:{card}", "--out", str(tmp_path / "t"), *TRAIN], capsys)
    assert f"init zoo:{card}" in err and "mean must be a list" in err


def test_a_card_that_is_not_an_object_or_not_json_is_one_line(tmp_path: Path) -> None:
    card = _tiny_card(tmp_path)
    card.write_text("[1, 2]")
    with pytest.raises(ModelError, match="must hold a JSON object"):
        ModelCard.read(card)
    card.write_bytes(b"\xff\xfe{")
    with pytest.raises(ModelError, match="not UTF-8"):
        ModelCard.read(card)


def test_save_model_refuses_a_card_it_could_not_load(tmp_path: Path) -> None:
    net = zoo.FCN8s(19, width=0.0625)
    with pytest.raises(ValueError, match="class_names: 2 class names given but the model has 19 classes"):
        zoo.save_model(net, tmp_path / "m", arch="fcn8s", arch_kwargs={"width": 0.0625}, mean=(0.5,) * 3,
                       std=(0.25,) * 3, num_classes=19, extra={"class_names": ["a", "b"]})  # fmt: skip
    with pytest.raises(ValueError, match="mean must be a list of per-channel means in"):
        zoo.save_model(net, tmp_path / "m", arch="fcn8s", arch_kwargs={"width": 0.0625}, mean=(128.0,) * 3,
                       std=(0.25,) * 3, num_classes=19)  # fmt: skip
    assert not list(tmp_path.iterdir())  # nothing written


# -- paths stay inside their folders --------------------------------------------------------------------------------


@pytest.mark.parametrize("weights", ["../../../../etc/passwd", "/etc/passwd", "../other/m.safetensors", "sub/m.x"])
def test_a_cards_weights_stay_in_its_folder(weights: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    card = _edited(_tiny_card(tmp_path / "card"), weights=weights)
    err = one_line_error(["eval", "--model", f"zoo:{card}", *S], capsys)
    assert "weights must be the file name of the weights in the card's folder" in err and "checksum" not in err


def test_a_card_cannot_borrow_weights_from_another_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The weights of a valid model in another folder, named with their true checksum: refused, not loaded."""
    _tiny_card(tmp_path / "other")
    card = _edited(_tiny_card(tmp_path / "card"), weights="../other/m.safetensors",
                   sha256=zoo.sha256_file(tmp_path / "other" / "m.safetensors"))  # fmt: skip
    (tmp_path / "card" / "m.safetensors").unlink()
    err = one_line_error(["eval", "--model", f"zoo:{card}", *S], capsys)
    assert "weights must be the file name" in err


@pytest.mark.parametrize("name", ["../../escape", "a/b", "..", "", "/tmp/x", "m.json"])
def test_export_names_are_plain_file_names(name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "a" / "b" / "out"
    err = one_line_error(["train", "--out", str(out), "--export-name", name, *TRAIN], capsys)
    assert "export_name (--export-name) must be a plain file name" in err
    assert not out.exists() and not list(tmp_path.rglob("escape*")) and not list(tmp_path.rglob("*.safetensors"))
    with pytest.raises(ValueError, match="export_name"):
        TrainConfig(out_dir=str(out), export_name=name)


# -- outputs checked before any work --------------------------------------------------------------------------------


def test_an_export_dir_that_is_a_file_is_refused_before_training(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    out = tmp_path / "out"
    err = one_line_error(["train", "--out", str(out), "--export-dir", str(a_file), *TRAIN], capsys)
    assert f"export directory (export_dir, --export-dir) {a_file} is a file" in err
    assert not (out / "checkpoint.pt").exists() and not (out / "metrics.jsonl").exists()
    err = one_line_error(["train", "--out", str(out), "--export-dir", str(a_file / "sub"), *TRAIN], capsys)
    assert "lies under" in err and not (out / "checkpoint.pt").exists()


def test_an_export_file_that_is_a_folder_is_refused_before_training(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    (out / "model.json").mkdir(parents=True)
    err = one_line_error(["train", "--out", str(out), *TRAIN], capsys)
    assert f"exported to {out / 'model.json'}, which is a directory" in err
    assert not (out / "checkpoint.pt").exists()


# -- Ctrl-C in commands that do not resume --------------------------------------------------------------------------


class _CtrlC(nn.Module):
    """A network whose every call is interrupted, as Ctrl-C during its forward pass would be."""

    def forward(self, x: Tensor) -> Tensor:
        raise KeyboardInterrupt


def interrupted_model() -> sa.PixelModel:
    return sa.PixelModel(_CtrlC(), mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), num_classes=19)


def test_ctrl_c_in_eval_says_that_nothing_was_written(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "eval.json"
    argv = ["eval", "--model", "tests.test_hardening_zoo:interrupted_model", *S, "--json", str(target)]
    capsys.readouterr()
    assert main(argv) == 130
    err = capsys.readouterr().err
    assert "Traceback" not in err and "resume" in err and "does not resume" in err, err
    assert "nothing was written" in err and "run the same command again to resume" not in err
    assert not target.exists()


def test_ctrl_c_in_universal_says_what_a_rerun_does(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "u"
    argv = ["universal", "--model", "tests.test_hardening_zoo:interrupted_model", "--fit-data", "synthetic-train:2",
            "--data", "synthetic:1", "--size", "32x64", "--steps", "2", "--out", str(out)]  # fmt: skip
    capsys.readouterr()
    assert main(argv) == 130
    err = capsys.readouterr().err
    assert "Traceback" not in err and "does not resume" in err and "from the start" in err, err
    assert "run the same command again to resume" not in err
    written = {p.name for p in out.iterdir()} if out.exists() else set()
    assert not written & {"universal.npz", "results.jsonl", "summary.json", "examples.png", "universal.png"}


# -- one typed card, read in one place ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(zoo.available()))
def test_shipped_cards_read_round_trip_and_load_bit_identically(name: str) -> None:
    path = zoo.WEIGHTS_DIR / f"{name}.json"
    raw = json.loads(path.read_text())
    card = ModelCard.read(path)
    assert card.as_json() == raw and list(card.as_json()) == list(raw)  # same fields, same order
    assert zoo.sha256_file(card.weights_path) == card.sha256 == raw["sha256"]
    model = zoo.load_card(card)
    stored = load_file(str(card.weights_path))
    state = model.net.state_dict()
    assert set(state) == set(stored)
    assert all(torch.equal(state[k], stored[k]) and state[k].dtype == stored[k].dtype for k in stored)


def test_the_library_loads_an_init_model_without_the_command_line_layer(tmp_path: Path) -> None:
    """``train --init`` reads its card through the zoo: neither segattack.specs nor segattack.commands is imported."""
    code = (
        "import sys\n"
        "from segattack.train import TrainConfig, check_init\n"
        f"check_init(TrainConfig(out_dir={str(tmp_path)!r}, init='zoo:fcn2s-synth-w8-r32', dropout=0.1, "
        "output_stride=2, refine=32, refine2=24))\n"
        "print(sorted(m for m in sys.modules if m.startswith(('segattack.specs', 'segattack.commands', "
        "'segattack.cli'))))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]", done.stdout + done.stderr
