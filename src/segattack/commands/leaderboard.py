"""``segattack leaderboard``: one page ranking the models of several robustness runs (no model is run)."""

from __future__ import annotations

import argparse
import sys


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "leaderboard",
        help="one sortable HTML page ranking several `segattack robustness` runs (no model is run)",
        description="Read DIR/robustness.json of every DIR and write one self-contained HTML page: per run the "
        "model, data, protocol, clean and worst-case mIoU per eps (8-bit levels), the protocol's cost in passes and "
        "seconds per image, and its sanity checks; ranked by worst-case mIoU at the largest eps all runs share, "
        "sortable by any column. Prints the same ranking as a markdown table (for a README).",
    )
    p.add_argument("dirs", nargs="+", metavar="DIR", help="output directories of `segattack robustness` runs")
    p.add_argument("--out", required=True, metavar="FILE", help="the HTML file to write, e.g. board.html")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..report.leaderboard import leaderboard_entries, leaderboard_markdown, write_leaderboard

    path = write_leaderboard(args.dirs, args.out)
    print(leaderboard_markdown(leaderboard_entries(args.dirs)), end="")
    print(f"wrote {path} ({len(args.dirs)} runs)", file=sys.stderr)
    return 0
