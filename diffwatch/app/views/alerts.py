"""Alerts: where every rule stands, the rules (admins change them here) and the history.

Rule names, recipients, descriptions and errors come from people and SMTP servers, so they
are drawn as table cells, plain text or Markdown made inert by ``diffwatch.app.text.md`` (autolinks
included), never as HTML.
"""

from __future__ import annotations

import re
from typing import Any

import pandas as pd
import streamlit as st
from pydantic import ValidationError

from diffwatch.app import alerts_data, session
from diffwatch.app.text import md
from diffwatch.model.alert_metrics import METRICS
from diffwatch.model.alert_rules import Rule, format_duration

COMPARISONS = [">", ">=", "<", "<="]
SEVERITIES = ["info", "warning", "critical"]
STATE_COLOURS = {
    "firing": "background-color: #f8d0d0; color: #8a1010; font-weight: 600",
    "pending": "background-color: #fde9c4; color: #7a4b00",
    "no_data": "background-color: #e4e4ec; color: #333344",
    "resolved": "background-color: #d6efd8; color: #1d5e24",
}
FAILED = "background-color: #f8d0d0; color: #8a1010"


def _flash() -> None:
    msg = st.session_state.pop("alerts_flash", None)
    if msg:
        st.success(msg)


def _done(msg: str) -> None:
    st.session_state["alerts_flash"] = md(msg)
    st.rerun()


def _invalid(exc: ValidationError) -> None:
    lines = "\n".join(f"- {md(p)}" for p in alerts_data.problems(exc))
    st.error(f"The rule was not saved. Fix these fields:\n\n{lines}")


def _states() -> None:
    df = alerts_data.states()
    counts = df["_state"].value_counts() if not df.empty else pd.Series(dtype=int)
    c1, c2, c3, c4 = st.columns(4)
    c1.metric("Firing", int(counts.get("firing", 0)))
    c2.metric("Pending", int(counts.get("pending", 0)))
    c3.metric("No data", int(counts.get("no_data", 0)))
    c4.metric("Rules", len(df))
    st.subheader("Current states")
    if df.empty:
        st.info("No alert rules yet: load some with `diffwatch alerts load rules.yaml`.")
        return
    shown = df.drop(columns="_state")
    styles = df["_state"].map(lambda s: STATE_COLOURS.get(s, ""))
    st.dataframe(
        shown.style.apply(lambda _: styles.tolist(), subset=["state"]),
        hide_index=True,
        width="stretch",
    )
    if (df["last error"] != "").any():
        st.caption("A rule with a last error could not be evaluated; its state was kept.")


def _rules(rules: list[Rule]) -> None:
    st.subheader("Rules")
    if rules:
        st.dataframe(alerts_data.rules_table(rules), hide_index=True, width="stretch")


def _list(value: str | list[str]) -> list[str]:
    items = value if isinstance(value, list) else re.split(r"[,\s]+", value)
    return [s.strip() for s in items if s.strip()]


def _rule_form(prefix: str, rule: Rule | None, submit: str) -> dict[str, Any] | None:
    """The rule's fields as typed, once submitted (None before)."""
    from diffwatch.app import data

    keys = list(METRICS)
    metric = st.selectbox(
        "Metric",
        keys,
        index=keys.index(rule.metric) if rule else 0,
        format_func=lambda k: f"{METRICS[k].label} ({k})",
        key=f"{prefix}-metric",
    )
    m = METRICS[metric]
    share = " Thresholds are shares: 0.05 means 5 %." if m.percent else ""
    unit = f" Unit: {m.unit}." if m.unit else ""
    st.caption(f"{m.help}{unit}{share}")
    opts = data.options()
    with st.form(f"{prefix}-form"):
        c1, c2 = st.columns([1, 2])
        name = c1.text_input("Name", rule.name if rule else "", key=f"{prefix}-name")
        description = c2.text_input(
            "Description (optional)", rule.description if rule else "", key=f"{prefix}-desc"
        )
        scope: dict[str, list[str]] = {"models": [], "versions": [], "deployments": []}
        if m.filterable:
            cols = st.columns(3)
            for col, (field, known) in zip(
                cols,
                (("models", opts.models), ("versions", opts.versions),
                 ("deployments", opts.deployments)),
                strict=True,
            ):  # fmt: skip
                now = list(getattr(rule, field)) if rule else []
                scope[field] = col.multiselect(
                    f"{field.capitalize()} (none: all)",
                    sorted({*known, *now}),
                    default=now,
                    accept_new_options=True,
                    key=f"{prefix}-{field}",
                )
        else:
            st.caption("This metric covers the whole GPU fleet: no model or version filters.")
        c1, c2, c3, c4, c5 = st.columns(5)
        window = c1.text_input(
            "Window", format_duration(rule.window_s) if rule else "15m", key=f"{prefix}-window",
            help="Measured over this much time before each evaluation: 90s, 15m, 2h, 1d.",
        )  # fmt: skip
        comparison = c2.selectbox(
            "Comparison",
            COMPARISONS,
            index=COMPARISONS.index(rule.comparison) if rule else 0,
            key=f"{prefix}-cmp",
        )
        threshold = c3.text_input(
            "Threshold", f"{rule.threshold:g}" if rule else "", key=f"{prefix}-threshold"
        )
        held = c4.text_input(
            "For", format_duration(rule.for_s) if rule else "5m", key=f"{prefix}-for",
            help="How long the condition must hold before the rule fires (0: at once).",
        )  # fmt: skip
        repeat = c5.text_input(
            "Repeat", format_duration(rule.repeat_s) if rule else "1h", key=f"{prefix}-repeat",
            help="Email again this often while it keeps firing (0: never).",
        )  # fmt: skip
        c1, c2 = st.columns([1, 3])
        severity = c1.selectbox(
            "Severity",
            SEVERITIES,
            index=SEVERITIES.index(rule.severity) if rule else 1,
            key=f"{prefix}-severity",
        )
        recipients = c2.text_input(
            "Recipients (email addresses, or webhook:/slack:/alertmanager: URLs; comma separated)",
            ", ".join(rule.recipients) if rule else "",
            key=f"{prefix}-recipients",
        )
        c1, c2 = st.columns(2)
        no_data = c1.checkbox(
            "Alert on no data", rule.alert_on_no_data if rule else False, key=f"{prefix}-nodata"
        )
        enabled = c2.checkbox("Enabled", rule.enabled if rule else True, key=f"{prefix}-enabled")
        if not st.form_submit_button(submit, type="primary"):
            return None
    return {
        "name": name,
        "description": description.strip(),
        "metric": metric,
        **scope,
        "window": window.strip(),
        "comparison": comparison,
        "threshold": threshold.strip(),
        "for": held.strip(),
        "repeat": repeat.strip(),
        "severity": severity,
        "recipients": _list(recipients),
        "alert_on_no_data": no_data,
        "enabled": enabled,
    }


def _create() -> None:
    from diffwatch.db.queries.alert_rules import RuleNameTaken

    n = st.session_state.setdefault("alerts_new_n", 0)  # a new number empties the form
    fields = _rule_form(f"new{n}", None, "Create rule")
    if fields is None:
        return
    try:
        rule = alerts_data.create_rule(fields)
    except ValidationError as exc:
        _invalid(exc)
    except RuleNameTaken as exc:
        st.error(md(str(exc)))
    else:
        st.session_state["alerts_new_n"] = n + 1
        _done(f"Created rule {rule.name}: {rule.describe()}")


def _change(rules: list[Rule]) -> None:
    from diffwatch.db.queries.alert_rules import RuleNameTaken, UnknownRule

    if not rules:
        st.info("No rules to change yet.")
        return
    by_name = {r.name: r for r in rules}
    name = st.selectbox("Rule to change", list(by_name), key="alerts-change")
    rule = by_name[name]
    assert rule.id is not None
    if rule.source != "app":
        st.warning(
            f"This rule comes from {md(rule.source)}: the next `diffwatch alerts load` of that "
            "file puts its values back. Change the file to make a change last."
        )
    c1, c2 = st.columns([1, 3])
    if c1.button("Disable rule" if rule.enabled else "Enable rule", key="alerts-toggle"):
        alerts_data.set_enabled(rule.id, not rule.enabled)
        _done(f"{rule.name}: {'disabled' if rule.enabled else 'enabled'}")
    c2.caption("A disabled rule is not evaluated and sends nothing; its state is kept.")
    fields = _rule_form(f"edit{rule.id}", rule, "Save rule")
    if fields is not None:
        try:
            changed = alerts_data.update_rule(rule.id, fields)
        except ValidationError as exc:
            _invalid(exc)
        except (RuleNameTaken, UnknownRule) as exc:
            st.error(md(str(exc)))
        else:
            labels = [alerts_data.FIELD_LABELS.get(k, k).lower() for k in changed]
            what = ", ".join(labels) if labels else "nothing changed"
            _done(f"Saved rule {fields['name'].strip()}: {what}")
    with st.expander("Delete this rule"):
        sure = st.checkbox(
            "Yes, delete it with its state and history (emails already queued still go out)",
            key=f"alerts-delete-sure-{rule.id}",
        )
        if st.button("Delete rule", disabled=not sure, key="alerts-delete"):
            gone = alerts_data.delete_rule(rule.id)
            _done(f"Deleted rule {gone}")


def _history(rules: list[Rule], admin: bool) -> None:
    st.subheader("History")
    ids = {r.name: r.id for r in rules}
    which = st.selectbox("Rule", ["all rules", *ids], key="alerts-history-rule")
    df = alerts_data.events(ids.get(which))
    if df.empty:
        st.info("No state changes yet.")
    else:
        st.dataframe(df, hide_index=True, width="stretch")
    _deliveries(admin)


def _deliveries(admin: bool) -> None:
    st.subheader("Email deliveries")
    counts = alerts_data.delivery_counts()
    failed = int(counts.get("failed", 0))
    st.caption(
        " · ".join(f"{k}: {int(counts.get(k, 0)):,}" for k in ("pending", "sending", "sent"))
        + f" · failed: {failed:,}"
    )
    if failed:
        what = "email delivery" if failed == 1 else "email deliveries"
        st.error(f"{failed:,} {what} failed for good: each one's error is in the table.")
    df = alerts_data.deliveries()
    if df.empty:
        st.info("No emails yet.")
        return
    cols = [c for c in alerts_data.DELIVERY_COLS if c != "id"]
    styles = [FAILED if s == "failed" else "" for s in df["status"]]
    st.dataframe(
        df[cols].style.apply(lambda _: styles, subset=["status", "last error"]),
        hide_index=True,
        width="stretch",
    )
    bad = df[df["status"] == "failed"]
    if bad.empty or not admin:
        return
    labels = {
        f"#{r['id']} {r['rule']} ({r['kind']}) to {r['recipient']}": r
        for r in bad.to_dict("records")
    }
    c1, c2 = st.columns([3, 1])
    pick = c1.selectbox("Failed delivery to send again", list(labels), key="alerts-retry-pick")
    if c2.button("Retry now", key="alerts-retry"):
        r = labels[pick]
        if alerts_data.retry_delivery(int(r["id"]), str(r["recipient"]), str(r["rule"])):
            _done(f"Delivery {pick} queued again")
        st.warning("That delivery is no longer failed: nothing to retry.")


def render() -> None:
    """Draw the page."""
    st.title("Alerts")
    st.caption(
        "Rules come from a rules file (`diffwatch alerts load rules.yaml`, see docs/alerts.md) "
        "or from this page. States move only while `diffwatch alerts evaluate` runs on a "
        "schedule or `diffwatch worker` runs; emails go out from the outbox below."
    )
    _flash()
    _states()
    rules = alerts_data.rules()
    _rules(rules)
    user = session.current_user()
    admin = user is not None and user.role == "admin"
    if admin:
        new, change = st.tabs(["New rule", "Change a rule"])
        with new:
            _create()
        with change:
            _change(rules)
    else:
        st.caption("Only admins change rules.")
    _history(rules, admin)
