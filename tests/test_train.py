from __future__ import annotations

import dataclasses
import importlib.util
import json
import math
from pathlib import Path

import pytest
import torch
from torch import Tensor

import segattack.train as train_mod
import segattack.train.batches as train_batches
import segattack.train.init as train_init
import segattack.train.loop as train_loop
from segattack.cli import main
from segattack.evaluation import EvalResult, evaluate
from segattack.models import PixelModel
from segattack.train import ConfigMismatchError, TrainConfig, checkpoint_step, train
from segattack.zoo import ARCHITECTURES, load

#: Classes of the easy scenes (Cityscapes train ids) and their colours.
SKY, ROAD, PERSON = 10, 0, 11
COLOURS = {SKY: (70, 130, 180), ROAD: (128, 64, 128), PERSON: (220, 20, 60)}


class EasyScenes(torch.utils.data.Dataset[tuple[Tensor, Tensor]]):
    """Sky above a random horizon, road below, one 'person' box; colour determines the class (plus noise)."""

    def __init__(self, n: int, size: tuple[int, int] = (32, 64), seed: int = 0) -> None:
        self.n, self.size, self.seed = n, size, seed

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        g = torch.Generator().manual_seed(self.seed * 100_000 + i)
        h, w = self.size
        label = torch.full((h, w), ROAD, dtype=torch.int64)
        horizon = int(torch.randint(h // 4, 3 * h // 4, (1,), generator=g))
        label[:horizon] = SKY
        bh, bw = int(torch.randint(6, h // 2, (1,), generator=g)), int(torch.randint(4, w // 4, (1,), generator=g))
        top, left = int(torch.randint(0, h - bh, (1,), generator=g)), int(torch.randint(0, w - bw, (1,), generator=g))
        label[top : top + bh, left : left + bw] = PERSON
        label[0, :4] = 255  # some ignored pixels
        image = torch.zeros(3, h, w)
        for cls, colour in COLOURS.items():
            image[:, label == cls] = torch.tensor(colour, dtype=torch.float32)[:, None]
        image += 12 * torch.randn(3, h, w, generator=g)
        return image.clamp(0, 255).round().to(torch.uint8), label


def tiny_config(out: Path, **kw: object) -> TrainConfig:
    base: dict[str, object] = dict(
        out_dir=str(out), width=1 / 16, batch_norm=True, dropout=0.5, size=(32, 64), crop=(24, 48), batch_size=4,
        steps=12, lr=0.05, train_images=16, val_images=4, log_every=2, val_every=0, checkpoint_every=5,
        device="cpu", seed=3,
    )  # fmt: skip
    base.update(kw)
    return TrainConfig(**base)  # type: ignore[arg-type]


def read_rows(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_loss_falls_on_learnable_data(tmp_path: Path) -> None:
    torch.manual_seed(0)
    config = tiny_config(tmp_path / "run", steps=40, log_every=5, lr=0.05, dropout=0.0, warmup_steps=3)
    result = train(config, train_data=EasyScenes(32), val_data=EasyScenes(4, seed=1))
    rows = [r for r in read_rows(tmp_path / "run" / "metrics.jsonl") if r["kind"] == "train"]
    losses = [float(r["loss"]) for r in rows]  # type: ignore[arg-type]
    assert len(losses) == 8
    assert losses[0] > 1.0  # starts near ln(19) = 2.94
    assert losses[-1] < 0.5 * losses[0], losses
    assert result.finished and result.step == 40 and result.resumed_from == 0
    assert result.val is not None and result.val.pixel_accuracy > 0.6


def test_resume_matches_uninterrupted_run(tmp_path: Path) -> None:
    data, val = EasyScenes(10), EasyScenes(3, seed=1)  # 10 images, batch 4: epochs straddle batches
    full = train(tiny_config(tmp_path / "full"), train_data=data, val_data=val)

    part = train(tiny_config(tmp_path / "cut", stop_at=7), train_data=data, val_data=val)
    assert not part.finished and part.step == 7 and part.export_path is None
    assert checkpoint_step(tmp_path / "cut") == 7
    resumed = train(tiny_config(tmp_path / "cut"), train_data=data, val_data=val)
    assert resumed.resumed_from == 7 and resumed.finished and resumed.step == 12

    a, b = full.net.state_dict(), resumed.net.state_dict()
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key  # bit-identical on one CPU
    # The metric logs agree too: no rows lost or doubled by the interruption.
    rows_full = read_rows(tmp_path / "full" / "metrics.jsonl")
    rows_cut = read_rows(tmp_path / "cut" / "metrics.jsonl")
    assert [r["step"] for r in rows_full] == [r["step"] for r in rows_cut]
    for r, s in zip(rows_full, rows_cut, strict=True):
        if r["kind"] == "train":
            assert r["loss"] == pytest.approx(s["loss"], rel=1e-4)


def test_resume_from_periodic_checkpoint_drops_later_rows(tmp_path: Path) -> None:
    data, val = EasyScenes(8), EasyScenes(2, seed=1)
    out = tmp_path / "run"
    train(tiny_config(out, stop_at=7), train_data=data, val_data=val)
    # Simulate a crash after step 7 with the last periodic checkpoint at step 5.
    ckpt = torch.load(out / "checkpoint.pt", weights_only=True)
    assert ckpt["step"] == 7
    earlier = train(tiny_config(tmp_path / "ref", stop_at=5), train_data=data, val_data=val)
    assert earlier.step == 5
    (out / "checkpoint.pt").write_bytes((tmp_path / "ref" / "checkpoint.pt").read_bytes())
    with (out / "metrics.jsonl").open("a") as fh:
        fh.write('{"kind": "train", "st')  # torn by the crash
    result = train(tiny_config(out), train_data=data, val_data=val)
    assert result.resumed_from == 5
    steps = [r["step"] for r in read_rows(out / "metrics.jsonl") if r["kind"] == "train"]
    assert steps == sorted(set(steps)) == [2, 4, 6, 8, 10, 12]


def test_different_config_is_refused_unless_overwrite(tmp_path: Path) -> None:
    data, val = EasyScenes(8), EasyScenes(2, seed=1)
    train(tiny_config(tmp_path, stop_at=2), train_data=data, val_data=val)
    with pytest.raises(ConfigMismatchError, match=r"lr: 0.05 -> 0.1.*overwrite"):
        train(tiny_config(tmp_path, lr=0.1), train_data=data, val_data=val)
    # Runtime options (where to stop, how often to log or check-point) may change on resumption.
    result = train(tiny_config(tmp_path, stop_at=4, checkpoint_every=1, log_every=1), train_data=data, val_data=val)
    assert result.resumed_from == 2
    result = train(tiny_config(tmp_path, lr=0.1, stop_at=2), train_data=data, val_data=val, overwrite=True)
    assert result.resumed_from == 0


class Oracle(torch.nn.Module):
    """Predicts from colour: a perfect model for the easy scenes, bar the noise."""

    def forward(self, x: Tensor) -> Tensor:
        colours = torch.tensor([COLOURS[c] for c in (SKY, ROAD, PERSON)], dtype=torch.float32) / 255
        dist = (x[:, None] - colours.view(1, 3, 3, 1, 1)).pow(2).sum(2)
        logits = torch.full((x.shape[0], 19, *x.shape[-2:]), -1e3)
        for k, c in enumerate((SKY, ROAD, PERSON)):
            logits[:, c] = -dist[:, k]
        return logits


def test_validation_summary_has_per_class_iou_by_name() -> None:
    data = EasyScenes(3)
    labels = torch.stack([data[i][1] for i in range(3)])
    result = evaluate(PixelModel(Oracle(), num_classes=19), data, num_classes=19)
    assert len(result.iou) == 19
    for c in (SKY, ROAD, PERSON):
        assert result.iou[c] > 0.95
    assert math.isnan(result.iou[1])  # sidewalk: absent from ground truth and prediction
    assert result.miou == pytest.approx(float(result.iou[[SKY, ROAD, PERSON]].mean()))
    assert result.confusion.sum() == (labels != 255).sum()
    row = train_mod.val_summary(result)  # the metrics.jsonl / model card form
    assert set(row) == {"miou", "pixel_acc", "iou"}
    assert row["miou"] == result.miou and row["pixel_acc"] == result.pixel_accuracy
    assert row["iou"]["person"] == float(result.iou[PERSON]) and row["iou"]["sidewalk"] is None


class VaryingSizes(EasyScenes):
    """Easy scenes whose size changes with the index: not cacheable, read item by item."""

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        self.size = (32, 64) if i % 3 else (40, 56)
        return super().__getitem__(i)


@pytest.mark.parametrize("val_data", [EasyScenes(5, seed=1), VaryingSizes(5, seed=1)], ids=["cached", "per-item"])
def test_training_validation_is_the_library_evaluator(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, val_data: EasyScenes
) -> None:
    modes_after: list[bool] = []

    def spy(model: PixelModel, *args: object, **kwargs: object) -> EvalResult:
        result = evaluate(model, *args, **kwargs)  # type: ignore[arg-type]
        modes_after.append(model.net.training)
        return result

    monkeypatch.setattr(train_loop, "evaluate", spy)
    config = tiny_config(tmp_path, steps=4, val_every=2, val_images=5, val_batch_size=2)
    result = train(config, train_data=EasyScenes(8), val_data=val_data)
    assert modes_after == [True, True]  # validation leaves the network in train mode (dropout, BatchNorm updates)
    assert result.val is not None and not result.net.training

    resolved = json.loads((tmp_path / "config.json").read_text())["resolved"]
    model = PixelModel(result.net, mean=resolved["mean"], std=resolved["std"], num_classes=19)
    again = evaluate(model, val_data, num_classes=19, batch_size=2)  # the raw data set, as a user would
    assert torch.equal(again.confusion, result.val.confusion)
    assert result.val.images == again.images == 5
    last = [r for r in read_rows(tmp_path / "metrics.jsonl") if r["kind"] == "val"][-1]
    assert last["step"] == 4
    assert {k: last[k] for k in ("miou", "pixel_acc", "iou")} == train_mod.val_summary(again)
    card = json.loads((tmp_path / "model.json").read_text())
    assert card["val"] == train_mod.val_summary(again)


def test_augmentation_keeps_labels_aligned() -> None:
    # Scale, crop and flip move image and label together: colour still predicts the class after augmentation.
    data = EasyScenes(4)
    images = torch.stack([data[i][0] for i in range(4)])
    labels = torch.stack([data[i][1] for i in range(4)]).to(torch.uint8)
    config = tiny_config(Path("unused"), scale_range=(0.5, 2.0), brightness=0.0, contrast=0.0, saturation=0.0)
    x, y = train_batches.augment(images, labels, crop=(24, 48), generator=torch.Generator().manual_seed(0),
                              config=config, fill=torch.zeros(3))  # fmt: skip
    assert x.shape == (4, 3, 24, 48) and y.shape == (4, 24, 48) and y.dtype == torch.int64
    person = y == PERSON
    assert person.any()
    red = x[:, 0][person].mean() - x[:, 2][person].mean()
    assert red > 0.4  # person pixels stay red
    assert set(y.unique().tolist()) <= {SKY, ROAD, PERSON, 255}


def test_lr_schedules() -> None:
    poly = [train_mod.lr_factor(s, steps=10, warmup=2, schedule="poly", power=0.9) for s in range(10)]
    cos = [train_mod.lr_factor(s, steps=10, warmup=0, schedule="cosine", power=0.9) for s in range(10)]
    assert poly[:3] == [0.5, 1.0, 1.0]
    assert all(a >= b for a, b in zip(poly[1:], poly[2:], strict=False))
    assert cos[0] == 1.0 and cos[-1] < 0.05


def test_config_validation_fires() -> None:
    with pytest.raises(ValueError, match="crop"):
        TrainConfig(out_dir="x", crop=(0, 4))
    with pytest.raises(ValueError, match="optimizer"):
        TrainConfig(out_dir="x", optimizer="adam")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="nesterov"):
        TrainConfig(out_dir="x", optimizer="adamw", nesterov=True)
    with pytest.raises(ValueError, match="warmup_steps"):
        TrainConfig(out_dir="x", steps=10, warmup_steps=10)
    with pytest.raises(ValueError, match="scale_range"):
        TrainConfig(out_dir="x", scale_range=(2.0, 1.0))


def test_adamw_cosine_runs_and_exports(tmp_path: Path) -> None:
    config = tiny_config(tmp_path, optimizer="adamw", lr=1e-3, schedule="cosine", steps=4, export_name="tiny",
                         export_dir=str(tmp_path / "zoo"), val_every=2)  # fmt: skip
    result = train(config, train_data=EasyScenes(8), val_data=EasyScenes(2, seed=1))
    assert result.export_path == tmp_path / "zoo" / "tiny.json"
    card = json.loads(result.export_path.read_text())
    assert card["training"]["steps"] == 4 and card["training"]["optimizer"] == "adamw"
    assert set(card["val"]["iou"]) >= {"person", "road", "sky"}
    model = load("tiny", weights_dir=tmp_path / "zoo")
    assert model.predict(torch.rand(1, 3, 32, 64)).shape == (1, 32, 64)
    vals = [r for r in read_rows(tmp_path / "metrics.jsonl") if r["kind"] == "val"]
    assert [r["step"] for r in vals] == [2, 4]


@pytest.fixture
def easy_default_data(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the default (synthetic) data source the easy scenes, so the CLI runs without the synthetic module."""

    def fake(config: TrainConfig) -> tuple[EasyScenes, EasyScenes]:
        return EasyScenes(config.train_images, config.size), EasyScenes(config.val_images, config.size, seed=1)

    monkeypatch.setattr(train_batches, "synthetic_datasets", fake)


CLI_ARGS = ["--width", "0.0625", "--steps", "4", "--batch-size", "2", "--crop", "24x48", "--size", "32x64",
            "--train-images", "6", "--val-images", "2", "--checkpoint-every", "2", "--val-every", "0",
            "--device", "cpu", "--export-name", "cli_model"]  # fmt: skip


def test_cli_train_end_to_end(tmp_path: Path, easy_default_data: None, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    assert main(["train", "--out", str(out), *CLI_ARGS, "--stop-at", "2"]) == 0
    assert "stopped at step 2" in capsys.readouterr().out
    assert main(["train", "--out", str(out), *CLI_ARGS]) == 0
    captured = capsys.readouterr()
    assert "resuming from step 2" in captured.err and "cli_model" in captured.out
    assert (out / "cli_model.safetensors").is_file()
    assert load("cli_model", weights_dir=out).num_classes == 19
    config = json.loads((out / "config.json").read_text())
    assert config["config"]["crop"] == [24, 48] and config["config"]["width"] == 0.0625

    changed = [a if a != "0.0625" else "0.125" for a in CLI_ARGS]
    assert main(["train", "--out", str(out), *changed]) == 2
    assert "different configuration" in capsys.readouterr().err
    assert main(["train", "--out", str(out), *changed, "--overwrite", "--stop-at", "1"]) == 0


def test_cli_rejects_bad_sizes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["train", "--out", str(tmp_path), "--crop", "24by48"])
    assert "HxW" in capsys.readouterr().err


@pytest.mark.skipif(importlib.util.find_spec("segattack.data.synthetic") is None, reason="synthetic data not present")
def test_cli_train_on_synthetic_streets(tmp_path: Path) -> None:
    args = [a for a in CLI_ARGS if a != "--stop-at"]
    assert main(["train", "--out", str(tmp_path), *args]) == 0
    card = json.loads((tmp_path / "cli_model.json").read_text())
    assert card["training"]["train_data"] == "SyntheticStreets"


def test_config_fields_are_json_round_trippable() -> None:
    config = TrainConfig(out_dir="x")
    assert dataclasses.asdict(config)["crop"] == (128, 256)
    assert config.as_json()["crop"] == [128, 256]


def test_bad_labels_fire(tmp_path: Path) -> None:
    class BadLabels(EasyScenes):
        def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
            image, label = super().__getitem__(i)
            label[0, 0] = 33  # a Cityscapes label id, not a train id
            return image, label

    with pytest.raises(ValueError, match=r"class ids in 0..18 or 255"):
        train(tiny_config(tmp_path), train_data=BadLabels(4), val_data=EasyScenes(2))


def test_rerun_of_finished_run_reexports_without_duplicate_rows(tmp_path: Path) -> None:
    data, val = EasyScenes(8), EasyScenes(2, seed=1)
    first = train(tiny_config(tmp_path, steps=4, val_every=2), train_data=data, val_data=val)
    rows = read_rows(tmp_path / "metrics.jsonl")
    again = train(tiny_config(tmp_path, steps=4, val_every=2), train_data=data, val_data=val)
    assert again.resumed_from == 4 and again.finished and again.export_path is not None
    assert read_rows(tmp_path / "metrics.jsonl") == rows
    assert first.val is not None and again.val is not None and again.val.miou == first.val.miou


def test_path_out_dir_is_accepted(tmp_path: Path) -> None:
    config = TrainConfig(out_dir=tmp_path, size=[32, 64], crop=[24, 48])  # type: ignore[arg-type]
    assert config.out_dir == str(tmp_path) and config.size == (32, 64) and config.crop == (24, 48)


def test_caller_rng_state_is_left_alone(tmp_path: Path) -> None:
    torch.manual_seed(123)
    before = torch.get_rng_state()
    train(tiny_config(tmp_path, steps=2), train_data=EasyScenes(4), val_data=EasyScenes(2, seed=1))
    assert torch.equal(torch.get_rng_state(), before)


def test_cli_rejects_bad_device(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--out", str(tmp_path), "--device", "tpu9"]) == 2
    assert "device" in capsys.readouterr().err
    if not torch.cuda.is_available():
        assert main(["train", "--out", str(tmp_path), "--device", "cuda"]) == 2
        assert "CUDA is not available" in capsys.readouterr().err


def test_init_starts_from_an_exported_model(tmp_path: Path) -> None:
    first = tiny_config(tmp_path / "a", optimizer="adamw", lr=1e-3, steps=4, export_name="first",
                        export_dir=str(tmp_path / "zoo"))  # fmt: skip
    train(first, train_data=EasyScenes(8), val_data=EasyScenes(2, seed=1))
    card_a = json.loads((tmp_path / "zoo" / "first.json").read_text())
    spec = f"zoo:{tmp_path / 'zoo' / 'first.json'}"
    # AdamW's first step moves every weight by about lr, so lr 1e-9 leaves the initial weights visible.
    second = tiny_config(tmp_path / "b", optimizer="adamw", lr=1e-9, steps=1, init=spec, weight_decay=0.0,
                         export_name="second", export_dir=str(tmp_path / "zoo"))  # fmt: skip
    train(second, train_data=EasyScenes(8, seed=5), val_data=EasyScenes(2, seed=1))
    card_b = json.loads((tmp_path / "zoo" / "second.json").read_text())
    assert card_b["mean"] == card_a["mean"] and card_b["std"] == card_a["std"]  # the init's, not measured again
    assert card_b["training"]["init"] == spec and card_b["training"]["init_sha256"] == card_a["sha256"]
    a = load("first", weights_dir=tmp_path / "zoo").net.state_dict()
    b = load("second", weights_dir=tmp_path / "zoo").net.state_dict()
    weights = [k for k in a if k.endswith(".weight") and a[k].dim() == 4]
    assert weights and all(torch.allclose(a[k], b[k], atol=1e-6) for k in weights)
    fresh = load("first", weights_dir=tmp_path / "zoo").net
    torch.manual_seed(0)
    random_init = type(fresh)(19, **card_a["arch_kwargs"]).state_dict()
    assert not all(torch.allclose(random_init[k], b[k], atol=1e-3) for k in weights)


def test_init_of_another_network_or_changed_weights_is_refused(tmp_path: Path) -> None:
    first = tiny_config(tmp_path / "a", steps=2, export_name="first", export_dir=str(tmp_path / "zoo"))
    train(first, train_data=EasyScenes(8), val_data=EasyScenes(2, seed=1))
    spec = f"zoo:{tmp_path / 'zoo' / 'first.json'}"
    with pytest.raises(ValueError, match="different network: arch_kwargs .*width"):
        train_mod.check_init(tiny_config(tmp_path / "b", width=1 / 8, init=spec))
    with pytest.raises(ValueError, match="unknown model 'no-such'"):
        train_mod.check_init(tiny_config(tmp_path / "b", init="zoo:no-such"))
    with pytest.raises(ValueError, match="init must name a model as zoo:NAME"):
        tiny_config(tmp_path / "b", init="first")
    # A run stopped part-way refuses to resume once the init model's weights have changed.
    run = tiny_config(tmp_path / "c", steps=6, stop_at=2, init=spec)
    train(run, train_data=EasyScenes(8), val_data=EasyScenes(2, seed=1))
    train(tiny_config(tmp_path / "a", steps=3, export_name="first", export_dir=str(tmp_path / "zoo"), seed=9),
          train_data=EasyScenes(8), val_data=EasyScenes(2, seed=1), overwrite=True)  # fmt: skip
    with pytest.raises(ValueError, match="has changed since this run started"):
        train(dataclasses.replace(run, stop_at=None), train_data=EasyScenes(8), val_data=EasyScenes(2, seed=1))


def test_init_grows_an_fcn8s_into_an_fcn4s(tmp_path: Path) -> None:
    first = tiny_config(tmp_path / "a", steps=3, export_name="s8", export_dir=str(tmp_path / "zoo"))
    train(first, train_data=EasyScenes(8), val_data=EasyScenes(2, seed=1))
    spec = f"zoo:{tmp_path / 'zoo' / 's8.json'}"
    grown = tiny_config(tmp_path / "b", optimizer="adamw", lr=1e-9, weight_decay=0.0, steps=1, init=spec,
                        output_stride=4, export_name="s4", export_dir=str(tmp_path / "zoo"))  # fmt: skip
    assert grown.describe().startswith("FCN4s-VGG16") and grown.arch_kwargs()["output_stride"] == 4
    assert "output_stride" not in first.arch_kwargs()  # FCN-8s cards are as they were
    train(grown, train_data=EasyScenes(8, seed=5), val_data=EasyScenes(2, seed=1))
    card = json.loads((tmp_path / "zoo" / "s4.json").read_text())
    assert card["arch_kwargs"]["output_stride"] == 4 and card["training"]["init"] == spec
    a = load("s8", weights_dir=tmp_path / "zoo").net.state_dict()
    b = load("s4", weights_dir=tmp_path / "zoo").net.state_dict()
    assert set(b) - set(a) == {"score_pool2.weight", "score_pool2.bias", "upscore_pool3.weight"}
    convs = [k for k in a if k.endswith(".weight") and a[k].dim() == 4]
    assert convs and all(torch.allclose(a[k], b[k], atol=1e-6) for k in convs)
    # Growth goes one way only: an FCN-4s does not start an FCN-8s, and the other options must still agree.
    with pytest.raises(ValueError, match="different network: arch_kwargs"):
        train_mod.check_init(tiny_config(tmp_path / "c", init=f"zoo:{tmp_path / 'zoo' / 's4.json'}"))
    with pytest.raises(ValueError, match="different network: arch_kwargs"):
        train_mod.check_init(tiny_config(tmp_path / "c", init=spec, output_stride=4, dropout=0.2))
    with pytest.raises(ValueError, match="output_stride applies to fcn8s only"):
        tiny_config(tmp_path / "c", arch="deeplabv3", output_stride=4)
    with pytest.raises(ValueError, match="output_stride must be 8"):
        tiny_config(tmp_path / "c", output_stride=16)


def test_init_grows_an_fcn4s_into_one_with_a_refinement_block(tmp_path: Path) -> None:
    s4 = tiny_config(tmp_path / "a", steps=2, output_stride=4, export_name="s4", export_dir=str(tmp_path / "zoo"))
    train(s4, train_data=EasyScenes(8), val_data=EasyScenes(2, seed=1))
    spec = f"zoo:{tmp_path / 'zoo' / 's4.json'}"
    grown = tiny_config(tmp_path / "b", steps=1, init=spec, output_stride=4, refine=4, export_name="r",
                        export_dir=str(tmp_path / "zoo"))  # fmt: skip
    assert grown.describe().endswith("+ refinement 4") and grown.arch_kwargs()["refine"] == 4
    assert "refine" not in s4.arch_kwargs()  # FCN-4s cards are as they were
    train(grown, train_data=EasyScenes(8, seed=5), val_data=EasyScenes(2, seed=1))
    card = json.loads((tmp_path / "zoo" / "r.json").read_text())
    assert card["arch_kwargs"]["refine"] == 4 and card["training"]["init"] == spec
    b = load("r", weights_dir=tmp_path / "zoo").net.state_dict()
    assert {k.split(".")[0] for k in set(b) - set(load("s4", weights_dir=tmp_path / "zoo").net.state_dict())} == {
        "refine"
    }
    # An FCN-8s grows into it too (two stages at once); the reverse and other widths are refused.
    s8 = tiny_config(tmp_path / "c", steps=1, export_name="s8", export_dir=str(tmp_path / "zoo"))
    train(s8, train_data=EasyScenes(8), val_data=EasyScenes(2, seed=1))
    s8_spec = f"zoo:{tmp_path / 'zoo' / 's8.json'}"
    train_mod.check_init(tiny_config(tmp_path / "d", init=s8_spec, output_stride=4, refine=4))
    with pytest.raises(ValueError, match="different network: arch_kwargs"):
        train_mod.check_init(tiny_config(tmp_path / "d", init=f"zoo:{tmp_path / 'zoo' / 'r.json'}", output_stride=4))
    with pytest.raises(ValueError, match="different network: arch_kwargs"):
        train_mod.check_init(tiny_config(tmp_path / "d", init=spec, output_stride=4, refine=4, width=0.5))
    with pytest.raises(ValueError, match="refine applies to fcn8s at output_stride 4"):
        tiny_config(tmp_path / "d", refine=4)
    with pytest.raises(ValueError, match="refine must be a number of channels"):
        tiny_config(tmp_path / "d", output_stride=4, refine=-2)


def test_init_grows_a_refined_fcn4s_into_an_fcn2s_with_both_blocks(tmp_path: Path) -> None:
    zoo = str(tmp_path / "zoo")
    r4 = tiny_config(tmp_path / "a", steps=2, output_stride=4, refine=4, export_name="r4", export_dir=zoo)
    train(r4, train_data=EasyScenes(8), val_data=EasyScenes(2, seed=1))
    spec = f"zoo:{tmp_path / 'zoo' / 'r4.json'}"
    grown = tiny_config(tmp_path / "b", steps=1, init=spec, output_stride=2, refine=4, refine2=3, export_name="r2",
                        export_dir=zoo)  # fmt: skip
    assert grown.describe() == "FCN2s-VGG16 width 0.0625 + BatchNorm + refinement 4 at stride 4, 3 at stride 2"
    assert {k: grown.arch_kwargs()[k] for k in ("output_stride", "refine", "refine2")} == {
        "output_stride": 2, "refine": 4, "refine2": 3}  # fmt: skip
    assert "refine2" not in r4.arch_kwargs()  # FCN-4s cards are as they were
    train(grown, train_data=EasyScenes(8, seed=5), val_data=EasyScenes(2, seed=1))
    card = json.loads((tmp_path / "zoo" / "r2.json").read_text())
    assert card["arch_kwargs"]["refine2"] == 3 and card["training"]["init"] == spec
    a = load("r4", weights_dir=tmp_path / "zoo").net.state_dict()
    b = load("r2", weights_dir=tmp_path / "zoo").net.state_dict()
    assert {k.split(".")[0] for k in set(b) - set(a)} == {"score_pool1", "upscore_pool2", "refine2"}
    # The stride-4 block may not lose channels; an FCN-2s does not start an FCN-4s; refine2 needs stride 2.
    with pytest.raises(ValueError, match="different network: arch_kwargs"):
        train_mod.check_init(tiny_config(tmp_path / "c", init=spec, output_stride=2, refine=3, refine2=3))
    with pytest.raises(ValueError, match="different network: arch_kwargs"):
        train_mod.check_init(tiny_config(tmp_path / "c", init=f"zoo:{tmp_path / 'zoo' / 'r2.json'}",
                                         output_stride=4, refine=4))  # fmt: skip
    train_mod.check_init(tiny_config(tmp_path / "c", init=spec, output_stride=2, refine=4))  # pool1 stage only
    with pytest.raises(ValueError, match="refine2 applies to fcn8s at output_stride 2 only"):
        tiny_config(tmp_path / "c", output_stride=4, refine=4, refine2=3)
    with pytest.raises(ValueError, match="refine2 must be a number of channels"):
        tiny_config(tmp_path / "c", output_stride=2, refine2=-1)


def test_cli_train_init(tmp_path: Path, easy_default_data: None, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--out", str(tmp_path / "a"), *CLI_ARGS]) == 0
    card = tmp_path / "a" / "cli_model.json"
    assert main(["train", "--out", str(tmp_path / "b"), *CLI_ARGS, "--init", f"zoo:{card}"]) == 0
    capsys.readouterr()
    assert main(["train", "--out", str(tmp_path / "c"), *CLI_ARGS, "--init", f"zoo:{card}", "--dropout", "0.2"]) == 2
    err = capsys.readouterr().err
    assert "is a different network" in err and "--dropout" in err and "Traceback" not in err


def test_lovasz_softmax_is_one_minus_iou_on_hard_predictions() -> None:
    # Labels and a hard prediction on a 4x4 image, IoUs counted by hand:
    # class 0: label 8 px, prediction 6 of them + 2 of class 1's -> inter 6, union 10 -> IoU 0.6
    # class 1: label 6 px, prediction 4 of them + 2 of class 0's -> inter 4, union 8 -> IoU 0.5
    # class 2: label 2 px, predicted exactly -> IoU 1.0; class 3: never labelled (not counted, even if predicted)
    y = torch.tensor([[0, 0, 0, 0], [0, 0, 0, 0], [1, 1, 1, 1], [1, 1, 2, 2]])
    pred = torch.tensor([[0, 0, 0, 0], [0, 0, 1, 1], [1, 1, 0, 0], [1, 1, 2, 2]])
    probs = torch.nn.functional.one_hot(pred, 4).permute(2, 0, 1)[None].float()
    got = train_mod.lovasz_softmax(probs, y[None])
    assert got.item() == pytest.approx(((1 - 0.6) + (1 - 0.5) + (1 - 1.0)) / 3)
    # Ignored pixels count for nothing: ignoring the four wrong ones leaves a perfect prediction.
    y_ign = torch.where(pred != y, torch.tensor(255), y)
    assert train_mod.lovasz_softmax(probs, y_ign[None]).item() == pytest.approx(0.0)
    assert train_mod.lovasz_softmax(probs, torch.full((1, 4, 4), 255)).item() == 0.0
    # The mean is over (image, class) pairs: a second, perfect image with one class adds one zero term.
    zeros = torch.zeros(4, 4, dtype=torch.long)
    perfect = torch.nn.functional.one_hot(zeros, 4).permute(2, 0, 1)[None].float()
    both = train_mod.lovasz_softmax(torch.cat([probs, perfect]), torch.stack([y, zeros]))
    assert both.item() == pytest.approx(0.9 / 4)
    with pytest.raises(ValueError, match="probs .B, K, H, W. and labels .B, H, W. expected"):
        train_mod.lovasz_softmax(probs[0], y)


def test_lovasz_softmax_gradient_lowers_the_loss() -> None:
    torch.manual_seed(0)
    y = torch.randint(0, 3, (2, 8, 8))
    logits = torch.randn(2, 3, 8, 8, requires_grad=True)
    before = train_mod.lovasz_softmax(logits.softmax(1), y)
    before.backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0
    with torch.no_grad():
        after = train_mod.lovasz_softmax((logits - 0.5 * logits.grad).softmax(1), y)
    assert after < before


def test_train_with_the_lovasz_loss(tmp_path: Path) -> None:
    config = tiny_config(tmp_path / "l", steps=3, loss="ce+lovasz")
    result = train(config, train_data=EasyScenes(8), val_data=EasyScenes(2, seed=1))
    assert result.finished and math.isfinite(result.train_loss)
    assert json.loads((tmp_path / "l" / "config.json").read_text())["config"]["loss"] == "ce+lovasz"
    with pytest.raises(ValueError, match="loss must be 'ce' or 'ce\\+lovasz'"):
        tiny_config(tmp_path / "m", loss="dice")


def _lovasz_by_loops(probs: torch.Tensor, labels: torch.Tensor, ignore: int = 255,
                     weights: list[float] | None = None) -> torch.Tensor:  # fmt: skip
    """Berman et al.'s definition written out per image and class, to check the batched implementation; with
    ``weights``, the weighted mean of the (image, class) terms."""
    terms, w = [], []
    for p, y in zip(probs.flatten(2), labels.flatten(1), strict=True):
        keep = y != ignore
        p, y = p[:, keep], y[keep]
        for c in torch.unique(y).tolist():
            fg = (y == c).float()
            errors, order = (fg - p[c]).abs().sort(descending=True)
            fgs = fg[order]
            jac = 1 - (fgs.sum() - fgs.cumsum(0)) / (fgs.sum() + (1 - fgs).cumsum(0))
            terms.append(errors @ torch.cat([jac[:1], jac[1:] - jac[:-1]]))
            w.append(1.0 if weights is None else weights[c])
    return (torch.stack(terms) * torch.tensor(w)).sum() / sum(w)


def test_lovasz_softmax_batched_equals_the_definition() -> None:
    torch.manual_seed(1)
    logits = torch.randn(3, 5, 9, 11, requires_grad=True)
    y = torch.randint(0, 4, (3, 9, 11))  # class 4 never labelled
    y[0, :3] = 255
    y[1] = torch.where(y[1] == 2, torch.tensor(255), y[1])
    got = train_mod.lovasz_softmax(logits.softmax(1), y)
    (g_got,) = torch.autograd.grad(got, logits)
    want = _lovasz_by_loops(logits.softmax(1), y)
    (g_want,) = torch.autograd.grad(want, logits)
    assert got.item() == pytest.approx(want.item(), rel=1e-5)
    assert torch.allclose(g_got, g_want, atol=1e-6)


def test_lovasz_class_weights_weigh_each_image_class_term() -> None:
    torch.manual_seed(2)
    logits = torch.randn(3, 5, 9, 11, requires_grad=True)
    y = torch.randint(0, 4, (3, 9, 11))
    y[2] = torch.where(y[2] == 3, torch.tensor(1), y[2])  # class 3 only in two of the images
    weights = [1.0, 0.5, 1.0, 4.0, 2.0]
    got = train_mod.lovasz_softmax(logits.softmax(1), y, class_weights=torch.tensor(weights))
    (g_got,) = torch.autograd.grad(got, logits)
    want = _lovasz_by_loops(logits.softmax(1), y, weights=weights)
    (g_want,) = torch.autograd.grad(want, logits)
    assert got.item() == pytest.approx(want.item(), rel=1e-5)
    assert torch.allclose(g_got, g_want, atol=1e-6)
    plain = train_mod.lovasz_softmax(logits.softmax(1), y)
    assert train_mod.lovasz_softmax(logits.softmax(1), y, class_weights=torch.ones(5)).item() == pytest.approx(
        plain.item(), rel=1e-6)  # fmt: skip
    assert got.item() != pytest.approx(plain.item(), rel=1e-3)
    with pytest.raises(ValueError, match="one weight per class"):
        train_mod.lovasz_softmax(logits.softmax(1), y, class_weights=torch.ones(4))


def test_train_with_lovasz_class_weights(tmp_path: Path) -> None:
    config = tiny_config(tmp_path / "l", steps=2, loss="ce+lovasz", lovasz_weights={"person": 3})
    assert config.lovasz_weights == {"person": 3.0}
    result = train(config, train_data=EasyScenes(8), val_data=EasyScenes(2, seed=1))
    assert result.finished and math.isfinite(result.train_loss)
    stored = json.loads((tmp_path / "l" / "config.json").read_text())["config"]
    assert stored["lovasz_weights"] == {"person": 3.0}
    assert train_mod.config_differences(config) == []
    assert train_mod.config_differences(dataclasses.replace(config, lovasz_weights={"person": 2.0}))
    # A run stored before lovasz_weights existed reads as unweighted.
    path = tmp_path / "l" / "config.json"
    doc = json.loads(path.read_text())
    del doc["config"]["lovasz_weights"]
    path.write_text(json.dumps(doc))
    assert train_mod.config_differences(dataclasses.replace(config, lovasz_weights={})) == []
    with pytest.raises(ValueError, match="needs loss='ce\\+lovasz'"):
        tiny_config(tmp_path / "m", lovasz_weights={"person": 2})
    with pytest.raises(ValueError, match="unknown class 'persons'; classes: road, sidewalk"):
        tiny_config(tmp_path / "m", loss="ce+lovasz", lovasz_weights={"persons": 2})
    for bad in (0, -1.0, float("nan"), "2", True):
        with pytest.raises(ValueError, match="must be a positive number"):
            tiny_config(tmp_path / "m", loss="ce+lovasz", lovasz_weights={"person": bad})


def test_init_widens_a_refinement_block_and_computes_the_same(tmp_path: Path) -> None:
    zoo = tmp_path / "zoo"
    r2 = tiny_config(tmp_path / "a", steps=2, output_stride=2, refine=4, refine2=3, export_name="r2",
                     export_dir=str(zoo))  # fmt: skip
    train(r2, train_data=EasyScenes(8), val_data=EasyScenes(2, seed=1))
    spec = f"zoo:{zoo / 'r2.json'}"
    wide = tiny_config(tmp_path / "b", steps=1, init=spec, output_stride=2, refine=7, refine2=5)
    train_mod.check_init(wide)
    old = load("r2", weights_dir=zoo).net.eval()
    net = ARCHITECTURES["fcn8s"](19, **wide.arch_kwargs()).eval()
    train_init.load_init_weights(net, old.state_dict())
    x = torch.randn(2, 3, 32, 64)
    with torch.no_grad():
        assert torch.equal(net(x), old(x))  # the new channels enter with zero weights: exactly the old network
    new, before = net.state_dict(), old.state_dict()
    assert new["refine.0.weight"].shape[0] == 7 and new["refine2.3.weight"].shape[1] == 5
    assert torch.equal(new["refine.0.weight"][:4], before["refine.0.weight"])
    assert new["refine.0.weight"][4:].abs().sum() > 0  # the new channels' first convolution is not dead
    assert torch.equal(new["refine2.3.weight"][:, :3], before["refine2.3.weight"])
    assert new["refine2.3.weight"][:, 3:].abs().sum() == 0
    # Training the wide run moves the new channels (their gradients are not zero).
    train(dataclasses.replace(wide, export_name="w", export_dir=str(zoo)), train_data=EasyScenes(8, seed=5),
          val_data=EasyScenes(2, seed=1))  # fmt: skip
    trained = load("w", weights_dir=zoo).net.state_dict()
    assert trained["refine2.3.weight"][:, 3:].abs().sum() > 0
    # Narrower blocks are refused, from the small init and from the widened one.
    with pytest.raises(ValueError, match="different network: arch_kwargs"):
        train_mod.check_init(tiny_config(tmp_path / "c", init=spec, output_stride=2, refine=3, refine2=3))
    with pytest.raises(ValueError, match="different network: arch_kwargs"):
        train_mod.check_init(tiny_config(tmp_path / "c", init=f"zoo:{zoo / 'w.json'}", output_stride=2, refine=4,
                                         refine2=3))  # fmt: skip


def test_cli_lovasz_weight(tmp_path: Path, easy_default_data: None, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "w"
    args = ["train", "--out", str(out), *CLI_ARGS, "--loss", "ce+lovasz"]
    assert main([*args, "--lovasz-weight", "person=3", "--lovasz-weight", "traffic light=0.5"]) == 0
    stored = json.loads((out / "config.json").read_text())["config"]
    assert stored["lovasz_weights"] == {"person": 3.0, "traffic light": 0.5}
    capsys.readouterr()
    for bad in ("person", "person=0", "person=x", "=2"):
        with pytest.raises(SystemExit) as exc:
            main([*args, "--lovasz-weight", bad])
        assert exc.value.code == 2
        assert "expected CLASS=W with a positive weight W" in capsys.readouterr().err
    assert main(["train", "--out", str(tmp_path / "x"), *CLI_ARGS, "--lovasz-weight", "person=2"]) == 2
    assert "needs loss='ce+lovasz'" in capsys.readouterr().err
