"""run_experiment: rows, statuses, modes, Figure 1 data, resume, configuration checks, determinism."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

import segattack as sa
from segattack.errors import ModelError
from segattack.experiment import (
    ROW_FIELDS,
    ExperimentError,
    Progress,
    figure1_eps,
    read_config,
    read_rows,
    run_experiment,
)

from .models_for_cli import ListDataset, five_class_module, street_image, tiny_fcn

EPS = [1, 2, 4]


def dataset(absent: tuple[int, ...] = (), bad: tuple[int, ...] = (), n: int = 4) -> ListDataset:
    return ListDataset([street_image(i, person=i not in absent) for i in range(n)], bad=bad)


def run(out: Path, data: Any = None, **kw: Any) -> list[dict[str, Any]]:
    kw = {"class_ids": 11, "eps_levels": EPS, "batch_size": 2, "figure1_ids": 1, **kw}
    run_experiment(tiny_fcn(), data if data is not None else dataset(), out_dir=out, **kw)
    return read_rows(out)


def comparable(rows: list[dict[str, Any]]) -> list[str]:
    """Rows without their timing, as canonical JSON (NaN as null), in file order."""
    return [json.dumps({k: (None if v != v else v) for k, v in r.items() if k != "time_s"}) for r in rows]


@pytest.fixture(scope="module")
def full_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, Any]]]:
    out = tmp_path_factory.mktemp("exp") / "run"
    data = dataset(absent=(2,), bad=(3,), n=5)
    rows = run(out, data, modes=("full", "posthoc", "during"), save_images=True, figure1_ids=1)
    return out, rows


def test_rows_well_formed(full_run: tuple[Path, list[dict[str, Any]]]) -> None:
    out, rows = full_run
    assert len(rows) == 5 * len(EPS) * 3  # images x eps x modes
    keys = {(r["index"], r["eps"], r["mode"]) for r in rows}
    assert len(keys) == len(rows)  # no duplicates
    for r in rows:
        assert tuple(r) == ROW_FIELDS
    status = {r["index"]: r["status"] for r in rows}
    assert status == {0: "ok", 1: "ok", 2: "absent", 3: "unreadable", 4: "ok"}
    for r in rows:
        if r["status"] == "ok":
            assert 0 <= r["fooled"] <= 1 and 0 <= r["preserved"] <= 1 and 0 <= r["target_hit"] <= 1
            assert r["linf"] <= r["eps"] + 1e-6 and r["class_pixels"] > 0 and r["steps"] == sa.paper_steps(r["eps"])
            assert r["psnr"] > 20 and r["time_s"] >= 0
        else:
            assert math.isnan(r["fooled"]) and math.isnan(r["preserved"]) and r["steps"] == 0
    assert all(r["class_pixels"] == 0 for r in rows if r["status"] == "absent")
    assert all(r["class_pixels"] is None for r in rows if r["status"] == "unreadable")
    # the attack works on this model: more budget, more pixels hidden
    mean = {e: np.mean([r["fooled"] for r in rows if r["eps"] == e and r["mode"] == "full" and r["status"] == "ok"])
            for e in EPS}  # fmt: skip
    assert mean[1] <= mean[2] <= mean[4] and mean[4] > 0.3
    config = read_config(out)
    assert config["experiment"]["eps_levels"] == EPS and config["experiment"]["modes"] == ["full", "posthoc", "during"]
    assert set(config["run"]["versions"]) == {"segattack", "torch", "python", "numpy"}


def test_rows_equal_a_direct_attack(full_run: tuple[Path, list[dict[str, Any]]]) -> None:
    """The experiment's numbers are those of the library pieces called by hand (sweep = separate runs)."""
    _, rows = full_run
    model = tiny_fcn()
    x = torch.from_numpy(street_image(1)).permute(2, 0, 1)[None].float() / 255
    pred = model.predict(x)
    target = sa.hide_class_target(pred, class_id=11)
    for e in EPS:
        adv = sa.illm(model, x, target, eps=e / 255)
        m = sa.hiding_metrics(pred, model.predict(adv), class_id=11, target=target)
        row = next(r for r in rows if r["index"] == 1 and r["eps"] == e and r["mode"] == "full")
        assert row["fooled"] == pytest.approx(float(m.fooled[0]), abs=1e-12)
        assert row["preserved"] == pytest.approx(float(m.preserved[0]), abs=1e-12)
        adv_r = sa.restrict(adv, x, mask=pred == 11)
        m_r = sa.hiding_metrics(pred, model.predict(adv_r), class_id=11, target=target)
        row_r = next(r for r in rows if r["index"] == 1 and r["eps"] == e and r["mode"] == "posthoc")
        assert row_r["fooled"] == pytest.approx(float(m_r.fooled[0]), abs=1e-12)


def test_saved_images_exact_and_restricted(full_run: tuple[Path, list[dict[str, Any]]]) -> None:
    out, _ = full_run
    model = tiny_fcn()
    clean = street_image(0)
    x = torch.from_numpy(clean).permute(2, 0, 1)[None].float() / 255
    pred = model.predict(x)
    adv = sa.illm(model, x, sa.hide_class_target(pred, class_id=11), eps=4 / 255)
    full = np.asarray(Image.open(out / "images" / "eps4" / "full" / "img_0.png"))
    assert np.array_equal(full, (adv[0] * 255).round().to(torch.uint8).permute(1, 2, 0).numpy())  # bit for bit
    outside = ~(pred[0] == 11).numpy()
    for mode in ("posthoc", "during"):
        img = np.asarray(Image.open(out / "images" / "eps4" / mode / "img_0.png")).astype(int)
        assert np.abs(img - clean).max() <= 4
        assert np.array_equal(img[outside], clean[outside])  # perturbation only on the class pixels
    assert not (out / "images" / "eps4" / "full" / "img_2.png").exists()  # absent: not attacked


def test_figure1_data(full_run: tuple[Path, list[dict[str, Any]]]) -> None:
    out, _ = full_run
    files = sorted(out.glob("figure1_*.npz"))
    assert [f.name for f in files] == ["figure1_img_0.npz"]  # figure1_ids=1: the first image with the class
    with np.load(files[0]) as z:
        assert float(z["eps"]) == 4 and str(z["image_id"]) == "img_0"
        assert z["image"].dtype == np.uint8 and z["image"].shape == (32, 64, 3)
        for k in ("adv", "adv_restricted", "adv_during"):
            assert z[k].shape == (32, 64, 3) and np.abs(z[k].astype(int) - z["image"]).max() <= 4
        for k in ("target", "pred", "pred_adv", "pred_restricted", "pred_during"):
            assert z[k].shape == (32, 64)
        assert not (z["target"] == 11).any() and (z["pred"] == 11).any()
    assert figure1_eps([1, 2, 4, 8, 12, 20]) == 12 and figure1_eps([5, 10, 15]) == 10


def test_all_hidden_image(tmp_path: Path) -> None:
    red = np.zeros((32, 64, 3), np.uint8)
    red[:] = (204, 38, 38)
    rows = run(tmp_path, ListDataset([red, street_image(0)]), eps_levels=[1])
    assert [r["status"] for r in rows] == ["all_hidden", "all_hidden", "ok", "ok"]
    assert rows[0]["class_pixels"] == 32 * 64


def interrupt_after(n: int) -> Any:
    def progress(p: Progress) -> None:
        if p.done - p.resumed >= n:
            raise KeyboardInterrupt

    return progress


def test_resume_after_interrupt(tmp_path: Path) -> None:
    reference = run(tmp_path / "ref")
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        run(out, progress=interrupt_after(2))
    assert len(read_rows(out)) == 2 * len(EPS) * 2  # finished images are kept
    seen: list[Progress] = []
    rows = run(out, progress=seen.append)
    assert seen[0].resumed == 2 and seen[-1].done == 4  # two images skipped, two done
    assert comparable(rows) == comparable(reference)


def test_resume_after_torn_write(tmp_path: Path) -> None:
    reference = run(tmp_path / "ref")
    out = tmp_path / "run"
    shutil.copytree(tmp_path / "ref", out)
    results = out / "results.jsonl"
    data = results.read_bytes()
    results.write_bytes(data[: len(data) - 40])  # crash in the middle of the last line
    assert len(read_rows(out)) == len(reference) - 1  # the torn line is not a row
    rows = run(out)
    assert comparable(rows) == comparable(reference)
    # a half-written image (some of its rows missing) is redone, not duplicated
    lines = results.read_bytes().splitlines(keepends=True)
    results.write_bytes(b"".join(lines[:-2]))
    assert comparable(run(out)) == comparable(reference)


def test_different_configuration_refused(tmp_path: Path) -> None:
    run(tmp_path)
    with pytest.raises(ExperimentError, match=r"different configuration.*eps_levels.*overwrite"):
        run(tmp_path, eps_levels=[1, 2])
    assert len(read_rows(tmp_path)) == 4 * 3 * 2  # untouched
    rows = run(tmp_path, eps_levels=[1, 2], overwrite=True)
    assert len(rows) == 4 * 2 * 2 and read_config(tmp_path)["experiment"]["eps_levels"] == [1, 2]
    (tmp_path / "config.json").unlink()
    with pytest.raises(ExperimentError, match="no config.json"):
        run(tmp_path, eps_levels=[1, 2])


def test_deterministic(tmp_path: Path) -> None:
    a = run(tmp_path / "a", figure1_ids=2)
    b = run(tmp_path / "b", figure1_ids=2, batch_size=2)
    assert comparable(a) == comparable(b)
    for f in ("figure1_img_0.npz", "figure1_img_1.npz"):
        with np.load(tmp_path / "a" / f) as za, np.load(tmp_path / "b" / f) as zb:
            assert za.files == zb.files and all(np.array_equal(za[k], zb[k]) for k in za.files)


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"eps_levels": [0, 2]}, "eps must be positive"),
        ({"eps_levels": []}, "empty"),
        ({"modes": ("full", "sideways")}, "unknown mode"),
        ({"batch_size": 0}, "batch_size"),
        ({"class_ids": -1}, "non-negative"),
        ({"class_ids": 30}, "only 19 classes"),
    ],
)
def test_invalid_arguments(tmp_path: Path, kw: dict[str, Any], match: str) -> None:
    with pytest.raises(ExperimentError, match=match):
        run(tmp_path, **kw)


def test_model_with_wrong_class_count(tmp_path: Path) -> None:
    model = sa.PixelModel(five_class_module(), num_classes=19)
    with pytest.raises(ModelError, match="returned 5 classes but num_classes=19"):
        run_experiment(model, dataset(), class_ids=11, eps_levels=[1], out_dir=tmp_path)


def test_images_of_different_sizes(tmp_path: Path) -> None:
    """A batch mixing image sizes is attacked in groups of equal size, with the results of one-by-one runs."""
    images = [street_image(0), street_image(1, size=(24, 40)), street_image(2), street_image(3, size=(24, 40))]
    rows = run(tmp_path / "mixed", ListDataset(images), batch_size=4, eps_levels=[2])
    single = run(tmp_path / "single", ListDataset(images), batch_size=1, eps_levels=[2])
    assert [r["status"] for r in rows] == ["ok"] * 8
    assert comparable(rows) == comparable(single)
