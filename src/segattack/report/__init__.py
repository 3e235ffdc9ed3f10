"""Reports of an experiment directory: summary table, the paper's Figures 1 and 2, one HTML page.

Everything here reads result files (``results.jsonl``, ``config.json``, ``figure1_<id>.npz``); nothing runs a model.
"""

from .figures import figure1, figure2, panels_figure
from .html import Report, render_html, write_report
from .summary import SUMMARY_METRICS, class_phrase, sentences, summarize_results, summarize_rows, write_summary_csv

__all__ = [
    "summarize_results",
    "summarize_rows",
    "write_summary_csv",
    "sentences",
    "class_phrase",
    "SUMMARY_METRICS",
    "figure1",
    "figure2",
    "panels_figure",
    "render_html",
    "write_report",
    "Report",
]
