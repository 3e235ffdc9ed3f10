"""Class names of models whose outputs are not the 19 Cityscapes train ids (``--class-names``, the names a model
carries, the void class), and ``--bgr`` for networks trained on OpenCV-read images."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import Tensor, nn

import segattack as sa
from segattack import specs
from segattack.cli import main
from segattack.data.labels import CLASS_NAMES, class_ids, is_void, label_names
from segattack.models import model_fingerprint

from .models_for_cli import TinyFCN, one_line_error, write_street_pngs

MODEL = "tests.models_for_cli:tiny_fcn"
BARE = "tests.models_for_cli:tiny_fcn_module"
TWENTY = "tests.test_class_names:twenty_class_module"


class TwentyFCN(nn.Module):
    """The tiny nearest-colour FCN with a 20th output, a void class that never wins."""

    def __init__(self) -> None:
        super().__init__()
        self.net = TinyFCN()

    def forward(self, x: Tensor) -> Tensor:
        logits = self.net(x)
        return torch.cat([logits, torch.full_like(logits[:, :1], -100.0)], dim=1)


def twenty_class_module() -> nn.Module:
    return TwentyFCN()


def self_named_model() -> sa.PixelModel:
    """A ready PixelModel that carries its own 20 class names (the last one void)."""
    return sa.PixelModel(TwentyFCN(), class_names=[*renamed("walker"), "ignore"])


@pytest.fixture(scope="module")
def pngs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_street_pngs(tmp_path_factory.mktemp("data") / "pngs", n=2)


def run_args(data: Path, out: Path, *extra: str, model: str = MODEL) -> list[str]:
    return ["run", "--data", f"folder:{data}", "--model", model, "--eps", "2", "--out", str(out), "--figure1", "0",
            "--restrict", "none", *extra]  # fmt: skip



def experiment(out: Path) -> dict[str, Any]:
    return dict(json.loads((out / "config.json").read_text())["experiment"])


# -- labels ---------------------------------------------------------------------------------------------------------


def test_class_ids_by_names() -> None:
    voc = ("background", "aeroplane", "bicycle", "person", "traffic light")
    assert class_ids("person", voc) == (3,)
    assert class_ids("Person,1", voc) == (3, 1)
    assert class_ids("traffic_light", voc) == (4,)
    assert class_ids("person,rider") == (11, 12)  # the Cityscapes default stays
    with pytest.raises(ValueError, match=r"unknown class 'rider'; valid classes: 0=background, .*3=person"):
        class_ids("rider", voc)
    with pytest.raises(ValueError, match="out of range 0..4"):
        class_ids("5", voc)
    with pytest.raises(ValueError, match="11=person"):
        class_ids("pedestrian")
    with pytest.raises(ValueError, match="ambiguous: classes 1, 2"):
        class_ids("thing", ("a", "thing", "Thing"))


def test_label_names_and_void() -> None:
    assert label_names(19) == CLASS_NAMES
    assert label_names(None) == CLASS_NAMES
    assert label_names(20) == (*CLASS_NAMES, "void")  # the common 19 + void layout
    assert label_names(4) == ("0", "1", "2", "3")
    assert label_names(3, ["a", "b", "c"]) == ("a", "b", "c")
    with pytest.raises(ValueError, match="2 class names given but the model has 3 classes"):
        label_names(3, ["a", "b"])
    assert all(is_void(n) for n in ("void", "Unlabeled", "UNLABELLED", "ignore", " void "))
    assert not any(is_void(n) for n in ("background", "road", "19", "voids"))


# -- --bgr ----------------------------------------------------------------------------------------------------------


def channel_net() -> nn.Module:
    """A 1x1 conv whose output depends on the channel order (a different weight per input channel)."""
    net = nn.Conv2d(3, 4, 1)
    with torch.no_grad():
        per_channel = torch.tensor([1.0, -2.0, 3.0]).view(1, 3, 1, 1)
        net.weight.copy_(torch.arange(12, dtype=torch.float32).view(4, 3, 1, 1) * per_channel)
        net.bias.copy_(torch.tensor([0.1, -0.2, 0.3, 0.0]))
    return net


def test_bgr_flips_before_normalising() -> None:
    net = channel_net()
    mean, std = (0.1, 0.4, 0.7), (0.2, 0.3, 0.9)  # in B, G, R order for the BGR model
    x = torch.rand(2, 3, 8, 10, generator=torch.Generator().manual_seed(0))
    bgr = sa.PixelModel(net, mean=mean, std=std, bgr=True)
    rgb = sa.PixelModel(net, mean=mean, std=std)
    assert torch.equal(bgr(x), rgb(x.flip(1)))  # exactly: flipped first, then (x - mean) / std
    assert not torch.allclose(bgr(x), rgb(x))  # the order matters to this network
    expected = net((x.flip(1) - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1))
    assert torch.allclose(bgr(x), expected)
    assert model_fingerprint(bgr) != model_fingerprint(rgb)  # a run records which it was
    assert model_fingerprint(rgb) == model_fingerprint(sa.PixelModel(net, mean=mean, std=std))
    with pytest.raises(ValueError, match="3 colour channels"):
        sa.PixelModel(net, mean=(0.5,), std=(0.5,), bgr=True)


def test_bgr_flag_reaches_pixel_model(
    pngs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    made: list[dict[str, Any]] = []

    class Spy(sa.PixelModel):
        def __init__(self, net: nn.Module, **kwargs: Any) -> None:
            made.append(kwargs)
            super().__init__(net, **kwargs)

    monkeypatch.setattr(specs, "PixelModel", Spy)
    out = tmp_path / "bgr"
    assert main(run_args(pngs, out, "--mean", "0.1,0.2,0.3", "--std", "1,1,1", "--bgr", model=BARE)) == 0
    assert made[-1]["bgr"] is True and made[-1]["mean"] == (0.1, 0.2, 0.3)
    norm = experiment(out)["normalisation"]
    assert norm["bgr"] is True and norm["mean"] == pytest.approx([0.1, 0.2, 0.3])
    # a run without --bgr is another configuration on the same --out
    err = one_line_error(run_args(pngs, out, "--mean", "0.1,0.2,0.3", "--std", "1,1,1", model=BARE), capsys)
    assert "different configuration" in err
    monkeypatch.undo()
    assert "--bgr" in one_line_error(run_args(pngs, tmp_path / "z", "--bgr", model="zoo:fcn2s-synth-w8-r32"), capsys)
    assert "--bgr" in one_line_error(run_args(pngs, tmp_path / "z", "--bgr"), capsys)  # a ready PixelModel


# -- --class-names --------------------------------------------------------------------------------------------------


def renamed(person: str = "pedestrian") -> list[str]:
    return [person if n == "person" else n for n in CLASS_NAMES]


@pytest.mark.parametrize("form", ["lines", "json", "id2label"])
def test_class_names_file_hides_by_name(pngs: Path, tmp_path: Path, form: str) -> None:
    names = renamed()
    path = tmp_path / "names.txt"
    if form == "lines":
        path.write_text("\n".join(names) + "\n\n")
    elif form == "json":
        path.write_text(json.dumps(names))
    else:
        path.write_text(json.dumps({str(i): n for i, n in enumerate(names)}))
    out = tmp_path / "run"
    assert main(run_args(pngs, out, "--class-names", str(path), "--hide", "pedestrian")) == 0
    exp = experiment(out)
    assert exp["class_ids"] == [11] and exp["class_names"] == ["pedestrian"]
    assert exp["label_names"] == names
    assert exp["class_names_file"] == str(path.resolve())


def test_class_names_for_the_module_and_attack(pngs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "names.txt"
    path.write_text("\n".join(renamed("walker")))
    # a bare module without --num-classes takes the number of names
    out = tmp_path / "bare"
    argv = run_args(pngs, out, "--class-names", str(path), "--hide", "walker", "--mean", "0,0,0", "--std", "1,1,1",
                    model=BARE)  # fmt: skip
    assert main(argv) == 0
    assert experiment(out)["num_classes"] == 19
    capsys.readouterr()
    adv = tmp_path / "adv.png"
    argv = ["attack", str(pngs / "img_1.png"), "--model", MODEL, "--class-names", str(path), "--hide", "walker",
            "--eps", "2", "--out", str(adv)]  # fmt: skip
    assert main(argv) == 0
    assert "walker pixels hidden" in capsys.readouterr().out


def test_void_class_in_label_names(pngs: Path, tmp_path: Path) -> None:
    out = tmp_path / "default"
    assert main(run_args(pngs, out, "--num-classes", "20", model=TWENTY)) == 0
    assert experiment(out)["label_names"][19] == "void"  # shown as such, never as "19"
    path = tmp_path / "names.json"
    path.write_text(json.dumps([*CLASS_NAMES, "unlabeled"]))
    out = tmp_path / "named"
    assert main(run_args(pngs, out, "--class-names", str(path), model=TWENTY)) == 0  # 20 names: 20 classes
    exp = experiment(out)
    assert exp["label_names"][19] == "unlabeled" and is_void(exp["label_names"][19]) and exp["num_classes"] == 20
    # a ready PixelModel with names of its own: --hide takes them, its number of classes stays
    out = tmp_path / "own"
    assert main(run_args(pngs, out, "--hide", "walker", model="tests.test_class_names:self_named_model")) == 0
    exp = experiment(out)
    assert exp["class_names"] == ["walker"] and exp["label_names"][19] == "ignore" and exp["num_classes"] == 20


def test_zoo_card_class_names(tmp_path: Path) -> None:
    net = sa.zoo.FCN8s(19, width=1 / 16, batch_norm=True)
    kw: dict[str, Any] = {"arch": "fcn8s", "arch_kwargs": {"width": 1 / 16, "batch_norm": True}, "mean": (0.5,) * 3,
                          "std": (0.25,) * 3, "num_classes": 19}  # fmt: skip
    card = sa.zoo.save_model(net, tmp_path / "named", extra={"class_names": renamed("walker")}, **kw)
    model = specs.load_model(f"zoo:{card}")
    assert model.class_names is not None and model.class_names[11] == "walker"
    assert specs.load_model(f"zoo:{card}", class_names=CLASS_NAMES).class_names == CLASS_NAMES  # given ones win
    with pytest.raises(ValueError, match="class_names: 2 class names given"):  # save_model refuses to write it
        sa.zoo.save_model(net, tmp_path / "bad", extra={"class_names": ["a", "b"]}, **kw)
    bad = sa.zoo.save_model(net, tmp_path / "bad", **kw)  # a card edited by hand
    bad.write_text(json.dumps({**json.loads(bad.read_text()), "class_names": ["a", "b"]}))
    with pytest.raises(specs.SpecError, match="class_names: 2 class names given but the model has 19 classes"):
        specs.load_model(f"zoo:{bad}")


def test_class_names_user_errors(pngs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    def err(*extra: str, model: str = MODEL) -> str:
        return one_line_error(run_args(pngs, tmp_path / "o", *extra, model=model), capsys)

    few = tmp_path / "few.txt"
    few.write_text("road\nperson\n")
    e = err("--class-names", str(few), "--num-classes", "19")
    assert "lists 2 names" in e and "19 classes" in e
    e = err("--class-names", str(few), model="zoo:fcn2s-synth-w8-r32")
    assert "lists 2 names" in e and "19 classes" in e
    e = err("--class-names", str(few))  # tiny_fcn returns 19 classes for the 2 names: found by the first call
    assert "19 classes" in e and "num_classes=2" in e
    assert "does not exist" in err("--class-names", str(tmp_path / "nope.txt"))
    (tmp_path / "empty.txt").write_text("\n\n")
    assert "is empty" in err("--class-names", str(tmp_path / "empty.txt"))
    (tmp_path / "bad.json").write_text("[1, 2")
    assert "not valid JSON" in err("--class-names", str(tmp_path / "bad.json"))
    (tmp_path / "ints.json").write_text("[1, 2]")
    assert "list of non-empty names" in err("--class-names", str(tmp_path / "ints.json"))
    (tmp_path / "gap.json").write_text('{"0": "a", "2": "b"}')
    assert "every id 0..1" in err("--class-names", str(tmp_path / "gap.json"))
    names = tmp_path / "names.txt"
    names.write_text("\n".join(renamed()))
    e = err("--class-names", str(names), "--hide", "person")
    assert "unknown class 'person'" in e and "11=pedestrian" in e
    assert "names no class" in err("--hide", ",")
    # cheap checks come before the (slow) model build: a factory that raises is never called
    raises = "tests.models_for_cli:factory_raises"
    assert "does not exist" in err("--class-names", str(tmp_path / "nope.txt"), model=raises)
    assert "eps must be positive" in err("--eps", "0", model=raises)
    assert not (tmp_path / "o").exists()
