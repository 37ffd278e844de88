"""``diffwatch app``: the Streamlit dashboard (registered on the main app by diffwatch.cli)."""

# No ``from __future__ import annotations``: typer reads the annotations of the command
# defined inside register().
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import typer

APP_SCRIPT = Path(__file__).resolve().parents[1] / "app" / "main.py"


def streamlit_command(port: int, address: str) -> list[str]:
    """The ``streamlit run`` command line for the dashboard."""
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
    ]


def register(app: typer.Typer) -> None:
    """Add the ``app`` command to ``app``."""
    from diffwatch.cli import DbUrl

    @app.command("app")
    def app_cmd(
        port: Annotated[int, typer.Option(min=1, max=65535, help="Port to serve on.")] = 8501,
        address: Annotated[
            str, typer.Option(help="Address to listen on (0.0.0.0 for every interface).")
        ] = "127.0.0.1",
        database_url: DbUrl = None,
    ) -> None:
        """Serve the ops dashboard (cost, latency, GPU, quality, model versions)."""
        from diffwatch.cli import _runtime, fail

        try:
            import streamlit  # noqa: F401
        except ImportError:
            raise fail("the dashboard needs Streamlit: pip install 'diffwatch[app]'", 2) from None
        rt = _runtime(database_url)
        env = {**os.environ, "DIFFWATCH_APP_CONNINFO": rt.conninfo}
        typer.echo(f"diffwatch dashboard on http://{address}:{port}  (Ctrl-C stops it)")
        proc = subprocess.Popen(streamlit_command(port, address), env=env)
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
