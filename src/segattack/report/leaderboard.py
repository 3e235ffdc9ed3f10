"""A leaderboard of several robustness runs (``segattack leaderboard DIR [DIR ...]``): one self-contained HTML page
ranking their models, drawn from each run's ``robustness.json`` alone.

One row per run: the model, its data and protocol, clean mIoU and accuracy, the worst-case mIoU at every budget any
run measured (blank where a run did not), the worst-case accuracy at the largest budget, the protocol's cost (passes
and seconds per image) and its sanity checks (PASS count, the failures named). Rows start ranked by the worst-case
mIoU at the largest budget all runs share (then by clean mIoU); a click on a column's head sorts by it (a few lines
of inline JavaScript), and ``board.html#sort=COLUMN,asc`` opens it sorted so.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .. import rundir
from ..errors import InputError
from .page import PAGE_CSS, esc
from .robustness import pct, read_robustness_json

__all__ = [
    "LeaderboardEntry",
    "leaderboard_entries",
    "render_leaderboard",
    "leaderboard_markdown",
    "write_leaderboard",
]

_SORT_JS = """
(function(){
  var table=document.getElementById('board'), body=table.tBodies[0];
  function sortBy(col, asc){
    var rows=Array.prototype.slice.call(body.rows);
    rows.sort(function(a,b){
      var x=a.cells[col].getAttribute('data-v'), y=b.cells[col].getAttribute('data-v');
      var nx=parseFloat(x), ny=parseFloat(y), cx=isNaN(nx), cy=isNaN(ny), r;
      if(x===''||y===''){r=(x==='')-(y==='');return r;}
      r=(!cx&&!cy)?nx-ny:String(x).localeCompare(String(y));
      return asc?r:-r;
    });
    rows.forEach(function(r,i){body.appendChild(r);r.cells[0].textContent=i+1;});
    Array.prototype.forEach.call(table.tHead.rows[0].cells,function(th,i){
      th.setAttribute('aria-sort', i===col?(asc?'ascending':'descending'):'none');});
  }
  Array.prototype.forEach.call(table.tHead.rows[0].cells,function(th,i){
    if(i===0)return;
    th.style.cursor='pointer';
    th.addEventListener('click',function(){sortBy(i, th.getAttribute('aria-sort')==='descending');});
  });
  var m=/sort=(\\d+)(?:,(asc|desc))?/.exec(location.hash);
  if(m){sortBy(parseInt(m[1],10), m[2]==='asc');}
})();
"""

_CSS = "th[aria-sort=ascending]::after{content:' \\25B2'}th[aria-sort=descending]::after{content:' \\25BC'}"


#: Protocols from the strongest: runs are ranked within a protocol, the reference protocol's runs first.
PROTOCOL_ORDER = ("sea", "quick", "custom")


class LeaderboardEntry:
    """One run on the board: its directory and its ``robustness.json``."""

    def __init__(self, directory: Path, summary: Mapping[str, Any]) -> None:
        self.directory, self.summary = directory, summary

    @property
    def label(self) -> str:
        return str(self.summary.get("model") or self.directory.name)

    def worst(self, eps: float, key: str = "miou") -> float | None:
        for r in self.summary["robust"]:
            if float(r["eps"]) == eps and r.get("worst"):
                v = r["worst"].get(key)
                return float(v) if isinstance(v, int | float) else None
        return None

    @property
    def budgets(self) -> list[float]:
        return [float(r["eps"]) for r in self.summary["robust"]]


def leaderboard_entries(directories: Sequence[str | os.PathLike[str]]) -> list[LeaderboardEntry]:
    """The runs of ``directories`` (each a finished robustness run), ranked: the runs of the reference protocol
    first (``PROTOCOL_ORDER``: a weaker protocol's higher number must not outrank a stronger one's), then by the
    worst-case mIoU at the largest budget every run has (higher first; a run without a figure there last), then by
    clean mIoU."""
    if not directories:
        raise InputError("a leaderboard needs at least one robustness directory")
    seen: set[Path] = set()
    entries = []
    for d in directories:
        path = Path(d)
        if path.resolve() in seen:
            raise InputError(f"{d} is listed twice; give each robustness directory once")
        seen.add(path.resolve())
        entries.append(LeaderboardEntry(path, read_robustness_json(path)))
    shared = set(entries[0].budgets).intersection(*(e.budgets for e in entries[1:]))
    key_eps = max(shared) if shared else None

    def rank(e: LeaderboardEntry) -> tuple[int, float, float]:
        w = e.worst(key_eps) if key_eps is not None else None
        clean = e.summary["clean"].get("miou")
        strength = PROTOCOL_ORDER.index(e.summary.get("protocol")) if e.summary.get("protocol") in PROTOCOL_ORDER else 9
        return (
            strength,
            -(w if w is not None else -math.inf),
            -(clean if isinstance(clean, int | float) else -math.inf),
        )

    return sorted(entries, key=rank)


def _cell(v: Any, text: str | None = None, cls: str = "") -> str:
    missing = v is None or (isinstance(v, float) and not math.isfinite(v))
    dv = "" if missing else v
    shown = text if text is not None else "–" if missing else pct(v) if isinstance(v, int | float) else esc(v)
    return f'<td{f" class={cls}" if cls else ""} data-v="{esc(dv)}">{shown}</td>'


def render_leaderboard(entries: Sequence[LeaderboardEntry]) -> str:
    """The board of ``entries`` (in their order) as one HTML string."""
    budgets = sorted({e for entry in entries for e in entry.budgets})
    largest = budgets[-1] if budgets else None
    heads = ["#", "model", "data", "protocol", "images", "clean mIoU", "clean acc."]
    heads += [f"mIoU eps {e:g}" for e in budgets]
    heads += [f"acc. eps {largest:g}" if largest is not None else "acc.", "passes / image", "s / image", "checks"]
    rows = []
    for n, entry in enumerate(entries, 1):
        s = entry.summary
        cost = s.get("cost") or {}
        checks = s.get("checks") or ()
        passed = sum(c["status"] == "PASS" for c in checks)
        failed = [c["name"] for c in checks if c["status"] == "FAIL"]
        made = sum(c["status"] != "SKIPPED" for c in checks)
        check_text = f"{passed}/{made} PASS" + (f" <small>FAIL: {esc('; '.join(failed))}</small>" if failed else "")
        cells = [f'<td data-v="{n}">{n}</td>', _cell(entry.label, cls="l"), _cell(s.get("data", "–"), cls="l"),
                 _cell(s.get("protocol", "–"), cls="l"),
                 _cell(s["images"]["complete"], str(s["images"]["complete"])),
                 _cell(s["clean"].get("miou")), _cell(s["clean"].get("accuracy"))]  # fmt: skip
        cells += [_cell(entry.worst(e)) for e in budgets]
        cells.append(_cell(entry.worst(largest, "accuracy")) if largest is not None else _cell(None))
        ppi, spi = cost.get("passes_per_image"), cost.get("seconds_per_image")
        cells.append(_cell(ppi, "–" if ppi is None else f"{ppi:.0f}"))
        cells.append(_cell(spi, "–" if spi is None else f"{spi:.2f}"))
        cells.append(_cell(len(failed) * 1000 - passed, check_text, cls="l"))
        rows.append("<tr>" + "".join(cells) + "</tr>")
    head = "<tr>" + "".join(f"<th{' class=l' if h in ('model', 'data', 'protocol', 'checks') else ''} "
                            f"aria-sort=none>{esc(h)}</th>" for h in heads) + "</tr>"  # fmt: skip
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>segattack robustness leaderboard</title><style>{PAGE_CSS}{_CSS}</style></head><body>"
        f"<h1>Robustness leaderboard<small>{len(entries)} run{'s' if len(entries) != 1 else ''}; worst-case mIoU "
        "and accuracy (percent) under each run's protocol at each L-inf eps (8-bit levels); ranked within each "
        "protocol, the strongest first; click a column to sort</small></h1>"
        f'<div class="scroll"><table id="board"><thead>{head}</thead><tbody>{"".join(rows)}</tbody></table></div>'
        "<p class=note>Worst case: per image the attack with the lowest accuracy (accuracy) and SEA's greedy choice "
        "for mIoU. Protocols differ in strength: compare runs of one protocol. Passes: forward and backward passes "
        "per image over all of a protocol's evaluations, counted.</p>"
        f"<script>{_SORT_JS}</script></body></html>"
    )


def _md(v: Any) -> str:
    return "–" if v is None or (isinstance(v, float) and not math.isfinite(v)) else pct(v)


def leaderboard_markdown(entries: Sequence[LeaderboardEntry]) -> str:
    """The board of ``entries`` (in their order) as a markdown table, for a README: rank, model, protocol, images,
    clean mIoU, worst-case mIoU at every budget, passes per image and the checks passed."""
    budgets = sorted({e for entry in entries for e in entry.budgets})
    heads = ["#", "model", "protocol", "images", "clean mIoU", *(f"mIoU eps {e:g}" for e in budgets),
             "passes / image", "checks"]  # fmt: skip
    lines = ["| " + " | ".join(heads) + " |", "|" + "---|" * len(heads)]
    for n, entry in enumerate(entries, 1):
        s = entry.summary
        checks = s.get("checks") or ()
        made = sum(c["status"] != "SKIPPED" for c in checks)
        failed = [c["name"] for c in checks if c["status"] == "FAIL"]
        passed = f"{sum(c['status'] == 'PASS' for c in checks)}/{made} PASS" + (
            f" (FAIL: {'; '.join(failed)})" if failed else ""
        )
        ppi = (s.get("cost") or {}).get("passes_per_image")
        cells = [str(n), f"`{entry.label}`", str(s.get("protocol", "–")), str(s["images"]["complete"]),
                 _md(s["clean"].get("miou")), *(_md(entry.worst(e)) for e in budgets),
                 "–" if ppi is None else f"{ppi:.0f}", passed]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_leaderboard(directories: Sequence[str | os.PathLike[str]], out: str | os.PathLike[str]) -> Path:
    """Write the board of the robustness runs ``directories`` to ``out`` (an HTML file, written atomically)."""
    target = Path(out)
    if target.is_dir():
        raise InputError(f"{out} is a directory; give the file to write, e.g. {target / 'board.html'}")
    html = render_leaderboard(leaderboard_entries(directories))
    rundir.check_writable_dir(target.parent if str(target.parent) else Path("."))
    rundir.write_text(target, html)
    return target
