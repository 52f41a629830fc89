"""Generate .env.example and the README's settings table from the table: ``python3 -m comfyq.config``."""
from __future__ import annotations

import argparse
import sys
import textwrap
from pathlib import Path
from typing import Sequence

from .setting import Setting
from .table import SETTINGS

README_START = ".. settings-table-start"
README_END = ".. settings-table-end"
MEANING_WIDTH = 48  # columns of the README table's middle column; longer text wraps onto continuation lines
DEFAULT_WIDTH = 28
ENV_HEADER = """\
# Generated from comfyq/config/table.py by `python3 -m comfyq.config write`: edit the table, not this file.
# Copy to .env for `honcho start` (the Procfile). Every comfyq process reads these settings, except those
# marked with the one command that reads them (CLI: the command-line client).
# A commented-out line shows the default (or an example): uncomment it to change the setting.
"""


def meaning(setting: Setting) -> str:
    """Return what the setting means, prefixed by the one command that reads it, if only one does."""
    return f"{setting.reader}: {setting.doc}" if setting.reader else setting.doc


def plain(text: str) -> str:
    """Return reStructuredText ``text`` without its literal markup, for a comment."""
    return text.replace("``", "")


def wrap(text: str, width: int) -> list[str]:
    """Return ``text`` in lines of about ``width`` characters, broken only at spaces."""
    return textwrap.wrap(text, width, break_long_words=False, break_on_hyphens=False)


def env_example(settings: Sequence[Setting] = SETTINGS) -> str:
    """Return .env.example: each setting with its meaning, kind and default, set where the table says."""
    blocks = [ENV_HEADER]
    for setting in settings:
        line = f"{setting.name}={setting.env_value()}"
        blocks.append(f"# {plain(meaning(setting))} [{setting.kind.label}; default: {plain(setting.default_text())}]\n"
                      f"{line if setting.active else '# ' + line}\n")
    return "\n".join(blocks)


def readme_table(settings: Sequence[Setting] = SETTINGS) -> str:
    """Return the README's settings table, an RST simple table of name, meaning and default."""
    rows = [([f"``{s.name}``"], wrap(meaning(s), MEANING_WIDTH),
             wrap(s.default_text(), DEFAULT_WIDTH)) for s in settings]
    widths = [max(len(line) for row in rows for line in row[column]) for column in range(3)]
    border = "  ".join("=" * width for width in widths)
    lines = [border]
    for row in rows:
        for index in range(max(len(cells) for cells in row)):
            cells = [cells[index] if index < len(cells) else "" for cells in row]
            lines.append("  ".join(cell.ljust(width) for cell, width in zip(cells, widths)).rstrip())
    lines.append(border)
    return "\n".join(lines) + "\n"


def with_readme_table(readme: str, settings: Sequence[Setting] = SETTINGS) -> str:
    """Return ``readme`` with the table between its settings-table comments regenerated."""
    head, start, rest = readme.partition(README_START + "\n")
    _, end, tail = rest.partition(README_END + "\n")
    if not start or not end:
        raise ValueError(f"the README lacks the lines {README_START!r} and {README_END!r} around its table")
    return f"{head}{start}\n{readme_table(settings)}\n{end}{tail}"


def main(argv: Sequence[str] | None = None) -> int:
    """Print .env.example or the README table, or write both into a checkout."""
    parser = argparse.ArgumentParser(prog="python3 -m comfyq.config", description=main.__doc__)
    parser.add_argument("what", choices=("env", "readme", "write"),
                        help="env: print .env.example; readme: print the README table; "
                             "write: rewrite .env.example and README.rst in --root")
    parser.add_argument("--root", type=Path, default=Path.cwd(), help="the checkout (default: this directory)")
    args = parser.parse_args(argv)
    if args.what == "env":
        sys.stdout.write(env_example())
    elif args.what == "readme":
        sys.stdout.write(readme_table())
    else:
        readme = args.root / "README.rst"
        try:
            text = with_readme_table(readme.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            parser.error(str(exc))
        readme.write_text(text, encoding="utf-8")
        (args.root / ".env.example").write_text(env_example(), encoding="utf-8")
        print(f"wrote {readme} and {args.root / '.env.example'}")
    return 0
