"""Reading processes (``run_experiment(read_workers=N)``, the default on a GPU): a DataLoader reads the next batches'
images while one is attacked. The rows must be those of reading on the calling thread, an unreadable file must be
counted and skipped as there, ground-truth instances must come through, and an interruption must shut the workers
down and keep what was written."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from segattack.data import ImageFolder
from segattack.experiment import ExperimentConfig, ExperimentError, RunOptions, default_read_workers, run_experiment

from .models_for_cli import experiment, interrupt_after, street_image, tiny_fcn
from .test_instances import InstanceList

PERSON = 11


def rows_of(out: Path) -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    for r in rows:
        r.pop("time_s")
    return rows


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Seven street PNGs on disk and, in their sorted middle, a corrupt one."""
    root = tmp_path_factory.mktemp("images")
    for i in range(7):
        Image.fromarray(street_image(i)).save(root / f"img{i}.png")
    (root / "img3b.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    return root


def run(data: Any, out: Path, **kw: Any) -> Path:
    return experiment(tiny_fcn(), data, out, class_ids=PERSON, eps_levels=[1, 2], batch_size=2, figure1_ids=0,
                      **kw)  # fmt: skip


@pytest.mark.parametrize("overlap", [False, True])
def test_reading_processes_write_the_rows_of_reading_here(folder: Path, tmp_path: Path, overlap: bool) -> None:
    here = rows_of(run(ImageFolder(folder), tmp_path / "here", read_workers=0, overlap=overlap))
    workers = rows_of(run(ImageFolder(folder), tmp_path / "workers", read_workers=2, overlap=overlap))
    assert len(here) == 8 * 2 * 2  # images x eps x modes
    assert workers == here  # same values, same order
    status = {r["image_id"]: r["status"] for r in workers}
    assert status["img3b"] == "unreadable" and sum(s == "ok" for s in status.values()) >= 5
    assert not multiprocessing.active_children()  # the readers are gone once the run is


def test_ground_truth_instances_come_through_the_readers(tmp_path: Path) -> None:
    data = InstanceList([street_image(i) for i in range(5)])
    here = rows_of(run(data, tmp_path / "here", read_workers=0))
    workers = rows_of(run(data, tmp_path / "workers", read_workers=2))
    assert workers == here
    assert sum(r["gt_instances"] + r["gt_instances_missed"] for r in workers if r["status"] == "ok") >= 5


def test_interrupt_stops_the_readers_and_resume_completes(folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        run(ImageFolder(folder), out, progress=interrupt_after(3), read_workers=2)
    assert not multiprocessing.active_children()
    written = {r["image_id"] for r in rows_of(out)}
    assert 3 <= len(written) < 8
    run(ImageFolder(folder), out, read_workers=2)  # resume
    assert rows_of(out) == rows_of(run(ImageFolder(folder), tmp_path / "fresh", read_workers=0))


def test_read_workers_checked_and_defaulted() -> None:
    import torch

    data = ImageFolder.__new__(ImageFolder)  # never read: the argument is refused first
    for bad in (-1, 1.5, True):
        with pytest.raises(ExperimentError, match="read_workers must be an integer >= 0"):
            run_experiment(
                tiny_fcn(),
                data,
                ExperimentConfig(classes=PERSON, eps=[1]),
                "unused",
                options=RunOptions(read_workers=bad),
            )  # type: ignore[arg-type]
    assert default_read_workers(torch.device("cpu")) == 0
    assert 0 <= default_read_workers(torch.device("cuda")) <= 4


def test_cli_run_with_read_workers(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from segattack.cli import main

    from .models_for_cli import one_line_error, write_street_pngs

    pngs = write_street_pngs(tmp_path / "pngs", n=4)

    def argv(out: str, *extra: str) -> list[str]:
        return ["run", "--data", f"folder:{pngs}", "--model", "tests.models_for_cli:tiny_fcn", "--eps", "1,2",
                "--out", str(tmp_path / out), "--batch-size", "2", "--figure1", "0", *extra]  # fmt: skip

    assert main(argv("workers", "--read-workers", "2")) == 0
    assert main(argv("here", "--read-workers", "0")) == 0
    assert rows_of(tmp_path / "workers") == rows_of(tmp_path / "here")
    err = one_line_error(argv("bad", "--read-workers", "-1"), capsys)
    assert "--read-workers: read_workers must be an integer >= 0" in err
