"""Alert emails: compose a Notice into subject, text, HTML and chart; build the MIME message.

``compose`` runs in the evaluator, inside the transaction that records the state change, so
the outbox row holds the finished email; ``build_message`` turns that row into the message
the SMTP sender hands over, with the row's Message-ID, so a resend is the same email.
All rule text (names, descriptions, filters, notes) is untrusted: the HTML escapes it.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any

from diffwatch.alerts.chart import chart_png
from diffwatch.alerts.notice import Notice
from diffwatch.model.alert_metrics import METRICS

CHART_CID = "diffwatch-chart"  # Content-ID of the inline chart, unique within a message
_HEADLINE = {"firing": "FIRING", "repeat": "STILL FIRING", "resolved": "RESOLVED"}
_COLOUR = {"critical": "#b42318", "warning": "#b54708", "info": "#175cd3"}


@dataclass(frozen=True)
class Composed:
    """A finished alert email: what goes into the outbox row."""

    subject: str
    text: str
    html: str
    png: bytes | None  # the chart, shown inline as cid:CHART_CID; None when no data


def _one_line(s: str) -> str:
    return " ".join(s.split())


def _utc(t: datetime | None) -> str:
    if t is None:
        return "unknown"
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return t.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _filters(notice: Notice) -> str:
    r = notice.rule
    parts = [
        f"{label} {', '.join(vals)}"
        for label, vals in (
            ("model", r.models),
            ("version", r.versions),
            ("deployment", r.deployments),
        )
        if vals
    ]
    return "; ".join(parts) if parts else "none (all traffic)"


def _safe_link(link: str | None) -> str | None:
    # Only web links become hrefs: escaping does not stop a javascript: URL.
    if link and link.lower().startswith(("http://", "https://")):
        return link
    return None


def _facts(notice: Notice) -> dict[str, Any]:
    r = notice.rule
    m = METRICS[r.metric]
    value = m.format(notice.value)
    threshold = m.format(r.threshold)
    if notice.kind == "resolved":
        comparison = f"{m.label} is {value}; no longer {r.comparison} {threshold}"
        short = f"{m.label} {value}, back from {r.comparison} {threshold}"
    elif notice.value is None:
        comparison = f"{m.label} had no data in the window (the rule alerts on no data)"
        short = f"{m.label}: no data"
    else:
        comparison = f"{m.label} is {value}; the rule fires when it is {r.comparison} {threshold}"
        short = f"{m.label} {value} {r.comparison} {threshold}"
    headline = _HEADLINE[notice.kind]
    name = _one_line(r.name)
    return {
        "headline": headline,
        "name": name,
        "severity": r.severity,
        "colour": _COLOUR.get(r.severity, "#344054"),
        "subject": f"[diffwatch {r.severity.upper()}] {headline}: {name}: {short}",
        "comparison": comparison,
        "rule": r.describe(),
        "description": r.description.strip(),
        "window": f"{_utc(notice.window_start)} to {_utc(notice.window_end)}",
        "firing_since": _utc(notice.firing_since) if notice.firing_since else None,
        "state_since": _utc(notice.state_since) if notice.state_since else None,
        "evaluated": _utc(notice.at),
        "filters": _filters(notice),
        "note": notice.note.strip(),
        "link": _safe_link(notice.link),
        "episode": notice.episode,
    }


def _text(f: Mapping[str, Any]) -> str:
    lines = [
        f"{f['headline']}: {f['name']} (severity {f['severity']})",
        "",
        f["comparison"] + ".",
        "",
        f"Rule:          {f['rule']}",
    ]
    if f["description"]:
        lines.append(f"Description:   {_one_line(f['description'])}")
    lines += [
        f"Window:        {f['window']}",
        f"Firing since:  {f['firing_since'] or 'unknown'}",
        f"Evaluated at:  {f['evaluated']}",
        f"Severity:      {f['severity']}",
        f"Filters:       {f['filters']}",
    ]
    if f["note"]:
        lines.append(f"Note:          {_one_line(f['note'])}")
    if f["link"]:
        lines += ["", f"Dashboard: {f['link']}"]
    lines += ["", "-- ", "diffwatch alerts (episode {})".format(f["episode"])]
    return "\n".join(lines) + "\n"


_HTML = """\
<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{{ f.subject }}</title></head>
<body style="margin:0;padding:16px;background:#f6f7f9;font-family:Arial,Helvetica,sans-serif;\
color:#1d2939;font-size:14px;">
<table role="presentation" cellpadding="0" cellspacing="0" style="max-width:600px;width:100%;\
background:#ffffff;border:1px solid #e4e7ec;border-radius:6px;">
<tr><td style="padding:12px 16px;border-top:6px solid {{ f.colour }};">
<div style="font-size:12px;font-weight:bold;color:{{ f.colour }};letter-spacing:0.04em;">\
{{ f.headline }} &middot; {{ f.severity | upper }}</div>
<h1 style="margin:4px 0 8px 0;font-size:18px;">{{ f.name }}</h1>
<p style="margin:0 0 12px 0;font-size:15px;">{{ f.comparison }}.</p>
{% if png %}<img src="cid:{{ cid }}" width="480" height="160" alt="{{ f.name }} chart" \
style="display:block;max-width:100%;border:0;margin:0 0 12px 0;">{% endif %}
<table role="presentation" cellpadding="0" cellspacing="0" style="font-size:13px;\
border-collapse:collapse;">
{% for key, value in rows %}<tr><td style="padding:2px 12px 2px 0;color:#667085;\
vertical-align:top;white-space:nowrap;">{{ key }}</td><td style="padding:2px 0;">{{ value }}</td>\
</tr>
{% endfor %}</table>
{% if f.link %}<p style="margin:16px 0 0 0;"><a href="{{ f.link }}" style="background:#1f5fa8;\
color:#ffffff;padding:8px 14px;border-radius:4px;text-decoration:none;display:inline-block;">\
Open the dashboard view</a></p>{% endif %}
</td></tr></table>
<p style="font-size:11px;color:#98a2b3;">diffwatch alerts &middot; episode {{ f.episode }}</p>
</body></html>
"""


@functools.cache
def _template() -> Any:
    import jinja2

    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    return env.from_string(_HTML)


def _html(f: Mapping[str, Any], png: bool) -> str:
    rows = [("Rule", f["rule"])]
    if f["description"]:
        rows.append(("Description", f["description"]))
    rows += [
        ("Window", f["window"]),
        ("Firing since", f["firing_since"] or "unknown"),
        ("Evaluated at", f["evaluated"]),
        ("Severity", f["severity"]),
        ("Filters", f["filters"]),
    ]
    if f["note"]:
        rows.append(("Note", f["note"]))
    return _template().render(f=f, rows=rows, png=png, cid=CHART_CID)


def compose(notice: Notice) -> Composed:
    """The email for ``notice``: subject, plain text, HTML (escaped) and the chart PNG."""
    f = _facts(notice)
    m = METRICS[notice.rule.metric]
    png = chart_png(notice.series, notice.rule.threshold, m.label, m.format)
    return Composed(subject=f["subject"], text=_text(f), html=_html(f, png is not None), png=png)


def build_message(row: Mapping[str, Any], recipient: str, sender: str) -> EmailMessage:
    """The MIME message of one ``alert_notifications`` row for one recipient.

    Text part plus an HTML alternative; the chart is a related inline part of the HTML.
    The Message-ID is the row's, so a resend after a crash is recognisably the same email.
    """
    created = row["created_at"]
    if created.tzinfo is None:
        created = created.replace(tzinfo=UTC)
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = recipient
    msg["Subject"] = _one_line(row["subject"])
    msg["Date"] = format_datetime(created)
    msg["Message-ID"] = row["message_id"]
    msg["X-Diffwatch-Rule"] = _one_line(row["rule_name"])
    msg["X-Diffwatch-Kind"] = row["kind"]
    msg["X-Diffwatch-Severity"] = row["severity"]
    msg["Auto-Submitted"] = "auto-generated"
    msg.set_content(row["body_text"])
    msg.add_alternative(row["body_html"], subtype="html")
    png = row.get("chart_png")
    if png:
        html_part = msg.get_payload()[1]
        html_part.add_related(
            bytes(png),
            maintype="image",
            subtype="png",
            cid=f"<{CHART_CID}>",
            disposition="inline",
            filename="chart.png",
        )
    return msg
