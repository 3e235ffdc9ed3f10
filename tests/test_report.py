"""Reports from result files alone: summary agrees with the rows, figures and page are written and well formed."""

from __future__ import annotations

import csv
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from segattack.errors import RunDirError
from segattack.experiment import ExperimentConfig, read_rows, run_experiment
from segattack.report import panels_figure, sentences, summarize_results, summarize_rows, write_report

from .models_for_cli import ListDataset, street_image, tiny_fcn


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("report") / "run"
    data = ListDataset([street_image(i, person=i != 1) for i in range(4)], bad=(3,))
    run_experiment(
        tiny_fcn(), data, ExperimentConfig(classes=11, eps=[1, 2, 4], modes=("full", "posthoc"), figure1=1), out
    )
    return out


def test_summary_agrees_with_rows(run_dir: Path) -> None:
    rows = read_rows(run_dir)
    summary = summarize_results(run_dir)
    assert [(s["eps"], s["mode"]) for s in summary] == [(e, m) for e in (1, 2, 4) for m in ("full", "posthoc")]
    with open(run_dir / "summary.csv", newline="") as fh:
        table = list(csv.DictReader(fh))
    assert len(table) == len(summary)
    for s, t in zip(summary, table, strict=True):
        group = [r for r in rows if r["eps"] == s["eps"] and r["mode"] == s["mode"]]
        assert s["images"] == 4 and (s["ok"], s["absent"], s["unreadable"], s["all_hidden"]) == (2, 1, 1, 0)
        for metric in ("fooled", "preserved", "target_hit", "psnr"):
            values = np.array([r[metric] for r in group], dtype=float)
            finite = values[~np.isnan(values)]
            assert s[f"{metric}_mean"] == pytest.approx(finite.mean(), rel=1e-12)
            assert s[f"{metric}_std"] == pytest.approx(finite.std(), rel=1e-9, abs=1e-15)  # population std
            assert (s[f"{metric}_count"], s[f"{metric}_missing"]) == (2, 2)
            assert float(t[f"{metric}_mean"]) == pytest.approx(finite.mean(), rel=1e-5)
            assert int(t[f"{metric}_count"]) == 2
        assert s["linf_max"] <= s["eps"] + 1e-6


def test_summary_of_nothing_and_nan_cells() -> None:
    rows = [
        {"eps": 2, "mode": "full", "status": "absent", "fooled": None, "preserved": None, "psnr": None},
        {"eps": 2, "mode": "full", "status": "ok", "fooled": 0.5, "preserved": 1.0, "target_hit": 0.9, "psnr": 40.0},
        {"eps": 2, "mode": "full", "status": "ok", "fooled": 1.0, "preserved": 0.5, "target_hit": 0.9, "psnr": 38.0},
    ]
    (s,) = summarize_rows(rows)
    assert (s["fooled_mean"], s["fooled_std"], s["fooled_count"], s["fooled_missing"]) == (0.75, 0.25, 2, 1)
    assert s["absent"] == 1 and s["ok"] == 2
    assert sentences([s], class_names=["person"]) == [
        "at eps=2, 75.0% ± 25.0 of person pixels hidden, 75.0% ± 25.0 of background kept (2 images)"
    ]
    (empty,) = summarize_rows([r for r in rows if r["status"] == "absent"])
    assert math.isnan(empty["fooled_mean"]) and empty["fooled_count"] == 0
    assert sentences([empty]) == [
        "no image has person pixels in the model's clean prediction: there was nothing to hide"
    ]
    mixed = summarize_rows([*rows, {**rows[1], "mode": "posthoc"}, {**rows[0], "mode": "during"}])
    assert sentences(mixed)[0].endswith(
        "restricted to person pixels (post hoc): 50.0% ± 0.0 hidden, 100.0% ± 0.0 kept; "
        "restricted during the attack: no image with person pixels"
    )


def test_report_files(run_dir: Path) -> None:
    report = write_report(run_dir)
    for name in ("figure2.png", "figure2.svg", "figure2.pdf", "figure1_img_0.png", "report.html", "summary.csv"):
        assert (run_dir / name).stat().st_size > 0, name
    with Image.open(run_dir / "figure2.png") as im:
        assert im.size[0] > 800
    assert (run_dir / "figure2.pdf").read_bytes().startswith(b"%PDF")
    assert "<svg" in (run_dir / "figure2.svg").read_text()
    page = (run_dir / "report.html").read_text()
    thumbs = {r["image_id"] for r in read_rows(run_dir) if r["status"] == "ok"}  # 4 gallery thumbnails each
    assert len(thumbs) == 2
    assert page.count("data:image/png;base64,") == 2 + 4 * len(thumbs)  # Figure 2, one Figure 1, the gallery
    assert not re.search(r"""src=["'](?!data:)""", page)  # nothing fetched from elsewhere: self-contained
    assert len(report.sentences) == 3 and report.sentences[2].startswith("at eps=4, ")
    assert all(s in page for s in report.sentences[0].split("±")[:1])
    assert "&quot;eps_levels&quot;" in page or '"eps_levels"' in page  # configuration shown
    # two renderings of the same results give the same vector figure (no timestamps)
    svg = (run_dir / "figure2.svg").read_bytes()
    write_report(run_dir)
    assert (run_dir / "figure2.svg").read_bytes() == svg


def test_report_needs_results(tmp_path: Path) -> None:
    with pytest.raises(RunDirError, match="no results.jsonl"):
        write_report(tmp_path)


def test_panels_figure_has_eleven_panels() -> None:
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (16, 32, 3), dtype=np.uint8)
    pred = np.zeros((16, 32), np.uint8)
    pred[4:12, 10:20] = 11
    data: dict[str, Any] = {
        "image": img, "adv": img, "adv_restricted": img, "target": np.zeros_like(pred), "pred": pred,
        "pred_adv": np.zeros_like(pred), "pred_restricted": pred, "class_ids": np.array([11]), "eps": 10.0,
        "image_id": "x",
    }  # fmt: skip
    fig = panels_figure(data)
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert len(titles) == 11 and titles[0] == "(a) original image" and titles[-1].startswith("(k)")
    assert "100.0% hidden" in titles[9] and "\n0.0% hidden" in titles[10]
    assert "eps = 10 levels" in fig.texts[0].get_text()


def test_report_command_prints_survival_and_overwrite_clears_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from segattack.cli import main
    from segattack.rundir import clear_experiment_outputs, experiment_outputs

    out = tmp_path / "run"
    data = ListDataset([street_image(i) for i in range(2)])
    run_experiment(
        tiny_fcn(),
        data,
        ExperimentConfig(classes=11, eps=[2], modes=("full",), figure1=0, survive="jpeg:50,blur:1"),
        out,
    )
    capsys.readouterr()
    assert main(["report", str(out)]) == 0
    printed = capsys.readouterr().out.strip().split("\n")
    report = write_report(out)
    assert len(report.survival_sentences) == 2 and printed == [*report.sentences, *report.survival_sentences]
    assert "after jpeg:50" in printed[-2] and "after blur:1" in printed[-1]
    found = {p.name for p in experiment_outputs(out)}
    assert {"survival.csv", "survival.png", "survival.svg", "summary.csv", "results.jsonl"} <= found
    (out / "notes.txt").write_text("mine")
    clear_experiment_outputs(out)  # what --overwrite removes
    assert sorted(p.name for p in out.iterdir()) == [".segattack.lock", "notes.txt"]  # the lock stays, by design


def test_null_ssim_reads_back_as_nan(run_dir: Path, tmp_path: Path) -> None:
    from segattack.rundir import NUMERIC_FIELDS, ROW_FIELDS, append_jsonl, read_rows

    assert "ssim" in NUMERIC_FIELDS and len(set(ROW_FIELDS)) == len(ROW_FIELDS)
    row = {**read_rows(run_dir)[0], "ssim": None, "transform": None}
    append_jsonl(tmp_path / "results.jsonl", [row])
    (back,) = read_rows(tmp_path)
    assert math.isnan(back["ssim"]) and back["transform"] is None
