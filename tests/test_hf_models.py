"""``--model hf:DIR``: a real Hugging Face SegFormer (random weights from a small config, no download) saved with
``save_pretrained``, loaded through ``AutoModelForSemanticSegmentation`` and its image processor, attacked end to
end through the command line; the processor's normalisation arithmetic; the one-line errors."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch
import torch.nn.functional as F

import segattack as sa
from segattack import hf, specs
from segattack.cli import main
from segattack.data.labels import CLASS_NAMES
from segattack.errors import UserError

transformers = pytest.importorskip("transformers", reason="transformers not installed (pip install segattack[hf])")

NAMES = (*CLASS_NAMES, "void")  # the common 19 + void layout
MEAN, STD = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)  # not ImageNet's: the test sees where they come from


def save_tiny_segformer(directory: Path, *, processor: bool = True, **processor_kwargs: Any) -> Path:
    """A SegFormer with 20 classes whose head splits the pixels between person (11) and road (0), and its image
    processor, both ``save_pretrained`` into ``directory``."""
    config = transformers.SegformerConfig(
        num_channels=3,
        depths=[1, 1, 1, 1],
        hidden_sizes=[8, 16, 24, 32],
        num_attention_heads=[1, 1, 1, 1],
        decoder_hidden_size=16,
        num_labels=len(NAMES),
        id2label=dict(enumerate(NAMES)),
        label2id={n: i for i, n in enumerate(NAMES)},
    )
    torch.manual_seed(0)
    net = transformers.SegformerForSemanticSegmentation(config)
    head = net.decode_head.classifier
    with torch.no_grad():
        head.weight.zero_()
        head.bias.fill_(-10.0)
        v = torch.randn(head.weight.shape[1])
        head.weight[11, :, 0, 0] = v
        head.weight[0, :, 0, 0] = -v
        head.bias[0] = head.bias[11] = 0.0
    net.save_pretrained(directory)
    if processor:
        kwargs = {"image_mean": list(MEAN), "image_std": list(STD), "size": {"height": 128, "width": 256}}
        transformers.SegformerImageProcessor(**{**kwargs, **processor_kwargs}).save_pretrained(directory)
    return directory


@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_segformer(tmp_path_factory.mktemp("hf") / "segformer")


def one_line_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    capsys.readouterr()
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    lines = [ln for ln in err.strip().splitlines() if ln.startswith("segattack")]
    assert "Traceback" not in err and len(lines) == 1, err
    return lines[0]


class SpyPixelModel(sa.PixelModel):
    made: list[dict[str, Any]] = []

    def __init__(self, net: torch.nn.Module, **kwargs: Any) -> None:
        SpyPixelModel.made.append(kwargs)
        super().__init__(net, **kwargs)


def test_run_end_to_end(
    hf_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    SpyPixelModel.made = []
    monkeypatch.setattr(specs, "PixelModel", SpyPixelModel)
    out = tmp_path / "run"
    argv = ["run", "--model", f"hf:{hf_dir}", "--data", "synthetic:2", "--size", "64x128", "--eps", "2", "--hide",
            "person", "--out", str(out), "--figure1", "1"]  # fmt: skip
    assert main(argv) == 0, capsys.readouterr().err
    (made,) = SpyPixelModel.made
    assert made["mean"] == pytest.approx(MEAN) and made["std"] == pytest.approx(STD)
    assert made["num_classes"] == 20 and tuple(made["class_names"]) == NAMES and made["bgr"] is False
    exp = json.loads((out / "config.json").read_text())["experiment"]
    assert exp["model"] == f"hf:{hf_dir}" and exp["num_classes"] == 20
    assert exp["label_names"] == list(NAMES) and exp["label_names"][19] == "void"
    assert exp["class_names"] == ["person"] and exp["class_ids"] == [11]
    norm = exp["normalisation"]
    assert norm["mean"] == pytest.approx(MEAN) and norm["std"] == pytest.approx(STD) and norm["bgr"] is False
    assert norm["processor_size"] == "128x256" and norm["normalisation_from"] == "image processor"
    assert "ImageProcessor" in norm["processor"]
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert rows and any(r["status"] == "ok" for r in rows)  # the head predicts persons: a real attack ran
    assert all(r["fooled"] is None or 0 <= r["fooled"] <= 1 for r in rows)
    assert main(argv) == 0  # resumes: the same configuration
    # --hide takes the model's names (and ids), the void class by its name
    bad = argv[:-4] + ["--out", str(tmp_path / "bad"), "--hide", "pedestrian"]
    err = one_line_error(bad, capsys)
    assert "unknown class 'pedestrian'" in err and "19=void" in err


def test_load_model_in_python(hf_dir: Path) -> None:
    model = specs.load_model(f"hf:{hf_dir}")
    assert isinstance(model, sa.PixelModel) and model.num_classes == 20 and model.class_names == NAMES
    assert model.mean.flatten().tolist() == pytest.approx(MEAN) and model.std.flatten().tolist() == pytest.approx(STD)
    x = torch.rand(2, 3, 64, 96)
    logits = model(x)
    assert tuple(logits.shape) == (2, 20, 64, 96)  # SegFormer's 1/4-size logits upsampled to the input
    net = transformers.AutoModelForSemanticSegmentation.from_pretrained(hf_dir).eval()
    mean, std = torch.tensor(MEAN).view(1, 3, 1, 1), torch.tensor(STD).view(1, 3, 1, 1)
    with torch.no_grad():
        ref = net((x - mean) / std).logits
    ref = F.interpolate(ref, size=(64, 96), mode="bilinear", align_corners=False)
    assert torch.allclose(logits, ref, atol=1e-5)
    # given mean/std replace the processor's; names given replace id2label (one per class)
    other = specs.load_model(f"hf:{hf_dir}", mean=(0.1, 0.1, 0.1), std=(2.0, 2.0, 2.0))
    assert other.std.flatten().tolist() == [2.0, 2.0, 2.0]
    named = specs.load_model(f"hf:{hf_dir}", class_names=[f"c{i}" for i in range(20)])
    assert named.class_names is not None and named.class_names[11] == "c11"
    with pytest.raises(UserError, match="3 class names given but the model has 20 classes"):
        specs.load_model(f"hf:{hf_dir}", class_names=["a", "b", "c"])


def test_eval_shows_class_names(hf_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", "--model", f"hf:{hf_dir}", "--data", "synthetic:1", "--size", "64x128"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[19].split()[0] == "void" and lines[11].split()[0] == "person"  # never "19"


def test_processor_arithmetic() -> None:
    def norm(**kw: Any) -> tuple[tuple[float, ...], tuple[float, ...]]:
        return hf.normalisation(SimpleNamespace(**kw), 3, "hf:x")

    # the usual: rescale by 1/255, then the processor's mean/std (already in [0, 1] units)
    mean, std = norm(do_rescale=True, rescale_factor=1 / 255, do_normalize=True, image_mean=MEAN, image_std=STD)
    assert mean == pytest.approx(MEAN) and std == pytest.approx(STD)
    # no rescale: mean/std in 0-255 units, divided by 255
    mean, std = norm(do_rescale=False, do_normalize=True, image_mean=[124.0, 116.0, 104.0], image_std=[58.4] * 3)
    assert mean == pytest.approx((124 / 255, 116 / 255, 104 / 255)) and std == pytest.approx((58.4 / 255,) * 3)
    # rescale to [-1, 1] by 1/127.5 - 1, written as rescale 1/127.5 and mean 1, std 1
    mean, std = norm(do_rescale=True, rescale_factor=1 / 127.5, do_normalize=True, image_mean=1.0, image_std=1.0)
    assert mean == pytest.approx((0.5,) * 3) and std == pytest.approx((0.5,) * 3)
    # no normalisation: the network sees x in [0, 1] (or 0..255 without rescale: std 1/255)
    assert norm(do_rescale=True, rescale_factor=1 / 255, do_normalize=False) == ((0.0,) * 3, (1.0,) * 3)
    assert norm(do_rescale=False, do_normalize=False)[1] == pytest.approx((1 / 255,) * 3)
    with pytest.raises(UserError, match="cannot take"):
        norm(do_rescale=True, rescale_factor=1 / 255, do_normalize=True, image_mean=[2.0] * 3, image_std=[1.0] * 3)


def test_processor_without_normalisation(tmp_path: Path) -> None:
    d = save_tiny_segformer(tmp_path / "plain", do_normalize=False)
    model = specs.load_model(f"hf:{d}")
    assert model.mean.flatten().tolist() == [0.0] * 3 and model.std.flatten().tolist() == [1.0] * 3


def test_user_errors(hf_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                     capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    def run(spec: str, *extra: str) -> list[str]:
        return ["run", "--model", spec, "--data", "synthetic:1", "--size", "64x128", "--eps", "2", "--out",
                str(tmp_path / "o"), *extra]  # fmt: skip

    assert "does not exist" in one_line_error(run(f"hf:{tmp_path / 'nope'}"), capsys)
    assert "names no model" in one_line_error(run("hf:"), capsys)
    assert "no Hugging Face hub id" in one_line_error(run("hf:not a hub id!"), capsys)  # no network asked
    (tmp_path / "empty").mkdir()
    assert "holds no config.json" in one_line_error(run(f"hf:{tmp_path / 'empty'}"), capsys)
    assert "is a file" in one_line_error(run(f"hf:{hf_dir / 'config.json'}"), capsys)
    err = one_line_error(run(f"hf:{hf_dir}", "--num-classes", "19"), capsys)
    assert "20 classes" in err and "19" in err
    assert "--weights applies" in one_line_error(run(f"hf:{hf_dir}", "--weights", str(tmp_path / "w.pt")), capsys)
    names = tmp_path / "names.txt"
    names.write_text("a\nb\nc\n")
    err = one_line_error(run(f"hf:{hf_dir}", "--class-names", str(names)), capsys)
    assert "lists 3 names" in err and "20 classes" in err
    bare = save_tiny_segformer(tmp_path / "bare", processor=False)
    err = one_line_error(run(f"hf:{bare}"), capsys)
    assert "no image processor" in err and "--mean and --std" in err
    assert specs.load_model(f"hf:{bare}", mean=MEAN, std=STD).num_classes == 20  # with them it loads
    not_seg = tmp_path / "bert"
    bert = transformers.BertConfig(hidden_size=8, num_hidden_layers=1, num_attention_heads=1, intermediate_size=8)
    bert.save_pretrained(not_seg)
    assert "not a semantic-segmentation model" in one_line_error(run(f"hf:{not_seg}"), capsys)
    monkeypatch.setitem(sys.modules, "transformers", None)  # as if it were not installed
    err = one_line_error(run(f"hf:{hf_dir}"), capsys)
    assert "needs transformers: pip install 'segattack[hf]'" in err
    assert not (tmp_path / "o").exists()
