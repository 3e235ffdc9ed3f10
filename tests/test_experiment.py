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
import segattack.experiment.figure1 as figure1_mod
from segattack.errors import ModelError
from segattack.experiment import (
    ExperimentConfig,
    ExperimentError,
    Progress,
    figure1_eps,
    read_config,
    read_rows,
    row_fields,
    run_experiment,
)
from segattack.experiment.figure1 import pick_figure1

from .models_for_cli import ListDataset, experiment, five_class_module, street_image, tiny_fcn

EPS = [1, 2, 4]


def dataset(absent: tuple[int, ...] = (), bad: tuple[int, ...] = (), n: int = 4) -> ListDataset:
    return ListDataset([street_image(i, person=i not in absent) for i in range(n)], bad=bad)


def run(out: Path, data: Any = None, **kw: Any) -> list[dict[str, Any]]:
    kw = {"class_ids": 11, "eps_levels": EPS, "batch_size": 2, "figure1_ids": 1, **kw}
    experiment(tiny_fcn(), data if data is not None else dataset(), out, **kw)
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
        assert tuple(r) == row_fields()
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


def test_rundir_schema_names_every_row_field() -> None:
    """``rundir.ROW_FIELDS`` is the whole schema of a row, each field once, the instance counts as
    ``segattack.instances`` names them; a data set with ground-truth instances adds those after it."""
    from segattack.instances import instance_fields
    from segattack.rundir import ROW_FIELDS

    assert ROW_FIELDS[ROW_FIELDS.index("transform") :] == ("transform", "ssim", *instance_fields())
    assert len(set(ROW_FIELDS)) == len(ROW_FIELDS)
    assert set(row_fields(gt_instances=True)) == {*ROW_FIELDS, *instance_fields("gt_instances")}


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


def hidden_share(z: Any, key: str) -> float:
    """The share of class pixels of ``z["pred"]`` that ``z[key]`` no longer predicts as the class."""
    hidden = np.isin(z["pred"], z["class_ids"])
    return float((hidden & ~np.isin(z[key], z["class_ids"])).sum()) / float(hidden.sum())


def test_figure1_data(full_run: tuple[Path, list[dict[str, Any]]]) -> None:
    out, rows = full_run
    files = sorted(out.glob("figure1_*.npz"))
    at4 = sorted((r["fooled"], r["index"], r["image_id"]) for r in rows
                 if r["eps"] == 4 and r["mode"] == "full" and r["status"] == "ok")  # fmt: skip
    median = at4[(len(at4) - 1) // 2]
    assert [f.name for f in files] == [f"figure1_{median[2]}.npz"]  # figure1_ids=1: the median image
    with np.load(files[0]) as z:
        assert float(z["eps"]) == 4 and str(z["image_id"]) == median[2]
        assert z["image"].dtype == np.uint8 and z["image"].shape == (32, 64, 3)
        for k in ("adv", "adv_restricted", "adv_during"):
            assert z[k].shape == (32, 64, 3) and np.abs(z[k].astype(int) - z["image"]).max() <= 4
        for k in ("target", "pred", "pred_adv", "pred_restricted", "pred_during"):
            assert z[k].shape == (32, 64)
        assert not (z["target"] == 11).any() and (z["pred"] == 11).any()
        assert str(z["reason"]) == f"median hidden share: {100 * median[0]:.1f}% (image 2 of 3 with >= 21 person " \
            "pixels, lowest first)"
        assert z["label_names"].tolist() == list(sa.data.labels.CLASS_NAMES) and str(z["attack"]) == "illm"
        # attacked again at the end of the run: the same numbers as the rows, the same image as the saved PNG
        for key, mode in (("pred_adv", "full"), ("pred_restricted", "posthoc"), ("pred_during", "during")):
            row = next(r for r in rows if r["index"] == median[1] and r["eps"] == 4 and r["mode"] == mode)
            assert hidden_share(z, key) == pytest.approx(row["fooled"], abs=1e-12)
        png = np.asarray(Image.open(out / "images" / "eps4" / "full" / f"{median[2]}.png"))
        assert np.array_equal(z["adv"], png)
    assert figure1_eps([1, 2, 4, 8, 12, 20]) == 12 and figure1_eps([5, 10, 15]) == 10


def pick_rows(fooled: list[float], pixels: list[int]) -> list[dict[str, Any]]:
    return [{"index": i, "image_id": f"img_{i}", "attack": "illm", "eps": 10, "mode": "full", "status": "ok",
             "fooled": f, "class_pixels": p} for i, (f, p) in enumerate(zip(fooled, pixels, strict=True))]  # fmt: skip


def picks(spec: Any, rows: list[dict[str, Any]], n: int, pixels: int = 100_000) -> list[Any]:
    ids = [f"img_{i}" for i in range(n)]
    return pick_figure1(spec, rows, ids, attack="illm", eps=10, mode="full", class_names=["person"],
                          pixels=lambda i: pixels)  # fmt: skip


def test_figure1_picks_rules(caplog: pytest.LogCaptureFixture) -> None:
    fooled = [0.9, 0.1, 0.5, 0.7, 0.3, 0.95, 0.2]
    rows = pick_rows(fooled, [600, 600, 600, 600, 600, 600, 40])  # img_6: too few person pixels, left out
    # ranked among 6: 0.1 (1), 0.3 (4), 0.5 (2), 0.7 (3), 0.9 (0), 0.95 (5); lower median = rank 2 = img_2
    got = picks(1, rows, 7)
    assert [p.image_id for p in got] == ["img_2"]
    assert got[0].reason == "median hidden share: 50.0% (image 3 of 6 with >= 500 person pixels, lowest first)"
    got = picks(2, rows, 7)
    assert [p.image_id for p in got] == ["img_2", "img_1"]
    assert got[1].reason == "hardest: 10.0% hidden (lowest of 6 images with >= 500 person pixels)"
    got = picks(4, rows, 7)  # quantiles 0, 1/3 (the median), 2/3, 1 -> ranks 0, 2, 3, 5
    assert [p.image_id for p in got] == ["img_2", "img_1", "img_3", "img_5"]
    assert got[2].reason.startswith("quantile 0.60 of hidden share: 70.0% (image 4 of 6")
    assert got[3].reason.startswith("easiest: 95.0% hidden")
    assert {p.image_id for p in picks(10, rows, 7)} == {f"img_{i}" for i in range(6)}  # N > images: all
    assert picks(0, rows, 7) == []
    # small images: 1% of 2048 pixels = 21 is the smaller bar, so img_6 (40 pixels) takes part
    got = picks(1, rows, 7, pixels=2048)
    assert got[0].image_id == "img_2" and "of 7 with >= 21 person pixels" in got[0].reason
    # images of several sizes: the bar is stated as the rule
    sizes = {6: 2048}
    got = pick_figure1(1, rows, [f"img_{i}" for i in range(7)], attack="illm", eps=10, mode="full",
                         class_names=["person", "rider"], pixels=lambda i: sizes.get(i, 10**6))  # fmt: skip
    assert got[0].reason.endswith("of 7 with >= min(500, 1% of the image) person/rider pixels, lowest first)")
    # none with enough pixels: all images, and the reason says so
    got = picks(2, pick_rows([0.4, 0.6], [10, 10]), 2)
    assert [p.image_id for p in got] == ["img_0", "img_1"]
    assert got[0].reason == "median and hardest hidden share: 40.0% (image 1 of 2 with person pixels, lowest first; " \
        "none has >= 500)"
    assert got[1].reason == "easiest: 60.0% hidden (highest of 2 images with person pixels; none has >= 500)"
    # by hand: in the order given; ids not attacked or not in the run are left out with a warning
    rows.append({**rows[0], "index": 7, "image_id": "img_7", "status": "absent", "fooled": math.nan})
    got = picks(("img_5", "img_7", "nope", "img_0"), rows, 8)
    assert [(p.image_id, p.reason) for p in got] == [("img_5", "chosen by hand"), ("img_0", "chosen by hand")]
    assert "img_7 was not attacked" in caplog.text and "nope is not among" in caplog.text


class CountAttacks:
    """Wraps ``attack_batch`` in the experiment module: how many images each call attacked, and at which eps."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        import segattack.experiment.figure1 as fig
        import segattack.experiment.loop as loop

        self.calls: list[tuple[int, tuple[float, ...]]] = []
        real = loop.attack_batch

        def counting(model: Any, images: torch.Tensor, **kw: Any) -> Any:
            self.calls.append((int(images.shape[0]), tuple(round(e * 255, 6) for e in kw["eps"])))
            return real(model, images, **kw)

        monkeypatch.setattr(loop, "attack_batch", counting)
        monkeypatch.setattr(fig, "attack_batch", counting)

    def images(self) -> int:
        return sum(n for n, _ in self.calls)


def figure1_files(out: Path) -> dict[str, dict[str, Any]]:
    found = {}
    for f in sorted(out.glob("figure1_*.npz")):
        with np.load(f) as z:
            found[str(z["image_id"])] = {k: z[k] for k in z.files}
    return found


def test_representative_figure1_images_on_a_real_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = ListDataset([street_image(i) for i in range(6)])
    out = tmp_path / "run"
    counter = CountAttacks(monkeypatch)
    rows = run(out, data, figure1_ids=3)
    at4 = sorted((r["fooled"], r["index"]) for r in rows if r["eps"] == 4 and r["mode"] == "full")
    assert len(at4) == 6 and len({f for f, _ in at4}) > 2
    want = [at4[2][1], at4[0][1], at4[5][1]]  # median (lower), hardest, easiest
    files = figure1_files(out)
    assert set(files) == {f"img_{i}" for i in want}
    for i, kind in zip(want, ("median hidden share", "hardest", "easiest"), strict=True):
        z = files[f"img_{i}"]
        assert str(z["reason"]).startswith(kind)
        for key, mode in (("pred_adv", "full"), ("pred_restricted", "posthoc")):
            row = next(r for r in rows if r["index"] == i and r["eps"] == 4 and r["mode"] == mode)
            assert hidden_share(z, key) == pytest.approx(row["fooled"], abs=1e-12)  # the re-attack is the row's
    # 6 images in batches of 2 at every eps; the chosen ones are those saved during the run, not attacked again
    assert counter.calls == [(2, (1.0, 2.0, 4.0))] * 3
    assert not (out / ".figure1_cache").exists()  # the candidates go once Figure 1 is written
    # without the candidates (a size budget of 0) the 3 chosen ones are attacked again at eps 4 only: the same files
    monkeypatch.setattr(figure1_mod, "FIGURE1_CACHE_MB", 0)
    counter.calls.clear()
    run(tmp_path / "again", data, figure1_ids=3)
    assert counter.calls == [(2, (1.0, 2.0, 4.0))] * 3 + [(2, (4.0,)), (1, (4.0,))]
    again = figure1_files(tmp_path / "again")
    assert again.keys() == files.keys()
    assert all(again[i].keys() == files[i].keys() for i in files)
    assert all(np.array_equal(again[i][k], files[i][k]) for i in files for k in files[i])
    counter.calls.clear()
    for p in out.glob("figure1_*.npz"):  # as the report leaves them
        p.with_suffix(".png").write_bytes(b"png")

    # resumed with every image done: nothing is attacked, nothing rewritten
    counter.calls.clear()
    stamps = {p.name: p.stat().st_mtime_ns for p in out.glob("figure1_*.npz")}
    run(out, data, figure1_ids=3)
    assert counter.calls == [] and {p.name: p.stat().st_mtime_ns for p in out.glob("figure1_*.npz")} == stamps

    # fewer picks: the stale files go (npz and png), the median's stays as it was
    median = f"img_{want[0]}"
    run(out, data, figure1_ids=1)
    assert counter.calls == [] and set(figure1_files(out)) == {median}
    assert sorted(p.name for p in out.glob("figure1_*")) == [f"figure1_{median}.npz", f"figure1_{median}.png"]
    # chosen by hand: only the reason of an image already drawn changes (rewritten, not attacked again)
    other = next(f"img_{i}" for i in range(6) if f"img_{i}" != median)
    before = figure1_files(out)[median]
    run(out, data, figure1_ids=[median, other])
    files = figure1_files(out)
    assert counter.calls == [(1, (4.0,))] and set(files) == {median, other}  # only `other` is attacked
    assert {str(z["reason"]) for z in files.values()} == {"chosen by hand"}
    assert all(np.array_equal(files[median][k], before[k]) for k in before if k != "reason")
    # none
    run(out, data, figure1_ids=0)
    assert not list(out.glob("figure1_*"))


def test_figure1_after_an_interrupted_run_and_a_corrupt_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    reference = tmp_path / "ref"
    run(reference, figure1_ids=2)
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        run(out, figure1_ids=2, progress=interrupt_after(2))
    assert not list(out.glob("figure1_*"))  # chosen once the results are known
    run(out, figure1_ids=2)
    ref, got = figure1_files(reference), figure1_files(out)
    assert set(got) == set(ref) and len(got) == 2
    for iid in ref:
        assert ref[iid].keys() == got[iid].keys()
        assert all(np.array_equal(ref[iid][k], got[iid][k]) for k in ref[iid])
    # a corrupt file: removed with a warning and drawn again, no row redone
    counter = CountAttacks(monkeypatch)
    path = sorted(out.glob("figure1_*.npz"))[0]
    path.write_bytes(b"PK\x03\x04 not a zip file")
    rows = read_rows(out)
    run(out, figure1_ids=2)
    assert counter.calls == [(1, (4.0,))] and comparable(read_rows(out)) == comparable(rows)
    with np.load(path) as z:
        iid = str(z["image_id"])
        assert all(np.array_equal(z[k], ref[iid][k]) for k in ref[iid])


def test_label_names(tmp_path: Path) -> None:
    run(tmp_path / "a", eps_levels=[2])
    exp = read_config(tmp_path / "a")["experiment"]
    assert exp["label_names"] == list(sa.data.labels.CLASS_NAMES) and exp["class_names"] == ["person"]
    names = [f"c{k}" for k in range(19)]
    names[11] = "pedestrian"
    run(tmp_path / "b", eps_levels=[2], label_names=names)
    exp = read_config(tmp_path / "b")["experiment"]
    assert exp["label_names"] == names and exp["class_names"] == ["pedestrian"]
    (npz,) = (tmp_path / "b").glob("figure1_*.npz")
    with np.load(npz) as z:
        assert z["label_names"].tolist() == names
    with pytest.raises(ExperimentError, match=r"5 class names given but the model has 19 classes"):
        run(tmp_path / "c", eps_levels=[2], label_names=names[:5])
    with pytest.raises(ExperimentError, match="one name per output class"):
        run(tmp_path / "c", eps_levels=[2], label_names="person")
    # a directory written before runs recorded label_names resumes with the default ones
    config = json.loads((tmp_path / "a" / "config.json").read_text())
    del config["experiment"]["label_names"]
    (tmp_path / "a" / "config.json").write_text(json.dumps(config))
    run(tmp_path / "a", eps_levels=[2])
    with pytest.raises(ExperimentError, match="label_names"):
        run(tmp_path / "b", eps_levels=[2])  # the defaults are not the names of that run


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
    # running means at eps 4 (the eps nearest 10), first attack, mode full, resumed images included
    at4 = [r for r in rows if r["eps"] == 4 and r["mode"] == "full"]
    assert seen[0].eps == 4 and seen[0].measured == 2 and seen[0].rows == ()
    assert seen[0].means["fooled"] == pytest.approx(np.mean([r["fooled"] for r in at4[:2]]), abs=1e-12)
    last = seen[-1]
    assert last.measured == 4 and last.image_id == "img_3"
    assert last.means["fooled"] == pytest.approx(np.mean([r["fooled"] for r in at4]), abs=1e-12)
    assert last.means["preserved"] == pytest.approx(np.mean([r["preserved"] for r in at4]), abs=1e-12)
    assert [r["image_id"] for r in last.rows] == ["img_3"] * len(EPS) * 2


def test_progress_means_skip_images_without_the_class(tmp_path: Path) -> None:
    seen: list[Progress] = []
    rows = run(tmp_path, dataset(absent=(1,)), progress=seen.append, eps_levels=[2], modes=("posthoc",))
    ok = [r for r in rows if r["status"] == "ok"]
    assert seen[-1].measured == 3 and seen[-1].eps == 2 and seen[2].status == "absent"
    assert seen[-1].means["fooled"] == pytest.approx(np.mean([r["fooled"] for r in ok]), abs=1e-12)


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
    b = run(tmp_path / "b", figure1_ids=2, batch_size=1)
    assert comparable(a) == comparable(b)
    fa, fb = figure1_files(tmp_path / "a"), figure1_files(tmp_path / "b")
    assert len(fa) == 2 and fa.keys() == fb.keys()
    for iid, za in fa.items():
        assert za.keys() == fb[iid].keys() and all(np.array_equal(za[k], fb[iid][k]) for k in za)


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"eps_levels": [0, 2]}, "eps must be positive"),
        ({"eps_levels": []}, "empty"),
        ({"modes": ("full", "sideways")}, "unknown mode"),
        ({"batch_size": 0}, "batch_size"),
        ({"class_ids": -1}, "non-negative"),
        ({"class_ids": 30}, "only 19 classes"),
        ({"figure1_ids": -1}, "figure1 must be a count"),
        ({"eps_levels": [2, 2]}, "lists a budget twice"),
        ({"eps_levels": [1e-9]}, "at least 0.01 levels"),
    ],
)
def test_invalid_arguments(tmp_path: Path, kw: dict[str, Any], match: str) -> None:
    with pytest.raises(ExperimentError, match=match):
        run(tmp_path, **kw)


def test_model_with_wrong_class_count(tmp_path: Path) -> None:
    model = sa.PixelModel(five_class_module(), num_classes=19)
    with pytest.raises(ModelError, match="returned 5 classes but num_classes=19"):
        run_experiment(model, dataset(), ExperimentConfig(classes=11, eps=[1]), tmp_path)


def test_images_of_different_sizes(tmp_path: Path) -> None:
    """A batch mixing image sizes is attacked in groups of equal size, with the results of one-by-one runs."""
    images = [street_image(0), street_image(1, size=(24, 40)), street_image(2), street_image(3, size=(24, 40))]
    rows = run(tmp_path / "mixed", ListDataset(images), batch_size=4, eps_levels=[2])
    single = run(tmp_path / "single", ListDataset(images), batch_size=1, eps_levels=[2])
    assert [r["status"] for r in rows] == ["ok"] * 8
    assert comparable(rows) == comparable(single)
