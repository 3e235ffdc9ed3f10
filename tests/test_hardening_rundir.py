"""Run directories under a hostile user: --overwrite removes only what segattack wrote, a run never reads its own
outputs as input, a directory of one kind is never reused as another, result rows are checked whenever they are read,
and a universal run lists only the files it wrote. Each case failed before its fix."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from segattack import rundir
from segattack.cli import main
from segattack.data.folder import ImageFolder
from segattack.errors import RunDirError
from segattack.report import write_report

from .models_for_cli import one_line_error, write_street_pngs

MODEL = "tests.models_for_cli:tiny_fcn"


def run_args(data: Path, out: Path, *extra: str, eps: str = "2") -> list[str]:
    return ["run", "--data", f"folder:{data}", "--model", MODEL, "--eps", eps, "--out", str(out), "--batch-size", "2",
            "--figure1", "1", *extra]  # fmt: skip


def universal_args(out: Path, *extra: str) -> list[str]:
    return ["universal", "--fit-data", "synthetic-train:2", "--data", "synthetic:2", "--size", "32x64", "--steps",
            "1", "--model", MODEL, "--out", str(out), *extra]  # fmt: skip


def files_under(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# -- 1. --overwrite removes only what the run directory's runs wrote ----------------------------------------------


def test_overwrite_keeps_the_users_images_folder(tmp_path: Path) -> None:
    """`run --data folder:O/images --out O; run ... --eps 4 --overwrite` removed O/images (the --save-images name)."""
    out = tmp_path / "O"
    write_street_pngs(out / "images", n=2)
    mine = files_under(out / "images")
    assert main(run_args(out / "images", out)) == 0
    assert main(run_args(out / "images", out, "--overwrite", eps="4")) == 0
    assert files_under(out / "images") == mine
    assert {r["eps"] for r in rundir.read_rows(out)} == {4}


def test_overwrite_removes_saved_images_but_not_the_users_files_beside_them(tmp_path: Path) -> None:
    out = tmp_path / "O"
    write_street_pngs(out / "images", n=2)
    mine = files_under(out / "images")
    assert main(run_args(out / "images", out, "--save-images")) == 0
    saved = {k for k in files_under(out / "images") if k not in mine}
    assert saved and all(k.startswith(("eps2/full/", "eps2/posthoc/")) for k in saved)
    assert main(run_args(out / "images", out, "--save-images", "--overwrite", eps="4")) == 0
    after = files_under(out / "images")
    assert {k: v for k, v in after.items() if k in mine} == mine  # the user's images, untouched
    assert not (out / "images" / "eps2").exists() and any(k.startswith("eps4/full/") for k in after)
    # a directory written before manifests: its saved images go, the user's files stay
    (out / rundir.MANIFEST_FILE).unlink()
    (out / "notes.txt").write_text("mine")
    rundir.clear_experiment_outputs(out)
    assert files_under(out / "images") == mine and (out / "notes.txt").read_text() == "mine"
    assert not (out / "results.jsonl").exists() and not (out / "config.json").exists()


def test_overwrite_refuses_to_replace_a_config_json_no_run_wrote(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = write_street_pngs(tmp_path / "data", n=1)
    out = tmp_path / "out"
    out.mkdir()
    (out / "config.json").write_text('{"learning_rate": 0.1}')
    err = one_line_error(run_args(data, out, "--overwrite"), capsys)
    assert "config.json" in err and "did not write" in err and "--out" in err
    assert (out / "config.json").read_text() == '{"learning_rate": 0.1}'


# -- 2. a run never reads its own outputs as input images ---------------------------------------------------------


def test_a_run_into_its_own_data_folder_reads_the_same_images_again(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`run --data folder:X --out X --save-images` twice: the second run read X/images/eps*/... and X/thumbs/... as
    input and was refused (a different configuration)."""
    x = write_street_pngs(tmp_path / "X", n=2)
    ids = [ImageFolder(x).image_id(i) for i in range(2)]
    assert main(run_args(x, x, "--save-images")) == 0
    assert main(["report", str(x)]) == 0  # figure2.png, figure1_*.png, thumbs/ ... beside the inputs
    assert (x / "images").is_dir() and (x / "thumbs").is_dir() and (x / "figure2.png").is_file()
    assert [ImageFolder(x).image_id(i) for i in range(len(ImageFolder(x)))] == ids
    capsys.readouterr()
    assert main(run_args(x, x, "--save-images")) == 0  # resumed: nothing left to do
    assert sorted({r["image_id"] for r in rundir.read_rows(x)}) == sorted(ids)
    # the same from a directory written before manifests: the outputs are known by their names
    (x / rundir.MANIFEST_FILE).unlink()
    assert [ImageFolder(x).image_id(i) for i in range(len(ImageFolder(x)))] == ids
    # and from a folder above the run directory
    assert len(ImageFolder(tmp_path)) == 2


# -- 3. a directory of one kind is never reused as another ---------------------------------------------------------


def test_universal_and_compare_refuse_a_run_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = write_street_pngs(tmp_path / "data", n=1)
    out = tmp_path / "A"
    assert main(run_args(data, out)) == 0
    assert main(["report", str(out)]) == 0
    before = files_under(out)
    err = one_line_error(universal_args(out), capsys)
    assert "`segattack run`" in err and "`segattack universal`" in err and "another --out" in err
    compare = ["compare", "--models", f"a={MODEL},b={MODEL}_module", "--data", "synthetic:1", "--size", "32x64",
               "--eps", "2", "--out", str(out)]  # fmt: skip
    err = one_line_error(compare, capsys)
    assert "`segattack run`" in err and "`segattack compare`" in err and "another --out" in err
    assert files_under(out) == before  # nothing replaced, nothing added


def test_run_refuses_a_universal_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "U"
    assert main(universal_args(out, "--examples", "0")) == 0
    before = files_under(out)
    data = write_street_pngs(tmp_path / "data", n=1)
    for extra in ((), ("--overwrite",)):
        err = one_line_error(run_args(data, out, *extra), capsys)
        assert "`segattack universal`" in err and "`segattack run`" in err and "another --out" in err
    with pytest.raises(RunDirError, match="segattack universal"):
        write_report(out)
    assert files_under(out) == before
    # a universal directory from before manifests is told by its universal.npz
    (out / rundir.MANIFEST_FILE).unlink()
    assert rundir.directory_kind(out) == "universal"
    assert "`segattack universal`" in one_line_error(run_args(data, out), capsys)


# -- 4. result rows are checked when they are read -----------------------------------------------------------------


BAD_ROWS = {
    "status": "weird",
    "fooled": "abc",
    "index": "zero",
    "mode": "sideways",
}


@pytest.fixture()
def run_dir(tmp_path: Path) -> tuple[Path, Path]:
    data = write_street_pngs(tmp_path / "data", n=2)
    out = tmp_path / "run"
    assert main(run_args(data, out)) == 0
    return data, out


def test_report_drops_invalid_and_duplicate_rows_and_says_so(
    run_dir: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    _, out = run_dir
    clean = write_report(out).summary
    results = out / "results.jsonl"
    good = results.read_bytes()
    first = json.loads(good.splitlines()[0])
    bad = [json.dumps(first), json.dumps(first)]  # duplicates
    bad += [json.dumps({**first, key: value}) for key, value in BAD_ROWS.items()]
    bad.append(json.dumps({**first, "index": 1, "eps": 7}))  # an eps outside the configuration
    bad.append(json.dumps({**first, "fooled": None}).replace('"fooled": null', '"fooled": NaN'))
    results.write_bytes(good + "\n".join(bad).encode() + b"\n")
    capsys.readouterr()
    assert main(["report", str(out)]) == 0
    err = capsys.readouterr().err
    line = next(x for x in err.splitlines() if x.startswith("report: dropped"))
    assert line.startswith("report: dropped 8 rows of results.jsonl (2 duplicates, ")
    for what in ("with fooled not a number", "with an unknown status", "with index not a whole number",
                 "with an unknown mode", "at an eps outside the configuration", "with fooled not finite"):  # fmt: skip
        assert what in line, line
    report = write_report(out, log_dropped=False)
    assert report.dropped_rows is not None and report.summary == clean
    assert results.read_bytes().startswith(good)  # the report never changes the results


def test_a_resumed_run_redoes_images_of_invalid_rows_and_never_crashes(
    run_dir: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    data, out = run_dir
    results = out / "results.jsonl"
    reference = sorted((r["image_id"], r["mode"], r["eps"], r["fooled"]) for r in rundir.read_rows(out))
    lines = results.read_bytes().splitlines()
    rows = [json.loads(x) for x in lines]
    damaged = {**rows[0], "fooled": "abc"}  # image rows[0] must be attacked again
    lines[0] = json.dumps(damaged).encode()
    lines += [json.dumps({**rows[1], "index": "zero"}).encode(), json.dumps({**rows[1], "mode": "x"}).encode(),
              lines[1]]  # fmt: skip
    results.write_bytes(b"\n".join(lines) + b"\n")
    for _ in range(2):  # the resume repairs the file: a second resume finds everything done
        assert main(run_args(data, out)) == 0
    after = rundir.read_rows(out)
    assert sorted((r["image_id"], r["mode"], r["eps"], r["fooled"]) for r in after) == reference
    assert rundir.load_results(results).dropped == {}  # no invalid line left in the file
    assert all(isinstance(r["fooled"], float) and not math.isnan(r["fooled"]) for r in after if r["status"] == "ok")


def test_row_schema_in_one_place() -> None:
    row = {"index": 0, "eps": 2, "mode": "full", "status": "ok", "fooled": 0.5, "attack": "illm"}
    assert rundir.row_problem(row) is None
    assert rundir.row_problem({**row, "index": True}) == "with index not a whole number >= 0"
    assert rundir.row_problem({**row, "class_pixels": 1.5}) == "with class_pixels not a whole number >= 0"
    assert rundir.row_problem({**row, "eps": 4}, {"eps_levels": [2]}) == "at an eps outside the configuration"
    assert rundir.row_problem({**row, "transform": "jpeg:9"}, {"survive": ["jpeg:50"]}) is not None
    assert rundir.row_problem(row, {"eps_levels": [2], "modes": ["full"], "survive": [], "images": 1}) is None
    data = (json.dumps(row) + "\n" + json.dumps(row) + "\n{not json\n" + json.dumps(row)).encode()
    check = rundir.check_rows(data)
    assert len(check.rows) == 1 and check.message() == (
        "dropped 3 rows of results.jsonl (1 duplicate, 1 not JSON, 1 incomplete last line)"
    )


# -- 5. universal lists only what it wrote -------------------------------------------------------------------------


def test_universal_with_no_examples_removes_the_old_examples_png(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "U"
    assert main(universal_args(out, "--examples", "1")) == 0
    assert (out / "examples.png").is_file() and "examples.png" in capsys.readouterr().err
    assert main(universal_args(out, "--examples", "0")) == 0
    err = capsys.readouterr().err
    assert not (out / "examples.png").exists()
    assert "examples.png" not in err and "universal.npz" in err
    # a file of that name that segattack did not write is never removed
    (out / "examples.png").write_bytes(b"mine")
    manifest = json.loads((out / rundir.MANIFEST_FILE).read_text())
    manifest["written"].remove("examples.png")
    rundir.write_json(out / rundir.MANIFEST_FILE, manifest)
    assert not rundir.remove_output(out, "examples.png") and (out / "examples.png").read_bytes() == b"mine"
