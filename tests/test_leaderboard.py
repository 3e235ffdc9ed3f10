"""The leaderboard of robustness runs (``segattack.report.leaderboard``, ``segattack leaderboard``): built from two
real runs of tiny models, ranked, self-contained, sortable in headless Chromium (skipped where there is none), and
its refusals."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import segattack as sa
from segattack.cli import main
from segattack.errors import InputError, RunDirError
from segattack.report.leaderboard import leaderboard_entries, render_leaderboard, write_leaderboard
from segattack.robustness import run_robustness

from .models_for_cli import TinyFCN, one_line_error
from .test_robustness_job import Streets, custom

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


pytestmark = pytest.mark.usefixtures("one_thread")


def _model(scale: float) -> sa.PixelModel:
    return sa.PixelModel(TinyFCN(scale=scale), mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Two robustness runs of the same protocol: a sharper nearest-colour model (scale 40, larger logit margins)
    and the tiny default (scale 10)."""
    root = tmp_path_factory.mktemp("board")
    out = []
    for name, scale in (("soft", 10.0), ("sharp", 40.0)):
        d = root / name
        run_robustness(_model(scale), Streets(3), custom(), d, describe={"model": f"tiny-{name}", "data": "streets"})
        out.append(d)
    return out


def _cells(html: str) -> list[list[str]]:
    body = html.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    return [re.findall(r'data-v="([^"]*)"', row) for row in body.split("<tr>")[1:]]


def _heads(html: str) -> list[str]:
    head = html.split("<thead>", 1)[1].split("</thead>", 1)[0]
    return re.findall(r">([^<]+)</th>", head)


def test_board_ranks_by_worst_case_miou_and_is_self_contained(runs: list[Path], tmp_path: Path) -> None:
    path = write_leaderboard(runs, tmp_path / "board.html")
    html = path.read_text()
    heads = _heads(html)
    col = heads.index("mIoU eps 8")
    rows = _cells(html)
    values = [float(r[col]) for r in rows]
    assert values == sorted(values, reverse=True) and len(rows) == 2
    assert {r[1] for r in rows} == {"tiny-soft", "tiny-sharp"} and all(r[3] == "custom" for r in rows)
    assert heads[:7] == ["#", "model", "data", "protocol", "images", "clean mIoU", "clean acc."]
    assert {"passes / image", "s / image", "checks"} <= set(heads)
    assert "<script>" in html and "<link" not in html and "src=" not in html and "http" not in html
    # the same page whatever order the directories come in
    assert render_leaderboard(leaderboard_entries(runs[::-1])) == html


def test_a_budget_a_run_lacks_shows_a_dash(runs: list[Path], tmp_path: Path) -> None:
    import json

    partial = tmp_path / "partial"
    shutil.copytree(runs[0], partial)
    summary = json.loads((partial / "robustness.json").read_text())
    summary["robust"] = [r for r in summary["robust"] if r["eps"] != 8.0]
    summary["model"] = "tiny-partial"
    (partial / "robustness.json").write_text(json.dumps(summary))
    entries = leaderboard_entries([partial, *runs])
    html = render_leaderboard(entries)
    col = _heads(html).index("mIoU eps 8")
    rows = _cells(html)
    partial_row = next(r for r in rows if r[1] == "tiny-partial")
    assert partial_row[col] == "" and all(r[col] != "" for r in rows if r[1] != "tiny-partial")
    shared = [float(r[_heads(html).index("mIoU eps 2")]) for r in rows]
    assert shared == sorted(shared, reverse=True)  # ranked by eps 2, the largest budget all three runs share
    assert "None" not in html and html.count(">–</td>") >= 2  # its mIoU and accuracy at eps 8


def test_board_command_and_refusals(runs: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    board = tmp_path / "b" / "board.html"
    assert main(["leaderboard", *map(str, runs), "--out", str(board)]) == 0
    printed = capsys.readouterr()
    assert board.is_file() and "2 runs" in printed.err
    # the same ranking as a markdown table on stdout: a header, a rule, one line per run in the page's order
    lines = printed.out.splitlines()
    assert lines[0].startswith("| # | model | protocol | images | clean mIoU | mIoU eps 2 |") and len(lines) == 4
    page_models = [r[1] for r in _cells(board.read_text())]
    assert [line.split(" | ")[1].strip("`") for line in lines[2:]] == page_models
    assert all(line.startswith(f"| {n} | ") and "PASS" in line for n, line in enumerate(lines[2:], 1))
    err = one_line_error(["leaderboard", str(runs[0]), str(tmp_path), "--out", str(board)], capsys)
    assert "holds no robustness.json" in err
    err = one_line_error(["leaderboard", str(runs[0]), str(runs[0]), "--out", str(board)], capsys)
    assert "listed twice" in err
    err = one_line_error(["leaderboard", str(runs[0]), "--out", str(tmp_path)], capsys)
    assert "is a directory" in err
    with pytest.raises(InputError):
        leaderboard_entries([])
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "robustness.json").write_text("[1, 2]")
    with pytest.raises(RunDirError, match="not a robustness summary"):
        leaderboard_entries([tmp_path / "bad"])


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium on this machine (apt-get install chromium)")
def test_board_in_headless_chromium_sorts_and_renders(runs: list[Path], tmp_path: Path) -> None:
    assert CHROMIUM is not None
    board = write_leaderboard(runs, tmp_path / "board.html")
    col = _heads(board.read_text()).index("mIoU eps 8")
    flags = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"]
    # the page's script sorts by the column the address names: ascending puts the lower worst-case mIoU first
    dom = subprocess.run([*flags, "--dump-dom", f"{board.as_uri()}#sort={col},asc"], capture_output=True, text=True,
                         timeout=180, check=True).stdout  # fmt: skip
    rows = _cells(dom)
    values = [float(r[col]) for r in rows]
    assert values == sorted(values) and values != sorted(values, reverse=True)
    assert re.search(r'aria-sort="ascending"[^>]*>mIoU eps 8<', dom)
    # the first column shows the position after sorting and keeps the rank as its sort key (a click on # restores it)
    shown = re.findall(r'<tr><td data-v="(\d+)">(\d+)</td>', dom)
    assert shown == [("2", "1"), ("1", "2")]
    shot = tmp_path / "board.png"
    subprocess.run([*flags, f"--screenshot={shot}", "--window-size=1000,400", board.as_uri()], capture_output=True,
                   timeout=180, check=True)  # fmt: skip
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=np.float64)
    assert pixels.shape == (400, 1000) and pixels.std() > 10  # a drawn page, not a blank one


def test_a_stronger_protocol_ranks_first_whatever_its_numbers(runs: list[Path], tmp_path: Path) -> None:
    import json

    quick = tmp_path / "quick"
    shutil.copytree(runs[1], quick)
    summary = json.loads((quick / "robustness.json").read_text())
    summary["protocol"], summary["model"] = "quick", "tiny-quick"
    for r in summary["robust"]:  # a weaker protocol reports a higher robust mIoU than any sea run
        r["worst"]["miou"] = 0.99
    (quick / "robustness.json").write_text(json.dumps(summary))
    sea = []
    for d in runs:
        copy = tmp_path / d.name
        shutil.copytree(d, copy)
        s = json.loads((copy / "robustness.json").read_text())
        s["protocol"] = "sea"
        (copy / "robustness.json").write_text(json.dumps(s))
        sea.append(copy)
    entries = leaderboard_entries([quick, *sea])
    assert [e.summary["protocol"] for e in entries] == ["sea", "sea", "quick"]
    assert entries[0].worst(8.0) >= entries[1].worst(8.0)  # within a protocol, by robust mIoU
