"""The README matches the code: its format, factor and command tables list exactly what the registries and
the CLI hold, and CI runs the README's own test command."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from profile_dist.cli import build_parser
from profile_dist.factors import all_factors
from profile_dist.sources import all_sources

REPO = Path(__file__).resolve().parent.parent
README = (REPO / "README.md").read_text()


def table(header: str) -> list[list[str]]:
    """The rows (cells stripped) of the README table whose header row starts with ``header``."""
    lines = README.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header))
    rows = []
    for line in lines[start + 2:]:  # past the header and its |---| line
        if not line.startswith("|"):
            break
        rows.append([cell.strip().replace("\x00", "|") for cell in line.replace("\\|", "\x00").strip().strip("|").split("|")])
    return rows


def code(cell: str) -> list[str]:
    return re.findall(r"`([^`]+)`", cell)


def test_format_table_lists_every_registered_format():
    listed = [code(row[0])[0] for row in table("| format | layout |")]
    assert sorted(listed) == sorted(s.name for s in all_sources())


def test_factor_table_lists_every_registered_factor_with_its_kind():
    listed = {code(row[0])[0]: row[1] for row in table("| factor | kind |")}
    assert listed == {f.name: f.kind for f in all_factors()}


def _commands(parser: argparse.ArgumentParser, prefix: str = "") -> set[str]:
    """Every runnable command: a subcommand, or for groups (export, improve) each of theirs."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        return {prefix.strip()}
    return {c for name, sub in subs[0].choices.items() for c in _commands(sub, f"{prefix} {name}")}


def test_command_table_lists_every_cli_command():
    parser = build_parser()
    commands = _commands(parser)
    groups = {c.split()[0] for c in commands if " " in c}
    listed = set()
    for row in table("| command | what it does |"):
        for snippet in code(row[0]):
            words = snippet.split()
            assert words[0] == "profile-dist", snippet
            listed.add(" ".join(words[1:3] if words[1] in groups else words[1:2]))
    assert listed == commands


def test_ci_runs_the_readme_test_command():
    section = README.split("## The two commands", 1)[1].split("\n## ", 1)[0]
    setup, test = re.findall(r"```bash\n(.*?)\n```", section, re.S)
    ci = (REPO / ".ci" / "run").read_text().splitlines()
    assert test.strip() in ci, f"{test!r} is not a line of .ci/run"
    # .ci/run installs the project the way the README's set-up command does.
    assert setup.startswith('python3 -m venv .venv && .venv/bin/pip install -q -e ".[dev]"')
    assert 'python3 -m venv .venv' in ci and '.venv/bin/pip install -q -e ".[dev]"' in ci
