"""Signing generic webhooks: an HMAC-SHA256 of the send time and the body, in a header.

Set ``DIFFWATCH_WEBHOOK_SECRET`` or ``DIFFWATCH_WEBHOOK_SECRET_FILE`` and every ``webhook:``
delivery carries ``Diffwatch-Signature: t=<unix seconds>,v1=<hex>``, where ``v1`` is
HMAC-SHA256(secret, ``"<t>." + body``) (the scheme Stripe and Slack use). The receiver
recomputes it over the raw body it read and refuses a mismatch or a ``t`` too far from its
clock (a replay). Slack and Alertmanager targets are not signed: they do not check.

A secret that is configured but cannot be read stops webhook deliveries (retried, with the
reason on the Alerts page) rather than sending them unsigned.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from diffwatch.alerts.smtp import TransientError

HEADER = "Diffwatch-Signature"
TOLERANCE_S = 300  # a receiver's default window for ``t``, seconds
MIN_SECRET_BYTES = 16


class WebhookConfigError(TransientError):
    """The signing secret is set but unusable; fixed, the waiting webhooks go out signed."""


class WebhookSettings(BaseSettings):
    """HTTP alert channels (``DIFFWATCH_WEBHOOK_*``): the signing of ``webhook:`` targets
    and the timeout of every channel's POST."""

    model_config = SettingsConfigDict(env_prefix="DIFFWATCH_WEBHOOK_", extra="ignore")

    secret: SecretStr | None = None
    secret_file: Path | None = Field(
        default=None, description="File holding the secret (a Docker or Kubernetes secret)."
    )
    timeout_s: float = Field(
        default=10.0, gt=0, le=300,
        description="Connect and reply timeout of a webhook, Slack or Alertmanager POST, s.",
    )  # fmt: skip

    def key(self) -> bytes | None:
        """The signing key (read from ``secret_file`` now), or None when signing is off.

        WebhookConfigError if the file cannot be read or the secret is shorter than 16 bytes.
        """
        if self.secret is not None:
            raw, where = self.secret.get_secret_value(), "DIFFWATCH_WEBHOOK_SECRET"
        elif self.secret_file is not None:
            where = f"the webhook secret file {self.secret_file}"
            try:
                raw = self.secret_file.read_text().strip("\r\n")
            except OSError as exc:
                raise WebhookConfigError(
                    f"cannot read {where} ({exc.strerror}); fix DIFFWATCH_WEBHOOK_SECRET_FILE "
                    "or the file's permissions: webhooks wait rather than go unsigned"
                ) from None
        else:
            return None
        key = raw.encode()
        if len(key) < MIN_SECRET_BYTES:
            raise WebhookConfigError(
                f"{where} holds {len(key)} bytes; a signing secret needs at least "
                f"{MIN_SECRET_BYTES} (e.g. `openssl rand -hex 32`): webhooks wait rather "
                "than go unsigned"
            )
        return key


def sign(key: bytes, body: bytes, t: int) -> str:
    """The ``Diffwatch-Signature`` header value for ``body`` sent at unix time ``t``."""
    mac = hmac.new(key, str(t).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def verify(
    key: bytes, header: str | None, body: bytes, *, now: float | None = None,
    tolerance_s: float = TOLERANCE_S,
) -> bool:  # fmt: skip
    """Whether ``header`` signs ``body`` with ``key`` within ``tolerance_s`` of ``now``
    (for receivers written in Python; the docs show the same check without diffwatch)."""
    if not header or len(header) > 512:
        return False
    parts: dict[str, list[str]] = {}
    for item in header.split(","):
        name, sep, value = item.strip().partition("=")
        if sep:
            parts.setdefault(name, []).append(value)
    try:
        (t_text,) = parts.get("t", [])
        t = int(t_text)
    except ValueError:
        return False
    if abs((time.time() if now is None else now) - t) > tolerance_s:
        return False
    want = sign(key, body, t).rsplit("v1=", 1)[1]
    return any(hmac.compare_digest(want, v) for v in parts.get("v1", []))
