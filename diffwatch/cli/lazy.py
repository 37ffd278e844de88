"""Command groups that import their module only when run: click's "lazily loading
subcommands", for typer.

The root command names each group's module and short help in a table (``LazyCommand``).
``diffwatch --help`` lists the groups from that table and imports none of them;
``diffwatch X ...`` imports X's module alone, whose ``register(root, name)`` adds X to a
Typer exactly as it would be added to the root, and runs it.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import typer
import typer.main
from typer.core import TyperCommand, TyperGroup

if TYPE_CHECKING:  # typer's own copy of click (typer 0.29 no longer uses the click package)
    from typer._click import Command, Context, HelpFormatter

__all__ = ["LazyCommand", "LazyGroup"]

_LISTING = "diffwatch.cli.lazy.listing"  # ctx.meta key: the group is listing its commands


@dataclass(frozen=True)
class LazyCommand:
    """A command of the root: the module that registers it, and the help line the root's
    --help shows for it (the first paragraph of the command's own help)."""

    module: str
    help: str


class LazyGroup(TyperGroup):
    """A TyperGroup whose commands come from ``lazy``, a table set by a subclass.

    While the group lists its commands (its --help, shell completion of a command name)
    each one is a stand-in with the table's help; anywhere else ``get_command`` imports the
    command's module and returns the real command.
    """

    lazy: ClassVar[Mapping[str, LazyCommand]] = {}

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        # Stand-ins, in the table's order: the names click lists, suggests and completes.
        for name, entry in self.lazy.items():
            self.commands[name] = TyperCommand(
                name, help=entry.help, rich_markup_mode=self.rich_markup_mode
            )
        self._loaded: dict[str, Command] = {}

    def get_command(self, ctx: Context, cmd_name: str) -> Command | None:
        """The stand-in while listing, else the command from its module (None if unknown)."""
        if cmd_name not in self.lazy or ctx.meta.get(_LISTING):
            return super().get_command(ctx, cmd_name)
        if cmd_name not in self._loaded:
            self._loaded[cmd_name] = self._load(cmd_name)
        return self._loaded[cmd_name]

    def _load(self, name: str) -> Command:
        """Import ``name``'s module and build its click command as the root would have:
        same markup mode and suggestions, added under ``name`` by the module's register."""
        entry = self.lazy[name]
        holder = typer.Typer(
            rich_markup_mode=self.rich_markup_mode,
            suggest_commands=self.suggest_commands,
            add_completion=False,
        )
        importlib.import_module(entry.module).register(holder, name)
        command = typer.main.get_group(holder).commands.get(name)
        if command is None:
            raise RuntimeError(f"{entry.module}.register() added no command named {name!r}")
        return command

    @contextmanager
    def _listing(self, ctx: Context) -> Iterator[None]:
        ctx.meta[_LISTING] = True
        try:
            yield
        finally:
            ctx.meta.pop(_LISTING, None)

    def format_help(self, ctx: Context, formatter: HelpFormatter) -> None:
        """The group's help, listing its commands from the table (imports none of them)."""
        with self._listing(ctx):
            super().format_help(ctx, formatter)

    def shell_complete(self, ctx: Context, incomplete: str) -> list[Any]:
        """Completions of a command name from the table (imports none of them)."""
        with self._listing(ctx):
            return super().shell_complete(ctx, incomplete)
