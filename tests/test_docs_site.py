"""The documentation's landing pages: the README stays short and its links resolve, the site's home page is the
README with its links rewritten, and every page of the site's navigation exists. (CI builds the whole site with
``mkdocs build --strict``, which checks every link of every page; these checks run without mkdocs.)"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"


def _hooks():
    spec = importlib.util.spec_from_file_location("docs_hooks", ROOT / "scripts" / "docs_hooks.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_readme_is_a_short_landing_page() -> None:
    lines = README.read_text().splitlines()
    assert len(lines) <= 200, f"README.md has {len(lines)} lines; the landing page keeps to 200 (the rest: docs/)"
    text = "\n".join(lines)
    quick = text.index("## Quick start")
    assert quick < text.index("## Typical commands") < text.index("## Python API"), "quick start first"


def test_every_relative_link_of_the_readme_resolves() -> None:
    links = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", README.read_text())
    relative = [link for link in links if not re.match(r"[a-z]+://", link)]
    assert relative, "the README links into the documentation"
    missing = [link for link in relative if not (ROOT / link).exists()]
    assert not missing, f"README.md links to missing files {missing}"


def test_the_home_page_is_the_readme_with_site_links() -> None:
    hooks = _hooks()
    site = hooks.readme_for_site(README.read_text())
    assert "](docs/" not in site and "<!-- test-command -->" not in site
    for link in re.findall(r"\]\(([^)#\s]+)", site):
        if not re.match(r"[a-z]+://", link):
            assert (ROOT / "docs" / link).exists(), f"the home page's link {link} does not resolve inside docs/"
    assert (ROOT / "docs" / "index.md").read_text().strip() == hooks.README_MARKER


def test_every_page_of_the_navigation_exists() -> None:
    nav = re.findall(r":\s+(\S+\.md)\s*$", (ROOT / "mkdocs.yml").read_text(), flags=re.M)
    assert len(nav) > 20
    missing = [page for page in nav if not (ROOT / "docs" / page).exists()]
    assert not missing, f"mkdocs.yml's nav names missing pages {missing}"
