"""Alerts into Prometheus Alertmanager through its v2 API (``POST /api/v2/alerts``).

Alertmanager identifies an alert by its labels, so firing, repeat and resolved events of
one rule carry the same labels (taken from the rule when the event was queued):
``alertname`` (the rule's name), ``severity``, ``metric``, ``diffwatch_rule_id``,
``source="diffwatch"`` and, when the rule filters on them, ``model``, ``version`` and
``deployment`` (comma-joined). A firing or repeat event is sent with ``endsAt`` well past
the next repeat (at least 24 h), so Alertmanager does not resolve it on its own between
our sends; the resolved event is sent with ``endsAt`` = the time it resolved, and the
outbox guarantees it is delivered. Re-sending is harmless: Alertmanager merges by labels.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from diffwatch.model.alert_rules import target_url

MIN_HOLD_S = 86400  # a firing alert's endsAt is at least this far after the event, s


def alerts_url(target: str) -> str:
    """The v2 alerts endpoint of an ``alertmanager:BASE`` target."""
    return target_url(target).rstrip("/") + "/api/v2/alerts"


def _parse(t: str) -> datetime:
    return datetime.fromisoformat(t.replace("Z", "+00:00"))


def _iso(t: datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


def labels(f: Mapping[str, Any]) -> dict[str, str]:
    """The alert's identity in Alertmanager (the same for every event of one rule)."""
    rule = f["rule"]
    out = {
        "alertname": str(rule["name"]),
        "severity": str(rule["severity"]),
        "metric": str(rule["metric"]),
        "diffwatch_rule_id": str(rule["id"]),
        "source": "diffwatch",
    }
    for label, key in (("model", "models"), ("version", "versions"), ("deployment", "deployments")):
        if rule.get(key):
            out[label] = ",".join(str(v) for v in rule[key])
    return out


def payload(f: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The v2 ``postableAlerts`` body of one event: a list of one alert."""
    at = _parse(f["at"])
    starts = _parse(f["firing_since"]) if f.get("firing_since") else at
    if f["status"] == "resolved":
        ends = at
    else:
        hold = max(MIN_HOLD_S, 2 * int(f["rule"].get("repeat_s") or 0))
        ends = at + timedelta(seconds=hold)
    rule = f["rule"]
    annotations = {
        "summary": str(f["summary"]),
        "description": str(rule.get("description") or rule.get("condition") or ""),
        "value": str(f["value_text"]),
        "threshold": str(f["threshold_text"]),
        "condition": str(rule.get("condition") or ""),
    }
    if f.get("note"):
        annotations["note"] = str(f["note"])
    alert: dict[str, Any] = {
        "labels": labels(f),
        "annotations": {k: v for k, v in annotations.items() if v},
        "startsAt": _iso(min(starts, at)),
        "endsAt": _iso(ends),
    }
    link = f.get("link")
    if isinstance(link, str) and link.lower().startswith(("http://", "https://")):
        alert["generatorURL"] = link
    return [alert]
