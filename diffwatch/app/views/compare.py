"""Side-by-side, the rater's blind pairwise view of release-gate pairs, voted by keys or clicks.

Two images of one prompt and seed, made by the candidate and the baseline model, one on
each side; which is which is a stable random assignment per rater and pair, and no model
name, label, path or side reaches the page (an unreadable image says so without the path,
which names the side). Buttons only record what was pressed, with the pair they were drawn
for (callbacks); the run then stores the vote, after ``require_write``, and shows the next
pair. Keys: 1 left is better, 2 same, 3 right is better (the review page's mechanism:
Streamlit button shortcuts). The prompt is untrusted and shown as plain text.
"""

from __future__ import annotations

import hashlib

import streamlit as st
from PIL import Image

from diffwatch.app.review_keys import REVEAL_KEY, SKIP_KEY
from diffwatch.app.text import md
from diffwatch.gate.pairs import BlindPair

PAIR_KEY = "compare_pair"  # (run id, key) of the pair on screen
ACTION_KEY = "compare_action"
FLASH_KEY = "compare_flash"
SKIPPED_KEY = "compare_skipped"  # pairs skipped in this session: [(run id, key)]
REVEALED_KEY = "compare_revealed"  # the pair whose blurred images the rater revealed
IMAGE_PX = 512
# vote -> (key, button label)
VOTE_KEYS: dict[str, tuple[str, str]] = {
    "left": ("1", "Left is better"),
    "same": ("2", "Same"),
    "right": ("3", "Right is better"),
}


def _token(run_id: int, key: str) -> str:
    """A widget-key-safe name of a pair (keys come from suite files: untrusted)."""
    return hashlib.sha256(f"{run_id}:{key}".encode()).hexdigest()[:12]


def _on_action(run_id: int, key: str, choice: str) -> None:
    st.session_state[ACTION_KEY] = (run_id, key, choice)


def _on_reveal(run_id: int, key: str) -> None:
    st.session_state[REVEALED_KEY] = (run_id, key)


def _flash(kind: str, text: str) -> None:
    st.session_state[FLASH_KEY] = (kind, text)


def _next_pair() -> None:
    st.session_state.pop(PAIR_KEY, None)
    st.session_state.pop(REVEALED_KEY, None)


def _apply(run_id: int, key: str, choice: str) -> None:
    """Do a pressed vote or skip on the pair it was drawn for: check the role, write."""
    from diffwatch.app import compare_data
    from diffwatch.app.session import require_write
    from diffwatch.db.queries.gate_review import UnknownPair, VoteRefused

    if choice == "skip":
        skipped = list(st.session_state.get(SKIPPED_KEY) or [])
        st.session_state[SKIPPED_KEY] = [*skipped, (run_id, key)]
        _flash("info", "Skipped; here is the next pair.")
        _next_pair()
        return
    user = require_write("rating.add")
    try:
        compare_data.vote(run_id, key, user.username, user.id, choice)
    except VoteRefused:
        _flash("info", "You had already voted on that pair; your first vote counts. Next one.")
    except UnknownPair:
        _flash("warning", "That pair is gone from the queue (its run was deleted); next one.")
    else:
        _flash("success", "Vote stored; here is the next pair.")
    _next_pair()


def _show_flash() -> None:
    got = st.session_state.pop(FLASH_KEY, None)
    if got:
        kind, text = got
        getattr(st, kind)(md(text))


def _progress(username: str) -> None:
    from diffwatch.app import compare_data

    today, waiting = compare_data.progress(username)
    st.caption(f"Pairs you rated today: {today} · pairs waiting for you: {waiting}")


def _empty() -> None:
    st.info(
        "No pairs to rate: every pair waiting for raters has your vote, or you skipped it in "
        "this session. Ops enqueue pairs of a finished release-gate run with "
        "`diffwatch gate enqueue RUN --pairs N`; check again later."
    )
    st.button("Check again", key="compare-check-again")


def _image(uri: str, blurred: bool) -> None:
    from diffwatch.app.images import thumbnail

    pixels, _why = thumbnail(uri, blurred=blurred, px=IMAGE_PX)
    if pixels is None:
        # the reason quotes the path, and the path names the side: say only what to do
        st.text("Image unavailable: it could not be read. Skip this pair (S).")
    else:
        st.image(Image.fromarray(pixels), width="stretch")


def _images(pair: BlindPair) -> None:
    revealed = st.session_state.get(REVEALED_KEY) == (pair.run_id, pair.key)
    flagged = (pair.left_nsfw or pair.right_nsfw) and not revealed
    left, right = st.columns(2, gap="large")
    for col, name, uri, nsfw in ((left, "Left", pair.left_uri, pair.left_nsfw),
                                 (right, "Right", pair.right_uri, pair.right_nsfw)):  # fmt: skip
        with col:
            st.markdown(f"**{name}**")
            _image(uri, blurred=nsfw and not revealed)
    if flagged:
        st.caption("Blurred: the automatic NSFW check flagged an image of this pair.")
        st.button("Reveal images", key="compare-reveal", shortcut=REVEAL_KEY,
                  on_click=_on_reveal, args=(pair.run_id, pair.key))  # fmt: skip


def _controls(pair: BlindPair) -> None:
    token = _token(pair.run_id, pair.key)
    # keyed by pair: a key pressed before the browser drew the next pair is dropped with
    # the old buttons instead of voting on a pair the rater has not seen
    cols = st.columns(len(VOTE_KEYS) + 1)
    for col, (choice, (key, label)) in zip(cols, VOTE_KEYS.items(), strict=False):
        col.button(
            label, key=f"compare-{choice}-{token}", type="primary", shortcut=key,
            on_click=_on_action, args=(pair.run_id, pair.key, choice), width="stretch",
        )  # fmt: skip
    cols[-1].button(
        "Skip", key=f"compare-skip-{token}", shortcut=SKIP_KEY, on_click=_on_action,
        args=(pair.run_id, pair.key, "skip"), width="stretch",
    )  # fmt: skip


def _legend() -> None:
    keys = [(k, label) for k, label in VOTE_KEYS.values()]
    keys += [(SKIP_KEY, "skip this pair"), (REVEAL_KEY, "reveal blurred images")]
    st.caption("**Keys** · " + " · ".join(f"`{k}` {d}" for k, d in keys))


def render() -> None:
    """Draw the rater's current pair with the vote buttons, or say there is none."""
    from diffwatch.app import compare_data
    from diffwatch.app.session import current_user

    st.title("Side-by-side")
    user = current_user()
    if user is None:  # the page guard ran already; a session that just ended
        st.stop()
    assert user is not None
    action = st.session_state.pop(ACTION_KEY, None)
    if action:
        _apply(*action)
    _show_flash()
    held = st.session_state.get(PAIR_KEY)
    skipped = list(st.session_state.get(SKIPPED_KEY) or [])
    pair = compare_data.next_pair(user.username, held, skipped)
    _progress(user.username)
    if pair is None:
        _next_pair()
        _empty()
        return
    if held != (pair.run_id, pair.key):
        _next_pair()
        st.session_state[PAIR_KEY] = (pair.run_id, pair.key)
    st.markdown(
        "Which image is better for this prompt? Judge how well each follows the prompt and "
        "how good it looks; choose **Same** when you cannot tell them apart."
    )
    st.subheader("Prompt")
    st.text(pair.prompt)  # untrusted: plain text only
    _images(pair)
    _controls(pair)
    _legend()
