"""The alert state machine: one rule, its last state, a new value and the time -> next state.

Pure: the clock is an argument, so tests drive it minute by minute. The states:

- ``normal``: the condition does not hold.
- ``pending``: it holds, but not yet for the rule's pending period ("for").
- ``firing``: it has held for the pending period; an episode is open. A clear shorter
  than the pending period does not end the episode (hysteresis both ways), so a metric
  that flaps around the threshold stays one episode.
- ``resolved``: the condition has been clear for the pending period; the episode closed.
  The next clear evaluation makes it ``normal``.
- ``no_data``: the metric had no data in the window. It is its own state, never "OK": with
  ``alert_on_no_data`` it counts as a breach (and can fire); without, an open episode stays
  open until data returns.

Emails (``Notice``): ``firing`` when an episode opens, ``repeat`` while it stays open, at
most once per repeat interval, and ``resolved`` when an episode whose firing email went out
closes. A new episode's firing email is held back (noted in the history) when the last
firing or repeat email of the rule went out less than a repeat interval ago, so flapping
slower than the pending period still sends at most one such email per repeat interval.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Literal

from diffwatch.model.alert_rules import Rule

Kind = Literal["firing", "repeat", "resolved"]


@dataclass(frozen=True, slots=True)
class State:
    """Where a rule stands (one ``alert_states`` row)."""

    state: str = "normal"
    since: datetime | None = None
    pending_since: datetime | None = None
    cleared_since: datetime | None = None
    episode: int = 0
    active: bool = False
    notified_at: datetime | None = None
    episode_notified: bool = False
    value: float | None = None
    evaluated_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Change:
    """A state change for the history, and the email it calls for (if any)."""

    from_state: str
    to_state: str
    note: str
    notice: Kind | None = None


def _due(last: datetime | None, now: datetime, every_s: int) -> bool:
    return last is None or (every_s > 0 and now - last >= timedelta(seconds=every_s))


def step(
    rule: Rule, prev: State, value: float | None, now: datetime
) -> tuple[State, Change | None]:
    """The rule's state after seeing ``value`` (None: no data in the window) at ``now``."""
    held = timedelta(seconds=rule.for_s)
    base = replace(prev, value=value, evaluated_at=now)
    if value is None and not rule.alert_on_no_data:
        nxt = replace(base, state="no_data", pending_since=None, cleared_since=None)
        return _moved(prev, nxt, now, "no data in the window")
    breach = True if value is None else rule.breached(value)
    why = "no data in the window (alerting on no data)" if value is None else "condition holds"
    if breach:
        pending_since = prev.pending_since or now
        nxt = replace(base, pending_since=pending_since, cleared_since=None)
        if prev.active:
            nxt = replace(nxt, state="firing")
            if (
                prev.episode_notified
                and rule.repeat_s
                and _due(prev.notified_at, now, rule.repeat_s)
            ):
                nxt = replace(nxt, notified_at=now)
                return _moved(prev, nxt, now, f"still firing: {why}", "repeat", force=True)
            if not prev.episode_notified and _due(prev.notified_at, now, rule.repeat_s):
                nxt = replace(nxt, notified_at=now, episode_notified=True)
                return _moved(prev, nxt, now, f"still firing: {why}", "firing", force=True)
            return _moved(prev, nxt, now, why)
        if now - pending_since < held:
            return _moved(prev, replace(nxt, state="pending"), now, why)
        nxt = replace(nxt, state="firing", active=True, episode=prev.episode + 1)
        if _due(prev.notified_at, now, rule.repeat_s):
            nxt = replace(nxt, notified_at=now, episode_notified=True)
            return _moved(prev, nxt, now, why, "firing")
        last = prev.notified_at.isoformat() if prev.notified_at else "never"
        nxt = replace(nxt, episode_notified=False)
        return _moved(
            prev,
            nxt,
            now,
            f"{why}; email held back: the last one went out at {last}, within the repeat interval",
        )
    nxt = replace(base, pending_since=None)
    if prev.active:
        cleared_since = prev.cleared_since or now
        nxt = replace(nxt, cleared_since=cleared_since)
        if now - cleared_since < held:
            return _moved(prev, replace(nxt, state="firing"), now, "clearing")
        nxt = replace(nxt, state="resolved", active=False, cleared_since=None)
        notice: Kind | None = "resolved" if prev.episode_notified else None
        return _moved(prev, nxt, now, "condition clear", notice)
    return _moved(prev, replace(nxt, state="normal", cleared_since=None), now, "condition clear")


def _moved(
    prev: State,
    nxt: State,
    now: datetime,
    note: str,
    notice: Kind | None = None,
    force: bool = False,
) -> tuple[State, Change | None]:
    if nxt.state != prev.state or prev.since is None:
        nxt = replace(nxt, since=now)
    if nxt.state == prev.state and not force and notice is None:
        return nxt, None
    return nxt, Change(prev.state, nxt.state, note, notice)
