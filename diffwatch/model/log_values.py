"""Pure checks on decoded JSON values: what PostgreSQL text and jsonb can store.

No recursion anywhere: a line may nest arrays a thousand levels deep, and the checks that
find that out must not run out of stack themselves.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any


def printable(text: str) -> str:
    """``text`` as PostgreSQL can store it: lone surrogates and NUL written as escapes."""
    return text.encode("utf-8", "backslashreplace").decode().replace("\x00", "\\x00")


def deeper_than(value: Any, limit: int) -> bool:
    """Whether ``value`` nests lists and dicts more than ``limit`` levels (no recursion).

    Level by level, so that the usual shallow value costs a loop or two.
    """
    level = [value]
    for _ in range(limit + 1):
        below: list[Any] = []
        for v in level:
            if type(v) is list:
                below += v
            elif type(v) is dict:
                below += v.values()
        if not below:
            return False
        level = below
    return True


def is_surrogate(c: str) -> bool:
    """Whether ``c`` is a UTF-16 surrogate code point (U+D800 to U+DFFF)."""
    return "\ud800" <= c <= "\udfff"


def has_surrogate(text: str) -> bool:
    """Whether ``text`` holds a lone surrogate (the only thing that keeps a str from UTF-8)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def has_nul(text: str) -> bool:
    """Whether ``text`` holds NUL, which PostgreSQL text cannot."""
    return "\x00" in text


def walk(value: Any) -> Iterator[tuple[str, str]]:
    """(path, text) of every key and string inside ``value``, without recursion.

    A key's path ends with the key itself; JSON nested a thousand levels deep must not
    exhaust the stack here either.
    """
    stack: list[tuple[str, Any]] = [("", value)]
    while stack:
        path, v = stack.pop()
        if isinstance(v, str):
            yield path, v
        elif isinstance(v, dict):
            children = []
            for k, item in v.items():
                sub = f"{path}.{k}" if path else k
                yield sub, k
                children.append((sub, item))
            stack.extend(reversed(children))  # in document order
        elif isinstance(v, list):
            stack.extend(reversed([(f"{path}[{i}]", item) for i, item in enumerate(v)]))


def find_text(value: Any, bad: Callable[[str], bool]) -> tuple[str, str] | None:
    """(path shown safely, the text) of a key or string in ``value`` that is ``bad``."""
    for path, text in walk(value):
        if bad(text):
            return printable(path), text
    return None
