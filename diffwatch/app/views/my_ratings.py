"""My ratings: the logged-in rater's own counts, means and latest ratings.

The rater is always the logged-in account (``diffwatch.app.session.current_user``); no query
parameter or widget chooses whose ratings are shown, and nobody else's appear.
"""

from __future__ import annotations

from datetime import UTC

import pandas as pd
import streamlit as st

LIMIT = 50  # latest ratings listed


def _mean(v: float | None) -> str:
    return "–" if v is None else f"{v:.2f}"


def render() -> None:
    """Draw the logged-in rater's own rating counts, means and latest ratings."""
    from diffwatch.app import review_data
    from diffwatch.app.session import current_user

    st.title("My ratings")
    user = current_user()
    if user is None:  # the page guard ran already; a session that just ended
        st.stop()
    assert user is not None
    summary, _ = review_data.progress(user.username)
    today, week, total, q, a = st.columns(5)
    today.metric("Today (UTC)", summary.today)
    week.metric("Last 7 days", summary.last_7d)
    total.metric("All time", summary.total)
    q.metric("Mean quality", _mean(summary.mean_quality))
    a.metric("Mean adherence", _mean(summary.mean_adherence))
    rows = review_data.my_ratings(user.username, LIMIT)
    if not rows:
        st.info("You have not rated anything yet. Open the Review queue to start.")
        return
    st.subheader(f"Your latest {len(rows)} ratings")
    table = pd.DataFrame(
        {
            "rated at (UTC)": [r.rated_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M")
                               for r in rows],
            "item": [r.item_id for r in rows],
            "quality": [r.quality for r in rows],
            "adherence": [r.adherence for r in rows],
            "flags": [", ".join(r.flags) for r in rows],
            "comment": [r.comment or "" for r in rows],
            "prompt": [r.prompt for r in rows],  # untrusted: a dataframe cell is plain text
        }
    )  # fmt: skip
    st.dataframe(table, hide_index=True, width="stretch")
