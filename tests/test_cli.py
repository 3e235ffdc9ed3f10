"""The ``segattack`` command end to end on tiny data in tmp dirs: outputs, resume, user errors, attack, report."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

import segattack as sa
from segattack.cli import main
from segattack.experiment import read_rows

from .models_for_cli import one_line_error, tiny_fcn, tiny_fcn_module, write_street_pngs

MODEL = "tests.models_for_cli:tiny_fcn"


def run_args(data: Path, out: Path, *extra: str) -> list[str]:
    return ["run", "--data", f"folder:{data}", "--model", MODEL, "--eps", "1,2,4", "--out", str(out),
            "--batch-size", "2", "--figure1", "1", *extra]  # fmt: skip


def without_time(rows: list[dict[str, Any]]) -> list[str]:
    return [json.dumps({k: (None if v != v else v) for k, v in r.items() if k != "time_s"}) for r in rows]


@pytest.fixture(scope="module")
def pngs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_street_pngs(tmp_path_factory.mktemp("data") / "pngs", n=4, absent=(3,))


@pytest.fixture(scope="module")
def finished(pngs: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cli") / "run"
    assert main(run_args(pngs, out, "--restrict", "both")) == 0
    return out


def test_run_writes_everything(finished: Path, capsys: pytest.CaptureFixture[str]) -> None:
    names = {p.name for p in finished.iterdir()}
    expected = {"config.json", "results.jsonl", "summary.csv", "report.html", "figure2.png", "figure2.svg",
                "figure2.pdf", "figure1_img_2.npz", "figure1_img_2.png"}  # fmt: skip
    assert expected <= names
    rows = read_rows(finished)
    assert len(rows) == 4 * 3 * 3  # images x eps x modes (full, posthoc, during)
    assert {r["status"] for r in rows if r["image_id"] == "img_3"} == {"absent"}
    config = json.loads((finished / "config.json").read_text())
    assert config["experiment"]["model"] == MODEL and config["experiment"]["data"].startswith("folder:/")
    with open(finished / "summary.csv", newline="") as fh:
        table = list(csv.DictReader(fh))
    assert len(table) == 3 * 3
    for t in table:  # summary.csv agrees with the rows
        vals = [r["fooled"] for r in rows if r["eps"] == int(t["eps"]) and r["mode"] == t["mode"]]
        finite = [v for v in vals if v == v]
        assert float(t["fooled_mean"]) == pytest.approx(np.mean(finite), rel=1e-5)
        assert float(t["fooled_std"]) == pytest.approx(np.std(finite), rel=1e-4, abs=1e-9)
        assert int(t["fooled_missing"]) == 1 and int(t["absent"]) == 1


def test_run_prints_one_sentence_per_eps(pngs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(run_args(pngs, tmp_path / "o", "--restrict", "none", "--figure1", "0")) == 0
    out, err = capsys.readouterr()
    lines = out.strip().splitlines()
    assert [line.split(",")[0] for line in lines] == ["at eps=1", "at eps=2", "at eps=4"]
    assert "of person pixels hidden" in lines[0] and "of background kept" in lines[0]
    assert "done in" in err and "1 absent" in err


def test_report_redraws_from_results_alone(finished: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(finished, copy)
    for name in ("report.html", "summary.csv", "figure2.png", "figure2.svg", "figure2.pdf", "figure1_img_2.png"):
        (copy / name).unlink()
    monkeypatch.setattr(sa.PixelModel, "forward", lambda *a, **k: pytest.fail("report ran a model"))
    assert main(["report", str(copy)]) == 0
    for name in ("report.html", "summary.csv", "figure2.png", "figure2.svg", "figure2.pdf", "figure1_img_2.png"):
        assert (copy / name).stat().st_size > 0
    assert (copy / "summary.csv").read_text() == (finished / "summary.csv").read_text()


def test_resume_after_ctrl_c(pngs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from segattack.commands.progress import RunProgress

    assert main(run_args(pngs, tmp_path / "ref")) == 0
    calls = {"n": 0}
    original = RunProgress.__call__

    def interrupting(self: Any, p: Any) -> None:
        original(self, p)
        calls["n"] += 1
        if p.done == 2:
            raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(RunProgress, "__call__", interrupting)
        assert main(run_args(pngs, tmp_path / "run")) == 130
    assert len(read_rows(tmp_path / "run")) == 2 * 3 * 2  # the finished images are kept
    assert main(run_args(pngs, tmp_path / "run")) == 0
    assert without_time(read_rows(tmp_path / "run")) == without_time(read_rows(tmp_path / "ref"))


def test_determinism_and_overwrite(
    pngs: Path, finished: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "again"
    assert main(run_args(pngs, out, "--restrict", "both")) == 0
    assert without_time(read_rows(out)) == without_time(read_rows(finished))
    capsys.readouterr()
    assert main(run_args(pngs, out, "--eps", "1,2")) == 2  # different configuration
    err = capsys.readouterr().err
    assert "different configuration" in err and "--overwrite" in err and len(err.strip().splitlines()) == 1
    assert main(run_args(pngs, out, "--eps", "1,2", "--overwrite")) == 0
    assert len(read_rows(out)) == 4 * 2 * 2



def test_user_errors(pngs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "o"
    assert "unknown class 'pedestrian'" in one_line_error(run_args(pngs, out, "--hide", "pedestrian"), capsys)
    assert "11=person" in one_line_error(run_args(pngs, out, "--hide", "pedestrian"), capsys)  # lists valid names
    assert "eps must be positive" in one_line_error(run_args(pngs, out, "--eps", "0,2"), capsys)
    assert "eps must be positive" in one_line_error(run_args(pngs, out, "--eps", "-1"), capsys)
    assert "8-bit levels" in one_line_error(run_args(pngs, out, "--eps", "ten"), capsys)
    missing = ["run", "--data", f"folder:{tmp_path / 'nope'}", "--model", MODEL, "--out", str(out)]
    assert "does not exist" in one_line_error(missing, capsys)
    (tmp_path / "empty").mkdir()
    empty = ["run", "--data", f"folder:{tmp_path / 'empty'}", "--model", MODEL, "--out", str(out)]
    assert "is empty" in one_line_error(empty, capsys)
    assert "valid: synthetic" in one_line_error(["run", "--data", "imagenet:/x", "--model", MODEL, "--out", str(out)],
                                            capsys)  # fmt: skip
    err = one_line_error(run_args(pngs, out, "--model", "tests.models_for_cli:five_class_module"), capsys)
    assert "5 classes" in err and "19" in err
    assert "cannot import module" in one_line_error(run_args(pngs, out, "--model", "no_such_pkg.nets:build"), capsys)
    assert "no attribute" in one_line_error(run_args(pngs, out, "--model", "tests.models_for_cli:nothing"), capsys)
    assert "zoo:NAME" in one_line_error(run_args(pngs, out, "--model", "justaname"), capsys)
    assert "weights file" in one_line_error(run_args(pngs, out, "--weights", str(tmp_path / "w.pt")), capsys)
    assert "no results.jsonl" in one_line_error(["report", str(tmp_path)], capsys)
    assert not out.exists()  # nothing was started


def test_weights_files(pngs: Path, tmp_path: Path) -> None:
    from safetensors.torch import save_file

    state = tiny_fcn_module().state_dict()
    save_file(state, str(tmp_path / "w.safetensors"))
    torch.save(state, tmp_path / "w.pt")
    ref = tmp_path / "ref"
    assert main(run_args(pngs, ref, "--limit", "2", "--restrict", "none", "--figure1", "0")) == 0
    for weights in ("w.safetensors", "w.pt"):
        out = tmp_path / f"run_{weights}"
        spec = ["--model", "tests.models_for_cli:tiny_fcn_module", "--weights", str(tmp_path / weights), "--mean",
                "0,0,0", "--std", "1,1,1", "--limit", "2", "--restrict", "none", "--figure1", "0"]  # fmt: skip
        assert main(run_args(pngs, out, *spec)) == 0
        assert [r["fooled"] for r in read_rows(out)] == [r["fooled"] for r in read_rows(ref)]


def test_attack_writes_exact_png(pngs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "adv.png"
    assert main(["attack", str(pngs / "img_1.png"), "--hide", "person", "--eps", "4", "--out", str(out),
                 "--model", MODEL]) == 0  # fmt: skip
    assert (tmp_path / "adv_panels.png").stat().st_size > 0
    assert "person pixels hidden" in capsys.readouterr().out
    model = tiny_fcn()
    clean = np.array(Image.open(pngs / "img_1.png").convert("RGB"))
    x = torch.from_numpy(clean).permute(2, 0, 1)[None].float() / 255
    adv = sa.illm(model, x, sa.hide_class_target(model.predict(x), class_id=11), eps=4 / 255)
    reloaded = np.asarray(Image.open(out))
    assert np.array_equal(reloaded, (adv[0] * 255).round().to(torch.uint8).permute(1, 2, 0).numpy())  # bit for bit
    assert np.abs(reloaded.astype(int) - clean).max() <= 4  # within eps
    assert (reloaded != clean).any()
    # restricted versions stay on the person pixels
    assert main(["attack", str(pngs / "img_1.png"), "--eps", "4", "--out", str(tmp_path / "r.png"), "--model", MODEL,
                 "--restrict", "during"]) == 0  # fmt: skip
    r = np.asarray(Image.open(tmp_path / "r.png"))
    outside = (model.predict(x)[0] != 11).numpy()
    assert np.array_equal(r[outside], clean[outside])


def test_attack_user_errors(pngs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    img = str(pngs / "img_0.png")
    assert ".png" in one_line_error(["attack", img, "--out", str(tmp_path / "a.jpg"), "--model", MODEL], capsys)
    assert "does not exist" in one_line_error(["attack", str(tmp_path / "x.png"), "--out", str(tmp_path / "a.png"),
                                           "--model", MODEL], capsys)  # fmt: skip
    assert "one eps" in one_line_error(["attack", img, "--eps", "1,2", "--out", str(tmp_path / "a.png"), "--model",
                                    MODEL], capsys)  # fmt: skip
    (tmp_path / "bad.png").write_bytes(b"not a png")
    bad = ["attack", str(tmp_path / "bad.png"), "--out", str(tmp_path / "a.png"), "--model", MODEL]
    assert "bad.png" in one_line_error(bad, capsys)


def test_synthetic_data_spec(tmp_path: Path) -> None:
    out = tmp_path / "syn"
    argv = ["run", "--data", "synthetic:3", "--size", "32x64", "--model", MODEL, "--eps", "1", "--out", str(out),
            "--figure1", "0", "--restrict", "none"]  # fmt: skip
    assert main(argv) == 0
    rows = read_rows(out)
    assert [r["image_id"] for r in rows] == ["val_000000", "val_000001", "val_000002"]


@pytest.fixture
def shipped_tiny_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A tiny FCN8s saved as the only 'shipped' model (the real shipped weights are not needed)."""
    from segattack import zoo
    from segattack.zoo import registry

    weights = tmp_path / "weights"
    torch.manual_seed(0)
    net = zoo.FCN8s(19, width=1 / 16, batch_norm=True)
    zoo.save_model(net, weights / "tiny", arch="fcn8s", arch_kwargs={"width": 1 / 16, "batch_norm": True},
                   mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25), num_classes=19, description="test model")  # fmt: skip
    monkeypatch.setattr(registry, "WEIGHTS_DIR", weights)
    monkeypatch.setattr(zoo, "WEIGHTS_DIR", weights)
    monkeypatch.delattr(zoo, "DEFAULT_MODEL", raising=False)
    return weights


def test_demo_end_to_end(shipped_tiny_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "demo"
    argv = ["demo", "--out", str(out), "--images", "2", "--eps", "1,2", "--size", "32x64"]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert "done in" in captured.err
    assert (out / "report.html").exists() and (out / "figure2.png").exists()
    config = json.loads((out / "config.json").read_text())
    assert config["experiment"]["model"] == "zoo:tiny" and config["experiment"]["modes"] == ["full", "posthoc"]
    assert config["run"]["batch_size"] == 2  # the demo's default: the fastest per image on a CPU
    assert len(read_rows(out)) == 2 * 2 * 2
    # channels-last is on by default and can be turned off; neither it nor the batch size is part of the experiment,
    # so the demo resumes in either layout
    rows = read_rows(out)
    assert main([*argv, "--no-channels-last", "--batch-size", "1"]) == 0
    assert "resum" in capsys.readouterr().err.lower()
    assert json.loads((out / "config.json").read_text())["experiment"] == config["experiment"]
    assert read_rows(out) == rows


def test_demo_without_shipped_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                    capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    from segattack import zoo
    from segattack.zoo import registry

    monkeypatch.setattr(registry, "WEIGHTS_DIR", tmp_path)
    monkeypatch.setattr(zoo, "WEIGHTS_DIR", tmp_path)
    monkeypatch.delattr(zoo, "DEFAULT_MODEL", raising=False)
    err = one_line_error(["demo", "--out", str(tmp_path / "d")], capsys)
    assert "default model is missing" in err


@pytest.mark.parametrize("command", ["demo", "run", "attack", "report"])
def test_help_states_units(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main([command, "--help"])
    assert exc.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "8-bit levels" in text or command == "report"
    assert "default" in text or command == "report"
