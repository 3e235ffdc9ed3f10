"""``segattack compare`` and ``segattack.experiment.compare_models``: three small networks of the zoo's architectures
(random weights, the person logit shifted so that every model sees persons), real files, the real command line."""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import math
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image
from torch import nn

from segattack import zoo
from segattack.cli import main
from segattack.commands._common import build_data, build_model
from segattack.evaluation import evaluate
from segattack.experiment import ExperimentConfig, RunOptions
from segattack.experiment.compare import CompareError, CompareProgress, compare_models
from segattack.report.compare import TRANSFER_FILE, read_transfer_rows
from segattack.rundir import read_rows
from segattack.specs import load_data, load_model

PERSON = 11
SIZE = (64, 128)
EPS = (2, 4)
TRANSFER_EPS = 4
N_IMAGES = 4
ARCHS: dict[str, tuple[str, dict[str, Any]]] = {
    "fcn": ("fcn8s", {"width": 1 / 16, "batch_norm": True}),
    "deeplab": ("deeplabv3", {"width": 0.25}),
    "segformer": ("segformer", {"dims": (8, 16, 24, 32), "heads": (1, 1, 2, 2), "decoder_dim": 16}),
}
MEAN, STD = (0.45, 0.45, 0.45), (0.25, 0.25, 0.25)


def _last_classifier(net: nn.Module, classes: int) -> nn.Conv2d:
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d) and m.out_channels == classes and m.bias is not None]
    return convs[-1]


def _tiny(arch: str, kwargs: dict[str, Any], classes: int, seed: int) -> nn.Module:
    """A random network (layers initialised to zero drawn at random too) whose person logit is shifted so that
    about 15% of the synthetic pixels are persons (a constant added to the last classifier's bias moves that
    class's logit everywhere alike)."""
    torch.manual_seed(seed)
    net = zoo.ARCHITECTURES[arch](classes, **kwargs).eval()
    with torch.no_grad():  # zero-initialised score layers (as FCN's) would predict one class everywhere
        for m in net.modules():
            if isinstance(m, nn.Conv2d) and not m.weight.any():
                nn.init.normal_(m.weight, std=0.05)
    data = load_data("synthetic:4", size=SIZE)
    x = torch.stack([data[i][0] for i in range(len(data))]).float() / 255
    x = (x - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)
    with torch.no_grad():
        logits = net(x)
        others = torch.cat([logits[:, :PERSON], logits[:, PERSON + 1 :]], 1).amax(1)
        margin = (logits[:, PERSON] - others).flatten()
        _last_classifier(net, classes).bias[PERSON] -= float(margin.quantile(0.85))
    return net


def _save(directory: Path, name: str, classes: int = 19, seed: int = 0) -> str:
    arch, kwargs = ARCHS[name]
    net = _tiny(arch, kwargs, classes, seed)
    card = zoo.save_model(net, directory / name, arch=arch, arch_kwargs=kwargs, mean=MEAN, std=STD,
                          num_classes=classes)  # fmt: skip
    return f"zoo:{card}"


@pytest.fixture(scope="module")
def specs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    d = tmp_path_factory.mktemp("zoo")
    return {name: _save(d, name) for name in ARCHS}


def _cli(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(argv)
    return rc, out.getvalue(), err.getvalue()


def _argv(specs: dict[str, str], out: Path, *extra: str) -> list[str]:
    return [
        "compare", "--models", ",".join(specs.values()), "--data", f"synthetic:{N_IMAGES}", "--size", "64x128",
        "--eps", ",".join(map(str, EPS)), "--transfer-eps", str(TRANSFER_EPS), "--batch-size", "2", "--out",
        str(out), "--no-progress", *extra,
    ]  # fmt: skip


@pytest.fixture(scope="module")
def done(specs: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """One finished comparison through the command line: its directory and what it printed on stdout."""
    out = tmp_path_factory.mktemp("cmp") / "out"
    rc, stdout, stderr = _cli(_argv(specs, out))
    assert rc == 0, stderr
    return out, stdout


def _same(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return float(a) == float(b) or (math.isnan(float(a)) and math.isnan(float(b)))


def test_diagonal_is_the_white_box_experiment(done: tuple[Path, str]) -> None:
    out, _ = done
    transfer = read_transfer_rows(out)
    checked = 0
    for name in ARCHS:
        rows = {
            r["image_id"]: r
            for r in read_rows(out / "models" / name)
            if r["mode"] == "full" and float(r["eps"]) == TRANSFER_EPS
        }
        mine = [r for r in transfer if r["source"] == name]
        assert sorted(r["image_id"] for r in mine) == sorted(rows)
        for t in mine:
            exp = rows[t["image_id"]]
            assert t["status"] == exp["status"]
            if t["status"] != "ok":
                continue
            got = t["targets"][name]
            assert _same(got["fooled"], exp["fooled"]), (name, t["image_id"], got, exp["fooled"])
            assert _same(got["preserved"], exp["preserved"]), (name, t["image_id"], got, exp["preserved"])
            assert got["class_pixels"] == exp["class_pixels"] == t["class_pixels"]
            assert set(t["targets"]) == set(ARCHS)
            checked += 1
    assert checked >= 2 * len(ARCHS)  # persons were predicted and attacked, so the check above compared numbers


def test_every_model_has_its_experiment(done: tuple[Path, str]) -> None:
    out, _ = done
    for name in ARCHS:
        d = out / "models" / name
        rows = read_rows(d)
        assert len(rows) == N_IMAGES * len(EPS) * 2
        assert {(float(r["eps"]), r["mode"]) for r in rows} == {(float(e), m) for e in EPS for m in ("full", "posthoc")}
        assert (d / "report.html").is_file() and (d / "config.json").is_file()


def test_figures_csv_and_page(done: tuple[Path, str]) -> None:
    out, stdout = done
    for png in ("compare.png", "transfer.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        with Image.open(out / png) as im:
            im.verify()
            assert im.size[0] > 400 and im.size[1] > 200
    assert (out / "compare.svg").read_text(encoding="utf-8").lstrip().startswith("<?xml")
    with open(out / "transfer.csv", newline="", encoding="utf-8") as fh:
        cells = list(csv.DictReader(fh))
    assert len(cells) == len(ARCHS) ** 2
    assert {(c["source"], c["target"]) for c in cells} == {(a, b) for a in ARCHS for b in ARCHS}
    assert all((c["white_box"] == "True") == (c["source"] == c["target"]) for c in cells)
    assert all(0 <= float(c["fooled_mean"]) <= 1 for c in cells if c["fooled_mean"])
    page = (out / "report.html").read_text(encoding="utf-8")
    assert page.count("data:image/png;base64,") == 2 and "models/fcn/report.html" in page
    for name in ARCHS:
        assert f"{name}: clean mIoU" in page
        assert any(line.startswith(name) for line in stdout.splitlines())
    assert "transfer at eps 4" in stdout


def test_clean_miou_is_that_of_evaluate(done: tuple[Path, str], specs: dict[str, str]) -> None:
    out, _ = done
    clean = json.loads((out / "clean.json").read_text(encoding="utf-8"))["models"]
    data = load_data(f"synthetic:{N_IMAGES}", size=SIZE)
    result = evaluate(load_model(specs["deeplab"]), data, num_classes=19)
    assert clean["deeplab"]["miou"] == pytest.approx(result.miou, abs=1e-12)
    assert set(clean) == set(ARCHS)


def test_interrupted_transfer_resumes_without_redoing_rows(done: tuple[Path, str], specs: dict[str, str],
                                                           tmp_path: Path) -> None:  # fmt: skip
    out = tmp_path / "copy"
    shutil.copytree(done[0], out)
    (out / TRANSFER_FILE).unlink()
    clean_before = (out / "clean.json").read_bytes()
    data, describe = build_data(f"synthetic:{N_IMAGES}", "64x128")  # what the command line recorded
    models, model_describe = {}, {}
    for name, s in specs.items():
        ns = argparse.Namespace(model=s, weights=None, mean=None, std=None, bgr=False, num_classes=None,
                                class_names=None, device="cpu")  # fmt: skip
        models[name], model_describe[name] = build_model(ns)
    config = ExperimentConfig(classes=PERSON, eps=EPS, batch_size=2, figure1=0)
    kw: dict[str, Any] = dict(transfer_eps=TRANSFER_EPS, options=RunOptions(report=False), describe=describe,
                              model_describe=model_describe)  # fmt: skip
    seen: list[CompareProgress] = []

    def stop_after_five(p: CompareProgress) -> None:
        if p.stage == "transfer" and sum(1 for q in seen if q.stage == "transfer" and q.done > 0) >= 5:
            raise KeyboardInterrupt
        seen.append(p)

    with pytest.raises(KeyboardInterrupt):
        compare_models(models, data, config, out, progress=stop_after_five, **kw)
    kept = (out / TRANSFER_FILE).read_bytes()
    lines = kept.splitlines()
    assert len(lines) == 6  # every finished image is on disk: 5 reported, and the sixth written before its report
    # a row left as it was is not redone: mark one, resume, and find the mark still there
    at = next(j for j, line in enumerate(lines) if json.loads(line)["status"] == "ok")
    first = json.loads(lines[at])
    name = first["source"]
    first["targets"][name]["preserved"] = 0.123456
    lines[at] = json.dumps(first).encode()
    marked = b"\n".join(lines) + b"\n"
    (out / TRANSFER_FILE).write_bytes(marked + b'{"source": "fcn", "ind')  # and a torn last line
    again: list[CompareProgress] = []
    result = compare_models(models, data, config, out, progress=again.append, **kw)
    rows = read_transfer_rows(out)
    assert (out / TRANSFER_FILE).read_bytes().startswith(marked)
    assert len(rows) == len(ARCHS) * N_IMAGES
    assert len({(r["source"], r["index"]) for r in rows}) == len(rows)
    assert rows[at]["targets"][name]["preserved"] == 0.123456
    assert sum(_start(again, m) for m in ARCHS) == 6  # the rows on disk were found done ...
    assert sum(_end(again, m) - _start(again, m) for m in ARCHS) == len(ARCHS) * N_IMAGES - 6  # ... the rest done
    experiments = [p.experiment for p in again if p.experiment is not None]
    assert experiments and all(e.resumed == N_IMAGES for e in experiments)  # the experiments were not redone
    assert (out / "clean.json").read_bytes() == clean_before  # clean mIoU not recomputed
    assert result.report.matrix[(name, name)]["attacked"] == N_IMAGES - sum(
        1 for r in rows if r["source"] == name and r["status"] != "ok"
    )


def _start(progress: list[CompareProgress], model: str) -> int:
    """The images of ``model``'s transfer found done when it started."""
    return next(p.done for p in progress if p.stage == "transfer" and p.model == model)


def _end(progress: list[CompareProgress], model: str) -> int:
    """The images of ``model``'s transfer done when it ended."""
    return [p.done for p in progress if p.stage == "transfer" and p.model == model][-1]


def test_a_different_configuration_is_refused(done: tuple[Path, str], specs: dict[str, str], tmp_path: Path) -> None:
    out = tmp_path / "copy"
    shutil.copytree(done[0], out, ignore=shutil.ignore_patterns("models"))
    models = {name: load_model(s) for name, s in list(specs.items())[:2]}
    data = load_data(f"synthetic:{N_IMAGES}", size=SIZE)
    with pytest.raises(CompareError, match="different configuration.*eps_levels"):
        compare_models(models, data, ExperimentConfig(classes=PERSON, eps=(2, 4, 6), figure1=0), out, transfer_eps=4)


def test_api_checks(specs: dict[str, str], tmp_path: Path) -> None:
    data = load_data("synthetic:2", size=SIZE)
    config = ExperimentConfig(classes=PERSON, eps=EPS)
    one = {"fcn": load_model(specs["fcn"])}
    with pytest.raises(CompareError, match="at least 2 models"):
        compare_models(one, data, config, tmp_path / "a")
    two = {**one, "again": load_model(specs["fcn"])}
    with pytest.raises(CompareError, match="same network"):
        compare_models(two, data, config, tmp_path / "b")
    two = {**one, "deeplab": load_model(specs["deeplab"])}
    with pytest.raises(CompareError, match="transfer_eps 10 is not among"):
        compare_models(two, data, config, tmp_path / "c", transfer_eps=10)
    assert not (tmp_path / "a").exists() and not (tmp_path / "c").exists()


@pytest.mark.parametrize(
    ("models", "extra", "message"),
    [
        ("{fcn}", [], "at least 2 models"),
        ("{fcn},{fcn}", [], "twice"),
        ("{fcn},{other}", [], "both named 'fcn'"),
        ("{fcn},{deeplab}", ["--transfer-eps", "3"], "--transfer-eps: transfer_eps 3 is not among the budgets [2, 4]"),
        ("{fcn},{deeplab}", ["--transfer-eps", "ten"], "takes a number"),
        ("{fcn},{classes20}", [], "different numbers of classes"),
        ("{fcn},zoo:no/such.json", [], "does not exist"),
    ],
)
def test_cli_errors_are_one_line(
    specs: dict[str, str], tmp_path: Path, models: str, extra: list[str], message: str
) -> None:
    other = tmp_path / "other"
    other.mkdir()
    names = {**specs, "other": _save(other, "fcn", seed=1) if "{other}" in models else "",
             "classes20": _save(other, "deeplab", classes=20) if "{classes20}" in models else ""}  # fmt: skip
    argv = ["compare", "--models", models.format(**names), "--data", "synthetic:2", "--size", "64x128", "--eps",
            "2,4", "--out", str(tmp_path / "out"), "--no-progress", *extra]  # fmt: skip
    rc, stdout, stderr = _cli(argv)
    assert rc == 2
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("segattack compare: error: "), stderr
    assert message in lines[0]
    assert not (tmp_path / "out").exists()
