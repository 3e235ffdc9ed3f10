"""The command-line reference page: generated from the parsers (every command and option on it), rendered as
literal text, and put into docs/reference/cli.md by the site's hook."""

from __future__ import annotations

import argparse
import html
import importlib.util
import re
from pathlib import Path
from types import ModuleType

import markdown as md
import pytest
from mkdocs.config.defaults import MkDocsConfig
from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File
from mkdocs.structure.pages import Page

from segattack import cli, cli_reference

ROOT = Path(__file__).resolve().parents[1]


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(sub.choices)


def section(text: str, name: str) -> str:
    """The part of the page under ``## segattack NAME``, up to the next command."""
    start = text.index(f"\n## segattack {name}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end >= 0 else len(text)]


@pytest.fixture(scope="module")
def page() -> str:
    return cli_reference.markdown()


def test_every_command_and_argument_is_on_the_page(page: str) -> None:
    commands = subcommands(cli.build_parser())
    assert list(commands) == list(cli.COMMANDS)
    headings = re.findall(r"^## segattack (\S+)$", page, flags=re.MULTILINE)
    assert headings == list(cli.COMMANDS)  # the parser's order
    for name, parser in commands.items():
        text = section(page, name)
        assert "```text\nsegattack " + name in text  # the usage line
        for action in parser._actions:
            for option in action.option_strings:
                assert re.search(rf"`{re.escape(option)}[ `]", text), f"{option} of segattack {name} is not on the page"
            if not action.option_strings:
                assert f"`{action.metavar or action.dest}" in text.split("```")[2]  # in the table
    assert "`--verbose`" in page.split("## ")[0]  # the global option


def test_help_text_is_expanded_as_argparse_does(page: str) -> None:
    run = section(page, "run")
    row = next(line for line in run.splitlines() if "`--instance-threshold SHARE`" in line)
    assert "| `0.95` |" in row
    assert "vanishes entirely when at least this share of its pixels is hidden (default: 0.95)" in row
    assert "%(" not in page


def test_choices_required_and_mutually_exclusive_options(page: str) -> None:
    attack = section(page, "attack")
    restrict = next(line for line in attack.splitlines() if "`--restrict " in line)
    assert "Choices: `none`, `posthoc`, `during`." in restrict
    out = next(line for line in attack.splitlines() if "`--out " in line)
    assert "| required |" in out
    patch = section(page, "patch")
    assert "Mutually exclusive: at most one of `--patch-size`, `--patch-share`." in patch
    assert "Mutually exclusive: at most one of `--at`, `--on`." in patch
    assert "Not together with `--patch-share`." in patch
    assert "Mutually exclusive" not in section(page, "run")


def test_the_page_is_the_parser_not_a_copy(monkeypatch: pytest.MonkeyPatch) -> None:
    """An option added to the parser appears on the page, with its help and default."""
    build = cli.build_parser

    def with_extra_option() -> argparse.ArgumentParser:
        parser = build()
        subcommands(parser)["eval"].add_argument(
            "--made-up-option", metavar="WIDGETS", default=7, help="a made-up option (default: %(default)s)"
        )
        return parser

    assert "--made-up-option" not in cli_reference.markdown()
    monkeypatch.setattr(cli, "build_parser", with_extra_option)
    text = section(cli_reference.markdown(), "eval")
    row = next(line for line in text.splitlines() if "`--made-up-option WIDGETS`" in line)
    assert row.endswith("| `7` | a made-up option (default: 7) |")
    assert "--made-up-option" in text.split("```")[1]  # the usage line too


def test_the_page_does_not_depend_on_the_terminal(page: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "40")
    assert cli_reference.markdown() == page


def test_markdown_characters_stay_literal() -> None:
    """Help text with table and emphasis characters renders as the same text, in one cell of a three-column row."""
    parser = argparse.ArgumentParser(prog="tool", description="a *b* c_d_e <f>")
    sub = parser.add_subparsers(metavar="COMMAND")
    one = sub.add_parser("one", help="first")
    help_text = "a|b, <tag> & *stars* with snake_case_name, `code | span` and [brackets]"
    one.add_argument("--odd", metavar="A|B", default="x|y", choices=["x|y", "z"], help=help_text)
    one.add_argument("--many", action="append", default=[], help="one more")
    text = cli_reference.markdown(parser)
    assert "| — | one more<br>Repeatable. |" in text
    rendered = md.markdown(text, extensions=["tables", "toc"])
    rows = re.findall(r"<tr>(.*?)</tr>", rendered, flags=re.DOTALL)
    (odd,) = [r for r in rows if "--odd" in r]
    cells = re.findall(r"<td>(.*?)</td>", odd, flags=re.DOTALL)
    assert len(cells) == 3
    help_cell, choices = re.split(r"<br\s*/?>", cells[2])
    assert html.unescape(re.sub(r"<[^>]+>", "", help_cell)) == help_text.replace("`", "")
    assert html.unescape(re.sub(r"<[^>]+>", "", choices)) == "Choices: x|y, z."
    assert html.unescape(re.sub(r"<[^>]+>", "", cells[0])) == "--odd A|B"
    assert "<code>code | span</code>" in cells[2]
    assert "<em>" not in rendered and "<tag>" not in rendered
    assert "a *b* c_d_e <f>" in html.unescape(re.sub(r"<[^>]+>", "", rendered))
    assert 'white-space: nowrap"><code>--odd A|B</code></span>' in cells[0]  # the option name is not broken
    assert 'id="tool-one"' in rendered and 'href="#tool-one"' in rendered  # the commands table links to the section


def load_hooks() -> ModuleType:
    spec = importlib.util.spec_from_file_location("docs_hooks", ROOT / "scripts" / "docs_hooks.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def mkdocs_page(src_uri: str) -> Page:
    config = MkDocsConfig()
    file = File(src_uri, str(ROOT / "docs"), "/nonexistent-site", use_directory_urls=True)
    return Page(None, file, config)


def test_hook_replaces_the_marker_on_the_cli_page_only(page: str) -> None:
    hooks = load_hooks()
    source = (ROOT / "docs" / "reference" / "cli.md").read_text(encoding="utf-8")
    assert source.count(hooks.CLI_MARKER) == 1
    out = hooks.on_page_markdown(source, page=mkdocs_page("reference/cli.md"), config=MkDocsConfig(), files=None)
    assert hooks.CLI_MARKER not in out
    before, _, after = source.partition(hooks.CLI_MARKER)
    assert out == before + page + after  # the rest of the page as written
    assert out.startswith("# Command line\n")
    other = "# Tutorial\n\n" + hooks.CLI_MARKER + "\n"
    assert hooks.on_page_markdown(other, page=mkdocs_page("tutorial.md"), config=None, files=None) == other


def test_hook_refuses_a_cli_page_without_its_marker() -> None:
    hooks = load_hooks()
    with pytest.raises(PluginError, match="cli-reference"):
        hooks.on_page_markdown("# Command line\n", page=mkdocs_page("reference/cli.md"), config=None, files=None)
