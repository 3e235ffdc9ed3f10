"""What a careful adversarial user broke, each case a test: concurrent runs, colliding file names, overwritten
inputs, corrupt files, and a table of command-line mistakes that must end in one line and exit code 2."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from segattack import rundir
from segattack.cli import main
from segattack.errors import RunDirError
from segattack.experiment import read_rows

from .models_for_cli import one_line_error, street_image, write_street_pngs

MODEL = "tests.models_for_cli:tiny_fcn"
ROOT = Path(__file__).resolve().parents[1]
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


@pytest.fixture(scope="module")
def pngs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_street_pngs(tmp_path_factory.mktemp("data") / "pngs", n=3)


def run_args(data: Path, out: Path, *extra: str) -> list[str]:
    return ["run", "--data", f"folder:{data}", "--model", MODEL, "--eps", "2", "--out", str(out),
            "--batch-size", "2", "--figure1", "1", *extra]  # fmt: skip



# -- the run-directory lock ---------------------------------------------------------------------------------------

HOLD = "import sys, time; from segattack.rundir import RunLock; RunLock(sys.argv[1]).acquire(); print('held', flush=True); time.sleep(60)"  # noqa: E501


def hold_lock(directory: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(directory)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_process_is_refused_and_a_killed_holder_frees_the_lock(
    pngs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    holder = hold_lock(out)
    try:
        err = one_line_error(run_args(pngs, out), capsys)
        assert "in use by another segattack process" in err and f"pid {holder.pid}" in err
        assert not (out / "results.jsonl").exists()
    finally:
        holder.send_signal(signal.SIGKILL)  # a crash: the kernel drops the lock with the process
        holder.wait()
    assert main(run_args(pngs, out)) == 0
    assert len(read_rows(out)) == 3 * 2


def test_two_concurrent_runs_never_count_an_image_twice(pngs: Path, tmp_path: Path) -> None:
    """Two real `segattack run` processes on one --out: one is refused at once, the other finishes alone."""
    out = tmp_path / "both"
    argv = [sys.executable, "-m", "segattack.cli", *run_args(pngs, out, "--eps", "2,10")]
    procs = [subprocess.Popen(argv, cwd=ROOT, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
             for _ in range(2)]  # fmt: skip
    results = [p.communicate(timeout=300) for p in procs]
    codes = sorted(p.returncode for p in procs)
    errors = [err for _, err in results]
    if codes == [0, 0]:  # the first finished before the second took the lock: then the second resumed it all
        assert any("already done" in e or "resuming" in e for e in errors), errors
    else:
        assert codes == [0, 2], errors
        assert any("in use by another segattack process" in e for e in errors), errors
    rows = read_rows(out)
    keys = [(r["image_id"], r["eps"], r["mode"]) for r in rows]
    assert len(keys) == len(set(keys)) == 3 * 2 * 2


def test_the_lock_is_reentrant_within_a_process(tmp_path: Path) -> None:
    with rundir.RunLock(tmp_path, "outer"), rundir.RunLock(tmp_path, "inner"):
        pass
    with rundir.RunLock(tmp_path):  # released: can be taken again
        pass


def test_the_lock_names_its_holder_and_frees_on_exit(tmp_path: Path) -> None:
    holder = hold_lock(tmp_path)
    try:
        with pytest.raises(RunDirError, match=f"pid {holder.pid}"):
            rundir.RunLock(tmp_path).acquire()
    finally:
        holder.terminate()
        holder.wait()
    with rundir.RunLock(tmp_path):
        pass


# -- file names and inputs ----------------------------------------------------------------------------------------


def test_file_names_that_sanitise_alike_stay_apart(tmp_path: Path) -> None:
    data = tmp_path / "odd"
    data.mkdir()
    names = ["a b.png", "a?b.png", "a_b.png"]
    for i, name in enumerate(names):
        Image.fromarray(street_image(i)).save(data / name)
    out = tmp_path / "run"
    assert main(run_args(data, out, "--save-images", "--figure1", "3")) == 0
    saved = sorted(p.name for p in (out / "images" / "eps2" / "full").iterdir())
    assert len(saved) == 3 and "a_b.png" in saved
    ids = {r["image_id"] for r in read_rows(out)}
    assert len(ids) == 3
    assert sorted(f"{rundir.output_name(i)}.png" for i in ids) == saved
    assert len(list(out.glob("figure1_*.npz"))) == 3 and len(list(out.glob("figure1_*.png"))) == 3


def test_output_names_are_unique_per_id() -> None:
    ids = ["a b", "a?b", "a_b", "a/b", "a__b", "A_b", ".hidden", "x.", "", "é"]
    names = [rundir.output_name(i) for i in ids]
    assert len(set(names)) == len(ids)
    assert all(rundir.safe_name(n) == n for n in names)  # only file-name characters


def test_attack_refuses_to_overwrite_its_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "sc.png"
    Image.fromarray(street_image(0)).save(src)
    before = src.read_bytes()
    err = one_line_error(["attack", str(src), "--out", str(src), "--model", MODEL], capsys)
    assert "overwrite the input image" in err
    panels_in = tmp_path / "foo_panels.png"
    Image.fromarray(street_image(1)).save(panels_in)
    err = one_line_error(["attack", str(panels_in), "--out", str(tmp_path / "foo.png"), "--model", MODEL], capsys)
    assert "overwrite the input image" in err and "foo_panels.png" in err
    assert src.read_bytes() == before and not (tmp_path / "foo.png").exists()


def test_attack_with_fractional_eps_stays_within_the_budget(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "in.png"
    Image.fromarray(street_image(0)).save(src)
    out = tmp_path / "adv.png"
    assert main(["attack", str(src), "--out", str(out), "--model", MODEL, "--eps", "2.5"]) == 0
    assert "not a whole number of levels" in capsys.readouterr().err
    diff = np.abs(np.asarray(Image.open(out), dtype=np.int16) - np.asarray(Image.open(src), dtype=np.int16))
    assert diff.max() == 2  # rounded toward the original: never 3 levels for eps 2.5


# -- corrupt files ------------------------------------------------------------------------------------------------


def test_a_corrupt_figure1_file_is_redrawn_on_resume_and_skipped_by_report(
    pngs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    assert main(run_args(pngs, out)) == 0
    (npz,) = out.glob("figure1_*.npz")
    good = read_rows(out)
    npz.write_bytes(b"PK\x03\x04 this is not a zip file")
    assert main(["report", str(out)]) == 0  # skipped with a warning, the rest is drawn
    with pytest.raises(zipfile.BadZipFile):
        np.load(npz)
    assert main(run_args(pngs, out)) == 0  # the next complete run draws it again
    with np.load(npz) as z:
        assert str(z["image_id"]) == npz.stem.removeprefix("figure1_")
    key = lambda r: (r["image_id"], r["eps"], r["mode"])  # noqa: E731
    assert sorted(map(key, read_rows(out))) == sorted(map(key, good))


def test_a_corrupt_config_is_one_line(pngs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    assert main(run_args(pngs, out)) == 0
    (out / "config.json").write_text("{not json")
    assert "not valid JSON" in one_line_error(run_args(pngs, out), capsys)
    assert "not valid JSON" in one_line_error(["report", str(out)], capsys)


def test_every_class_hidden_says_so(pngs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "all"
    capsys.readouterr()
    assert main(run_args(pngs, out, "--hide", "road,building,vegetation,sky,person")) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert {r["status"] for r in read_rows(out)} == {"all_hidden"}
    assert "nothing to hide" not in lines[-1] and "every pixel" in lines[-1]


# -- start-up interrupted -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def interpreter_start_s() -> float:
    """How long Python takes to start and import ``segattack.cli`` here (site packages, a virtual environment's
    .pth files): before that no code of segattack's runs, and a Ctrl-C is Python's own (the documented limit)."""
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import segattack.cli"], cwd=ROOT, check=True)
    return time.perf_counter() - t0


@pytest.mark.parametrize("delay", [0.3, 1.5])
def test_ctrl_c_during_start_up_prints_no_traceback(
    pngs: Path, tmp_path: Path, delay: float, interpreter_start_s: float
) -> None:
    """Ctrl-C ``delay`` seconds after segattack's own start-up began: parsing and the slow imports (torch)."""
    argv = [sys.executable, "-m", "segattack.cli", *run_args(pngs, tmp_path / f"int{delay}")]
    proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(2 * interpreter_start_s + delay)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert "Traceback" not in err, err
    assert proc.returncode in (0, 130), err  # 0 only if it finished first
    if proc.returncode == 130:
        assert "interrupted" in err


# -- the table of command-line mistakes ---------------------------------------------------------------------------


def _cases(tmp: Path, pngs: Path) -> list[tuple[str, list[str], str]]:
    """(what, argv, a phrase the one-line message must contain); the same table is in docs/troubleshooting.md."""
    img = tmp / "one.png"
    Image.fromarray(street_image(0)).save(img)
    a_file = tmp / "a_file"
    a_file.write_text("x")
    (tmp / "syntax_error_model.py").write_text("def build(:\n")
    import torch

    from .models_for_cli import tiny_fcn_module

    state = tiny_fcn_module().state_dict()
    state["head.weight"] = torch.zeros(5, 3, 1, 1)
    torch.save(state, tmp / "wrong_shapes.pt")
    torch.save({"net": object()}, tmp / "pickled.pt")
    card_dir = tmp / "zoo"
    card_dir.mkdir()
    from segattack import zoo

    zoo.save_model(zoo.FCN8s(19, width=0.0625), card_dir / "m", arch="fcn8s", arch_kwargs={"width": 0.0625},
                   mean=(0.5,) * 3, std=(0.25,) * 3, num_classes=19)  # fmt: skip
    card = json.loads((card_dir / "m.json").read_text())
    card["arch_kwargs"]["depth_multiplier"] = 2
    (card_dir / "m.json").write_text(json.dumps(card))
    big = tmp / "big"
    big.mkdir()
    Image.new("1", (12000, 12000)).save(big / "12000x12000.png")  # 18 kB on disk, 432 MB as RGB
    run = lambda *extra: run_args(pngs, tmp / "out", *extra)  # noqa: E731
    mod = "tests.models_for_cli"
    return [
        ("--device foo (run)", run("--device", "foo"), "is not a device"),
        ("--device meta (run)", run("--device", "meta"), "cpu or cuda"),
        ("--device foo (attack)", ["attack", str(img), "--out", str(tmp / "a.png"), "--device", "foo"], "not a device"),
        ("--device meta (eval)", ["eval", "--data", "synthetic:2", "--size", "32x64", "--device", "meta"],
         "cpu or cuda"),
        ("model factory raises", run("--model", f"{mod}:factory_raises"), "KeyError"),
        ("model module has a SyntaxError", run("--model", "syntax_error_model:build"), "SyntaxError"),
        ("model raises in forward", run("--model", f"{mod}:raises_in_forward"), "the network's own failure"),
        ("model returns a tuple", run("--model", f"{mod}:returns_tuple"), "returned tuple"),
        ("model returns integers", run("--model", f"{mod}:returns_integers"), "floating point"),
        ("model returns another batch size", run("--model", f"{mod}:returns_wrong_batch"), "batch of 2"),
        ("weights of other shapes", run("--model", f"{mod}:tiny_fcn_module", "--weights", str(tmp / "wrong_shapes.pt")),
         "other shapes"),
        ("weights that need unpickling", run("--model", f"{mod}:tiny_fcn_module", "--weights", str(tmp / "pickled.pt")),
         "never unpickles"),
        ("mean in 0-255 units", run("--model", f"{mod}:tiny_fcn_module", "--mean", "124,116,104"), "divides by 255"),
        ("zoo card with an unknown arch_kwargs key", run("--model", f"zoo:{card_dir / 'm.json'}"), "depth_multiplier"),
        ("--out is a file (run)", run_args(pngs, a_file), "is a file"),
        ("--out under a file (run)", run_args(pngs, a_file / "sub"), "lies under"),
        ("--out is a file (train)", ["train", "--out", str(a_file), "--steps", "1"], "is a file"),
        ("--out under a file (train)", ["train", "--out", str(a_file / "x"), "--steps", "1"], "lies under"),
        ("--out under a file (attack)", ["attack", str(img), "--out", str(a_file / "x.png"), "--model", MODEL],
         "is a file"),
        ("--out is a directory (attack)", ["attack", str(img), "--out", str(tmp), "--model", MODEL], ".png"),
        ("--out under a file (universal)",
         ["universal", "--fit-data", "synthetic-train:2", "--data", "synthetic:2", "--out", str(a_file / "u")],
         "lies under"),
        ("eval --json to a directory", ["eval", "--data", "synthetic:2", "--size", "32x64", "--json", str(tmp)],
         "is a directory"),
        ("eval --json under a file", ["eval", "--data", "synthetic:2", "--size", "32x64", "--json",
                                      str(a_file / "e.json")], "is a file"),  # fmt: skip
        ("report of a file", ["report", str(a_file)], "holds no results.jsonl"),
        ("--size 100000x100000", ["run", "--data", "synthetic:2", "--size", "100000x100000", "--out", str(tmp / "out")],
         "needs about"),
        ("a 12000x12000 image (run)", ["run", "--data", f"folder:{big}", "--out", str(tmp / "out")], "needs about"),
        ("a 12000x12000 image (attack)", ["attack", str(big / "12000x12000.png"), "--out", str(tmp / "b.png")],
         "needs about"),
    ]  # fmt: skip


def test_no_user_mistake_prints_a_traceback(
    pngs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(tmp_path))  # the module with the SyntaxError is importable from here
    for what, argv, phrase in _cases(tmp_path, pngs):
        err = one_line_error(argv, capsys)
        assert phrase in err, (what, err)
    assert not (tmp_path / "out").exists()  # no mistake left an output directory behind


def test_verbose_shows_the_traceback(pngs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    argv = run_args(pngs, tmp_path / "o", "--model", "tests.models_for_cli:raises_in_forward")
    assert main(["--verbose", *argv]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and "RuntimeError: the network's own failure" in err


def test_eval_json_into_a_missing_folder_is_written(tmp_path: Path) -> None:
    target = tmp_path / "new" / "folder" / "eval.json"
    assert main(["eval", "--data", "synthetic:2", "--size", "32x64", "--json", str(target)]) == 0
    assert json.loads(target.read_text())["images"] == 2


@pytest.mark.skipif(IS_ROOT, reason="root writes into read-only folders; the check cannot fire")
def test_read_only_out(pngs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        assert "not writable" in one_line_error(run_args(pngs, ro / "x"), capsys)
    finally:
        ro.chmod(0o700)
