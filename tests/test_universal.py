"""Universal adversarial perturbations (Metzen et al. 2017): properties on tiny models, files, the job
(``run_universal``), the command."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import segattack as sa
from segattack import rundir
from segattack.cli import main
from segattack.errors import DataError, InputError, ModelTypeError, RunDirError
from segattack.specs import load_data, parse_data_spec
from segattack.universal import (
    UniversalConfig,
    UniversalError,
    UniversalResult,
    UniversalRun,
    apply_universal,
    load_universal,
    run_universal,
    save_universal,
    universal,
)

from .conftest import ColourNet, colour_scene, random_images
from .models_for_cli import ListDataset, one_line_error, street_image, tiny_fcn, write_street_pngs

PERSON = 2  # the colour model's "person" (red)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def scenes() -> tuple[torch.Tensor, torch.Tensor]:
    """Fit and held-out images of the colour model (disjoint seeds)."""
    return colour_scene(6, seed=0)[0], colour_scene(6, seed=1)[0]


def colour() -> sa.PixelModel:
    return sa.PixelModel(ColourNet(), num_classes=3)


def held_out_fooled(model: sa.PixelModel, result: UniversalResult, images: torch.Tensor) -> float:
    m = sa.hiding_metrics(model.predict(images), model.predict(result.apply(images)), class_id=PERSON)
    return sa.summarize(m.fooled).mean


def test_budget_whole_levels_and_range(scenes: tuple[torch.Tensor, torch.Tensor]) -> None:
    fit, held = scenes
    res = universal(colour(), fit, eps=6 / 255, class_id=PERSON, steps=8)
    assert res.perturbation.shape == (3, 24, 32) and res.perturbation.dtype == torch.float32
    assert res.size == (24, 32) and len(res.loss) == 8 and res.steps == 8 and res.target == "hide"
    lv = res.levels
    assert torch.equal(lv, lv.round()) and float(lv.abs().max()) == 6  # whole levels, budget reached, not exceeded
    adv = apply_universal(held, res.perturbation)
    assert adv.dtype == held.dtype and adv.shape == held.shape
    assert float(adv.min()) >= 0 and float(adv.max()) <= 1
    assert torch.equal(adv * 255, (adv * 255).round())  # 8-bit images stay 8-bit
    assert float((adv - held).abs().max()) <= 6 / 255 + 1e-6
    assert torch.equal(res.apply(held), adv)


def test_inputs_and_model_untouched(scenes: tuple[torch.Tensor, torch.Tensor]) -> None:
    fit, _ = scenes
    model = colour()
    model.train()
    model.net.blur.weight.requires_grad_(True)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    before = fit.clone()
    universal(model, fit, eps=4 / 255, class_id=PERSON, steps=2)
    assert torch.equal(fit, before)
    assert model.training and model.net.training and model.net.blur.weight.requires_grad
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in state.items())
    assert model.net.blur.weight.grad is None


def test_loss_falls_and_held_out_fooled_grows(scenes: tuple[torch.Tensor, torch.Tensor]) -> None:
    fit, held = scenes
    model = colour()
    small = universal(model, fit, eps=4 / 255, class_id=PERSON, steps=20)
    large = universal(model, fit, eps=16 / 255, class_id=PERSON, steps=20)
    short = universal(model, fit, eps=16 / 255, class_id=PERSON, steps=4)
    assert large.loss[-1] < large.loss[0] and all(b <= a for a, b in zip(large.loss, large.loss[1:], strict=False))
    assert small.loss[0] == large.loss[0]  # same start, xi_0 = 0
    f_small, f_large, f_short = (held_out_fooled(model, r, held) for r in (small, large, short))
    assert f_large > f_small and f_large > f_short and f_large > 0.9  # on images it never saw


def test_deterministic_and_batch_size_independent(tiny_model: sa.PixelModel) -> None:
    images = random_images(5, 12, 16)
    a = universal(tiny_model, images, eps=3 / 255, class_id=2, steps=4, batch_size=2)
    b = universal(tiny_model, images, eps=3 / 255, class_id=2, steps=4, batch_size=2)
    c = universal(tiny_model, images, eps=3 / 255, class_id=2, steps=4, batch_size=5)
    assert torch.equal(a.perturbation, b.perturbation) and a.loss == b.loss
    assert torch.equal(a.perturbation, c.perturbation)
    assert a.loss == pytest.approx(c.loss, rel=1e-12)


def test_static_targets(scenes: tuple[torch.Tensor, torch.Tensor]) -> None:
    fit, held = scenes
    model = colour()
    res = universal(model, fit, eps=12 / 255, target="static", class_id=1, steps=12)
    assert res.target == "static" and res.class_ids == (1,) and res.loss[-1] < res.loss[0]
    hit = lambda r: float((model.predict(r.apply(held)) == 1).double().mean())  # noqa: E731
    assert hit(res) > float((model.predict(held) == 1).double().mean()) + 0.05
    target_map = torch.ones(24, 32, dtype=torch.int64)
    as_map = universal(model, fit, eps=12 / 255, target=target_map, steps=12)
    assert as_map.target == "map" and torch.equal(as_map.perturbation, res.perturbation)
    ignored = target_map.clone()
    ignored[:, :16] = 255  # the left half leaves the loss
    half = universal(model, fit, eps=12 / 255, target=ignored, steps=12)
    assert not torch.equal(half.perturbation, res.perturbation)


def test_mask_and_skipped_images(scenes: tuple[torch.Tensor, torch.Tensor]) -> None:
    fit, _ = scenes
    mask = torch.zeros(24, 32, dtype=torch.bool)
    mask[4:20, 8:24] = True
    res = universal(colour(), fit, eps=8 / 255, class_id=PERSON, steps=4, mask=mask)
    assert bool((res.perturbation[:, ~mask] == 0).all()) and bool((res.perturbation[:, mask] != 0).any())
    red = torch.tensor(ColourNet.COLOURS[2]).view(1, 3, 1, 1).expand(1, 3, 24, 32)
    with_red = torch.cat([fit[:2], (red * 255).round() / 255])
    res = universal(colour(), with_red, eps=8 / 255, class_id=PERSON, steps=1)
    assert res.image_ids == ("image_0", "image_1") and res.skipped == (("image_2", "all_hidden"),)


def test_data_set_input_and_size_check() -> None:
    data = sa.data.SyntheticStreets(split="train", size=(16, 32), length=3)
    res = universal(colour(), data, eps=2 / 255, class_id=PERSON, steps=1, limit=2)
    assert res.image_ids == ("train_000000", "train_000001")
    mixed = ListDataset([street_image(0, (32, 64)), street_image(1, (24, 48))])
    with pytest.raises(ValueError, match=r"img_1.*24x48.*--size 32x64"):
        universal(colour(), mixed, eps=2 / 255, steps=1)


def test_argument_checks(scenes: tuple[torch.Tensor, torch.Tensor]) -> None:
    fit, held = scenes
    model = colour()
    with pytest.raises(ValueError, match="eps must be a positive"):
        universal(model, fit, eps=0, class_id=PERSON)
    with pytest.raises(ValueError, match="10/255"):
        universal(model, fit, eps=10, class_id=PERSON)
    with pytest.raises(ValueError, match="predicts 3 classes"):
        universal(model, fit, eps=2 / 255, steps=1)  # the default person id 11 does not exist here
    with pytest.raises(ValueError, match="class_id=<train id>"):
        universal(model, fit, eps=2 / 255, target="static")
    with pytest.raises(ValueError, match="'hide', 'static'"):
        universal(model, fit, eps=2 / 255, target="nearest")
    with pytest.raises(ValueError, match="omega"):
        universal(model, fit, eps=2 / 255, class_id=PERSON, omega=2.0)
    with pytest.raises(ValueError, match="steps"):
        universal(model, fit, eps=2 / 255, class_id=PERSON, steps=-1)
    with pytest.raises(ValueError, match="mask"):
        universal(model, fit, eps=2 / 255, class_id=PERSON, mask=torch.ones(3, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        universal(model, fit * 255, eps=2 / 255, class_id=PERSON)
    with pytest.raises(ValueError, match="fitted on"):
        apply_universal(held[:, :, :10], torch.zeros(3, 24, 32))
    with pytest.raises(ValueError, match="levels / 255"):
        apply_universal(held, torch.full((3, 24, 32), 4.0))


def test_npz_round_trip(scenes: tuple[torch.Tensor, torch.Tensor], tmp_path: Path) -> None:
    fit, _ = scenes
    res = universal(colour(), fit, eps=5 / 255, class_id=PERSON, steps=6)
    npz, png = save_universal(res, tmp_path / "u" / "universal.npz")
    with np.load(npz, allow_pickle=False) as z:
        assert z["levels"].dtype == np.int16 and int(np.abs(z["levels"]).max()) == 5
    back = load_universal(npz)
    assert torch.equal(back.perturbation, res.perturbation)
    for field in ("eps", "step_size", "steps", "omega", "target", "class_ids", "loss", "image_ids", "skipped"):
        assert getattr(back, field) == getattr(res, field), field
    picture = np.asarray(Image.open(png))
    assert picture.shape == (24, 32, 3) and picture.dtype == np.uint8
    lv = res.levels.permute(1, 2, 0).numpy()
    assert np.array_equal(picture, np.floor((lv + 5) * 255 / 10 + 0.5))  # -eps -> 0, 0 -> 128, +eps -> 255
    assert picture.min() == 0 and picture.max() == 255
    # fractional steps are kept exactly too (as float32), and a label-map target travels along
    frac = universal(colour(), fit, eps=5 / 255, target=torch.ones(24, 32, dtype=torch.int64), step_size=0.5 / 255,
                     steps=3)  # fmt: skip
    back = load_universal(save_universal(frac, tmp_path / "frac.npz")[0])
    assert torch.equal(back.perturbation, frac.perturbation) and back.target_map is not None
    assert torch.equal(back.target_map, frac.target_map)  # type: ignore[arg-type]
    (tmp_path / "bad.npz").write_bytes(b"nope")
    with pytest.raises(InputError, match="not a saved universal"):
        load_universal(tmp_path / "bad.npz")
    with pytest.raises(FileNotFoundError, match="no perturbation file"):
        load_universal(tmp_path / "none.npz")
    with pytest.raises(InputError, match="saved as .npz"):
        save_universal(res, tmp_path / "u.png")


def test_refusals_are_segattack_errors(scenes: tuple[torch.Tensor, torch.Tensor]) -> None:
    """The fit's refusals are ``InputError``s (ValueErrors), its type refusals ``InputTypeError``s (TypeErrors)."""
    fit, _ = scenes
    with pytest.raises(InputError, match="omega"):
        universal(colour(), fit, eps=2 / 255, class_id=PERSON, omega=2.0)
    with pytest.raises(sa.errors.InputTypeError, match="progress must be a callable"):
        universal(colour(), fit, eps=2 / 255, class_id=PERSON, progress=5)  # type: ignore[arg-type]
    with pytest.raises(sa.errors.InputTypeError, match="class ids must be integers"):
        universal(colour(), fit, eps=2 / 255, class_id="person")  # type: ignore[arg-type]


def test_the_old_names_under_attacks_still_work() -> None:
    import segattack.attacks as attacks

    for name in ("universal", "UniversalResult", "apply_universal", "save_universal", "load_universal",
                 "perturbation_image"):  # fmt: skip
        assert getattr(attacks, name) is getattr(sa.universal, name), name
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        attacks.nope  # noqa: B018


def test_attacks_import_no_job_module() -> None:
    """Attacks are pure functions: loading ``segattack.attacks`` loads neither the universal job, the data sets nor
    the run directory (the old names are looked up in ``segattack.universal`` only when used)."""
    code = ("import sys, segattack.attacks; print(sorted(m for m in sys.modules if m.split('.')[1:2] in "
            "(['universal'], ['data'], ['rundir'])))")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_synthetic_train_spec() -> None:
    spec = parse_data_spec("synthetic-train:4")
    assert (spec.scheme, spec.split, spec.count, str(spec)) == ("synthetic", "train", 4, "synthetic-train:4")
    assert str(parse_data_spec("synthetic:3")) == "synthetic:3"
    data = load_data("synthetic-train:2", size=(16, 32))
    assert data.ids == ["train_000000", "train_000001"] and data[0][0].shape == (3, 16, 32)
    with pytest.raises(ValueError, match="synthetic-train:N needs a positive"):
        parse_data_spec("synthetic-train:zero")


# ------------------------------------------------------------------------------------------------ the job


def streets(n: int, first: int = 0, size: tuple[int, int] = (32, 64), bad: tuple[int, ...] = ()) -> ListDataset:
    return ListDataset([street_image(first + i, size) for i in range(n)], bad=bad)


def test_run_universal_fits_measures_and_writes(tmp_path: Path) -> None:
    model, fit, held = tiny_fcn(), streets(3), streets(3, first=5, bad=(1,))
    config = UniversalConfig(eps=8, classes=(11,), steps=2, examples=1)
    out = tmp_path / "u"
    done = run_universal(model, fit, held, config, out)
    assert isinstance(done, UniversalRun) and Path(done) == out
    assert done.written == ("universal.npz", "universal.png", "results.jsonl", "summary.json", "examples.png")
    assert {p.name for p in out.iterdir()} == {*done.written, ".segattack.lock", rundir.MANIFEST_FILE}
    assert rundir.read_manifest(out) == {"format": 1, "kind": "universal", "written": list(done.written)}
    # the job fits what the function fits, and saves it losslessly
    alone = universal(model, fit, eps=8 / 255, class_id=11, steps=2)
    assert torch.equal(done.result.perturbation, alone.perturbation) and done.result.loss == alone.loss
    assert torch.equal(load_universal(out / "universal.npz").perturbation, alone.perturbation)
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert rows == [dict(r) for r in done.rows]
    assert [(r["image_id"], r["status"]) for r in rows] == [("img_0", "ok"), ("img_1", "unreadable"), ("img_2", "ok")]
    assert done.counts == {"ok": 2, "absent": 0, "unreadable": 1}
    x = torch.stack([held[i][0] for i in (0, 2)]).float() / 255
    m = sa.hiding_metrics(model.predict(x), model.predict(alone.apply(x)), class_id=11)
    assert [rows[0]["fooled"], rows[2]["fooled"]] == m.fooled.tolist()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["eps"] == 8 and summary["hide"] == [11] and summary["static"] is None and summary["unreadable"] == 1
    assert summary["fit"]["images"] == 3 and summary["data"] == {} and summary["device"] == "cpu"
    assert summary["held_out"]["fooled"]["mean"] == pytest.approx(float(np.mean(m.fooled.tolist())))


def test_run_universal_limits_and_static_target(tmp_path: Path) -> None:
    config = UniversalConfig(eps=6, classes=(11,), static=13, steps=1, examples=0, fit_limit=2, eval_limit=1)
    done = run_universal(tiny_fcn(), streets(4), streets(3, first=5), config, tmp_path / "u",
                         describe={"data": {"data": "mine"}})  # fmt: skip
    assert done.result.image_ids == ("img_0", "img_1") and done.result.target == "static"
    assert [r["image_id"] for r in done.rows] == ["img_0"] and "examples.png" not in done.written
    summary = json.loads((tmp_path / "u" / "summary.json").read_text())
    assert summary["static"] == 13 and summary["target"] == "static" and summary["data"] == {"data": "mine"}


def test_run_universal_refusals(tmp_path: Path) -> None:
    model, fit, held = tiny_fcn(), streets(2), streets(2, first=5)
    config = UniversalConfig(eps=4, steps=1)
    with pytest.raises(UniversalError, match="config must be a UniversalConfig"):
        run_universal(model, fit, held, {"eps": 4}, tmp_path / "a")  # type: ignore[arg-type]
    with pytest.raises(UniversalError, match="out_dir is empty"):
        run_universal(model, fit, held, config, " ")
    with pytest.raises(ModelTypeError, match="takes a PixelModel"):
        run_universal(lambda x: x, fit, held, config, tmp_path / "a")
    model.num_classes = 19  # as the command line sets it: the names must then name 19 classes
    with pytest.raises(UniversalError, match="2 class names given but the model has 19") as err:
        run_universal(model, fit, held, UniversalConfig(eps=4, steps=1, label_names=("a", "b")), tmp_path / "a")
    assert err.value.field == "label_names"
    assert not (tmp_path / "a").exists()  # refused before the directory was made
    theirs = tmp_path / "run"
    theirs.mkdir()
    rundir.record_outputs(theirs, ["results.jsonl"], kind="run")
    with pytest.raises(RunDirError, match="segattack run"):
        run_universal(model, fit, held, config, theirs)
    assert not (theirs / "universal.npz").exists()
    with pytest.raises(DataError, match=r"held-out images \(--data\) 24x48.*--size 32x64"):
        run_universal(model, fit, streets(2, size=(24, 48)), config, tmp_path / "b")
    mixed = ListDataset([street_image(0), street_image(1, (24, 48))])
    with pytest.raises(DataError, match="held-out image 'img_1' is 24x48"):
        run_universal(model, fit, mixed, config, tmp_path / "b")
    assert not (tmp_path / "b" / "universal.npz").exists()


# ------------------------------------------------------------------------------------------------ the command


def universal_args(out: Path, *extra: str) -> list[str]:
    return ["universal", "--fit-data", "synthetic-train:4", "--data", "synthetic:3", "--size", "32x64", "--steps", "3",
            "--out", str(out), *extra]  # fmt: skip


def test_cli_writes_everything(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "uap"
    assert main(universal_args(out)) == 0  # the shipped default model
    captured = capsys.readouterr()
    assert {p.name for p in out.iterdir()} == {"universal.npz", "universal.png", "examples.png", "results.jsonl",
                                               "summary.json", ".segattack.lock", rundir.MANIFEST_FILE}  # fmt: skip
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert [r["image_id"] for r in rows] == ["val_000000", "val_000001", "val_000002"]
    assert set(rows[0]) == {"image_id", "fooled", "preserved", "target_hit", "class_pixels", "status"}
    summary = json.loads((out / "summary.json").read_text())
    assert summary["eps"] == 10 and summary["steps"] == 3 and summary["fit"]["images"] == 4
    assert summary["fit"]["data"] == "synthetic-train:4" and summary["data"]["data"] == "synthetic:3"
    ok = [r["fooled"] for r in rows if r["status"] == "ok"]
    assert summary["held_out"]["fooled"]["mean"] == pytest.approx(np.mean(ok))
    res = load_universal(out / "universal.npz")
    assert res.size == (32, 64) and res.image_ids == ("train_000000", "train_000001", "train_000002", "train_000003")
    assert float(res.levels.abs().max()) <= 3  # 3 steps of 1 level
    assert "hides" in captured.out and "held-out images" in captured.out and len(captured.out.splitlines()) == 1
    assert "done in" in captured.err
    # the rows are the model's measure on clean + xi
    model = sa.zoo.load(sa.zoo.DEFAULT_MODEL)
    data = load_data("synthetic:3", size=(32, 64))
    x = torch.stack([data[i][0] for i in range(3)]).float() / 255
    m = sa.hiding_metrics(model.predict(x), model.predict(res.apply(x)), class_id=11)
    assert [r["fooled"] for r in rows] == [None if f != f else f for f in m.fooled.tolist()]


def test_cli_static_target(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "static"
    argv = universal_args(out, "--static", "car", "--model", "tests.models_for_cli:tiny_fcn", "--examples", "1")
    assert main(argv) == 0
    assert "static target car" in capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    assert summary["target"] == "static" and summary["static"] == 13
    assert load_universal(out / "universal.npz").class_ids == (13,)


def test_cli_user_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "o"
    assert "unknown class 'pedestrian'" in one_line_error(universal_args(out, "--hide", "pedestrian"), capsys)
    assert "eps must be positive" in one_line_error(universal_args(out, "--eps", "0"), capsys)
    assert "one eps" in one_line_error(universal_args(out, "--eps", "2,4"), capsys)
    assert "--static takes one class" in one_line_error(universal_args(out, "--static", "car,bus"), capsys)
    same = ["universal", "--fit-data", "synthetic:4", "--data", "synthetic:2", "--out", str(out)]
    assert "never saw" in one_line_error(same, capsys)
    missing = ["universal", "--fit-data", f"folder:{tmp_path / 'nope'}", "--out", str(out)]
    assert "does not exist" in one_line_error(missing, capsys)
    big = write_street_pngs(tmp_path / "big", n=2, size=(32, 64))
    small = write_street_pngs(tmp_path / "small", n=2, size=(24, 48))
    sizes = ["universal", "--fit-data", f"folder:{big}", "--data", f"folder:{small}", "--steps", "1", "--model",
             "tests.models_for_cli:tiny_fcn", "--out", str(out)]  # fmt: skip
    assert "--size 32x64" in one_line_error(sizes, capsys)
    Image.fromarray(np.zeros((24, 48, 3), np.uint8)).save(big / "odd.png")
    assert "--size" in one_line_error(sizes, capsys)  # mixed sizes among the fit images
    fresh = tmp_path / "fresh"
    assert "--steps: steps must be at least 1" in one_line_error(universal_args(fresh, "--steps", "0"), capsys)
    assert "--step-size must be a positive number" in one_line_error(universal_args(fresh, "--step-size", "x"), capsys)
    assert "--omega: omega must lie in [0, 1]" in one_line_error(universal_args(fresh, "--omega", "2"), capsys)
    assert "--examples: examples must be 0 or" in one_line_error(universal_args(fresh, "--examples", "-1"), capsys)
    assert not fresh.exists()  # every refusal came before the directory was made


def test_cli_help_states_units(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["universal", "--help"])
    assert exc.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "8-bit levels" in text and "default: 10" in text
