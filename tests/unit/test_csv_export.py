"""CSV exports neutralise cells a spreadsheet would run as formulas (OWASP CSV injection)."""

from __future__ import annotations

import csv
import io

import pandas as pd

from diffwatch.model.csv_export import frame_to_csv, safe_cell

HOSTILE = ['=HYPERLINK("http://x","Click")', "+1", "-1", "@SUM(A1)", "\tx", "\rx"]


def test_formula_cells_get_a_leading_quote_and_others_stay() -> None:
    for s in HOSTILE:
        assert safe_cell(s) == "'" + s
    for s in ("alice", "", " =1", "1-1", "a=b", "'=already"):
        assert safe_cell(s) == s
    assert safe_cell(-1) == -1 and safe_cell(None) is None  # numbers are numbers


def test_a_frame_exports_with_every_string_cell_neutralised() -> None:
    df = pd.DataFrame({"target": [*HOSTILE, "bob"], "n": [-1, 2, 3, 4, 5, 6, 7]})
    df["=head"] = "x"
    rows = list(csv.reader(io.StringIO(frame_to_csv(df), newline="")))
    assert rows[0] == ["target", "n", "'=head"]
    assert [r[0] for r in rows[1:]] == ["'" + s for s in HOSTILE] + ["bob"]
    assert [r[1] for r in rows[1:]] == ["-1", "2", "3", "4", "5", "6", "7"]
