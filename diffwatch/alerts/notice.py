"""What an alert email is about (the evaluator fills it; ``diffwatch.alerts.email`` composes from
it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from diffwatch.model.alert_rules import Rule
from diffwatch.model.alert_state import Kind


@dataclass(frozen=True)
class Notice:
    """One alert event worth an email: the rule, the value against its threshold, the chart."""

    kind: Kind  # firing | repeat | resolved
    rule: Rule
    value: float | None  # the metric over [window_start, window_end); None: no data
    at: datetime  # evaluation time (the injected clock)
    window_start: datetime
    window_end: datetime
    episode: int
    state_since: datetime | None  # when the rule entered its current state
    firing_since: datetime | None  # when the episode opened (None when not known)
    note: str = ""  # the evaluator's reason, e.g. 'condition holds'
    link: str | None = None  # dashboard view with the rule's filters and window
    series: list[tuple[datetime, float | None]] = field(default_factory=list)  # for the chart

    @property
    def idempotency_key(self) -> str:
        """Unique per rule, episode and email: the same event never makes two emails."""
        stamp = self.at.strftime("%Y%m%dT%H%M%S")
        return f"rule{self.rule.id}-ep{self.episode}-{self.kind}-{stamp}"

    def message_id(self, domain: str) -> str:
        """The RFC 5322 Message-ID carrying the idempotency key."""
        return f"<diffwatch.{self.idempotency_key}@{domain}>"
