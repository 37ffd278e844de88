"""The command tree loads lazily and looks exactly as if it were built eagerly.

``diffwatch --help`` lists every command from ``diffwatch.cli.COMMANDS`` without importing
a command module; ``diffwatch X ...`` imports X's module alone. Both print what an eagerly
built tree (every module registered on one Typer, as before) prints.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys

import pytest
import typer
from typer.testing import CliRunner

from diffwatch.cli import COMMANDS, HELP, _main, build
from tests.helpers import REPO

# What `X --help` must not import at module level (the modules' own imports, not typer's);
# typer 0.29 carries its own copy of click, so the click package would only add start-up.
HEAVY = ("torch", "streamlit", "sqlalchemy", "alembic", "numpy", "psycopg", "open_clip", "click")
COMMAND_MODULES = sorted({c.module for c in COMMANDS.values()})
IMPORTS = """
import json, sys
from diffwatch.cli import main
sys.argv = ["diffwatch", *sys.argv[1:], "--help"]
try:
    main()
except SystemExit:
    pass
print(json.dumps(sorted(sys.modules)), file=sys.stderr)  # stdout holds the help
"""


def eager() -> typer.Typer:
    """The root with every command module imported and registered up front."""
    root = typer.Typer(
        help=HELP, no_args_is_help=True, rich_markup_mode="rich", pretty_exceptions_enable=False
    )
    root.callback()(_main)
    for name, entry in COMMANDS.items():
        importlib.import_module(entry.module).register(root, name)
    return root


def _help(app: typer.Typer, *args: str) -> str:
    res = CliRunner().invoke(app, [*args, "--help"], env={"COLUMNS": "100", "NO_COLOR": "1"})
    assert res.exit_code == 0, res.output
    return res.output


def test_the_tree_is_built_once() -> None:
    assert build() is build()


def test_the_top_help_lists_every_command_as_the_commands_themselves_say() -> None:
    """The table's help lines are the commands' own: the top help is the eager tree's."""
    lazy = _help(build())
    assert lazy == _help(eager())
    for name in COMMANDS:
        assert f"│ {name} " in lazy


@pytest.mark.parametrize("name", list(COMMANDS))
def test_each_command_runs_as_registered(name: str) -> None:
    assert _help(build(), name) == _help(eager(), name)


def test_a_mistyped_command_gets_a_suggestion() -> None:
    res = CliRunner().invoke(build(), ["scor"])
    assert res.exit_code == 2
    assert "No such command 'scor'. Did you mean 'score'?" in res.output


def _imported(*args: str) -> set[str]:
    """The modules a fresh interpreter holds after ``diffwatch ARGS --help``."""
    out = subprocess.run(
        [sys.executable, "-c", IMPORTS, *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return set(json.loads(out.stderr.strip().splitlines()[-1]))


def _heavy(mods: set[str]) -> set[str]:
    return {m for m in mods if m.split(".")[0] in HEAVY}


def test_the_top_help_imports_no_command_module() -> None:
    mods = _imported()
    assert not mods & set(COMMAND_MODULES)
    assert not _heavy(mods)


@pytest.mark.parametrize("name", list(COMMANDS))
def test_a_commands_help_imports_its_module_alone_and_nothing_heavy(name: str) -> None:
    mods = _imported(name)
    own = COMMANDS[name].module
    assert own in mods
    assert not (mods & set(COMMAND_MODULES)) - {own}
    assert not _heavy(mods), f"diffwatch {name} --help imports {sorted(_heavy(mods))}"
