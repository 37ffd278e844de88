"""The single ``diffwatch`` command: a thin shell over the stages.

One module per command group (``db``, ``collect``, ``score``, ``drift``, ``rollups``, ``app``,
``users``, ``review``, ``alerts``, ``worker``, ``demo``, ``deploy``, ``gate``, ``bias``); each one
parses typed options and calls its stage's API. Shared option definitions are in ``options``,
the helpers every command uses (resolving the database, failing with a person's message) in
``common``.

The groups load lazily (``lazy``): ``COMMANDS`` names each one's module and the help line
``diffwatch --help`` shows for it, so ``diffwatch --help`` imports no group module and
``diffwatch X ...`` imports X's alone. Modules import only ``typer`` and the standard
library at import time (and light constants); heavy imports happen inside the commands.
"""

from __future__ import annotations

import functools
import logging
from typing import Annotated

import typer

from diffwatch.cli.lazy import LazyCommand, LazyGroup

__all__ = ["COMMANDS", "build", "main"]

HELP = (
    "Monitor text-to-image diffusion models in production: cost, speed, quality, "
    "safety, drift and human ratings."
)

# Every command of the root, in the order of its --help: the module whose register() adds
# it, and its help line there, which is the first paragraph of the command's own help
# (tests/unit/test_cli_build.py holds them equal).
COMMANDS: dict[str, LazyCommand] = {
    "demo": LazyCommand(
        "diffwatch.cli.demo",
        "Simulate a generation service and ingest its logs, images and GPU metrics.",
    ),
    "score": LazyCommand(
        "diffwatch.cli.score",
        "Score generations' images: CLIP prompt alignment and NSFW flags, exactly once.",
    ),
    "app": LazyCommand(
        "diffwatch.cli.app",
        "Serve the ops dashboard (cost, latency, GPU, quality, model versions).",
    ),
    "worker": LazyCommand(
        "diffwatch.cli.worker",
        "Run the periodic jobs: rollups, indexing of new image embeddings, alert evaluation,\n"
        "alert delivery (email, webhooks, Alertmanager) and (optionally) the review queue, until\n"
        "Ctrl-C or SIGTERM.",
    ),
    "db": LazyCommand("diffwatch.cli.db", "Create and migrate the database schema."),
    "collect": LazyCommand(
        "diffwatch.cli.collect",
        "Ingest generation logs (files, or HTTP for services) and GPU metrics.",
    ),
    "drift": LazyCommand(
        "diffwatch.cli.drift",
        "Drift checks: prompt-distribution drift, and output drift by re-generating logged "
        "prompts (and a golden set) with the production diffusers pipeline.",
    ),
    "rollups": LazyCommand(
        "diffwatch.cli.rollups", "Maintain the dashboard's rollups (minute and hour buckets)."
    ),
    "export": LazyCommand(
        "diffwatch.cli.export",
        "Export metrics to other monitoring systems: a Prometheus endpoint (docs/prometheus.md).",
    ),
    "users": LazyCommand(
        "diffwatch.cli.users",
        "Local accounts (roles admin, ops, rater) and the audit log. Passwords are read "
        "from a hidden prompt or with --password-stdin, never from arguments.",
    ),
    "review": LazyCommand(
        "diffwatch.cli.review",
        "The human review queue: pick generations for raters by a sampling policy "
        "(docs/review-queue.md).",
    ),
    "alerts": LazyCommand(
        "diffwatch.cli.alerts",
        "Alert rules and emails: rules on quality, safety, cost, latency, errors, GPU idle, "
        "drift and human ratings, evaluated on a schedule and sent over SMTP (docs/alerts.md).",
    ),
    "deploy": LazyCommand(
        "diffwatch.cli.deploy",
        "Deploy markers: record that a model version went out, and see it on every "
        "time-series chart of the dashboard (docs/deploy-markers.md).",
    ),
    "gate": LazyCommand(
        "diffwatch.cli.gate",
        "Release gate: evaluate a candidate pipeline against the baseline on paired prompts "
        "and seeds (alignment, distribution, safety, golden sets, serving cost), with a policy "
        "and an exit code for CI: 0 pass, 1 fail, 3 inconclusive, 2 error (docs/gate.md).",
    ),
    "bias": LazyCommand(
        "diffwatch.cli.bias",
        "Bias probe: the perceived gender presentation, skin tone and age of the people a "
        "model draws for neutral prompts, per version and over time; skew metrics of any "
        "table of counts (docs/bias.md). Perceived attributes of generated images, never "
        "facts about people.",
    ),
}


class RootGroup(LazyGroup):
    """The ``diffwatch`` group: its commands are ``COMMANDS``, each loaded when run."""

    lazy = COMMANDS


def _main(
    verbose: Annotated[int, typer.Option("--verbose", "-v", count=True, help="More logs.")] = 0,
) -> None:
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


@functools.cache
def build() -> typer.Typer:
    """The ``diffwatch`` command, built once per process; its commands load when run."""
    root = typer.Typer(
        cls=RootGroup,
        help=HELP,
        no_args_is_help=True,
        rich_markup_mode="rich",
        pretty_exceptions_enable=False,
    )
    root.callback()(_main)
    return root


def main() -> None:
    """Entry point of the ``diffwatch`` console script."""
    build()()
