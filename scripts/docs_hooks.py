"""MkDocs hooks of the documentation site (``hooks:`` in mkdocs.yml).

``on_page_markdown`` puts the command-line reference, generated from the ``segattack`` argument parsers by
``segattack.cli_reference.markdown()``, into ``docs/reference/cli.md`` where its marker stands; every other page, and
the rest of that one, is left as written.
"""

from __future__ import annotations

from typing import Any

from mkdocs.exceptions import PluginError

#: The page the reference goes into (relative to docs/), and the line it replaces there.
CLI_PAGE = "reference/cli.md"
CLI_MARKER = "<!-- cli-reference -->"


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """The page's Markdown, with the command-line reference in place of ``CLI_MARKER`` on ``CLI_PAGE``."""
    if page.file.src_uri != CLI_PAGE:
        return markdown
    if CLI_MARKER not in markdown:
        raise PluginError(f"docs/{CLI_PAGE} has no {CLI_MARKER} line; put it back where the reference goes")
    from segattack.cli_reference import markdown as cli_markdown

    return markdown.replace(CLI_MARKER, cli_markdown())
