"""The rating analytics page and the human ratings on the versions page (AppTest, Chromium).

Every figure the page shows is checked against the same statistic computed directly on the
seeded ratings (not on the page's own queries).
"""

from __future__ import annotations

import base64
import json
import os
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from diffwatch.analytics.agreement import krippendorff_alpha
from tests.app.accounts import PW, add_account, as_user, texts
from tests.app.ratings_dataset import Seeded, seed_ratings
from tests.app.server import CHROMIUM, REPO, log_in, serve


@pytest.fixture
def seeded(conninfo: str) -> Seeded:
    return seed_ratings(conninfo)


@pytest.fixture
def ops(conninfo: str) -> int:
    return add_account(conninfo, "olga", "ops")


def _metric(at, label: str) -> str:
    found = [m.value for m in at.metric if m.label == label]
    assert found, [m.label for m in at.metric]
    return found[0]


def _bar_total(at) -> int:
    """Ratings counted in the over-time chart's bottom panel (its bars)."""
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    return int(sum(_values(t["y"]).sum() for t in spec["data"] if t["type"] == "bar"))


def _values(v: list | dict) -> np.ndarray:
    """A Plotly JSON array, plain or typed (``{"dtype", "bdata"}``, base64)."""
    if isinstance(v, dict):
        return np.frombuffer(base64.b64decode(v["bdata"]), dtype=v["dtype"])
    return np.asarray(v)


def _item_means(s: Seeded, col: int) -> dict[int, float]:
    by: dict[int, list[int]] = defaultdict(list)
    for r in s.ratings:
        by[r[0]].append(r[col])
    return {item: float(np.mean(v)) for item, v in by.items()}


def test_ratings_page_figures_match_the_seeded_ratings(conninfo, monkeypatch, seeded, ops):
    at = as_user(conninfo, monkeypatch, ops, page="ratings")
    assert at.title[0].value == "Rating analytics"
    assert len(at.get("plotly_chart")) == 2  # over time, CLIP calibration
    assert _bar_total(at) == len(seeded.ratings)

    for field, col in (("quality", 2), ("adherence", 3)):
        want = krippendorff_alpha([(r[0], r[1], r[col]) for r in seeded.ratings]).alpha
        assert want is not None
        assert _metric(at, f"alpha, {field}") == f"{want:.3f}"
    table = at.dataframe[0].value
    assert list(table["items (2+ ratings)"]) == [24, 24]  # items 0..23 have 2 or 3 ratings
    assert list(table["raters"]) == [3, 3]
    assert list(table["pairable values"]) == [18 * 3 + 6 * 2] * 2

    adherence = _item_means(seeded, 3)
    items = sorted(adherence)
    rho = stats.spearmanr([seeded.clip[i] for i in items], [adherence[i] for i in items])
    assert _metric(at, "Spearman rho") == f"{rho.statistic:.3f}"
    assert _metric(at, "items") == str(len(items))

    human = {i: any("nsfw" in r[4] for r in seeded.ratings if r[0] == i) for i in items}
    auto = {i: seeded.nsfw[i][1] for i in items}
    tp = sum(auto[i] and human[i] for i in items)
    fp = sum(auto[i] and not human[i] for i in items)
    fn = sum(human[i] and not auto[i] for i in items)
    assert tp and fp and fn  # the dataset exercises every cell
    assert _metric(at, "precision at 0.5") == f"{tp / (tp + fp):.3f}"
    assert _metric(at, "recall at 0.5") == f"{tp / (tp + fn):.3f}"
    confusion = at.dataframe[2].value
    assert list(confusion["human: nsfw"]) == [tp, fn]
    assert list(confusion["human: not nsfw"]) == [fp, len(items) - tp - fp - fn]

    raters = at.dataframe[1].value.set_index("rater")
    assert raters.loc["alice", "ratings"] == sum(r[1] == "alice" for r in seeded.ratings)
    assert raters.loc["carol", "flag"].startswith("rates lower")  # carol rates 1 point lower
    assert raters.loc["alice", "flag"] == ""
    assert "Deviating from the other raters: carol" in texts(at)


def test_random_sample_toggle_keeps_only_random_items(conninfo, monkeypatch, seeded, ops):
    at = as_user(conninfo, monkeypatch, ops, page="ratings")
    at.toggle(key="ratings_random_only").set_value(True).run()
    assert not at.exception
    random_items = {i for i, rs in seeded.reasons.items() if "random" in rs}
    want = sum(r[0] in random_items for r in seeded.ratings)
    assert 0 < want < len(seeded.ratings)
    assert _bar_total(at) == want


def test_ratings_page_on_an_empty_database_says_what_to_do(conninfo, monkeypatch, ops):
    at = as_user(conninfo, monkeypatch, ops, page="ratings")
    assert len(at.get("plotly_chart")) == 0
    infos = [i.value for i in at.info]
    assert any(i.startswith("No ratings in this time range") for i in infos), infos
    assert any("Too little overlap" in i for i in infos), infos
    assert any("No rated item has a CLIP score" in i for i in infos), infos
    assert any("No rated item has an NSFW result" in i for i in infos), infos


def test_raters_cannot_open_rating_analytics(conninfo, monkeypatch, seeded):
    rater = add_account(conninfo, "rita", "rater")
    at = as_user(conninfo, monkeypatch, rater, page="ratings")
    assert "Rating analytics" not in [t.value for t in at.title]


def test_versions_page_shows_human_ratings_per_side_and_version(conninfo, monkeypatch, seeded, ops):
    at = as_user(conninfo, monkeypatch, ops, page="versions")
    assert at.title[0].value == "Model versions"
    quality, adherence = _item_means(seeded, 2), _item_means(seeded, 3)
    sides = at.dataframe[1].value.set_index("deployment")
    for dep in ("stable", "canary"):
        mine = [i for i in quality if seeded.deployment[i] == dep]
        q = np.array([quality[i] for i in mine])
        row = sides.loc[dep]
        assert row["images rated"] == len(mine)
        assert row["mean quality"] == pytest.approx(q.mean())
        assert row["mean adherence"] == pytest.approx(np.mean([adherence[i] for i in mine]))
        half = stats.t.ppf(0.975, len(q) - 1) * q.std(ddof=1) / np.sqrt(len(q))
        assert row["quality 95% CI"] == f"{q.mean() - half:.2f} to {q.mean() + half:.2f}"
    diff = np.mean([quality[i] for i in quality if seeded.deployment[i] == "canary"]) - np.mean(
        [quality[i] for i in quality if seeded.deployment[i] == "stable"]
    )
    assert diff < 0  # v2 (canary) is rated lower by construction
    assert any(
        t.value.startswith(f"Human quality: canary − stable = {diff:+.2f} points") for t in at.text
    ), [t.value for t in at.text]
    per_version = at.dataframe[2].value.set_index("version")
    for version in ("v1", "v2"):
        mine = [i for i in quality if seeded.version[i] == version]
        row = per_version.loc[version]
        assert row["ratings"] == sum(seeded.version[r[0]] == version for r in seeded.ratings)
        assert row["images rated"] == len(mine)
        assert row["mean quality"] == pytest.approx(np.mean([quality[i] for i in mine]))
        nsfw = [any("nsfw" in r[4] for r in seeded.ratings if r[0] == i) for i in mine]
        assert row["human nsfw share"] == pytest.approx(np.mean(nsfw))


def test_versions_page_says_when_nothing_was_rated(conninfo, monkeypatch, ops, tmp_path):
    from tests.app.dataset import seed

    seed(conninfo, tmp_path / "images")  # scored generations, no review items
    at = as_user(conninfo, monkeypatch, ops, page="versions")
    assert any(i.value.startswith("No human ratings of images") for i in at.info)
    assert len(at.dataframe) == 1  # the comparison only


@pytest.fixture
def served(db_url: str, conninfo: str, seeded: Seeded) -> Iterator[str]:
    add_account(conninfo, "olga", "ops")
    with serve(db_url) as base:
        yield base


@pytest.mark.slow
def test_ratings_page_in_chromium(served: str) -> None:
    from playwright.sync_api import sync_playwright

    assert CHROMIUM, "Debian's chromium is needed: apt-get install chromium"
    shots = Path(os.environ.get("DIFFWATCH_SCREENSHOTS", REPO / "test-results" / "screenshots"))
    shots.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 2400})
        log_in(page, served, "olga", PW)
        page.goto(f"{served}/ratings?range=24h", wait_until="networkidle")
        page.get_by_role("heading", name="Rating analytics").first.wait_for(timeout=60_000)
        # Each plot has several .main-svg layers: wait for the second plot's own.
        page.locator(".js-plotly-plot").nth(1).locator(".main-svg").first.wait_for(timeout=60_000)
        page.wait_for_timeout(800)  # let Plotly finish its transitions
        assert page.locator("[data-testid='stException']").count() == 0
        assert page.locator(".js-plotly-plot").count() == 2
        page.screenshot(path=str(shots / "ratings.png"))
        # Streamlit scrolls inside its main block: bring the calibration to the top.
        heading = page.get_by_role("heading", name="Calibration of the automatic scores")
        heading.first.evaluate("e => e.scrollIntoView()")
        page.wait_for_timeout(300)
        page.screenshot(path=str(shots / "ratings-calibration.png"))
        page.goto(f"{served}/versions?range=24h", wait_until="networkidle")
        heading = page.get_by_role("heading", name="Human ratings").first
        heading.wait_for(timeout=60_000)
        assert page.locator("[data-testid='stException']").count() == 0
        heading.evaluate("e => e.scrollIntoView()")
        page.wait_for_timeout(300)
        page.screenshot(path=str(shots / "versions-human.png"))
        browser.close()
