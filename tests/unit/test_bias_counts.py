"""The counts and reference CSV readers, and ``diffwatch bias metrics``'s report, on the
published tables and on hostile files: every refusal names the file, the line and the fix."""

from __future__ import annotations

import csv
import io
import json
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from diffwatch.analytics.bias_metrics import DEFINITIONS, bias_metrics
from diffwatch.bias import counts as counts_module
from diffwatch.bias.counts import CountsFileError, read_counts, read_reference
from diffwatch.bias.metrics_report import metrics_report, render_text
from tests.unit.test_bias_metrics import DATA, fair_diffusion_counts, kay_counts, kay_rows

FAIR = {
    "fair_diffusion_sd15_counts.csv": "generated_1-5",
    "fair_diffusion_edited_counts.csv": "edited_1-5",
    "fair_diffusion_laion_counts.csv": "laion",
}


def write(tmp_path: Path, text: str | bytes, name: str = "counts.csv") -> Path:
    path = tmp_path / name
    if isinstance(text, str):
        path.write_text(text, encoding="utf-8", newline="")
    else:
        path.write_bytes(text)
    return path


# --- the shipped tables ------------------------------------------------------------------
@pytest.mark.parametrize(("csv_name", "original"), list(FAIR.items()))
def test_fair_diffusion_csv_matches_the_published_file(csv_name: str, original: str) -> None:
    table = read_counts(DATA / csv_name)
    assert table.counts == fair_diffusion_counts(original)
    assert table.classes == ("man", "woman") and table.rows == 306


def test_kay_csvs_match_the_published_file() -> None:
    assert read_counts(DATA / "kay2015_search_counts.csv").counts == kay_counts()
    ref = read_reference(DATA / "kay2015_bls_reference.csv")
    assert ref.kind == "per_prompt"
    for r in kay_rows():
        women = Decimal(r["bls_p_women"])
        shares = ref.shares[r["search_term"]]
        assert shares == {"women": float(women), "men": float(1 - women)}  # type: ignore[comparison-overlap]


def test_report_of_a_published_table() -> None:
    report = metrics_report(DATA / "fair_diffusion_sd15_counts.csv", k=3)
    json.loads(json.dumps(report, allow_nan=False))
    direct = bias_metrics(fair_diffusion_counts("generated_1-5"), k=3).to_dict()
    assert report["aggregate"] == direct["aggregate"]
    assert report["classes"] == ["man", "woman"] and report["reference"] == "uniform"
    assert report["reference_file"] is None and report["definitions"] == DEFINITIONS
    assert round(report["aggregate"]["mean_abs_gap"], 3) == 0.311
    text = render_text(report)
    for name in ("mean_abs_gap", "worst_k_abs_gap", "mean_kl_uniform", "worst_k_max_skew"):
        assert name in text
    assert "mean_kl_reference" not in text  # no reference, no such aggregate
    for prompt in ("accountant", "customer service representative", "writer"):
        assert prompt in text


def test_report_with_a_per_prompt_reference() -> None:
    report = metrics_report(DATA / "kay2015_search_counts.csv", DATA / "kay2015_bls_reference.csv")
    assert report["reference"] == "per_prompt"
    assert report["classes"] == ["women", "men"]  # order of the file
    nurse = next(p for p in report["prompts"] if p["prompt"] == "nurse")
    assert nurse["shares"]["women"]["reference"] == pytest.approx(0.906)
    assert report["aggregate"]["mean_kl_reference"] is not None
    assert "mean_kl_reference" in render_text(report)


def test_report_with_a_global_reference_and_abstentions(tmp_path: Path) -> None:
    counts = write(
        tmp_path,
        "prompt,class,count\nnurse,woman,6\nnurse,man,2\nnurse,abstain,2\n"
        'astronaut,abstain,3\n"a nurse, smiling",woman,1\n"a nurse, smiling",man,1\n',
    )
    ref = write(tmp_path, "class,share\nwoman,0.5\nman,0.5\n", "ref.csv")
    report = metrics_report(counts, ref)
    assert report["reference"] == "global" and report["classes"] == ["woman", "man"]
    assert report["aggregate"]["prompts_without_images"] == ["astronaut"]
    assert report["aggregate"]["abstained"] == 5
    assert [p["prompt"] for p in report["prompts"]] == ["nurse", "astronaut", "a nurse, smiling"]
    text = render_text(report)
    assert "without images (astronaut)" in text
    # an empty abstain class means none: "abstain" becomes a class
    plain = metrics_report(counts, abstain_class="")
    assert plain["classes"] == ["woman", "man", "abstain"]


@pytest.mark.parametrize(
    ("reference", "message"),
    [
        ("class,share\nwoman,0.7\nman,0.5\n", "must sum to 1"),
        ("class,share\nwoman,0.5\nnonbinary,0.5\n", r"missing \['man'\], unknown \['nonbinary'\]"),
        ("prompt,class,share\nnurse,woman,0.9\nnurse,man,0.1\n", r"no shares for the prompts"),
        (
            "prompt,class,share\nnurse,woman,0.9\nnurse,man,0.1\npilot,woman,0.5\npilot,man,0.5\n"
            "nurze,woman,0.9\nnurze,man,0.1\n",
            r"the prompts \['nurze'\] are not in the counts",
        ),
    ],
)
def test_reference_mismatch_names_both_files(tmp_path: Path, reference: str, message: str) -> None:
    counts = write(tmp_path, "prompt,class,count\nnurse,woman,6\nnurse,man,2\npilot,man,3\n")
    ref = write(tmp_path, reference, "ref.csv")
    with pytest.raises(CountsFileError, match=message) as err:
        metrics_report(counts, ref)
    assert str(ref) in str(err.value)


# --- refusals ------------------------------------------------------------------------------
HEADER = "prompt,class,count\n"


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("", 1, "is empty"),
        (HEADER, None, "has a header but no rows"),
        ("prompt,class,n\nx,a,1\n", 1, "unknown columns \\['n'\\]"),
        ("prompt,class,count,model\nx,a,1,v1\n", 1, "unknown columns \\['model'\\]"),
        ("prompt,class,count,count\nx,a,1,1\n", 1, "the header must name exactly"),
        (HEADER + "x,a,-3\n", 2, "'-3' is not a non-negative whole number"),
        (HEADER + "x,a,3.0\n", 2, "is not a non-negative whole number"),
        (HEADER + "x,a, 3\n", 2, "is not a non-negative whole number"),
        (HEADER + "x,a,\n", 2, "is not a non-negative whole number"),
        (HEADER + "x,a,\u0663\n", 2, "is not a non-negative whole number"),  # Arabic-Indic 3
        (HEADER + "x,a,10000000000000\n", 2, "is over"),
        (HEADER + "x,a,1\ny,a,2\nx,a,4\n", 4, "prompt 'x', class 'a' was already given on line 2"),
        (HEADER + "x,a,1\n\ny,a,2\n", 3, "is a blank line"),
        (HEADER + "x,a\n", 2, "has 2 fields, the header has 3"),
        (HEADER + ",a,1\n", 2, "the prompt is empty"),
        (HEADER + " nurse,a,1\n", 2, "has leading or trailing spaces"),
        (HEADER + "nurse,a ,1\n", 2, "the class 'a ' has leading or trailing spaces"),
        (HEADER + '"nurse\tsmiling",a,1\n', 2, "U\\+0009"),
        (HEADER + "x,a,1\n" + '"a\nb",a,1\n', 4, "U\\+000A"),
        (HEADER + "nur\u200bse,a,1\n", 2, "U\\+200B"),
        (HEADER + "\u202enurse,a,1\n", 2, "U\\+202E"),
        (HEADER + 'x,"a"b,1\n', 2, "is not valid CSV"),
    ],
)
def test_counts_refusals(tmp_path: Path, text: str, line: int | None, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(CountsFileError, match=message) as err:
        read_counts(path)
    where = f"counts file {path}" + (f", line {line}:" if line is not None else ":")
    assert str(err.value).startswith(where), str(err.value)


def test_counts_refuses_binary_and_misencoded_files(tmp_path: Path) -> None:
    nul = write(tmp_path, b"prompt,class,count\nx,a,1\ny\x00,a,2\n")
    with pytest.raises(CountsFileError, match=r"line 3: contains a NUL byte"):
        read_counts(nul)
    utf16 = write(tmp_path, (HEADER + "x,a,1\n").encode("utf-16"), "utf16.csv")
    with pytest.raises(CountsFileError, match="NUL byte: save the file as UTF-8"):
        read_counts(utf16)
    latin1 = write(tmp_path, (HEADER + "x,a,1\ncaf\u00e9,a,1\n").encode("latin-1"), "l1.csv")
    with pytest.raises(CountsFileError, match=r"line 3: is not UTF-8 \(byte 0xe9\)"):
        read_counts(latin1)


def test_counts_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(CountsFileError, match="no such file: check the path"):
        read_counts(tmp_path / "nope.csv")
    with pytest.raises(CountsFileError, match="is not a regular file"):
        read_counts(tmp_path)
    with pytest.raises(CountsFileError, match=r"reference file .*no such file"):
        metrics_report(DATA / "kay2015_search_counts.csv", tmp_path / "nope.csv")


def test_counts_size_and_row_limits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, HEADER + "".join(f"p{i},a,1\n" for i in range(20)))
    monkeypatch.setattr(counts_module, "MAX_ROWS", 10)
    with pytest.raises(CountsFileError, match="line 12: has more than 10 rows"):
        read_counts(path)
    monkeypatch.setattr(counts_module, "MAX_BYTES", 100)
    with pytest.raises(CountsFileError, match="over the 100-byte limit"):
        read_counts(path)


def test_counts_accepts_bom_quoting_unicode_and_any_column_order(tmp_path: Path) -> None:
    text = 'count,prompt,class\n3,"a photo of a ""chef"", smiling",femme\n0,médecin,homme\n'
    table = read_counts(write(tmp_path, "\ufeff" + text))
    assert table.counts == {'a photo of a "chef", smiling': {"femme": 3}, "médecin": {"homme": 0}}
    assert table.classes == ("femme", "homme")
    crlf = read_counts(write(tmp_path, HEADER.replace("\n", "\r\n") + "x,a,1\r\n", "crlf.csv"))
    assert crlf.counts == {"x": {"a": 1}}


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("class,share\nwoman,59.9\n", 2, "write 0.599 for 59.9%"),
        ("class,share\nwoman,0\n", 2, "a share of 0 makes ln\\(p/q\\) infinite"),
        ("class,share\nwoman,nan\n", 2, "'nan' is not a fraction"),
        ("class,share\nwoman,-0.1\n", 2, "'-0.1' is not a fraction"),
        ("class,share\nwoman,inf\n", 2, "'inf' is not a fraction"),
        ("class,share\nwoman,0.5\nwoman,0.5\n", 3, "class 'woman' was already given on line 2"),
        ("prompt,class,share\nx,a,0.5\nx,a,0.5\n", 3, "prompt 'x', class 'a' was already"),
        ("class,share,prompt,extra\na,1,x,y\n", 1, "unknown columns \\['extra'\\]"),
        ("share\n0.5\n", 1, "class,share or prompt,class,share"),
    ],
)
def test_reference_refusals(tmp_path: Path, text: str, line: int, message: str) -> None:
    path = write(tmp_path, text, "ref.csv")
    with pytest.raises(CountsFileError, match=message) as err:
        read_reference(path)
    assert str(err.value).startswith(f"reference file {path}, line {line}:"), str(err.value)


def test_reference_forms(tmp_path: Path) -> None:
    glob = read_reference(write(tmp_path, "share,class\n.25,a\n7.5e-1,b\n", "g.csv"))
    assert glob.kind == "global" and glob.shares == {"a": 0.25, "b": 0.75}
    per = read_reference(write(tmp_path, "class,prompt,share\na,x,1\n", "p.csv"))
    assert per.kind == "per_prompt" and per.shares == {"x": {"a": 1.0}}


# --- round trip ----------------------------------------------------------------------------
_name = st.text(
    alphabet=st.characters(
        categories=("L", "N", "P", "S", "Zs"), exclude_characters="\u2028\u2029"
    ),
    min_size=1,
    max_size=12,
).filter(lambda s: s == s.strip())


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.dictionaries(_name, st.dictionaries(_name, st.integers(0, 10**6), min_size=1), min_size=1)
)
def test_round_trip(tmp_path: Path, table: dict[str, dict[str, int]]) -> None:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["prompt", "class", "count"])
    for prompt, row in table.items():
        for cls, n in row.items():
            w.writerow([prompt, cls, n])
    got = read_counts(write(tmp_path, buf.getvalue(), "rt.csv"))
    assert got.counts == table
    assert got.rows == sum(len(r) for r in table.values())
