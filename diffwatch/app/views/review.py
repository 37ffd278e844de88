"""Review queue, the rater's view: one leased item at a time, rated by keys or clicks.

The page claims the rater's item on every run (the same item while they hold it; the claim
renews the 10-minute lease). Buttons only record what was pressed (callbacks); the run
then does the write, after ``require_write``, and claims the next item. The prompt is
untrusted and shown as plain text; why an item was picked is not shown (it would bias).
"""

from __future__ import annotations

from datetime import UTC

import pandas as pd
import streamlit as st
from PIL import Image

from diffwatch.app.review_keys import (
    CLEAR_KEY,
    FLAG_KEYS,
    REVEAL_KEY,
    SCORES,
    SKIP_KEY,
    SUBMIT_KEY,
    Choice,
    Field,
    legend,
)
from diffwatch.app.text import md
from diffwatch.db.queries.review import ClaimedItem
from diffwatch.db.queries.users import SessionUser

ITEM_KEY = "review_item_id"  # diffwatch.app.session.logout releases this item
CHOICE_KEY = "review_choice"
ACTION_KEY = "review_action"
FLASH_KEY = "review_flash"
REVEALED_KEY = "review_revealed"  # the item id whose image the rater revealed
IMAGE_PX = 512


def _comment_key(item_id: int) -> str:
    return f"review-comment-{item_id}"


def _choice() -> Choice:
    got = st.session_state.get(CHOICE_KEY)
    return got if isinstance(got, Choice) else Choice()


def _on_set(field: Field, score: int) -> None:
    st.session_state[CHOICE_KEY] = _choice().set(field, score)


def _on_toggle(flag: str) -> None:
    st.session_state[CHOICE_KEY] = _choice().toggle(flag)


def _on_clear() -> None:
    st.session_state[CHOICE_KEY] = Choice()


def _on_reveal(item_id: int) -> None:
    st.session_state[REVEALED_KEY] = item_id


def _on_action(action: str) -> None:
    st.session_state[ACTION_KEY] = action


def _flash(kind: str, text: str) -> None:
    st.session_state[FLASH_KEY] = (kind, text)


def _next_item() -> None:
    """Forget the finished item's state so the next claim starts clean."""
    held = st.session_state.pop(ITEM_KEY, None)
    st.session_state.pop(CHOICE_KEY, None)
    st.session_state.pop(REVEALED_KEY, None)
    if held is not None:
        st.session_state.pop(_comment_key(int(held)), None)


def _apply(action: str) -> None:
    """Do a pressed Submit or Skip on the held item: validate, check the role, write."""
    from diffwatch.app import review_data
    from diffwatch.app.session import require_write
    from diffwatch.db.queries.review import RatingRefused, UnknownItem

    held = st.session_state.get(ITEM_KEY)
    if held is None:
        return
    item_id = int(held)
    if action == "skip":
        user = require_write("rating.add")
        try:
            review_data.skip(item_id, user.username)
            _flash("info", f"Skipped item {item_id}; here is the next one.")
        except UnknownItem:
            _flash("warning", f"Item {item_id} is gone from the queue; here is the next one.")
        _next_item()
        return
    choice = _choice()
    if not choice.complete():
        _flash(
            "error",
            f"Not submitted: choose the {' and the '.join(choice.missing())} (1–5) first. "
            "Nothing was stored.",
        )
        return
    assert choice.quality is not None and choice.adherence is not None
    user = require_write("rating.add")
    comment = st.session_state.get(_comment_key(item_id)) or None
    try:
        new = review_data.rate(
            item_id,
            user.username,
            user.id,
            choice.quality,
            choice.adherence,
            choice.sorted_flags(),
            comment,
        )
    except ValueError as exc:  # a comment over the limit: keep the item and the choices
        _flash("error", f"Not submitted: {exc}.")
        return
    except RatingRefused as exc:
        _flash("warning", f"Not stored: {exc}.")
    except UnknownItem:
        _flash(
            "warning",
            f"Not stored: item {item_id} is gone from the queue (its generation was "
            "deleted); here is the next one.",
        )
    else:
        if new:
            _flash("success", f"Rating of item {item_id} stored; here is the next one.")
        else:
            _flash("info", f"You had already rated item {item_id}; it counts once. Next one.")
    _next_item()


def _show_flash() -> None:
    got = st.session_state.pop(FLASH_KEY, None)
    if got:
        kind, text = got
        getattr(st, kind)(md(text))  # plain text: error texts may quote what was typed


def _progress(user: SessionUser) -> None:
    from diffwatch.app import review_data

    mine, open_n = review_data.progress(user.username)
    st.caption(f"Rated today by you: {mine.today} · items open in the queue: {open_n}")


def _empty() -> None:
    st.info(
        "Nothing is waiting for you: every open item is rated, skipped by you, or held by "
        "another rater. Ops fill the queue with `diffwatch review enqueue` (for example "
        "hourly); check again later."
    )
    st.button("Check again", key="review-check-again")


def _image(item: ClaimedItem) -> None:
    from diffwatch.app.images import thumbnail

    blurred = bool(item.nsfw_flagged) and st.session_state.get(REVEALED_KEY) != item.item_id
    pixels, why = thumbnail(item.image_uri, blurred=blurred, px=IMAGE_PX)
    if pixels is None:
        st.text(f"image unavailable: {why}")
    else:
        st.image(Image.fromarray(pixels), width=IMAGE_PX)
    if blurred:
        st.caption("Blurred: the automatic NSFW check flagged this image.")
        st.button(
            "Reveal image",
            key="review-reveal",
            shortcut=REVEAL_KEY,
            on_click=_on_reveal,
            args=(item.item_id,),
        )


def _prompt(item: ClaimedItem) -> None:
    st.subheader("Prompt")
    st.text(item.prompt)  # untrusted: plain text only
    if item.negative_prompt:
        st.caption("Negative prompt")
        st.text(item.negative_prompt)
    p = item.parameters
    size = f"{p.get('width')} × {p.get('height')}" if p.get("width") else None
    rows = [
        ("model", item.model),
        ("version", item.model_version),
        ("sampler", p.get("sampler")),
        ("steps", p.get("steps")),
        ("CFG", p.get("cfg_scale")),
        ("seed", p.get("seed")),
        ("size", size),
    ]
    table = pd.DataFrame(
        {
            "parameter": [k for k, _ in rows],
            "value": ["–" if v is None else str(v) for _, v in rows],
        }
    )
    st.dataframe(table, hide_index=True, width="content")


def _on_digit(score: int) -> None:
    st.session_state[CHOICE_KEY] = _choice().digit(score)


def _score_row(field: Field, label: str, choice: Choice) -> None:
    """A row of 1–5 buttons. The row the next digit sets carries the digit keys, on buttons
    keyed ``review-digit-N`` whose callback is always ``Choice.digit``: a key pressed before
    the browser has redrawn the rows still sets the score the server expects next."""
    current = choice.quality if field == "quality" else choice.adherence
    keyed = choice.next_field == field
    st.markdown(f"**{label}**" + ("  ← next digit" if keyed else ""))
    with st.container(key=f"review-row-{field}"):
        for col, n in zip(st.columns(len(SCORES)), SCORES, strict=True):
            col.button(
                str(n),
                key=f"review-digit-{n}" if keyed else f"review-{field}-{n}",
                type="primary" if current == n else "secondary",
                shortcut=str(n) if keyed else None,
                on_click=_on_digit if keyed else _on_set,
                args=(n,) if keyed else (field, n),
                width="stretch",
            )


def _controls(item: ClaimedItem, choice: Choice) -> None:
    _score_row("quality", "Overall quality (1 = poor, 5 = excellent)", choice)
    _score_row("adherence", "Prompt adherence (1 = ignores it, 5 = exact)", choice)
    st.markdown("**Flags**")
    with st.container(horizontal=True):  # sized to their labels, wrapping when narrow
        for flag, (key, label) in FLAG_KEYS.items():
            st.button(
                label,
                key=f"review-flag-{flag}",
                type="primary" if flag in choice.flags else "secondary",
                shortcut=key,
                on_click=_on_toggle,
                args=(flag,),
            )
    st.text_input(
        "Comment (optional)",
        key=_comment_key(item.item_id),
        max_chars=2000,
        placeholder="Enter keeps the comment; Esc leaves the box so the keys work again",
    )
    submit, skip, clear = st.columns(3)
    submit.button(
        "Submit",
        key="review-submit",
        type="primary",
        shortcut=SUBMIT_KEY,
        on_click=_on_action,
        args=("submit",),
        width="stretch",
    )
    skip.button(
        "Skip",
        key="review-skip",
        shortcut=SKIP_KEY,
        on_click=_on_action,
        args=("skip",),
        width="stretch",
    )
    clear.button(
        "Clear", key="review-clear", shortcut=CLEAR_KEY, on_click=_on_clear, width="stretch"
    )


def _legend() -> None:
    st.caption("**Keys** · " + " · ".join(f"`{k}` {d}" for k, d in legend()))


def render() -> None:
    """Draw the rater's current item with the rating controls, or say the queue is empty."""
    from diffwatch.app import review_data
    from diffwatch.app.session import current_user

    st.title("Review queue")
    user = current_user()
    if user is None:  # the page guard ran already; a session that just ended
        st.stop()
    assert user is not None
    action = st.session_state.pop(ACTION_KEY, None)
    if action:
        _apply(action)
    _show_flash()
    item = review_data.claim(user.username, user.id)
    if item is None:
        _next_item()
        _progress(user)
        _empty()
        return
    if st.session_state.get(ITEM_KEY) != item.item_id:
        _next_item()
        st.session_state[ITEM_KEY] = item.item_id
    choice = _choice()
    until = item.lease_expires_at.astimezone(UTC)
    st.caption(f"Item {item.item_id} · held for you until {until:%H:%M} UTC")
    _progress(user)
    left, right = st.columns([1, 1], gap="large")
    with left:
        _image(item)
        _prompt(item)
    with right:
        nxt = "overall quality" if choice.next_field == "quality" else "prompt adherence"
        st.markdown(f"Next digit sets: **{nxt}**")
        _controls(item, choice)
        _legend()
