"""Untrusted text made inert where Streamlit or Plotly would read it as markup.

Every name that comes from logs or people (models, versions, deployments, GPU types, hosts,
rule names, usernames, error texts) goes through one of these before it reaches a Markdown
element (``st.warning``, ``st.success``, ``st.caption``, ``st.markdown``, widget, expander
and tab labels) or a Plotly figure (trace names, category values, titles, hover text).
``st.text`` and table cells are plain text already and need nothing.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import pandas as pd

# Invisible and unbreakable: splits an autolink without changing what a reader sees.
WORD_JOINER = "\u2060"
# Every ASCII punctuation character may be backslash-escaped in CommonMark, and each one
# escaped is shown as itself: links, images, emphasis, code, strikethrough, HTML, tables,
# headings, math ($), Streamlit's directives (:red[...], :material/icon:, :emoji:).
_MD_PUNCT = re.compile(r"([!-/:-@\[-`{-~])")
# GFM turns www.x, http(s)://x and a@b.c into links after escapes are resolved (remark's
# autolink-literal transform reads the unescaped text), so escaping cannot stop them; a
# word joiner inside "www.", "://" and before "@" does.
_WWW = re.compile(r"(?i)(www)(?=\.)")
_SCHEME = re.compile(r":(?=//)")
_SPACE = re.compile(r"\s+")
_PLOTLY = {"&": "&amp;", "<": "&lt;", ">": "&gt;", "%": "&#37;", "$": "&#36;"}
_PLOTLY_RE = re.compile("[&<>%$]")


def md(value: object) -> str:
    """``value`` as Markdown that Streamlit shows as exactly this text (no link, image,
    emphasis, colour, math, icon, HTML or autolink); whitespace runs become one space."""
    s = _SPACE.sub(" ", str(value))
    s = _WWW.sub(r"\1" + WORD_JOINER, s)
    s = _SCHEME.sub(":" + WORD_JOINER, s)
    s = s.replace("@", WORD_JOINER + "@")
    return _MD_PUNCT.sub(r"\\\1", s)


def md_list(values: Iterable[object], sep: str = ", ") -> str:
    """Several untrusted values as one inert Markdown string, joined by ``sep``."""
    return sep.join(md(v) for v in values)


def plotly(value: object) -> str:
    """``value`` as a Plotly label shown as exactly this text: no pseudo-HTML tags (links,
    bold, styles, line breaks), no entities, no ``%{...}`` template fields, no LaTeX."""
    return _PLOTLY_RE.sub(lambda m: _PLOTLY[m.group()], str(value))


def plotly_frame(df: pd.DataFrame, columns: Iterable[str] | None = None) -> pd.DataFrame:
    """A copy of ``df`` whose text values (in ``columns``, default all) are Plotly-inert;
    numbers, times and missing values stay as they are."""
    out = df.copy()
    for col in out.columns if columns is None else columns:
        if col in out and (out[col].dtype == object or pd.api.types.is_string_dtype(out[col])):
            out[col] = out[col].map(lambda v: plotly(v) if isinstance(v, str) else v)
    return out
