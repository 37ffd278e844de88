"""Accounts & audit log (admins only): roles, (de)activation, and who did what when."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import streamlit as st

from diffwatch.app import admin_data
from diffwatch.app.text import md
from diffwatch.db.models_accounts import ROLES
from diffwatch.model.csv_export import frame_to_csv

ACTIONS = {
    "everything": None,
    "logins (ok, failed, throttled)": "login.",
    "logouts": "logout",
    "account changes": "user.",
    "ratings": "rating.",
    "price changes": "price.",
    "alert rule changes": "rule.",
    "alert email retries": "alert.",
    "refused access": "access.",
}
SINCE = {"24 hours": 1, "7 days": 7, "30 days": 30, "all time": None}


def _accounts() -> None:
    st.subheader("Accounts")
    df = admin_data.accounts()
    if df.empty:
        st.info("No accounts yet: `diffwatch users add NAME --role admin`.")
        return
    st.dataframe(
        df[["username", "display_name", "role", "active", "last_login_at", "failed_logins",
            "locked_until", "created_at"]],
        hide_index=True,
        width="stretch",
    )  # fmt: skip
    st.caption(
        "Add accounts and reset passwords (which also clears a login delay and logs out) with "
        "`diffwatch users add|passwd` (docs/accounts.md): passwords never pass through "
        "this page."
    )
    names = df["username"].tolist()
    who = st.selectbox("Account to change", names)
    row = df[df["username"] == who].iloc[0]
    with st.form(f"account-{who}"):  # one form per account: its current values as defaults
        c1, c2 = st.columns(2)
        role = c1.selectbox("Role", ROLES, index=ROLES.index(row["role"]))
        active = c2.checkbox("Active (may log in)", value=bool(row["active"]))
        if st.form_submit_button("Save account"):
            from diffwatch.db.queries.users import AccountError

            try:
                done = admin_data.change_account(who, role, active)
            except AccountError as exc:
                st.error(md(exc))  # it may quote the username
            else:
                what = ", ".join(done) if done else "nothing changed"
                st.success(md(f"{who}: {what}"))


def _audit() -> None:
    st.subheader("Audit log")
    c1, c2, c3, c4 = st.columns([2, 2, 1, 1])
    what = c1.selectbox("Show", list(ACTIONS))
    actor = c2.text_input("By (username; empty: anyone)").strip() or None
    since_label = c3.selectbox("Since", list(SINCE), index=1)
    limit = int(c4.number_input("At most", min_value=10, max_value=5000, value=500, step=100))
    days = SINCE[since_label]
    since = datetime.now(UTC) - timedelta(days=days) if days else None
    df = admin_data.audit_log(ACTIONS[what], actor, since, limit)
    if df.empty:
        st.info("No audit rows match.")
        return
    df["details"] = df["details"].map(lambda d: json.dumps(d, sort_keys=True, default=str))
    st.dataframe(df, hide_index=True, width="stretch")
    st.caption(
        f"{len(df):,} rows, newest first{' (the limit)' if len(df) >= limit else ''}. "
        "Failed logins carry the client address and the reason; audit rows name people by "
        "username, so they outlive removed accounts."
    )
    # Names in the log are anyone's text (a failed login's username): formula cells are
    # neutralised for spreadsheets.
    st.download_button("Download as CSV", frame_to_csv(df), "diffwatch-audit.csv", "text/csv")


def render() -> None:
    """Draw the page."""
    st.title("Accounts & audit log")
    _accounts()
    _audit()
