"""CSV for spreadsheets: cells that a spreadsheet would run as a formula are made text.

A cell that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is a formula
to Excel, LibreOffice and Google Sheets (``=HYPERLINK(...)`` makes a link that sends data
elsewhere). Anyone can put such text in diffwatch (a login attempt under that name is
audited), so every CSV export prefixes such cells with a single quote, as OWASP recommends
for CSV injection: the spreadsheet shows the text and runs nothing. Numbers stay numbers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: Any) -> Any:
    """``value`` with a leading single quote when it is text a spreadsheet would evaluate."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def frame_to_csv(df: pd.DataFrame) -> str:
    """``df`` as CSV text (no index) with every text cell and column name made safe."""
    out = df.rename(columns=lambda c: safe_cell(str(c)))
    for col in out.columns:
        if out[col].dtype == object or str(out[col].dtype) in ("string", "str"):
            out[col] = out[col].map(safe_cell)
    # CRLF rows (RFC 4180) also make the writer quote a cell holding a lone CR or LF, which
    # with "\n" rows it leaves bare, splitting the row for every reader.
    return out.to_csv(index=False, lineterminator="\r\n")
