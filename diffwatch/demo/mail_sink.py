"""A local SMTP sink for the demo: accepts every email on loopback and saves it as a file.

It is a real SMTP server (aiosmtpd), so the demo's alert emails go through the same
delivery code as in production. Each accepted message is written to ``directory`` as
``NNN-<kind>-<rule>.eml`` (open it with any mail client) and a message whose Message-ID
was already saved is not saved again, as a mailbox such as Gmail treats a resend.
"""

from __future__ import annotations

import email
import email.policy
import re
import socket
import threading
from pathlib import Path

from aiosmtpd.controller import Controller


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _SaveToFiles:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.saved: list[Path] = []
        self._ids = {
            str(email.message_from_bytes(p.read_bytes(), policy=email.policy.default)["Message-ID"])
            for p in directory.glob("*.eml")
        }
        self._n = len(list(directory.glob("*.eml")))
        self._lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope) -> str:
        raw = bytes(envelope.original_content or envelope.content)
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        mid = str(msg["Message-ID"])
        with self._lock:
            if mid not in self._ids:
                self._ids.add(mid)
                self._n += 1
                kind = str(msg["X-Diffwatch-Kind"] or "mail")
                rule = re.sub(r"[^a-z0-9]+", "-", str(msg["X-Diffwatch-Rule"] or "").lower())
                path = self.directory / f"{self._n:03d}-{kind}-{rule.strip('-')[:40]}.eml"
                path.write_bytes(raw)
                self.saved.append(path)
        return "250 2.0.0 saved"


class MailSink:
    """An SMTP server on 127.0.0.1 (a free port) saving what it receives under ``directory``."""

    def __init__(self, directory: Path, port: int = 0) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.handler = _SaveToFiles(directory)
        self.port = port or _free_port()
        self._controller = Controller(self.handler, hostname="127.0.0.1", port=self.port)

    def __enter__(self) -> MailSink:
        self._controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._controller.stop()

    @property
    def saved(self) -> list[Path]:
        """The files written by this sink, in arrival order."""
        return list(self.handler.saved)
