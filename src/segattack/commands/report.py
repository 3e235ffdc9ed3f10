"""``segattack report``: redraw every figure, summary.csv and report.html of a run from its result files."""

from __future__ import annotations

import argparse
import sys


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "report",
        help="redraw figures, summary.csv and report.html of a run from its result files (no model is run)",
        description="Read DIR/results.jsonl, config.json and figure1_<id>.npz and write summary.csv (mean, population "
        "std, count, missing per eps and mode; rates as fractions, eps in 8-bit levels), figure2.png/.svg/.pdf, "
        "figure1_<id>.png and report.html; for a run with --survive also survival.csv and survival.png/.svg. Prints "
        "the summary sentences, then one per --survive transform. Works on an unfinished run too.",
    )
    p.add_argument("dir", metavar="DIR", help="output directory of `segattack run` or `segattack demo`")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..report import write_report

    report = write_report(args.dir, log_dropped=False)
    if report.dropped_rows is not None:  # e.g. "report: dropped 3 rows of results.jsonl (2 duplicates, ...)"
        print(f"report: {report.dropped_rows}", file=sys.stderr)
    for path in [report.html_path, *report.figures]:
        print(f"wrote {path}", file=sys.stderr)
    for line in [*report.sentences, *report.survival_sentences]:
        print(line)
    return 0
