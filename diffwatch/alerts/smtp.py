"""SMTP settings and a sender that classifies every failure as transient or permanent.

``TransientError``: try again later (connection refused or dropped, timeouts, TLS and login
problems on our side, any 4xx reply). ``PermanentError``: the server said no for good
(a 5xx reply to the sender, the recipient or the message); retrying would not help.
A login refused with 535 counts as transient on purpose: it is our configuration, not the
recipient, so the backlog goes out once the password is fixed (until the give-up limit).
"""

from __future__ import annotations

import contextlib
import smtplib
import socket
import ssl
from email.message import EmailMessage
from pathlib import Path
from typing import Literal, Self

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class SmtpSettings(BaseSettings):
    """Where and how alert emails are sent (``DIFFWATCH_SMTP_*``); timeouts in seconds."""

    model_config = SettingsConfigDict(env_prefix="DIFFWATCH_SMTP_", extra="ignore")

    host: str = "localhost"
    port: int = Field(default=25, gt=0, lt=65536)
    security: Literal["none", "starttls", "ssl"] = "none"
    username: str | None = None
    password: SecretStr | None = None
    password_file: Path | None = Field(
        default=None, description="File holding the password (a Docker or Kubernetes secret)."
    )
    sender: str = "diffwatch@localhost"
    timeout_s: float = Field(default=10, gt=0)
    verify_tls: bool = True
    ca_file: Path | None = Field(default=None, description="PEM CA bundle for a private CA.")
    helo_name: str | None = Field(default=None, description="EHLO name; default: the FQDN.")
    message_id_domain: str = ""  # default: the sender's domain

    @field_validator("sender")
    @classmethod
    def _sender(cls, v: str) -> str:
        v = v.strip()
        if "@" not in v or v.startswith("@") or v.endswith("@"):
            raise ValueError(
                f"DIFFWATCH_SMTP_SENDER must be an address such as alerts@example.com, got {v!r}"
            )
        return v

    @model_validator(mode="after")
    def _domain(self) -> Self:
        if not self.message_id_domain:
            self.message_id_domain = self.sender.rsplit("@", 1)[1].rstrip(">").strip()
        return self

    def secret(self) -> str | None:
        """The password: ``password`` if set, else read from ``password_file`` now."""
        if self.password is not None:
            return self.password.get_secret_value()
        if self.password_file is None:
            return None
        try:
            return self.password_file.read_text().strip("\r\n")
        except OSError as exc:
            raise SmtpConfigError(
                f"cannot read the SMTP password file {self.password_file} ({exc.strerror}); "
                "fix DIFFWATCH_SMTP_PASSWORD_FILE or the file's permissions"
            ) from None

    @property
    def where(self) -> str:
        """'host:port (security)' for messages."""
        return f"{self.host}:{self.port} ({self.security})"


class DeliveryError(Exception):
    """A send that did not go through; ``str()`` is one line for a person."""

    def __init__(
        self,
        message: str,
        *,
        code: int | None = None,
        connection: bool = False,
        retry_after_s: float | None = None,
    ):
        super().__init__(message)
        self.code = code  # the SMTP (or HTTP) reply code, when the server gave one
        self.connection = connection  # the connection is unusable: stop this batch
        self.retry_after_s = retry_after_s  # an HTTP server's Retry-After, read


class TransientError(DeliveryError):
    """Try again later: the server or the network may be fine next time."""


class PermanentError(DeliveryError):
    """The server refused for good (5xx): do not retry this delivery."""


class SmtpConfigError(TransientError):
    """Our SMTP settings are wrong (password file, login, TLS); fixed, the backlog goes out."""


def _text(raw: bytes | str) -> str:
    s = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    return " ".join(s.split())


def _reply(code: int, raw: bytes | str, what: str, where: str) -> DeliveryError:
    msg = f"{where}: {what}: {code} {_text(raw)}"
    if 400 <= code < 500:
        return TransientError(msg, code=code)
    if 500 <= code < 600:
        return PermanentError(msg, code=code)
    return TransientError(msg, code=code, connection=True)  # not SMTP-speak: start over


def classify(exc: BaseException, settings: SmtpSettings, recipient: str = "") -> DeliveryError:
    """The DeliveryError for an exception raised by smtplib, ssl or the socket layer."""
    where = f"SMTP {settings.where}"
    if isinstance(exc, DeliveryError):
        return exc
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        code, raw = next(iter(exc.recipients.values()), (550, b"recipient refused"))
        return _reply(code, raw, f"recipient {recipient} refused", where)
    if isinstance(exc, smtplib.SMTPSenderRefused):
        return _reply(exc.smtp_code, exc.smtp_error, f"sender {exc.sender} refused", where)
    if isinstance(exc, smtplib.SMTPDataError):
        return _reply(exc.smtp_code, exc.smtp_error, "message refused", where)
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        return SmtpConfigError(
            f"{where}: login as {settings.username!r} refused: {exc.smtp_code} "
            f"{_text(exc.smtp_error)}; check DIFFWATCH_SMTP_USERNAME and the password",
            code=exc.smtp_code,
            connection=True,
        )
    if isinstance(exc, smtplib.SMTPNotSupportedError):
        return SmtpConfigError(
            f"{where}: {_text(str(exc))}; change DIFFWATCH_SMTP_SECURITY to what the server offers",
            connection=True,
        )
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        return TransientError(
            f"{where}: connection closed: {_text(str(exc)) or 'no reason'}", connection=True
        )
    if isinstance(exc, smtplib.SMTPResponseException):
        err = _reply(exc.smtp_code, exc.smtp_error, "refused", where)
        err.connection = True  # HELO/MAIL-level refusals: this session is done
        return err
    if isinstance(exc, ssl.SSLCertVerificationError):
        return SmtpConfigError(
            f"{where}: TLS certificate not trusted ({exc.verify_message}); set "
            "DIFFWATCH_SMTP_CA_FILE to the server's CA bundle",
            connection=True,
        )
    if isinstance(exc, TimeoutError | socket.timeout):
        return TransientError(f"{where}: timed out after {settings.timeout_s:g} s", connection=True)
    if isinstance(exc, ConnectionRefusedError):
        return TransientError(f"{where}: connection refused; is the server up?", connection=True)
    if isinstance(exc, OSError | smtplib.SMTPException):
        return TransientError(f"{where}: {type(exc).__name__}: {_text(str(exc))}", connection=True)
    raise exc


class SmtpSender:
    """One SMTP connection for a batch, opened on the first send (use it with ``with``)."""

    def __init__(self, settings: SmtpSettings):
        self.settings = settings
        self._smtp: smtplib.SMTP | None = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _context(self) -> ssl.SSLContext:
        s = self.settings
        ctx = ssl.create_default_context(cafile=str(s.ca_file) if s.ca_file else None)
        if not s.verify_tls:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        return ctx

    def _connect(self) -> smtplib.SMTP:
        s = self.settings
        password = s.secret()  # read the secret file before opening a connection
        helo = s.helo_name or None
        smtp: smtplib.SMTP
        if s.security == "ssl":
            smtp = smtplib.SMTP_SSL(
                s.host, s.port, local_hostname=helo, timeout=s.timeout_s, context=self._context()
            )
        else:
            smtp = smtplib.SMTP(s.host, s.port, local_hostname=helo, timeout=s.timeout_s)
        try:
            smtp.ehlo()
            if s.security == "starttls":
                smtp.starttls(context=self._context())
                smtp.ehlo()
            if s.username:
                smtp.login(s.username, password or "")
        except BaseException:
            _quietly_close(smtp)
            raise
        return smtp

    def send(self, msg: EmailMessage, recipient: str) -> None:
        """Hand ``msg`` to the server for ``recipient``; TransientError or PermanentError."""
        try:
            if self._smtp is None:
                self._smtp = self._connect()
            self._smtp.send_message(msg, from_addr=self.settings.sender, to_addrs=[recipient])
        except Exception as exc:
            err = classify(exc, self.settings, recipient)
            if err.connection:
                self.close()
            raise err from exc

    def close(self) -> None:
        """Say QUIT and close the connection, ignoring a server already gone."""
        if self._smtp is not None:
            smtp, self._smtp = self._smtp, None
            try:
                smtp.quit()
            except (smtplib.SMTPException, OSError):
                _quietly_close(smtp)


def _quietly_close(smtp: smtplib.SMTP) -> None:
    with contextlib.suppress(OSError):
        smtp.close()
