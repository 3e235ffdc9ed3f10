"""The pipelined experiment (``run_experiment(overlap=True)``, the default on a GPU): the next batch is read and the
previous one measured on worker threads while a batch is attacked. It must write the same rows as one batch after the
other, in the same order, and an interruption must keep every image it wrote whole."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import segattack as sa

from .models_for_cli import experiment, interrupt_after

PERSON = 11


@pytest.fixture(scope="module")
def model() -> sa.PixelModel:
    return sa.zoo.load(sa.zoo.DEFAULT_MODEL)


def data(n: int = 6) -> Any:
    return sa.data.SyntheticStreets(split="val", size=(64, 128), length=n, seed=0)


def rows_of(out: Path) -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    for r in rows:
        r.pop("time_s")
    return rows


def run(model: sa.PixelModel, out: Path, **kw: Any) -> Path:
    return experiment(model, data(), out, class_ids=PERSON, eps_levels=[1, 2], batch_size=2, figure1_ids=0,
                      survive="jpeg:75", **kw)  # fmt: skip


def test_overlap_writes_the_rows_of_the_sequential_run(model: sa.PixelModel, tmp_path: Path) -> None:
    seq = rows_of(run(model, tmp_path / "seq", overlap=False))
    pipe = rows_of(run(model, tmp_path / "pipe", overlap=True))
    assert len(seq) == 6 * 2 * 2 * 2  # images x eps x modes x (plain + jpeg)
    assert pipe == seq  # same values, same order
    assert any(r["status"] == "ok" and r["ssim"] is not None for r in pipe)
    thumbs = sorted(p.name for p in (tmp_path / "pipe" / "thumbs").iterdir())
    assert thumbs == sorted(p.name for p in (tmp_path / "seq" / "thumbs").iterdir()) and thumbs


def test_interrupt_keeps_whole_images_and_resume_completes(model: sa.PixelModel, tmp_path: Path) -> None:
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        run(model, out, progress=interrupt_after(3), overlap=True)
    partial = rows_of(out)
    per_image: dict[str, int] = {}
    for r in partial:
        per_image[r["image_id"]] = per_image.get(r["image_id"], 0) + 1
    assert 3 <= len(per_image) < 6  # the batch being measured is written too; the batch in flight is not
    assert set(per_image.values()) == {8}  # every written image has all its rows
    run(model, out, overlap=True)  # resume
    assert rows_of(out) == rows_of(run(model, tmp_path / "fresh", overlap=False))


def test_a_model_in_train_mode_is_attacked_in_eval_mode_and_left_as_it_was(model: sa.PixelModel,
                                                                           tmp_path: Path) -> None:  # fmt: skip
    # The run freezes the network once (eval mode, no parameter gradients) and restores it at the end; the pipelined
    # run's reader thread predicts and makes targets while the main thread attacks, and must find it frozen.
    reference = rows_of(run(model, tmp_path / "eval", overlap=False))
    training = sa.zoo.load(sa.zoo.DEFAULT_MODEL).train()
    grads = [p.requires_grad for p in training.parameters()]
    assert all(grads) and training.net.training
    assert rows_of(run(training, tmp_path / "train", overlap=True)) == reference
    assert training.net.training and all(m.training for m in training.net.modules())
    assert [p.requires_grad for p in training.parameters()] == grads
