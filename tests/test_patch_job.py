"""The adversarial-patch job (``segattack.patches.run_patch``) and its command (``segattack patch``): the files it
writes, resume after Ctrl-C mid-fit and mid-measurement equal to an uninterrupted run, nothing recomputed when
finished, a different configuration refused naming the field, --overwrite, other kinds' directories refused, the
PNG's print metadata, the rendered scenes' rows, and the command's refusals (one line, exit 2)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from segattack import rundir
from segattack.cli import main
from segattack.data.synthetic import render_with_poster
from segattack.errors import DataError, InputError, RunDirError
from segattack.patches import PatchConfig, PatchError, PatchProgress, PrintSize, evaluate, fit, load_patch, run_patch
from segattack.patches.export import DPI_KEY, PIXELS_KEY, PRINT_SIZE_KEY
from segattack.patches.run import RENDER_SEED, random_patch
from segattack.universal import UniversalConfig, run_universal

from .conftest import count_passes
from .models_for_cli import ListDataset, TinyFCN, one_line_error, street_image, tiny_fcn

pytestmark = pytest.mark.usefixtures("one_thread")

FILES = {"config.json", "patch_state.pt", "results.jsonl", "patch.npz", "patch.png", "summary.json", "examples.png",
         "report.html"}  # fmt: skip
TIME_FIELDS = ("time_s",)


def streets(n: int, first: int = 0, size: tuple[int, int] = (32, 64), bad: tuple[int, ...] = ()) -> ListDataset:
    return ListDataset([street_image(first + i, size) for i in range(n)], bad=bad)


def config(**changes: Any) -> PatchConfig:
    fields: dict[str, Any] = {"size": (8, 8), "steps": 4, "batch_size": 2, "checkpoint_every": 2, "examples": 1,
                              "lr": 8 / 255}  # fmt: skip
    return PatchConfig(**{**fields, **changes})


def rows_of(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]


def without_time(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(({k: v for k, v in r.items() if k not in TIME_FIELDS} for r in rows),
                  key=lambda r: (r["evaluation"], r.get("placement") or "", r["index"]))  # fmt: skip


def interrupt_at(stage: str, done: int) -> Callable[[PatchProgress], None]:
    """A progress callback that raises KeyboardInterrupt (as Ctrl-C would) once ``stage`` reports ``done``."""

    def progress(p: PatchProgress) -> None:
        if p.stage == stage and p.done >= done:
            raise KeyboardInterrupt

    return progress


# ------------------------------------------------------------------------------------------------ the files


def test_run_patch_writes_its_files_and_measures_what_evaluate_measures(tmp_path: Path) -> None:
    model, fit_data, held = tiny_fcn(), streets(3), streets(3, first=5, bad=(1,))
    cfg = config()
    out = tmp_path / "p"
    done = run_patch(model, fit_data, held, cfg, out)
    assert Path(done) == out and set(done.written) == FILES
    assert {p.name for p in out.iterdir()} == {*FILES, ".segattack.lock", rundir.MANIFEST_FILE}
    manifest = rundir.read_manifest(out)
    assert manifest is not None and manifest["kind"] == "patch" and FILES <= set(manifest["written"])
    assert rundir.directory_kind(out) == "patch"
    # the job fits what the function fits, and keeps it losslessly
    alone = fit(model, fit_data, **cfg.fit_kwargs())
    assert torch.equal(done.result.patch, alone.patch) and done.result.loss == alone.loss
    saved, meta = load_patch(out / "patch.npz")
    assert torch.equal(saved, alone.patch) and meta["steps"] == 4 and meta["image_ids"] == list(alone.image_ids)
    png = np.asarray(Image.open(out / "patch.png"))
    assert np.array_equal(png, (alone.patch.double() * 255).round().permute(1, 2, 0).numpy().astype(np.uint8))
    # one row per held-out image and evaluation; the unreadable one says so
    rows = rows_of(out)
    assert [(r["index"], r["evaluation"], r["status"]) for r in rows] == [
        (0, "fitted", "ok"), (0, "random", "ok"), (1, "fitted", "unreadable"), (1, "random", "unreadable"),
        (2, "fitted", "ok"), (2, "random", "ok")]  # fmt: skip
    assert rows == [dict(r) for r in done.rows] and rows[2]["image_id"] == "img_1"
    x = torch.stack([held[i][0] for i in (0, 2)]).float() / 255
    for ev, patch in (("fitted", alone.patch), ("random", random_patch(alone.patch.shape, cfg.seed))):
        want = evaluate(model, x, patch, placement=cfg.make_placement(), class_id=11, eot=cfg.make_eot(), seed=0)
        got = [r for r in rows if r["evaluation"] == ev and r["status"] == "ok"]
        assert [r["miou"] for r in got] == pytest.approx([want.miou[0].item(), want.miou[1].item()], abs=1e-12)
        assert [r["hidden"] for r in got] == want.hidden.tolist()
    summary = json.loads((out / "summary.json").read_text())
    fitted = summary["held_out"]["fitted"]
    assert fitted["images"] == 2 and fitted["status"] == {"ok": 2, "absent": 0, "no_place": 0, "unreadable": 1}
    assert fitted["hidden"]["mean"] == pytest.approx(
        np.mean([r["hidden"] for r in rows[::2] if r["hidden"] is not None])
    )
    assert summary["held_out"]["random"]["miou"]["count"] == 2 and summary["rendered"] == {}
    page = (out / "report.html").read_text()
    assert page.index('id="headline"') < page.index("id=distance") and "fitted patch" in page and "random patch" in page
    assert "data:image/png;base64," in page and 'src="patch.png"' not in page  # self-contained
    assert page.count('<img class="patch"') == 1 and "img.patch{width:256px" in page  # shown 256 px wide, any size


# ------------------------------------------------------------------------------------------------ resume


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("patch") / "whole"
    run_patch(tiny_fcn(), streets(3), streets(5, first=5), config(steps=5), out)
    return out


def test_an_interrupted_fit_resumes_from_its_checkpoint_to_the_same_patch(uninterrupted: Path, tmp_path: Path) -> None:
    out = tmp_path / "p"
    with pytest.raises(KeyboardInterrupt):
        run_patch(tiny_fcn(), streets(3), streets(5, first=5), config(steps=5), out,
                  progress=interrupt_at("fit", 3))  # fmt: skip
    assert (out / "patch_state.pt").exists() and not (out / "patch.npz").exists()
    done = run_patch(tiny_fcn(), streets(3), streets(5, first=5), config(steps=5), out)
    assert done.fit_from == 2  # from the checkpoint of step 2, not from the start
    assert torch.equal(load_patch(out / "patch.npz")[0], load_patch(uninterrupted / "patch.npz")[0])
    assert without_time(rows_of(out)) == without_time(rows_of(uninterrupted))


def test_an_interrupted_measurement_keeps_its_rows_and_computes_only_the_rest(uninterrupted: Path,
                                                                              tmp_path: Path) -> None:  # fmt: skip
    out = tmp_path / "p"
    with pytest.raises(KeyboardInterrupt):
        run_patch(tiny_fcn(), streets(3), streets(5, first=5), config(steps=5), out,
                  progress=interrupt_at("held-out", 4))  # fmt: skip
    assert len(rows_of(out)) == 4  # the first batch of two images, both evaluations
    done = run_patch(tiny_fcn(), streets(3), streets(5, first=5), config(steps=5), out)
    assert done.fit_from == 5 and done.resumed == 4 and done.computed == 6
    assert torch.equal(load_patch(out / "patch.npz")[0], load_patch(uninterrupted / "patch.npz")[0])
    assert without_time(rows_of(out)) == without_time(rows_of(uninterrupted))


def test_a_finished_run_recomputes_nothing(uninterrupted: Path, tmp_path: Path) -> None:
    out = tmp_path / "p"
    run_patch(tiny_fcn(), streets(3), streets(5, first=5), config(steps=5), out)
    before = {n: (out / n).read_bytes() for n in ("results.jsonl", "patch_state.pt", "patch.npz", "examples.png")}
    model = tiny_fcn()
    with count_passes(model) as passes:
        done = run_patch(model, streets(3), streets(5, first=5), config(steps=5), out)
    assert passes.forward == 0 and passes.backward == 0
    assert done.computed == 0 and done.resumed == 10 and done.fit_from == 5
    assert {n: (out / n).read_bytes() for n in before} == before


def test_a_torn_last_row_is_computed_again(uninterrupted: Path, tmp_path: Path) -> None:
    out = tmp_path / "p"
    run_patch(tiny_fcn(), streets(3), streets(5, first=5), config(steps=5), out)
    data = (out / "results.jsonl").read_bytes()
    (out / "results.jsonl").write_bytes(data[: len(data) - 20])  # a crash while writing the last row
    done = run_patch(tiny_fcn(), streets(3), streets(5, first=5), config(steps=5), out)
    assert done.computed == 1 and without_time(rows_of(out)) == without_time(rows_of(uninterrupted))


# ------------------------------------------------------------------------------------------------ the directory


def test_a_different_configuration_is_refused_naming_the_field_and_overwrite_replaces_it(tmp_path: Path) -> None:
    out = tmp_path / "p"
    run_patch(tiny_fcn(), streets(3), streets(2, first=5), config(), out)
    (out / "mine.txt").write_text("the user's own file")
    before = (out / "results.jsonl").read_bytes()
    with pytest.raises(PatchError) as err:
        run_patch(tiny_fcn(), streets(3), streets(2, first=5), config(steps=5), out)
    assert err.value.field == "steps" and "steps: 4 -> 5" in str(err.value) and "--overwrite" in str(err.value)
    assert "\n" not in str(err.value) and (out / "results.jsonl").read_bytes() == before
    with pytest.raises(PatchError) as err:
        run_patch(tiny_fcn(), streets(3), streets(2, first=5), config(), out, rendered=1)
    assert err.value.field == "rendered"
    # what changes no result may change
    run_patch(tiny_fcn(), streets(3), streets(2, first=5), config(examples=0), out, dpi=72.0)
    assert not (out / "examples.png").exists()
    done = run_patch(tiny_fcn(), streets(3), streets(2, first=5), config(steps=5), out, overwrite=True)
    assert done.fit_from == 0 and done.resumed == 0 and done.computed == 4
    assert (out / "mine.txt").read_text() == "the user's own file"  # --overwrite removes only what patch runs wrote
    assert json.loads((out / "config.json").read_text())["patch"]["steps"] == 5


def test_other_kinds_of_directory_are_refused_before_any_work(tmp_path: Path) -> None:
    theirs = tmp_path / "run"
    theirs.mkdir()
    rundir.record_outputs(theirs, ["results.jsonl"], kind="run")
    model = tiny_fcn()
    with count_passes(model) as passes, pytest.raises(RunDirError, match="`segattack run`.*`segattack patch`"):
        run_patch(model, streets(2), streets(1, first=5), config(), theirs)
    assert passes.forward == 0 and not (theirs / "patch.npz").exists()
    stray = tmp_path / "stray"
    stray.mkdir()
    (stray / "results.jsonl").write_text("{}\n")
    with pytest.raises(RunDirError, match="did not write"):
        run_patch(model, streets(2), streets(1, first=5), config(), stray)
    universal = tmp_path / "u"
    run_universal(model, streets(2), streets(1, first=5), UniversalConfig(eps=4, steps=1, examples=0), universal)
    with pytest.raises(RunDirError, match="`segattack universal`"):
        run_patch(model, streets(2), streets(1, first=5), config(), universal)
    with pytest.raises(RunDirError, match="`segattack universal`"):
        run_patch(model, streets(2), streets(1, first=5), config(), universal, overwrite=True)
    ours = tmp_path / "p"
    run_patch(model, streets(2), streets(1, first=5), config(steps=1, examples=0), ours)
    with pytest.raises(RunDirError, match="`segattack patch`"):
        run_universal(model, streets(2), streets(1, first=5), UniversalConfig(eps=4, steps=1), ours)


def test_refusals_before_the_directory_is_made(tmp_path: Path) -> None:
    model = tiny_fcn()
    out = tmp_path / "p"
    with pytest.raises(PatchError, match="config must be a PatchConfig"):
        run_patch(model, streets(2), streets(1, first=5), {"steps": 1}, out)  # type: ignore[arg-type]
    with pytest.raises(PatchError, match="rendered must be"):
        run_patch(model, streets(2), streets(1, first=5), config(), out, rendered=-1)
    with pytest.raises(DataError, match=r"held-out images \(--data\) 24x48.*--size 32x64"):
        run_patch(model, streets(2), streets(1, size=(24, 48)), config(), out)
    with pytest.raises(InputError, match="aspect ratio"):
        run_patch(model, streets(2), streets(1, first=5), config(), out, print_size=PrintSize(20, 10, "cm"))
    with pytest.raises(InputError, match=r"at \(y, x\) = \(30, 60\) leaves the 32x64 image"):
        run_patch(
            model, streets(2), streets(1, first=5), config(placement="box", at=(30, 60)), out
        )  # known once the data is read
    assert not (out / "config.json").exists()


# ------------------------------------------------------------------------------------------------ patch.png


def test_patch_png_holds_the_print_size_and_dpi_when_asked(tmp_path: Path) -> None:
    model, a, b = tiny_fcn(), streets(2), streets(1, first=5)
    plain = run_patch(model, a, b, config(steps=1, examples=0), tmp_path / "plain")
    assert "dpi" not in Image.open(tmp_path / "plain" / "patch.png").info
    run_patch(model, a, b, config(steps=1, examples=0), tmp_path / "sized", print_size=PrintSize(4, 4, "in"))
    img = Image.open(tmp_path / "sized" / "patch.png")
    assert img.size == (8, 8) and img.info["dpi"] == pytest.approx((2.0, 2.0), abs=0.01)  # 8 pixels over 4 inches
    assert img.info[PRINT_SIZE_KEY] == "4 x 4 in" and img.info[DPI_KEY] == "2" and img.info[PIXELS_KEY] == "8 x 8"
    assert np.array_equal(np.asarray(img), np.asarray(Image.open(tmp_path / "plain" / "patch.png")))
    run_patch(model, a, b, config(steps=1, examples=0), tmp_path / "dpi", print_size=PrintSize(2.54, 2.54, "cm"),
              dpi=24)  # fmt: skip
    big = Image.open(tmp_path / "dpi" / "patch.png")
    assert big.size == (24, 24) and big.info["dpi"] == pytest.approx((24, 24), abs=0.01)
    assert big.info[PRINT_SIZE_KEY] == "2.54 x 2.54 cm" and big.info[PIXELS_KEY] == "8 x 8"
    levels = (plain.result.patch.double() * 255).round().permute(1, 2, 0).numpy().astype(np.uint8)
    assert np.array_equal(np.asarray(big), levels.repeat(3, axis=0).repeat(3, axis=1))  # pixels repeated, not blended
    summary = json.loads((tmp_path / "dpi" / "summary.json").read_text())
    assert summary["print"] == {"size": "2.54 x 2.54 cm", "dpi": 24.0, "pixels": [24, 24]}


# ------------------------------------------------------------------------------------------------ rendered scenes


def test_rendered_rows_compare_the_fitted_poster_with_the_random_one_in_the_same_scene(tmp_path: Path) -> None:
    model = tiny_fcn()
    done = run_patch(model, streets(2), streets(1, first=5), config(steps=2, examples=0), tmp_path / "p", rendered=2)
    rows = [r for r in rows_of(tmp_path / "p") if r["evaluation"].startswith("rendered")]
    kinds = ("rendered", "rendered-random")
    want = sorted((p, i, e) for p in ("building", "billboard") for i in range(2) for e in kinds)
    assert sorted((r["placement"], r["index"], r["evaluation"]) for r in rows) == want
    for r in rows:
        assert r["distance"] > 0 and 0 <= r["angle"] <= 90 and 0 <= r["visible_fraction"] <= 1
        assert r["reference"] == ("random poster" if r["evaluation"] == "rendered" else "no poster")
    # each row describes its own scene's poster, as the generator drew it
    _, _, infos = render_with_poster(done.result.patch, 2, (32, 64), seed=RENDER_SEED, placement="billboard")
    mine = {r["index"]: r for r in rows if r["placement"] == "billboard" and r["evaluation"] == "rendered"}
    for i, info in enumerate(infos):
        assert mine[i]["distance"] == pytest.approx(info.distance, abs=1e-3)
        assert mine[i]["angle"] == pytest.approx(info.angle, abs=1e-3)
        assert mine[i]["poster_pixels"] == int(info.visible.sum())
    # the definition: the fitted poster's prediction against the random poster's, the posters' pixels left out
    fx, _, finfo = render_with_poster(done.result.patch, 2, (32, 64), seed=RENDER_SEED, placement="billboard")
    rx, _, rinfo = render_with_poster(random_patch(done.result.patch.shape, 0), 2, (32, 64), seed=RENDER_SEED,
                                      placement="billboard")  # fmt: skip
    pf, pr = model.predict(fx[1:2].float() / 255)[0], model.predict(rx[1:2].float() / 255)[0]
    visible = torch.from_numpy(finfo[1].visible.copy()) | torch.from_numpy(rinfo[1].visible.copy())
    counted = ~((fx[1] != rx[1]).any(0) | visible)
    assert mine[1]["accuracy"] == pytest.approx(float((pf == pr)[counted].double().mean()), abs=1e-12)
    summary = json.loads((tmp_path / "p" / "summary.json").read_text())
    assert summary["rendered"]["rendered"]["billboard"]["images"] == 2 and summary["rendered_scenes"] == 2
    page = (tmp_path / "p" / "report.html").read_text()
    assert "fitted vs random poster" in page and "mIoU vs the reference prediction" in page


# ------------------------------------------------------------------------------------------------ the command


def patch_args(out: Path, *extra: str) -> list[str]:
    return ["patch", "--fit-data", "synthetic-train:3", "--data", "synthetic:2", "--size", "32x64", "--steps", "2",
            "--batch-size", "2", "--patch-size", "8x8", "--model", "tests.models_for_cli:tiny_fcn", *extra, "--out",
            str(out)]  # fmt: skip


def test_cli_writes_everything_and_a_rerun_computes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "p"
    assert main(patch_args(out, "--rendered", "1", "--print-size", "8x8cm", "--examples", "1")) == 0
    captured = capsys.readouterr()
    assert FILES <= {p.name for p in out.iterdir()}
    assert len(captured.out.splitlines()) == 1 and "hides" in captured.out and "random patch" in captured.out
    assert "rendered scenes" in captured.out and "done in" in captured.err and "8 rows computed" in captured.err
    record = json.loads((out / "config.json").read_text())["patch"]
    assert record["lr"] == pytest.approx(4 / 255) and record["steps"] == 2 and record["size"] == [8, 8]
    assert record["fit"]["data"] == "synthetic-train:3" and record["data"]["data"] == "synthetic:2"
    assert Image.open(out / "patch.png").info[PRINT_SIZE_KEY] == "8 x 8 cm"
    assert main(patch_args(out, "--rendered", "1", "--examples", "1")) == 0  # the print size changes no result
    assert "0 rows computed, 8 found finished" in capsys.readouterr().err


def test_cli_untargeted_patch_on_a_region_of_classes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "u"
    assert main(patch_args(out, "--goal", "untargeted", "--on", "road", "--tilt", "0.3", "--examples", "0")) == 0
    assert capsys.readouterr().out.startswith("the patch (8x8 px) leaves mIoU")
    record = json.loads((out / "config.json").read_text())["patch"]
    assert (record["goal"], record["placement"], record["region"], record["tilt"]) == ("untargeted", "region", [0], 0.3)
    rows = rows_of(out)
    assert len(rows) == 4 and all(r["box"] is not None for r in rows if r["status"] in ("ok", "absent"))


def test_cli_refusals_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fresh = tmp_path / "fresh"
    share = patch_args(fresh)
    share[share.index("--patch-size") : share.index("--patch-size") + 2] = ["--patch-share", "2"]
    assert "--patch-size/--patch-share: size as a share" in one_line_error(share, capsys)
    assert "--patch-size takes HxW" in one_line_error(patch_args(fresh, "--patch-size", "big"), capsys)
    assert "--lr takes a positive learning rate in 8-bit levels" in one_line_error(
        patch_args(fresh, "--lr", "0"), capsys
    )
    assert "--tilt: tilt must lie in (-1, 1)" in one_line_error(patch_args(fresh, "--tilt", "30"), capsys)
    assert "--at takes Y,X" in one_line_error(patch_args(fresh, "--at", "3"), capsys)
    assert "--print-size: a print size is WIDTHxHEIGHT" in one_line_error(patch_args(fresh, "--print-size", "8cm"),
                                                                          capsys)  # fmt: skip
    assert "--dpi takes a positive number" in one_line_error(patch_args(fresh, "--dpi", "0"), capsys)
    assert "--rendered takes a number" in one_line_error(patch_args(fresh, "--rendered", "-1"), capsys)
    assert "--colours:" in one_line_error(patch_args(fresh, "--colours", str(tmp_path / "none.txt")), capsys)
    assert "--eot-transforms:" in one_line_error(patch_args(fresh, "--eot-transforms", "sharpen:3"), capsys)
    same = ["patch", "--fit-data", "synthetic:3", "--data", "synthetic:2", "--out", str(fresh)]
    assert "never saw" in one_line_error(same, capsys)
    assert not fresh.exists()  # every refusal so far came before the directory was made
    assert "--on: unknown class 'pavement'" in one_line_error(patch_args(fresh, "--on", "pavement"), capsys)
    assert "--hide: unknown class 'pedestrian'" in one_line_error(patch_args(fresh, "--hide", "pedestrian"), capsys)
    out = tmp_path / "p"
    assert main(patch_args(out, "--examples", "0")) == 0
    err = one_line_error(patch_args(out, "--examples", "0", "--steps", "3"), capsys)
    assert "--steps:" in err and "steps: 2 -> 3" in err and "--overwrite" in err
    assert main(patch_args(out, "--examples", "0", "--steps", "3", "--overwrite")) == 0
    universal = ["universal", "--fit-data", "synthetic-train:2", "--data", "synthetic:1", "--size", "32x64",
                 "--steps", "1", "--model", "tests.models_for_cli:tiny_fcn", "--out", str(out)]  # fmt: skip
    assert "`segattack patch`" in one_line_error(universal, capsys)


class _CtrlCOnce(TinyFCN):
    """TinyFCN (the same weights) whose 11th forward pass through a patch that is being fitted (the input needs a
    gradient) raises KeyboardInterrupt, once per process: Ctrl-C in the fit's 11th step, after its step-10
    checkpoint; later runs go through."""

    calls = 0
    fired = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        type(self).calls += int(x.requires_grad)
        if type(self).calls == 11 and not type(self).fired:
            type(self).fired = True
            raise KeyboardInterrupt
        return super().forward(x)


def ctrl_c_model() -> Any:
    import segattack as sa

    return sa.PixelModel(_CtrlCOnce(), mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), num_classes=19)


def test_cli_ctrl_c_keeps_the_checkpoint_and_the_same_command_resumes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [*patch_args(tmp_path / "p", "--steps", "12", "--examples", "0")[:-2]]  # a checkpoint every 10 steps
    argv[argv.index("tests.models_for_cli:tiny_fcn")] = "tests.test_patch_job:ctrl_c_model"
    _CtrlCOnce.calls, _CtrlCOnce.fired = 0, False
    capsys.readouterr()
    assert main([*argv, "--out", str(tmp_path / "p")]) == 130
    err = capsys.readouterr().err
    assert "run the same command again to resume" in err and "Traceback" not in err
    assert (tmp_path / "p" / "patch_state.pt").exists() and not (tmp_path / "p" / "patch.npz").exists()
    assert main([*argv, "--out", str(tmp_path / "p")]) == 0
    assert "fit: 10 of 12 steps done before" in capsys.readouterr().err
    assert main([*argv, "--out", str(tmp_path / "whole")]) == 0  # uninterrupted: the Ctrl-C fired already
    a, b = load_patch(tmp_path / "p" / "patch.npz")[0], load_patch(tmp_path / "whole" / "patch.npz")[0]
    assert torch.equal(a, b)
    assert without_time(rows_of(tmp_path / "p")) == without_time(rows_of(tmp_path / "whole"))


def test_cli_help_states_units(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["patch", "--help"])
    assert exc.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "--lr LEVELS" in text and "8-bit levels" in text and "--print-size" in text and "--rendered N" in text
