"""The documentation's landing pages: the README stays short and its links resolve, the site's home page is the
README with its links rewritten, and every page of the site's navigation exists. (CI builds the whole site with
``mkdocs build --strict``, which checks every link of every page; these checks run without mkdocs.)"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

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


@pytest.mark.usefixtures("one_thread")
def test_the_readme_python_api_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The README's Python block runs as written, on two tiny synthetic scenes (``images``, ``labels`` and
    ``dataset`` are the only names it leaves to the reader)."""
    import torch

    import segattack as sa

    block = re.search(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert block is not None, "README.md has a Python block"
    dataset = sa.data.SyntheticStreets(split="val", size=(32, 64), length=2, seed=0)
    images = torch.stack([dataset[i][0] for i in range(2)]).float() / 255
    labels = torch.stack([dataset[i][1] for i in range(2)])
    monkeypatch.chdir(tmp_path)
    scope = {"images": images, "labels": labels, "dataset": dataset}
    exec(compile(block.group(1), "README.md", "exec"), scope)
    assert scope["adv"].shape == images.shape and (scope["adv"] - images).abs().max() <= 10 / 255 + 1e-6
    assert (tmp_path / "runs" / "x" / "results.jsonl").exists()


@pytest.mark.usefixtures("one_thread")
def test_the_tutorial_python_block_runs() -> None:
    """The tutorial's Python block runs as written (four scenes at 256x512, the paper's attack at eps 10) and
    hides most person pixels, as the page says."""
    block = re.search(r"```python\n(import segattack as sa\n.*?)```", (ROOT / "docs" / "tutorial.md").read_text(),
                      flags=re.S)  # fmt: skip
    assert block is not None, "docs/tutorial.md has its Python block"
    scope: dict = {}
    exec(compile(block.group(1), "docs/tutorial.md", "exec"), scope)
    assert scope["sa"].summarize(scope["m"].fooled).mean > 0.9
