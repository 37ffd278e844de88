"""A private, throwaway PostgreSQL cluster that a test may stop and restart at will.

It uses the server binaries that ship in the ``pgserver`` wheel, so it needs nothing from
the system. As root, the server runs as the unprivileged ``pgserver`` user (initdb refuses
root), the same way pgserver itself does.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import socket
import subprocess
import time
from pathlib import Path

import psycopg


def _ephemeral_range() -> range:
    try:
        low, high = map(int, Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    except (OSError, ValueError):
        low, high = 32768, 60999
    return range(low, high + 1)


def _free_port() -> int:
    """A free port *outside* the kernel's ephemeral range.

    A cluster that is stopped and started again must get its port back. An ephemeral port
    (what binding port 0 gives) can be taken in between as the local end of any outgoing
    connection on a busy machine, and the restart then fails to bind.
    """
    ephemeral = _ephemeral_range()
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(20000, 32000)
        if port in ephemeral:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port between 20000 and 32000 for a test cluster")


def _install_without(install: Path, dest: Path, extensions: tuple[str, ...]) -> Path:
    """A copy of the server install (hard links, so it costs no space) from which the named
    extensions are removed: a real server that lacks them, as a packaged one may."""
    # The binaries find their libraries at $ORIGIN/../../../pgserver.libs: keep that layout.
    dest = dest / "pgserver" / install.name
    shutil.copytree(install, dest, copy_function=os.link, symlinks=True)
    (dest.parent.parent / "pgserver.libs").symlink_to(install.parent.parent / "pgserver.libs")
    for ext in extensions:
        for f in [*dest.rglob(f"{ext}.control"), *dest.rglob(f"{ext}--*.sql"),
                  *dest.rglob(f"{ext}.so")]:  # fmt: skip
            f.unlink()
    return dest


class TempCluster:
    """initdb + pg_ctl on 127.0.0.1 at a free port; ``url`` reaches the ``postgres`` db."""

    def __init__(self, root: Path, *, without_extensions: tuple[str, ...] = ()) -> None:
        from pgserver._commands import POSTGRES_BIN_PATH

        self.bin = POSTGRES_BIN_PATH
        if without_extensions:
            self.bin = _install_without(POSTGRES_BIN_PATH.parent, root / "pginstall",
                                        without_extensions) / "bin"  # fmt: skip
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
        try:
            subprocess.run(cmd, check=True, capture_output=True, timeout=180, text=True)
        except subprocess.CalledProcessError as exc:
            log = self.pgdata / "log"
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise RuntimeError(
                f"{tool} {' '.join(args)} failed ({exc.returncode}): {exc.stderr.strip()}\n"
                f"server log:\n{tail}"
            ) from exc

    def start(self) -> None:
        """Start the server; one more try after a failed start. A clean-clone run once saw
        a restart 2 s after a stop fail with an empty server log, cause unknown; the tests
        that restart a cluster are about what diffwatch does meanwhile, not about pg_ctl."""
        args = ("-D", str(self.pgdata), "-w", "-l", str(self.pgdata / "log"),
                "-o", f"-h 127.0.0.1 -p {self.port} -k ''", "start")  # fmt: skip
        try:
            self._run("pg_ctl", *args)
        except RuntimeError:
            time.sleep(1.0)
            self._run("pg_ctl", *args)

    def stop(self, mode: str = "fast") -> None:
        """Stop the server; a fast stop that a loaded machine cannot finish in 2 min ends it
        the immediate way (either way the server is gone, which is what the tests need)."""
        try:
            self._run("pg_ctl", "-D", str(self.pgdata), "-w", "-t", "120", "-m", mode, "stop")
        except (RuntimeError, subprocess.TimeoutExpired):
            if mode == "immediate":
                raise
            self._run("pg_ctl", "-D", str(self.pgdata), "-w", "-m", "immediate", "stop")

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
        with contextlib.suppress(RuntimeError):
            self.stop("immediate")
        shutil.rmtree(self.pgdata, ignore_errors=True)
