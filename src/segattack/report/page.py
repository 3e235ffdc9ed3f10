"""The pieces every page of a report shares: the style sheet, escaping, and images inlined as ``data:`` URIs.

The experiment's ``report.html`` (``segattack.report.html``) and the comparison's (``segattack.report.compare``) are
drawn from these, so that both look alike and neither reaches into the other's private names.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any

__all__ = ["PAGE_CSS", "esc", "data_uri", "img_tag"]

#: The style sheet of a report page (a ``<style>`` element's text): layout that follows the width of the screen,
#: the headline's statistics, tables, figures and notes.
PAGE_CSS = (
    "*{box-sizing:border-box}html{-webkit-text-size-adjust:100%;text-size-adjust:100%}"
    "body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,Helvetica,Arial,sans-serif;max-width:1100px;"
    "margin:0 auto;padding:12px 16px 40px;color:#222;background:#fafafa;line-height:1.45}"
    "h1{font-size:1.55em;margin:.4em 0 .1em;line-height:1.2}h1 small{display:block;font-size:.55em;color:#666;"
    "font-weight:400;margin-top:.25em}"
    "h2{font-size:1.2em;margin:1.8em 0 .6em;padding-bottom:.2em;border-bottom:1px solid #ddd}"
    "img{max-width:100%;height:auto}code{font-size:.92em}"
    "nav{display:flex;flex-wrap:wrap;gap:6px;margin:.6em 0 1em;font-size:.9em}"
    "nav a{padding:2px 10px;border:1px solid #ccc;border-radius:999px;color:#333;text-decoration:none;"
    "background:#fff}"
    ".headline{background:#fff;border:1px solid #ddd;border-radius:10px;padding:12px 16px 14px}"
    ".headline .lede{margin:0 0 8px;color:#444}"
    ".modes{display:grid;grid-template-columns:repeat(auto-fit,minmax(250px,1fr));gap:10px 24px}"
    ".mode h3{font-size:.8em;font-weight:600;margin:0 0 2px;color:#555;text-transform:uppercase;letter-spacing:.04em}"
    ".stats{display:flex;flex-wrap:wrap;gap:4px 22px}.stat{min-width:110px}"
    ".stat .v{font-size:2.3em;font-weight:700;line-height:1.1;font-variant-numeric:tabular-nums}"
    ".stat.hidden .v{color:#8b0000}.stat.vanish .v{color:#5a1a7a}.stat .pm{color:#777;font-size:.95em;margin-left:3px}"
    ".stat .k{display:block;font-size:.85em;color:#444}"
    ".headline .count{margin:10px 0 0;font-size:.95em}.headline .none{font-size:1.1em;margin:.3em 0}"
    ".def{font-size:.88em;color:#555;margin:.8em 0 0}"
    ".facts{display:grid;grid-template-columns:max-content minmax(0,1fr);gap:4px 14px;margin:1em 0 0;"
    "font-size:.95em}.facts dt{font-weight:600;color:#444}.facts dd{margin:0;overflow-wrap:anywhere}"
    ".facts .sub{color:#666}"
    "@media (max-width:600px){body{padding:8px 10px 32px}.facts{grid-template-columns:minmax(0,1fr);gap:0}"
    ".facts dt{margin-top:8px}.stat .v{font-size:1.9em}}"
    ".scroll{overflow-x:auto;-webkit-overflow-scrolling:touch;max-width:100%}"
    "table{border-collapse:collapse;font-size:.88em;font-variant-numeric:tabular-nums;background:#fff}"
    "td,th{border:1px solid #e2e2e2;padding:3px 7px;text-align:right}td{white-space:nowrap}"
    "th{background:#f1f1f1;font-weight:600;vertical-align:bottom;min-width:3.5em}"
    "td:first-child,th:first-child{position:sticky;left:0;background:#f7f7f7}"
    "td.l,th.l{text-align:left}tr.group td{border-top:2px solid #bbb}td small{color:#777}"
    "figure.fig{margin:0 0 1.4em;background:#fff;border:1px solid #e2e2e2;padding:6px}"
    "figure.fig figcaption{font-size:.9em;color:#333;padding:4px 2px 0}"
    "details{margin:.6em 0}summary{cursor:pointer;color:#333}"
    "pre{background:#f3f3f3;padding:1em;overflow-x:auto;font-size:.8em;max-width:100%}"
    ".note{font-size:.9em;color:#555}ul.words li{margin:.2em 0}"
)


def esc(v: Any) -> str:
    """Any value as HTML text: ``str(v)`` with ``&``, ``<``, ``>`` and quotes escaped."""
    return html.escape(str(v))


def data_uri(path: Path) -> str:
    """The PNG file ``path`` as a ``data:`` URI, so that the page needs no file beside it."""
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def img_tag(path: Path, alt: str) -> str:
    """An ``<img>`` element showing the PNG file ``path`` inline, with ``alt`` as its text."""
    return f'<img alt="{esc(alt)}" src="{data_uri(path)}">'
