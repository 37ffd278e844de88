"""app.text: untrusted names made inert for Markdown and for Plotly labels.

Markdown is checked with a real CommonMark parser (markdown-it-py, in the lock through rich):
the escaped text must come out as one paragraph of exactly the original text. GFM's
autolinks and Streamlit's own syntax (colours, icons, math) are not in that parser, so they
are checked against the patterns that remark's GFM autolink transform and Streamlit use.
The browser test (tests/app/test_hostile_names_browser.py) checks the real renderers.
"""

from __future__ import annotations

import html
import re

import pandas as pd
import pytest
from markdown_it import MarkdownIt

from diffwatch.app.text import WORD_JOINER, md, md_list, plotly, plotly_frame

HOSTILE = [
    '<a href="http://evil.example/">click</a>',
    '<b style="font-size:80px">HUGE</b>',
    "![x](http://127.0.0.1:8080/track.png)",
    "**bold** :red[red] $x^2$ $$y$$",
    "www.evil.example and WWW.Evil.example",
    "[phish](http://evil.example) <http://evil.example>",
    "mail bob@evil.example or mailto:bob@evil.example",
    "https://evil.example/path?q=1 ftp://x",
    "_it_ __b__ ~~del~~ ~one~ `code` ``two``",
    "# heading\n\n- item\n1. item\n> quote\n---\n| a | b |\n|---|---|",
    "    indented code\n\tand a tab",
    "&amp; &lt;script&gt; &#x41; \\*",
    ":material/home: :smile: :blue-background[x] :rainbow[y]",
    "[ref]: http://evil.example\n[ref]",
    "a\\\nb  \nc",
    "%{y} %{customdata[0]} <br> <sub>s</sub>",
]
PUNCT = r"[!-/:-@\[-`{-~]"  # ASCII punctuation: each may be backslash-escaped
# remark's GFM autolink literal transform (mdast-util-gfm-autolink-literal) on the text.
AUTOLINK = re.compile(r"(?i)(https?://|www(?=\.))[-.\w]+|[-.\w+]+@[-\w]+(\.[-\w]+)+")


def _parser() -> MarkdownIt:
    return MarkdownIt("commonmark").enable(["table", "strikethrough"])


@pytest.mark.parametrize("name", HOSTILE)
def test_md_renders_as_exactly_the_text(name: str) -> None:
    out = md(name)
    rendered = _parser().render(out).replace(WORD_JOINER, "")
    shown = html.escape(re.sub(r"\s+", " ", name).strip(), quote=False).replace('"', "&quot;")
    assert rendered == f"<p>{shown}</p>\n"


@pytest.mark.parametrize("name", HOSTILE)
def test_md_leaves_no_markdown_character_or_autolink(name: str) -> None:
    out = md(name)
    assert re.search(PUNCT, re.sub(r"\\" + PUNCT, "", out)) is None, out
    # what remark's autolink transform sees: the text with its escapes resolved
    assert AUTOLINK.search(re.sub(r"\\(.)", r"\1", out)) is None, out
    assert "\n" not in out and "\t" not in out


def test_md_keeps_plain_text_and_joins_lists() -> None:
    assert md("stable") == "stable"
    assert md(42) == "42"
    assert md("v1.2 (canary)") == r"v1\.2 \(canary\)"
    assert md_list(["a_b", "c"]) == r"a\_b, c"


@pytest.mark.parametrize("name", HOSTILE)
def test_plotly_label_has_no_tag_entity_template_or_math(name: str) -> None:
    out = plotly(name)
    assert not set("<>$") & set(out)
    assert "%{" not in out
    assert re.search(r"&(?!(amp|lt|gt|#37|#36);)", out) is None, out
    assert html.unescape(out) == name  # Plotly decodes these entities: the text shows as is


def test_plotly_frame_escapes_text_only() -> None:
    df = pd.DataFrame(
        {"group": ["<b>v1</b>", None], "n": [1, 2], "t": pd.to_datetime(["2026-01-01"] * 2)}
    )
    out = plotly_frame(df)
    assert out["group"].tolist()[0] == "&lt;b&gt;v1&lt;/b&gt;"
    assert out["group"].isna().tolist() == [False, True]
    assert out["n"].tolist() == [1, 2] and out["t"].equals(df["t"])
    assert df["group"].tolist()[0] == "<b>v1</b>"  # the caller's frame is untouched
    assert plotly_frame(df, ["n"])["group"].tolist()[0] == "<b>v1</b>"
