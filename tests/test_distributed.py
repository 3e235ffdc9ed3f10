"""Many processes on one run (torchrun): every image once in one results.jsonl, as a single process writes it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from segattack import distributed
from segattack.cli import main

from .models_for_cli import write_street_pngs

ROOT = Path(__file__).resolve().parents[1]
MODEL = "tests.models_for_cli:tiny_fcn"


def _args(data: Path, out: Path) -> list[str]:
    """A run with the paper's attack and one with random starts (pgd): every image's rows must not depend on the
    number of processes (each random draw is seeded per image)."""
    return ["run", "--data", f"folder:{data}", "--eps", "2,4", "--batch-size", "2", "--model", MODEL, "--out", str(out),
            "--figure1", "1", "--attack", "illm,pgd", "--attack-opt", "pgd.steps=3"]  # fmt: skip


def _rows(out: Path) -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    for r in rows:
        r.pop("time_s")
    return sorted(rows, key=lambda r: (r["image_id"], r["attack"], r["eps"], r["mode"]))


def _torchrun(nproc: int, args: list[str]) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in distributed.ENV_VARS}
    env["OMP_NUM_THREADS"] = "1"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(nproc), "--standalone",
           "-m", "segattack", *args]  # fmt: skip
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def test_world_is_single_without_torchrun(monkeypatch: pytest.MonkeyPatch) -> None:
    for k in distributed.ENV_VARS:
        monkeypatch.delenv(k, raising=False)
    w = distributed.world()
    assert (w.rank, w.size, w.local_rank, w.main, w.many) == (0, 1, 0, True, False)
    with distributed.session("cpu") as s:
        s.barrier()
        assert s.broadcast({"a": 1}) == {"a": 1} and s.gather(3) == [3]
        s.agree(None)
        with pytest.raises(ValueError, match="boom"):
            s.agree(ValueError("boom"))
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setenv("MASTER_ADDR", "localhost")
    assert distributed.world() == distributed.World(3, 4, 1)
    assert str(distributed.local_device("cpu")) == "cpu"


def test_append_rows_from_many_threads_never_interleaves(tmp_path: Path) -> None:
    path = tmp_path / "results.jsonl"
    big = "x" * 70000  # larger than a pipe buffer: one write per call, under the lock

    def write(t: int) -> None:
        for k in range(20):
            distributed.append_rows(path, [{"t": t, "k": k, "pad": big}, {"t": t, "k": k, "second": True}])

    threads = [threading.Thread(target=write, args=(t,)) for t in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    lines = path.read_bytes().split(b"\n")
    assert lines[-1] == b""
    rows = [json.loads(line) for line in lines[:-1]]
    assert len(rows) == 4 * 20 * 2
    for first, second in zip(rows[::2], rows[1::2], strict=True):  # each call's lines stay together
        assert (first["t"], first["k"]) == (second["t"], second["k"]) and second["second"]
    assert (tmp_path / distributed.APPEND_LOCK_FILE).exists()


def test_torchrun_two_processes_equal_one_and_resume(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = write_street_pngs(tmp_path / "pngs", n=6, absent=(3,))
    single, multi = tmp_path / "single", tmp_path / "multi"
    assert main(_args(data, single)) == 0
    capsys.readouterr()
    reference = _rows(single)
    assert len(reference) == 6 * 2 * 2 * 2  # images x attacks x eps x modes

    done = _torchrun(2, _args(data, multi))
    assert done.returncode == 0, done.stderr[-3000:]
    assert _rows(multi) == reference
    assert done.stderr.count("done in ") == 1 and done.stderr.count("results: ") == 1  # process 0 alone reports
    assert "2 processes share the images" in done.stderr
    assert sorted(p.name for p in multi.glob("figure1_*.npz")) == sorted(p.name for p in single.glob("figure1_*.npz"))
    config = json.loads((multi / "config.json").read_text())
    assert config["run"]["processes"] == 2

    # a crashed process: its last images' rows never arrived; one process finishes the run, nothing twice
    lines = (multi / "results.jsonl").read_bytes().splitlines(keepends=True)
    (multi / "results.jsonl").write_bytes(b"".join(lines[:-3]))
    assert main(_args(data, multi)) == 0
    assert "resuming: 5 of 6 images already done" in capsys.readouterr().err
    assert _rows(multi) == reference


def test_torchrun_refuses_a_different_configuration_on_every_process(tmp_path: Path) -> None:
    data = write_street_pngs(tmp_path / "pngs", n=2)
    out = tmp_path / "out"
    assert main([*_args(data, out), "--limit", "1"]) == 0
    done = _torchrun(2, _args(data, out))
    assert done.returncode != 0
    assert "holds results of a different configuration" in done.stderr
    assert "process 0 of 2: " in done.stderr  # process 1 stopped with process 0's message, no traceback
    assert done.stderr.count("segattack run: error: ") == 2  # a one-line message from each, no worker traceback
