"""The command-line reference page of the documentation, generated from the ``segattack`` argument parsers.

``markdown()`` walks the parser ``segattack.cli.build_parser`` builds (its subcommands, argument groups, mutually
exclusive groups and actions, in the parser's order) and writes one section per subcommand: its description, its usage
line and a table of its arguments. The documentation site inserts it into ``docs/reference/cli.md`` at build time
(``scripts/docs_hooks.py``), so the page cannot drift from ``segattack COMMAND --help``.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterable

__all__ = ["markdown", "USAGE_WIDTH"]

#: Columns the usage lines are wrapped at (fixed, so the page does not depend on the terminal it was built in).
USAGE_WIDTH = 100

# Characters that Markdown would read as markup in running text; ``<`` and ``&`` become entities instead.
_ESCAPED = re.compile(r"([\\*_\[\]|#])")
_CODE_SPAN = re.compile(r"(`[^`]+`)")


def _escape(text: str, *, table: bool = True) -> str:
    """``text`` as literal Markdown: ``*``, ``_``, ``[``, ``]``, ``#``, ``\\`` (and ``|`` in a table cell)
    backslash-escaped, ``&``, ``<`` and ``>`` as entities, line breaks as spaces. Code spans (text between a pair of
    backticks) are kept as code; an unpaired backtick is escaped."""
    text = " ".join(text.split())
    parts = _CODE_SPAN.split(text) if text.count("`") % 2 == 0 else [text]
    out = []
    for i, part in enumerate(parts):
        if i % 2 == 1:  # a code span: Markdown shows its text as is (a pipe in it does not split a table cell)
            out.append(part)
            continue
        part = part.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        part = _ESCAPED.sub(lambda m: "\\" + m.group(1) if table or m.group(1) != "|" else m.group(1), part)
        out.append(part.replace("`", "\\`"))
    return "".join(out)


def _code(text: str) -> str:
    """``text`` as a code span (with a longer fence where it holds backticks itself)."""
    fence = "``" if "`" in text else "`"
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _nowrap(text: str) -> str:
    """``text`` kept on one line in the rendered page (a narrow table column would break an option name)."""
    return f'<span style="white-space: nowrap">{text}</span>'


def _formatter(parser: argparse.ArgumentParser) -> argparse.HelpFormatter:
    """The parser's own help formatter, at a fixed width (every ``HelpFormatter`` takes one; typeshed's
    ``_FormatterClass`` names only ``prog``)."""
    return parser.formatter_class(prog=parser.prog, width=USAGE_WIDTH)  # type: ignore[call-arg]


def _usage(parser: argparse.ArgumentParser) -> str:
    """The usage line argparse prints, without its ``usage:`` prefix, wrapped at ``USAGE_WIDTH`` columns."""
    formatter = _formatter(parser)
    formatter.add_usage(parser.usage, parser._actions, parser._mutually_exclusive_groups, prefix="")
    return formatter.format_help().strip("\n")


def _default(action: argparse.Action) -> str:
    """The Default cell: ``required``, ``on``/``off`` for a flag, the value as a code span, or a dash for none."""
    if action.required:
        return "required"
    default = action.default
    if isinstance(action, argparse.BooleanOptionalAction):
        return "on" if default else "off"
    if action.nargs == 0:  # store_true, store_false, store_const, help, version: a switch, not given by default
        return "—" if isinstance(action, (argparse._HelpAction, argparse._VersionAction)) else "off"
    if default is None or default is argparse.SUPPRESS or default == "" or default == []:
        return "—"
    if isinstance(default, (list, tuple)) and action.nargs is not None:
        return _code(" ".join(map(str, default)))  # as it is typed: --scale 0.75 1.5
    return _code(str(default))


def _invocation(formatter: argparse.HelpFormatter, action: argparse.Action) -> str:
    """The Argument cell: argparse's own spelling (``-v, --verbose``, ``--eps LIST``, ``DIR [DIR ...]``), each form
    a code span on one line."""
    if action.option_strings:
        forms = formatter._format_action_invocation(action).split(", ")
    else:
        forms = [formatter._format_args(action, formatter._get_default_metavar_for_positional(action))]
    return ", ".join(_nowrap(_code(form)) for form in forms)


def _description(
    formatter: argparse.HelpFormatter, action: argparse.Action, exclusive: dict[argparse.Action, list[str]]
) -> str:
    """The Description cell: the help text with ``%(default)s`` and the like expanded as argparse does, then the
    choices, whether it repeats (where the help does not say so) and the options it excludes, each on a line."""
    parts = []
    if action.help:
        parts.append(_escape(formatter._expand_help(action)))
    if action.choices is not None and not isinstance(action, argparse._SubParsersAction):
        parts.append("Choices: " + ", ".join(_code(str(c)) for c in action.choices) + ".")
    repeats = isinstance(action, (argparse._AppendAction, argparse._AppendConstAction, argparse._CountAction))
    if repeats and "repeatable" not in (action.help or "").lower():
        parts.append("Repeatable.")
    if action in exclusive:
        parts.append("Not together with " + ", ".join(_code(o) for o in exclusive[action]) + ".")
    return "<br>".join(parts) or "—"


def _name(action: argparse.Action) -> str:
    """The action's first option string, or a positional argument's metavar (or dest)."""
    if action.option_strings:
        return action.option_strings[0]
    return str(action.metavar) if isinstance(action.metavar, str) else action.dest


def _exclusive(parser: argparse.ArgumentParser) -> dict[argparse.Action, list[str]]:
    """Each action of a mutually exclusive group -> the first option strings of the others in its group."""
    out: dict[argparse.Action, list[str]] = {}
    for group in parser._mutually_exclusive_groups:
        for action in group._group_actions:
            others = [a for a in group._group_actions if a is not action]
            out[action] = [_name(a) for a in others]
    return out


def _table(parser: argparse.ArgumentParser, actions: Iterable[argparse.Action]) -> list[str]:
    """The rows of one argument group's table."""
    formatter = _formatter(parser)
    exclusive = _exclusive(parser)
    rows = ["| Argument | Default | Description |", "| --- | --- | --- |"]
    for action in actions:
        if action.help is argparse.SUPPRESS or isinstance(action, argparse._SubParsersAction):
            continue
        rows.append(f"| {_invocation(formatter, action)} | {_default(action)} | "
                    f"{_description(formatter, action, exclusive)} |")  # fmt: skip
    return rows


def _groups(parser: argparse.ArgumentParser) -> list[str]:
    """A table per argument group, in the order ``--help`` shows them, and a note per mutually exclusive group."""
    lines: list[str] = []
    for group in parser._action_groups:
        actions = [a for a in group._group_actions if not isinstance(a, argparse._SubParsersAction)]
        if not actions:
            continue
        title = group.title or "arguments"
        lines += ["", f"**{_escape(title[:1].upper() + title[1:], table=False)}**", ""]
        if group.description:
            lines += [_escape(group.description, table=False), ""]
        lines += _table(parser, actions)
    for group in parser._mutually_exclusive_groups:
        names = [_code(_name(a)) for a in group._group_actions]
        what = "exactly one" if group.required else "at most one"
        lines += ["", f"Mutually exclusive: {what} of {', '.join(names)}."]
    return lines


def _subcommands(parser: argparse.ArgumentParser) -> list[tuple[str, str, argparse.ArgumentParser]]:
    """``(name, short help, parser)`` of every subcommand, in the order ``segattack --help`` lists them."""
    out = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help or "" for a in action._choices_actions}
            out += [(name, helps.get(name, ""), sub) for name, sub in action.choices.items()]
    return out


def _anchor(heading: str) -> str:
    """The id the ``toc`` extension gives a heading of plain words."""
    return re.sub(r"[-\s]+", "-", re.sub(r"[^\w\s-]", "", heading).strip().lower())


def markdown(parser: argparse.ArgumentParser | None = None) -> str:
    """The command-line reference as Markdown: an introduction (the top-level description and global options), a
    table of the subcommands, then per subcommand a ``## segattack NAME`` section with its description, its usage and
    a table of every argument per group. ``parser``: default ``segattack.cli.build_parser()``."""
    if parser is None:
        from . import cli

        parser = cli.build_parser()
    commands = _subcommands(parser)
    lines = [_escape(parser.description or "", table=False), "", "```text", _usage(parser), "```"]
    lines += _groups(parser)
    lines += ["", "**Commands**", "", "| Command | What it does |", "| --- | --- |"]
    for name, short, sub in commands:
        lines.append(f"| {_nowrap(f'[{_code(name)}](#{_anchor(sub.prog)})')} | {_escape(short)} |")
    for _command, short, sub in commands:
        lines += ["", f"## {sub.prog}", ""]
        lines += [_escape(sub.description or short, table=False), "", "```text", _usage(sub), "```"]
        lines += _groups(sub)
        if sub.epilog:
            lines += ["", _escape(sub.epilog, table=False)]
    return "\n".join(lines).strip("\n") + "\n"


if __name__ == "__main__":  # python -m segattack.cli_reference: the page, to read
    print(markdown(), end="")
