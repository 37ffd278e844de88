"""Channel targets of alert rules (validation, redaction) and what each channel is sent."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from diffwatch.alerts import alertmanager
from diffwatch.alerts.notice import Notice
from diffwatch.alerts.smtp import PermanentError, TransientError
from diffwatch.alerts.webhook import classify_status, facts, slack_payload, webhook_payload
from diffwatch.model.alert_rules import (
    MAX_TARGET_CHARS,
    Rule,
    check_target,
    dump_rules,
    redact_target,
    rules_from_data,
    target_kind,
)

T = datetime(2026, 11, 21, 10, 15, tzinfo=UTC)
SLACK = "slack:https://hooks.slack.com/services/T000/B000/XXXXSECRET"


def rule(**kw) -> Rule:
    base = dict(
        id=7,
        name="canary p95 <slow>",
        description="Canary slower than users tolerate.",
        metric="latency_p95_ms",
        deployments=["canary"],
        models=["sdxl"],
        window="15m",
        comparison=">",
        threshold=5000,
        repeat="4h",
        severity="critical",
        recipients=["ops@example.com"],
    )
    return Rule.model_validate(base | kw)


def notice(kind: str = "firing", value: float | None = 6120.0) -> Notice:
    return Notice(
        kind=kind,  # type: ignore[arg-type]
        rule=rule(),
        value=value,
        at=T,
        window_start=T - timedelta(minutes=15),
        window_end=T,
        episode=3,
        state_since=T,
        firing_since=T - timedelta(minutes=30),
        note="condition holds",
        link="https://dash.example/latency?deployment=canary",
    )


@pytest.mark.parametrize(
    "target, kind",
    [
        ("ops@example.com", "email"),
        ("webhook:https://hooks.example.com/x?token=1", "webhook"),
        (SLACK, "slack"),
        ("alertmanager:http://am.internal:9093", "alertmanager"),
        ("alertmanager:https://monitor.example.com/am/", "alertmanager"),
    ],
)
def test_valid_targets_are_kept(target: str, kind: str) -> None:
    assert check_target(f"  {target} ") == target
    assert target_kind(target) == kind


@pytest.mark.parametrize(
    "target, problem",
    [
        ("webhook:ftp://example.com/x", "http:// or https://"),
        ("webhook:javascript:alert(1)", "http:// or https://"),
        ("webhook:file:///etc/passwd", "http:// or https://"),
        ("slack:https:///nohost", "no host"),
        ("webhook:https://user:pw@hooks.example.com/x", "user name or password"),
        ("alertmanager:http://am:9093/?x=1", "base URL"),
        ("webhook:https://hooks.example.com/a\x00b", "control characters"),
        ("webhook:https://hooks.example.com:99999/x", "not a valid URL"),
        ("webhook:https://h.example.com/" + "a" * MAX_TARGET_CHARS, "the limit is"),
        ("pagerduty:https://events.pagerduty.com/x", "not an email address"),
        ("bob", "not an email address"),
    ],
)
def test_invalid_targets_are_refused_with_the_reason(target: str, problem: str) -> None:
    with pytest.raises(ValueError) as err:
        check_target(target)
    assert problem in str(err.value)
    assert "pw@" not in str(err.value)  # a password never reaches a message


def test_a_rule_with_a_bad_target_is_refused_and_names_the_field() -> None:
    with pytest.raises(ValidationError) as err:
        rule(recipients=["ops@example.com", "webhook:gopher://x"])
    assert "recipients" in str(err.value) and "https://" in str(err.value)


def test_targets_go_through_yaml_both_ways() -> None:
    targets = ["ops@example.com", SLACK, "alertmanager:http://am:9093"]
    (r,) = rules_from_data({"defaults": {"recipients": targets}, "rules": [
        {"name": "a", "metric": "error_rate", "window": "5m", "comparison": ">",
         "threshold": 0.1}]})  # fmt: skip
    assert r.recipients == tuple(targets)
    import yaml

    assert yaml.safe_load(dump_rules([r]))["rules"][0]["recipients"] == targets


def test_redaction_hides_the_secret_path_and_query() -> None:
    assert redact_target(SLACK) == "slack:https://hooks.slack.com/…"
    assert redact_target("alertmanager:http://am:9093") == "alertmanager:http://am:9093"
    assert redact_target("webhook:https://h.example/?t=s3cret") == "webhook:https://h.example/…"
    assert redact_target("ops@example.com") == "ops@example.com"


def test_webhook_body_carries_the_key_and_the_facts() -> None:
    f = facts(notice(), "[diffwatch CRITICAL] FIRING: x")
    body = webhook_payload("rule7-ep3-firing-20261121T101500", f)
    assert body["idempotency_key"] == "rule7-ep3-firing-20261121T101500"
    assert body["status"] == "firing" and body["kind"] == "firing"
    assert body["value"] == 6120.0 and body["threshold"] == 5000
    assert body["value_text"].endswith("ms") and body["rule"]["deployments"] == ["canary"]
    assert body["at"] == "2026-11-21T10:15:00Z"
    assert body["firing_since"] == "2026-11-21T09:45:00Z"
    assert facts(notice("repeat"), "s")["status"] == "firing"
    assert facts(notice("resolved"), "s")["status"] == "resolved"
    assert facts(notice(value=None), "s")["value_text"] == "no data"


def test_slack_text_escapes_rule_text_and_links_the_dashboard() -> None:
    f = facts(notice(), "FIRING: canary p95 <slow> & <!channel>")
    text = slack_payload(f)["text"]
    assert "<!channel>" not in text and "&lt;!channel&gt;" in text and "&amp;" in text
    assert "<https://dash.example/latency?deployment=canary|Open in diffwatch>" in text
    assert set(slack_payload(f)) == {"text"}


def test_alertmanager_firing_and_resolved_carry_the_same_labels() -> None:
    firing = alertmanager.payload(facts(notice("firing"), "FIRING: x"))[0]
    resolved = alertmanager.payload(facts(notice("resolved", 4000.0), "RESOLVED: x"))[0]
    assert (
        firing["labels"]
        == resolved["labels"]
        == {
            "alertname": "canary p95 <slow>",
            "severity": "critical",
            "metric": "latency_p95_ms",
            "diffwatch_rule_id": "7",
            "source": "diffwatch",
            "model": "sdxl",
            "deployment": "canary",
        }
    )
    assert firing["generatorURL"] == "https://dash.example/latency?deployment=canary"
    assert firing["startsAt"] == resolved["startsAt"] == "2026-11-21T09:45:00Z"
    assert firing["endsAt"] == "2026-11-22T10:15:00Z"  # held 24 h: resolved by our event
    assert resolved["endsAt"] == "2026-11-21T10:15:00Z"
    assert firing["annotations"]["summary"] == "FIRING: x"
    assert firing["annotations"]["threshold"].endswith("ms")
    assert {"value", "description", "condition"} <= set(firing["annotations"])
    assert alertmanager.alerts_url("alertmanager:http://am:9093/") == (
        "http://am:9093/api/v2/alerts"
    )


def test_a_link_that_is_not_http_is_not_a_generator_url() -> None:
    f = facts(notice(), "s") | {"link": "javascript:alert(1)"}
    assert "generatorURL" not in alertmanager.payload(f)[0]
    assert "javascript" not in slack_payload(f)["text"]


@pytest.mark.parametrize(
    "code, kind",
    [(500, TransientError), (503, TransientError), (408, TransientError),
     (429, TransientError), (400, PermanentError), (404, PermanentError),
     (410, PermanentError), (301, PermanentError)],
)  # fmt: skip
def test_http_status_classification(code: int, kind: type) -> None:
    assert type(classify_status(code, "x")) is kind
