"""A private, throwaway PostgreSQL cluster that a test may stop and restart at will.

It uses the server binaries that ship in the ``pgserver`` wheel, so it needs nothing from
the system. As root, the server runs as the unprivileged ``pgserver`` user (initdb refuses
root), the same way pgserver itself does.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import psycopg


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class TempCluster:
    """initdb + pg_ctl on 127.0.0.1 at a free port; ``url`` reaches the ``postgres`` db."""

    def __init__(self, root: Path) -> None:
        from pgserver._commands import POSTGRES_BIN_PATH

        self.bin = POSTGRES_BIN_PATH
        self.pgdata = root / "pgdata"
        self.port = _free_port()
        self.user: str | None = None
        if os.geteuid() == 0:
            from pgserver.utils import ensure_prefix_permissions, ensure_user_exists

            ensure_user_exists("pgserver")
            self.user = "pgserver"
            root.mkdir(parents=True, exist_ok=True)
            ensure_prefix_permissions(root)
            root.chmod(0o777)
        self._run("initdb", "-D", str(self.pgdata), "-U", "postgres", "--auth=trust", "-E", "UTF8")

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, tool: str, *args: str) -> None:
        cmd = [str(self.bin / tool), *args]
        if self.user:
            cmd = ["runuser", "-u", self.user, "--", *cmd]
        subprocess.run(cmd, check=True, capture_output=True, timeout=60)

    def start(self) -> None:
        self._run(
            "pg_ctl",
            "-D",
            str(self.pgdata),
            "-w",
            "-l",
            str(self.pgdata / "log"),
            "-o",
            f"-h 127.0.0.1 -p {self.port} -k ''",
            "start",
        )

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.pgdata), "-w", "-m", mode, "stop")

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                psycopg.connect(self.url, connect_timeout=2).close()
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def destroy(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self.stop("immediate")
        shutil.rmtree(self.pgdata, ignore_errors=True)
