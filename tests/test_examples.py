"""The scripts under examples/ run, at a tiny size, and print what they promise (so the documented code cannot rot).

Each script runs as a user would run it (a subprocess, in a scratch directory) with the shipped models; the checks read
its printed lines back: every figure parses and lies in its range, the saved PNG has the requested size.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
TINY = ["--size", "64x128"]
NUMBER = r"(\d+(?:\.\d+)?)"


def run_example(name: str, *args: str, cwd: Path) -> list[str]:
    """Run examples/<name> with ``args`` in ``cwd`` on one thread; its stdout lines (fails on an exit code != 0)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, f"{name} {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout.splitlines()


def parse(pattern: str, line: str) -> tuple[str, ...]:
    """The groups of ``pattern`` matching the whole ``line`` (the test fails if it does not match)."""
    found = re.fullmatch(pattern, line)
    assert found is not None, f"{line!r} does not match {pattern!r}"
    return found.groups()


def percent(value: str) -> float:
    """A printed percentage, checked to lie in [0, 100]."""
    v = float(value)
    assert 0.0 <= v <= 100.0, v
    return v


def test_every_example_is_tested_and_indexed() -> None:
    """A new script under examples/ needs a test here and a line in examples/README.md."""
    scripts = sorted(p.name for p in EXAMPLES.glob("*.py"))
    assert scripts == ["attack_one_image.py", "compare_attacks.py", "evaluate_robustness.py", "sweep_eps.py"]
    index = (EXAMPLES / "README.md").read_text()
    assert [s for s in scripts if s not in index] == []


def test_attack_one_image(tmp_path: Path) -> None:
    lines = run_example("attack_one_image.py", *TINY, "--out", "adv.png", cwd=tmp_path)
    (persons,) = parse(r"scene val_000000 at 64x128: (\d+) person pixels", lines[0])
    assert int(persons) > 0
    hidden, kept = parse(
        rf"illm at eps 10/255, 13 steps: hidden {NUMBER}% of person pixels, kept {NUMBER}% of background", lines[1]
    )
    assert percent(hidden) > 50.0  # the paper's attack hides most person pixels at 10/255, even at this size
    assert percent(kept) > 50.0
    linf, db = parse(rf"perturbation: L-inf {NUMBER} levels, PSNR {NUMBER} dB", lines[2])
    assert float(linf) == 10.0 and float(db) > 20.0
    (again,) = parse(rf"saved adv\.png \(64x128\); read back, it hides {NUMBER}% \(same image: True\)", lines[3])
    assert again == hidden  # the PNG reproduces the attack exactly
    png = Image.open(tmp_path / "adv.png")
    assert png.size == (128, 64) and png.mode == "RGB"
    assert np.array(png).std() > 0


def test_attack_one_image_refuses_a_bad_size(tmp_path: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "attack_one_image.py"), "--size", "64by128"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2
    assert "size must be HEIGHTxWIDTH in pixels, e.g. 256x512, got '64by128'" in done.stderr
    assert not list(tmp_path.iterdir())


def test_sweep_eps(tmp_path: Path) -> None:
    lines = run_example("sweep_eps.py", "--images", "2", *TINY, "--eps", "2,10", cwd=tmp_path)
    assert lines[0] == "illm: 14 forward+backward passes for 2 budgets (shared prefix; 16 separately)"
    rows = [parse(rf"\s*(\d+)/255\s+{NUMBER} \+-\s+{NUMBER}\s+{NUMBER} \+-\s+{NUMBER}", line) for line in lines[2:4]]
    assert [int(eps) for eps, *_ in rows] == [2, 10]
    figures = [[percent(v) for v in figures] for _, *figures in rows]  # hidden mean, std, kept mean, std
    assert figures[1][0] > figures[0][0]  # a larger budget hides more
    count, missing = parse(r"images with persons: (\d+); without \(left out of hidden %\): (\d+)", lines[4])
    assert int(count) + int(missing) == 2 and int(count) >= 1
    assert len(lines) == 5


def test_compare_attacks(tmp_path: Path) -> None:
    lines = run_example(
        "compare_attacks.py", "--images", "1", *TINY, "--eps", "4", "--attacks", "illm,segpgd", cwd=tmp_path
    )
    assert lines[0] == "images: 1 at 64x128, eps 4/255, 5 steps per attack"
    table = {}
    for line in lines[2:]:
        name, hidden, kept, hit, fwd, bwd = parse(rf"(\w+)\s+{NUMBER}\s+{NUMBER}\s+{NUMBER}\s+(\d+)/(\d+)", line)
        table[name] = (percent(hidden), percent(kept), percent(hit), int(fwd), int(bwd))
    assert list(table) == ["illm", "segpgd"]
    assert table["illm"][3:] == (5, 5)  # the paper's 5 steps at eps 4, no extra pass
    assert table["segpgd"][3:] == (6, 5)  # one more forward pass: the best iterate
    assert table["illm"][0] > 10.0  # the attacks do hide person pixels


def test_compare_attacks_refuses_an_unknown_attack(tmp_path: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "compare_attacks.py"), "--attacks", "illm,nosuch"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2
    assert "unknown attack 'nosuch'; available attacks: " in done.stderr and "Traceback" not in done.stderr


def test_evaluate_robustness(tmp_path: Path) -> None:
    lines = run_example("evaluate_robustness.py", "--images", "1", *TINY, "--steps", "3", cwd=tmp_path)
    assert lines[0] == "images: 1 at 64x128; apgd, 3 steps, eps 4/255"
    rows = {}
    for line in lines[2:]:
        name, *figures = parse(rf"(\S+)\s+{NUMBER}\s+{NUMBER}\s+{NUMBER}\s+{NUMBER}", line)
        rows[name] = [percent(f) for f in figures]
    assert list(rows) == ["fcn2s-synth-w8-r32", "fcn2s-synth-w8-r32-at4"]
    for clean_miou, clean_acc, robust_miou, robust_acc in rows.values():
        assert robust_acc < clean_acc and robust_miou < clean_miou  # the attack hurts both models
    # adversarial training buys robustness: the robust model keeps more pixels right under the same attack
    assert rows["fcn2s-synth-w8-r32-at4"][3] > rows["fcn2s-synth-w8-r32"][3]


@pytest.mark.slow
def test_examples_at_their_defaults(tmp_path: Path) -> None:
    """Every script with no option at all, as the README's index shows them (minutes on one thread)."""
    for name in ("attack_one_image.py", "sweep_eps.py", "compare_attacks.py", "evaluate_robustness.py"):
        lines = run_example(name, cwd=tmp_path)
        assert lines, name
    assert Image.open(tmp_path / "adversarial.png").size == (512, 256)
