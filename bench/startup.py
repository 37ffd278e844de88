"""Start-up benchmark: ``diffwatch --help`` and every ``diffwatch <group> --help``.

The groups are the ones the measured code's top-level command lists (asked of the code
itself, so a new group is measured without editing this file); ``GROUPS`` must be among them.
Each command runs ``--runs`` times as a fresh subprocess (the console script's own code path,
``python -m diffwatch.cli``); its figure is the best run (the least disturbed by other work on
the machine). The baselines, measured in the same run and interleaved with the commands, are the
interpreter alone (``python -c pass``), the CLI library alone (``python -c "import typer"``)
and a two-command typer app's ``hello --help`` (typer's floor for any subcommand: it coerces
parameters through pydantic): what no diffwatch change can remove. The goal is 0.3 s of wall
time for every command (``pass``, and ``pass_by_command``); ``overhead_s`` is each figure less
the ``import typer`` baseline; ``cpu_s`` (user + system) moves much less than wall time on a
loaded machine. ``own_import_ms`` is what diffwatch's own modules take to import in each
command (the self time ``python -X importtime`` gives them, best of N; typer, rich and
pydantic excluded) and ``own_modules`` how many there are: the part this code controls, and
steadier than wall time under load. ``--before DIR`` also measures another checkout (e.g.
``git archive`` of an older commit unpacked in a directory) in the same rounds, interleaved,
and reports it under ``before``.

Prints ONE JSON object on stdout; progress goes to stderr. ``--smoke``: one run each, a few
seconds. Run ``python bench/startup.py -h``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
GOAL_S = 0.3
# The groups that must be there (ARCHITECTURE's CLI contract and those added since); the
# ones measured are whatever the measured code lists.
GROUPS = (
    "db",
    "collect",
    "score",
    "drift",
    "rollups",
    "app",
    "users",
    "review",
    "alerts",
    "worker",
    "demo",
)


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "diffwatch.cli", *args]


# The CLI library's own floor for a subcommand's --help: typer 0.29 coerces every parameter
# through pydantic (typer._adapters), so any subcommand run imports pydantic and rich.
TYPER_SUBCOMMAND = """
import typer
app = typer.Typer()
@app.callback()
def main(verbose: int = typer.Option(0, "--verbose", "-v", count=True)) -> None: pass
@app.command()
def hello(name: str = "x") -> None: pass
app(["hello", "--help"])
"""


# Where the measured code is and what its top-level command lists (click's own list: the
# same for an eager command tree and a lazy one).
PROBE = """
import json, click, typer.main
import diffwatch.cli as c
group = typer.main.get_command(c.build())
print(json.dumps({"file": c.__file__, "commands": group.list_commands(click.Context(group))}))
"""

BASELINES = {
    "baseline: python -c pass": [sys.executable, "-c", "pass"],
    "baseline: import typer": [sys.executable, "-c", "import typer"],
    "baseline: typer subcommand --help": [sys.executable, "-c", TYPER_SUBCOMMAND],
}


def cli_commands(groups: list[str]) -> dict[str, list[str]]:
    """``diffwatch --help`` and each group's ``--help`` by label."""
    out = {"diffwatch --help": _cli("--help")}
    for g in groups:
        out[f"diffwatch {g} --help"] = _cli(g, "--help")
    return out


def time_once(argv: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """Wall and CPU (user + system) time of one subprocess run (s) and its stdout; fails
    loudly when the command fails."""
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(argv, env=env, cwd=tempfile.gettempdir(), capture_output=True, text=True)
    dt = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} exited {proc.returncode}: {proc.stderr[-2000:]}")
    return dt, cpu, proc.stdout


def own_imports(argv: list[str], env: dict[str, str]) -> tuple[float, int]:
    """Milliseconds of self import time of ``diffwatch`` modules in one ``-X importtime``
    run of ``argv`` (a ``python -m diffwatch.cli`` command), and how many there were."""
    proc = subprocess.run(
        [argv[0], "-X", "importtime", *argv[1:]],
        env=env, cwd=tempfile.gettempdir(), capture_output=True, text=True,
    )  # fmt: skip
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} exited {proc.returncode}: {proc.stderr[-2000:]}")
    us, n = 0, 0
    for line in proc.stderr.splitlines():  # "import time: SELF | CUMULATIVE | NAME"
        fields = line.removeprefix("import time:").split("|")
        if line.startswith("import time:") and fields[-1].strip().startswith("diffwatch"):
            us, n = us + int(fields[0]), n + 1
    return us / 1000, n


def child_env(first: str | None = None) -> dict[str, str]:
    """The commands' environment: ``first`` (another checkout), then any PYTHONPATH the
    caller set, then this checkout.

    So ``PYTHONPATH=/old/checkout python bench/startup.py`` (or ``--before /old/checkout``)
    measures another version of the code with the same interpreter, in the same conditions.
    """
    paths = [first or "", os.environ.get("PYTHONPATH", ""), str(REPO)]
    return dict(
        os.environ, PYTHONPATH=os.pathsep.join(p for p in paths if p), COLUMNS="100", NO_COLOR="1"
    )


def probe(env: dict[str, str]) -> dict[str, Any]:
    """Where the measured ``diffwatch.cli`` comes from (``file``) and the commands its
    top-level command lists (``commands``)."""
    out = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, cwd=tempfile.gettempdir(), capture_output=True
    )
    if out.returncode != 0:
        raise SystemExit(f"cannot ask the code under test for its commands: {out.stderr[-2000:]}")
    return json.loads(out.stdout)


Times = dict[str, list[float]]


@dataclass
class Measured:
    """One version of the code: its commands, and their wall and CPU seconds and help."""

    code: str
    env: dict[str, str]
    commands: dict[str, list[str]]
    times: Times = field(default_factory=dict)
    cpus: Times = field(default_factory=dict)
    texts: dict[str, str] = field(default_factory=dict)
    own_ms: Times = field(default_factory=dict)
    own_modules: dict[str, int] = field(default_factory=dict)

    def run(self, label: str, argv: list[str]) -> None:
        """Time ``argv`` once and keep its figures and help text (of the last run)."""
        dt, cpu, self.texts[label] = time_once(argv, self.env)
        self.times.setdefault(label, []).append(dt)
        self.cpus.setdefault(label, []).append(cpu)

    def imports(self, label: str, argv: list[str]) -> None:
        """Measure diffwatch's own import time in ``argv`` once (a separate, slower run)."""
        ms, self.own_modules[label] = own_imports(argv, self.env)
        self.own_ms.setdefault(label, []).append(ms)


def measure(runs: int, versions: list[Measured]) -> None:
    """The baselines and every version's commands, ``runs`` rounds, interleaved so load
    changes hit all alike; the baselines are kept with the first version."""
    for r in range(runs):
        print(f"round {r + 1}/{runs}", file=sys.stderr, flush=True)
        for label, argv in BASELINES.items():
            versions[0].run(label, argv)
        for label in versions[0].commands:
            for v in versions:
                if label in v.commands:
                    v.run(label, v.commands[label])
                    v.imports(label, v.commands[label])


def correctness(texts: dict[str, str], listed: list[str]) -> dict[str, object]:
    """Every command exited 0 (or the run stopped); the code lists every expected group,
    the top help shows every listed group and each group's help is its own usage line."""
    top = texts["diffwatch --help"]
    unlisted = [g for g in GROUPS if g not in listed]
    missing = [g for g in listed if f" {g} " not in top]
    wrong = [g for g in listed if f"diffwatch.cli {g}" not in texts[f"diffwatch {g} --help"]]
    return {
        "ok": not unlisted and not missing and not wrong,
        "groups_not_listed": unlisted,
        "groups_missing_from_help": missing,
        "groups_without_own_usage": wrong,
    }


def summary(v: Measured, typer_s: float) -> dict[str, Any]:
    """One version's figures: best-of-N per command, each against the goal."""
    cli = {k: round(min(t), 4) for k, t in v.times.items() if not k.startswith("baseline")}
    worst = max(cli, key=lambda k: cli[k])
    return {
        "code": v.code,
        "commands_s": cli,
        "overhead_s": {k: round(s - typer_s, 4) for k, s in cli.items()},
        "cpu_s": {k: round(min(t), 4) for k, t in v.cpus.items() if not k.startswith("baseline")},
        "own_import_ms": {k: round(min(t), 1) for k, t in v.own_ms.items()},
        "own_modules": v.own_modules,
        "worst": {"command": worst, "s": cli[worst]},
        "pass_by_command": {k: s <= GOAL_S for k, s in cli.items()},
        "pass": all(s <= GOAL_S for s in cli.values()),
    }


def report(
    now: Measured, listed: list[str], runs: int, smoke: bool, before: Measured | None
) -> dict[str, Any]:
    """The JSON summary: best-of-N per command, the baselines, the goal and pass/fail (and
    the ``before`` version's, measured in the same rounds).

    The goal is on wall time; ``cpu_s`` (user + system, best of N) is beside it because on a
    loaded machine it moves much less than wall time.
    """
    base = {k: round(min(t), 4) for k, t in now.times.items() if k.startswith("baseline")}
    typer_s = base["baseline: import typer"]
    res: dict[str, Any] = {
        "bench": "startup",
        "smoke": smoke,
        "runs": runs,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "goal_s": GOAL_S,
        "baseline_s": {k.removeprefix("baseline: "): s for k, s in base.items()},
        "baseline_cpu_s": {
            k.removeprefix("baseline: "): round(min(t), 4)
            for k, t in now.cpus.items()
            if k.startswith("baseline")
        },
        **summary(now, typer_s),
        "correct": correctness(now.texts, listed),
    }
    if before is not None:
        res["before"] = summary(before, typer_s)
    return res


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print one JSON object; exit 1 only when a correctness check
    fails (a missed goal is reported in ``pass``)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=7, help="Runs per command (best is kept).")
    p.add_argument("--smoke", action="store_true", help="One run each: seconds, for tests.")
    p.add_argument(
        "--before",
        metavar="DIR",
        help="Another checkout (e.g. an older commit unpacked by git archive) measured in the "
        "same rounds, reported under 'before'.",
    )
    a = p.parse_args(argv)
    runs = 1 if a.smoke else max(1, a.runs)
    env = child_env()
    found = probe(env)
    now = Measured(found["file"], env, cli_commands(found["commands"]))
    before = None
    if a.before:
        old_env = child_env(str(Path(a.before).resolve()))
        old = probe(old_env)
        before = Measured(old["file"], old_env, cli_commands(old["commands"]))
    measure(runs, [now] + ([before] if before else []))
    res = report(now, found["commands"], runs, a.smoke, before)
    print(json.dumps(res))
    return 0 if res["correct"]["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
