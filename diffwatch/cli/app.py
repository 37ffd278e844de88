"""``diffwatch app``: the Streamlit dashboard (registered on the main app by diffwatch.cli)."""

# No ``from __future__ import annotations``: typer reads the annotations of the command.
import os
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from diffwatch.cli.common import fail, runtime
from diffwatch.cli.options import DbUrl

if TYPE_CHECKING:
    from diffwatch.context import Runtime

# st.App around diffwatch/app/main.py: Streamlit plus app.guard (allowed hosts, no metrics) and
# app.errors (error ids); see diffwatch.app_defaults for the options set below.
APP_SCRIPT = Path(__file__).resolve().parents[1] / "app" / "server.py"


def streamlit_command(port: int, address: str, options: dict | None = None) -> list[str]:
    """The ``streamlit run`` command line for the dashboard, with config ``options``
    (``section.name``: value; a list value repeats the flag once per item)."""
    flags: list[str] = []
    for name, value in (options or {}).items():
        for item in value if isinstance(value, list) else [value]:
            flags += [f"--{name}", str(item)]
    return [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(APP_SCRIPT),
        "--server.port",
        str(port),
        "--server.address",
        address,
        "--server.headless",
        "true",
        "--browser.gatherUsageStats",
        "false",
        *flags,
    ]


def app_cmd(
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to serve on.")] = 8501,
    address: Annotated[
        str, typer.Option(help="Address to listen on (0.0.0.0 for every interface).")
    ] = "127.0.0.1",
    allowed_host: Annotated[
        list[str] | None,
        typer.Option(
            envvar="DIFFWATCH_DASHBOARD_HOSTS",
            help="Another host name the dashboard answers to (repeatable; *.example.com "
            "for subdomains). It always answers to DIFFWATCH_DASHBOARD_URL's host and to "
            "--address (plus localhost when that is loopback or every interface); other "
            "Host headers get 400 (DNS rebinding).",
            show_default=False,
        ),
    ] = None,
    database_url: DbUrl = None,
) -> None:
    """Serve the ops dashboard (cost, latency, GPU, quality, model versions)."""
    try:
        import streamlit  # noqa: F401
    except ImportError:
        raise fail("the dashboard needs Streamlit: pip install 'diffwatch[app]'", 2) from None
    serve(runtime(database_url), port, address, allowed_host or ())


def serve(
    rt: "Runtime",
    port: int = 8501,
    address: str = "127.0.0.1",
    allowed_hosts: Sequence[str] = (),
    extra_env: Mapping[str, str] | None = None,
) -> None:
    """Run the dashboard on ``rt``'s database until it stops (``extra_env``: more variables
    for the app process, e.g. the demo's DIFFWATCH_SEARCH_CLIP_*)."""
    from diffwatch.app_defaults import streamlit_options

    env = {
        **os.environ,
        **(extra_env or {}),
        "DIFFWATCH_APP_CONNINFO": rt.conninfo,
        # uvicorn (under Streamlit) takes X-Forwarded-For from any loopback peer as the
        # client's address, so a local client could forge a fresh one per login attempt.
        # Trust nobody there: the login limits read the header themselves, and only
        # from DIFFWATCH_TRUSTED_PROXIES (diffwatch.model.client_address).
        "FORWARDED_ALLOW_IPS": "",
        # Tables' own "Download as CSV" writes formula cells as they are (CSV
        # injection); exports go through diffwatch.model.csv_export instead.
        "STREAMLIT_CLIENT_DISABLE_DATA_EXPORT": "true",
    }
    typer.echo(f"diffwatch dashboard on http://{address}:{port}  (Ctrl-C stops it)")
    options = streamlit_options(rt.settings.dashboard_url, address, allowed_hosts)
    hosts = ", ".join(options["server.allowedHosts"])
    typer.echo(f"answering to host names: {hosts} (others get 400)")
    proc = subprocess.Popen(streamlit_command(port, address, options), env=env)
    # A service manager (or a test) stops this process with SIGTERM: pass it on, or the
    # Streamlit server would outlive us, orphaned, still serving.
    old = signal.signal(signal.SIGTERM, lambda signum, _frame: proc.send_signal(signum))
    try:
        returncode = proc.wait()
    except KeyboardInterrupt:  # Ctrl-C reached the whole process group
        proc.wait()
        return
    finally:
        signal.signal(signal.SIGTERM, old)
    if returncode not in (0, -2, -15, 130):
        raise typer.Exit(returncode)


def register(root: typer.Typer, name: str) -> None:
    """Add this command to ``root`` as ``name`` (called by ``diffwatch.cli`` when it is run)."""
    root.command(name)(app_cmd)
