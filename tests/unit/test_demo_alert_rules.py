"""The demo's alert rules: the CLIP quality rule only when the demo could set its threshold."""

from __future__ import annotations

from diffwatch.demo.alerts import demo_rules


def test_without_a_clip_threshold_there_is_no_quality_rule_and_no_error():
    rules = demo_rules(1200.0, "oncall@example.com")
    assert [r.name for r in rules] == [
        "canary median latency",
        "fleet error rate",
        "canary human rating",
    ]


def test_with_a_clip_threshold_the_quality_rule_watches_the_canarys_clip_mean():
    rules = demo_rules(1200.0, "oncall@example.com", clip_threshold=85.5)
    quality = rules[-1]
    assert (quality.name, quality.metric, quality.comparison) == (
        "canary CLIP score",
        "clip_mean",
        "<",
    )
    assert quality.threshold == 85.5 and list(quality.deployments) == ["canary"]
