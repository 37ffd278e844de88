"""Alert channels over HTTP: the facts a notification carries, webhook and Slack payloads, POST.

``facts`` runs in the evaluator, in the transaction that queues the email, so the outbox
row holds everything a channel is sent (a later rule edit does not change a queued alert).
``post_json`` sends one JSON body and classifies the outcome as the SMTP sender does:
2xx sent; 408, 429, 5xx, timeouts and connection errors transient (retried with backoff);
any other 4xx, and redirects, which are never followed, permanent. Target URLs are
secrets (a Slack hook's path is its password): errors and logs name them redacted.
"""

from __future__ import annotations

import http.client
import json
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from diffwatch.alerts import signing
from diffwatch.alerts.notice import Notice
from diffwatch.alerts.smtp import DeliveryError, PermanentError, TransientError
from diffwatch.model.alert_metrics import METRICS
from diffwatch.model.alert_rules import redact_target
from diffwatch.model.retry_after import retry_after_seconds

FACTS_VERSION = 1  # the "version" field of the webhook body
_STATUS = {"firing": "firing", "repeat": "firing", "resolved": "resolved"}
MAX_ERROR_BODY = 200  # characters of a refusing server's reply kept in the error


def _iso(t: datetime | None) -> str | None:
    if t is None:
        return None
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return t.astimezone(UTC).isoformat().replace("+00:00", "Z")


def facts(notice: Notice, summary: str) -> dict[str, Any]:
    """What the channels of one alert event are sent (JSON-ready); ``summary``: the subject."""
    r = notice.rule
    m = METRICS[r.metric]
    return {
        "version": FACTS_VERSION,
        "kind": notice.kind,
        "status": _STATUS[notice.kind],
        "rule": {
            "id": r.id,
            "name": r.name,
            "description": r.description.strip(),
            "metric": r.metric,
            "condition": r.describe(),
            "comparison": r.comparison,
            "threshold": r.threshold,
            "severity": r.severity,
            "models": list(r.models),
            "versions": list(r.versions),
            "deployments": list(r.deployments),
            "repeat_s": r.repeat_s,
        },
        "severity": r.severity,
        "summary": summary,
        "value": notice.value,
        "value_text": m.format(notice.value) if notice.value is not None else "no data",
        "threshold": r.threshold,
        "threshold_text": m.format(r.threshold),
        "episode": notice.episode,
        "at": _iso(notice.at),
        "firing_since": _iso(notice.firing_since),
        "window_start": _iso(notice.window_start),
        "window_end": _iso(notice.window_end),
        "note": notice.note.strip(),
        "link": notice.link,
    }


def webhook_payload(key: str, f: Mapping[str, Any]) -> dict[str, Any]:
    """The generic webhook body: the idempotency key and the facts."""
    return {"idempotency_key": key, **f}


def _slack_escape(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_payload(f: Mapping[str, Any]) -> dict[str, Any]:
    """A Slack incoming-webhook body (also read by Mattermost, Rocket.Chat, Teams' Slack mode).

    Only ``text``: Slack's format has no field for the idempotency key, which goes in the
    ``Idempotency-Key`` header. Rule text is escaped (Slack's &, <, >), so it cannot
    inject links or mentions.
    """
    lines = [f"*{_slack_escape(str(f['summary']))}*"]
    rule = f.get("rule") or {}
    if rule.get("condition"):
        lines.append(f"Rule: {_slack_escape(str(rule['condition']))}")
    link = f.get("link")
    if isinstance(link, str) and link.lower().startswith(("http://", "https://")):
        lines.append(f"<{link.replace('|', '%7C').replace('>', '%3E')}|Open in diffwatch>")
    return {"text": "\n".join(lines)}


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:  # never follow
        return None


def _one_line(s: str) -> str:
    return " ".join(s.split())[:MAX_ERROR_BODY]


def post_json(
    url: str,
    body: Any,
    *,
    target: str,
    key: str,
    timeout_s: float,
    signing_key: bytes | None = None,
) -> None:
    """POST ``body`` as JSON to ``url`` with ``Idempotency-Key: key``; raise on failure.

    ``target`` (the recipient as stored) names it, redacted, in errors. ``signing_key``:
    sign the request (``Diffwatch-Signature``, see ``diffwatch.alerts.signing``).
    TransientError: 408, 429, 5xx, timeouts, connection errors. PermanentError: other 4xx, 3xx.
    """
    data = json.dumps(body, ensure_ascii=False, allow_nan=False).encode()
    headers = {
        "Content-Type": "application/json; charset=utf-8",
        "Idempotency-Key": key,
        "User-Agent": "diffwatch-alerts",
    }
    if signing_key is not None:
        headers[signing.HEADER] = signing.sign(signing_key, data, int(time.time()))
    req = urllib.request.Request(url, data=data, method="POST", headers=headers)
    where = redact_target(target)
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(req, timeout=timeout_s) as resp:
            resp.read(65536)
            code = resp.status
    except urllib.error.HTTPError as exc:
        code = exc.code
        try:
            reply = _one_line(exc.read(4096).decode("utf-8", "replace"))
        except (OSError, http.client.HTTPException):
            reply = ""
        wait = retry_after_seconds(exc.headers.get("Retry-After") if exc.headers else None)
        raise classify_status(
            code,
            f"{where}: HTTP {code} {exc.reason}" + (f": {reply}" if reply else ""),
            retry_after_s=wait,
        ) from None
    except TimeoutError as exc:
        raise TransientError(f"{where}: no reply within {timeout_s:g} s ({exc})") from None
    except urllib.error.URLError as exc:
        raise TransientError(f"{where}: cannot connect ({exc.reason})") from None
    except (OSError, http.client.HTTPException) as exc:
        raise TransientError(f"{where}: connection failed ({type(exc).__name__}: {exc})") from None
    if not 200 <= code < 300:
        raise classify_status(code, f"{where}: HTTP {code}")


def classify_status(code: int, message: str, retry_after_s: float | None = None) -> DeliveryError:
    """Transient for 408, 429 and 5xx (try later, not before ``retry_after_s`` when the
    server said so); permanent for the rest (3xx, other 4xx)."""
    if code in (408, 429) or 500 <= code < 600:
        return TransientError(message, code=code, retry_after_s=retry_after_s)
    if 300 <= code < 400:
        return PermanentError(
            f"{message} (redirects are not followed: use the final URL)", code=code
        )
    return PermanentError(message, code=code)
