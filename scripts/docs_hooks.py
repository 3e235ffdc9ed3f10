"""MkDocs hooks of the documentation site (``hooks:`` in mkdocs.yml).

``on_page_markdown`` puts the command-line reference, generated from the ``segattack`` argument parsers by
``segattack.cli_reference.markdown()``, into ``docs/reference/cli.md`` where its marker stands, and the README into
the home page ``docs/index.md`` (one text for both landing pages: its links into ``docs/`` rewritten for the site);
every other page, and the rest of those two, is left as written.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from mkdocs.exceptions import PluginError

#: The page the reference goes into (relative to docs/), and the line it replaces there.
CLI_PAGE = "reference/cli.md"
CLI_MARKER = "<!-- cli-reference -->"
#: The home page and the line the README replaces there.
HOME_PAGE = "index.md"
README_MARKER = "<!-- readme -->"
README = Path(__file__).resolve().parents[1] / "README.md"


def readme_for_site(text: str) -> str:
    """README.md as the site's home page: links into ``docs/`` made relative to the site, links to other folders
    of the repository (``examples/``, ``docs/`` itself) shown as code, the test-command marker dropped.

    >>> readme_for_site("![r](docs/images/r.png) [t](docs/tutorial.md) in [examples/](examples/)")
    '![r](images/r.png) [t](tutorial.md) in `examples/`'
    """
    text = text.replace("<!-- test-command -->\n", "")
    text = re.sub(r"\[([^\]]+)\]\((?:docs/)?([^)]*/)\)", r"`\1`", text)  # folder links: code
    return re.sub(r"\]\(docs/", "](", text)


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """The page's Markdown, with the command-line reference in place of ``CLI_MARKER`` on ``CLI_PAGE`` and the
    README in place of ``README_MARKER`` on ``HOME_PAGE``."""
    if page.file.src_uri == HOME_PAGE:
        if README_MARKER not in markdown:
            raise PluginError(f"docs/{HOME_PAGE} has no {README_MARKER} line; put it back where the README goes")
        return markdown.replace(README_MARKER, readme_for_site(README.read_text(encoding="utf-8")))
    if page.file.src_uri != CLI_PAGE:
        return markdown
    if CLI_MARKER not in markdown:
        raise PluginError(f"docs/{CLI_PAGE} has no {CLI_MARKER} line; put it back where the reference goes")
    from segattack.cli_reference import markdown as cli_markdown

    return markdown.replace(CLI_MARKER, cli_markdown())
