"""A real SMTP server for tests: aiosmtpd in a thread on 127.0.0.1, with switches.

``Mailbox`` records every accepted SMTP transaction. ``Mailbox.messages`` is deduplicated
by Message-ID, the way Gmail shows a resent email once: a delivery resent after a crash
between the server's 250 and the outbox mark is one message there, while
``Mailbox.transactions(message_id)`` still counts both hand-overs.

``SmtpServer`` can refuse recipients or whole messages (4xx or 5xx), be stopped (a new
connection is then refused: "SMTP down") and started again on the same port, and speak
STARTTLS or implicit TLS with a certificate from a throwaway CA (trustme), with login.
"""

from __future__ import annotations

import email
import email.policy
import socket
import ssl
import threading
from collections import Counter
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Literal

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


@dataclass(frozen=True)
class Received:
    """One accepted SMTP transaction."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    message: EmailMessage
    raw: bytes


class Mailbox:
    """aiosmtpd handler: accepts, or answers with the configured refusals."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.received: list[Received] = []
        self.refuse_rcpt: dict[str, str] = {}  # address -> reply, e.g. '550 5.1.1 no such user'
        self.refuse_data: str | None = None  # reply to every DATA, e.g. '451 4.3.0 try later'

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        reply = self.refuse_rcpt.get(address.lower())
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.refuse_data:
            return self.refuse_data
        raw = bytes(envelope.original_content or envelope.content)
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        with self._lock:
            self.received.append(
                Received(envelope.mail_from, tuple(envelope.rcpt_tos), msg, raw)  # type: ignore[arg-type]
            )
        return "250 2.0.0 Message accepted for delivery"

    def transactions(self, message_id: str) -> int:
        """How many times a message with ``message_id`` was handed over (all recipients)."""
        with self._lock:
            return sum(1 for r in self.received if r.message["Message-ID"] == message_id)

    def transaction_counts(self) -> Counter[str]:
        """Accepted transactions per Message-ID."""
        with self._lock:
            return Counter(str(r.message["Message-ID"]) for r in self.received)

    def for_recipient(self, address: str) -> list[EmailMessage]:
        """Messages delivered to ``address``, deduplicated by Message-ID like Gmail."""
        with self._lock:
            seen: dict[str, EmailMessage] = {}
            for r in self.received:
                if address in r.rcpt_tos:
                    seen.setdefault(str(r.message["Message-ID"]), r.message)
            return list(seen.values())

    @property
    def messages(self) -> list[EmailMessage]:
        """Every accepted message once per Message-ID (first copy), as a mailbox shows them."""
        with self._lock:
            seen: dict[str, EmailMessage] = {}
            for r in self.received:
                seen.setdefault(str(r.message["Message-ID"]), r.message)
            return list(seen.values())


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Tls:
    """A throwaway CA and a server certificate for 127.0.0.1 and localhost (trustme)."""

    def __init__(self, directory: Path):
        import trustme

        self.ca = trustme.CA()
        self.cert = self.ca.issue_cert("127.0.0.1", "localhost")
        self.ca_file = directory / "smtp-test-ca.pem"
        self.ca.cert_pem.write_to_path(str(self.ca_file))

    def server_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.cert.configure_cert(ctx)
        return ctx


class SmtpServer:
    """An aiosmtpd server on 127.0.0.1:``port`` that a test can stop and start again."""

    def __init__(
        self,
        mailbox: Mailbox | None = None,
        *,
        security: Literal["none", "starttls", "ssl"] = "none",
        tls: Tls | None = None,
        login: tuple[str, str] | None = None,
    ):
        if security != "none" and tls is None:
            raise ValueError("security 'starttls' or 'ssl' needs tls=Tls(directory)")
        self.mailbox = mailbox or Mailbox()
        self.security = security
        self.tls = tls
        self.login = login
        self.port = free_port()
        self._controller: Controller | None = None

    def _authenticate(self, server, session, envelope, mechanism, auth_data) -> AuthResult:
        ok = (
            self.login is not None
            and isinstance(auth_data, LoginPassword)
            and (auth_data.login.decode(), auth_data.password.decode()) == self.login
        )
        return AuthResult(success=ok, handled=False)

    def start(self) -> SmtpServer:
        """Listen (again) on the same port."""
        kwargs: dict = {}
        if self.login is not None:
            kwargs |= {"authenticator": self._authenticate, "auth_required": True}
            if self.security == "ssl":
                # aiosmtpd only counts STARTTLS as TLS for AUTH; implicit TLS is TLS too.
                kwargs["auth_require_tls"] = False
        if self.security == "starttls":
            kwargs |= {"tls_context": self.tls.server_context(), "require_starttls": True}
        self._controller = Controller(
            self.mailbox,
            hostname="127.0.0.1",
            port=self.port,
            ssl_context=self.tls.server_context() if self.security == "ssl" else None,
            server_hostname="localhost",
            ready_timeout=5,
            **kwargs,
        )
        self._controller.start()
        return self

    def stop(self) -> None:
        """Stop listening: new connections are refused until ``start``."""
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    @property
    def running(self) -> bool:
        return self._controller is not None
