"""RunProgress: plain lines a log file can follow (fake clock, non-terminal stream), a tqdm bar on a terminal."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from segattack.commands.progress import RunProgress, clock_time
from segattack.experiment import ExperimentConfig, Progress, run_experiment

from .models_for_cli import ListDataset, street_image, tiny_fcn


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def image(done: int, fooled: float, kept: float, status: str = "ok", total: int = 10, resumed: int = 2) -> Progress:
    return Progress(done, total, resumed, f"img_{done}", status, (), 10, {"fooled": fooled, "preserved": kept}, done)


def test_plain_lines_every_interval_with_the_first_and_the_last() -> None:
    out, clock = io.StringIO(), Clock()
    bar = RunProgress("attacking", "hiding person in 10 images", stream=out, interval=10, clock=clock)
    bar(Progress(2, 10, 2, eps=10, means={"fooled": 0.9, "preserved": 0.99}, measured=2))
    clock.now += 30
    bar(image(3, 0.871, 0.982))  # the first image of this run: printed
    clock.now += 5
    bar(image(4, 0.8, 0.98))  # 5 s later: not yet
    clock.now += 5
    bar(image(5, 0.75, 0.97, status="absent"))  # 10 s after the last line
    clock.now += 1
    for done in range(6, 10):
        bar(image(done, 0.7, 0.96))
    clock.now += 1
    bar(image(10, 0.7, 0.96, status="unreadable"))  # the last image: printed at once
    bar.close()
    assert out.getvalue().splitlines() == [
        "hiding person in 10 images",
        "resuming: 2 of 10 images already done",
        "images 3/10 (30.0%), 0:00:30 elapsed, ETA 0:03:30; eps 10: 87.1% hidden, 98.2% kept",
        "images 5/10 (50.0%), 0:00:40 elapsed, ETA 0:01:07; eps 10: 75.0% hidden, 97.0% kept; 1 absent",
        "images 10/10 (100.0%), 0:00:42 elapsed, ETA 0:00:00; eps 10: 70.0% hidden, 96.0% kept; 1 absent, "
        "1 unreadable",
    ]


def test_a_run_stopped_early_prints_its_last_state_on_close() -> None:
    out, clock = io.StringIO(), Clock()
    bar = RunProgress("attacking", stream=out, interval=60, clock=clock)
    bar(Progress(0, 100, 0))
    clock.now += 2
    bar(Progress(1, 100, 0, "a", "ok"))  # no means yet (no image with the class): none shown
    clock.now += 2
    bar(Progress(2, 100, 0, "b", "ok", (), 8, {"accuracy": 0.123}, 1))
    bar.close()
    bar.close()
    assert out.getvalue().splitlines() == [
        "images 1/100 (1.0%), 0:00:02 elapsed, ETA 0:03:18",
        "images 2/100 (2.0%), 0:00:04 elapsed, ETA 0:03:16; eps 8: 12.3% accuracy",
    ]


def test_interval_zero_prints_every_image_and_bad_intervals_are_refused() -> None:
    out = io.StringIO()
    bar = RunProgress("x", stream=out, interval=0, clock=Clock())
    bar(Progress(0, 3, 0))
    for done in (1, 2, 3):
        bar(Progress(done, 3, 0, str(done), "ok"))
    assert len(out.getvalue().splitlines()) == 3
    with pytest.raises(ValueError, match="interval"):
        RunProgress("x", interval=-1)
    assert clock_time(7800) == "2:10:00" and clock_time(59.6) == "0:01:00"


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_on_a_terminal_a_bar_with_the_means() -> None:
    out = Terminal()
    bar = RunProgress("attacking", "header", stream=out)
    bar(Progress(2, 10, 2, eps=10, means={"fooled": 0.9, "preserved": 0.99}, measured=2))
    bar(image(3, 0.871, 0.982, status="absent"))
    assert bar.bar is not None and bar.bar.n == 3
    bar.close()
    text = out.getvalue()
    assert text.startswith("header\nresuming: 2 of 10 images already done\n")
    assert "attacking" in text and "3/10" in text and "eps 10: 87.1% hidden, 98.2% kept; 1 absent" in text


def test_follows_a_real_run(tmp_path: Path) -> None:
    out, clock = io.StringIO(), Clock()
    bar = RunProgress("attacking", stream=out, interval=1e9, clock=clock)
    data = ListDataset([street_image(i) for i in range(3)])
    run_experiment(
        tiny_fcn(), data, ExperimentConfig(classes=11, eps=[2], batch_size=2, figure1=0), tmp_path, progress=bar
    )
    bar.close()
    lines = out.getvalue().splitlines()
    assert len(lines) == 2 and lines[0].startswith("images 1/3 (33.3%)") and lines[1].startswith("images 3/3")
    assert "eps 2: " in lines[1] and "% hidden, " in lines[1]
