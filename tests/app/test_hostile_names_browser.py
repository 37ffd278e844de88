"""Hostile names in a real browser: every name from logs or people is shown as inert text.

Models, versions, deployments, GPU types, hosts, error texts, rule names and usernames are
seeded with Plotly pseudo-HTML (a link, 80 px bold text), Markdown (a link, a remote image
served by a loopback listener that records any fetch, bold, a colour directive, LaTeX) and
autolinks (``www.``, ``http://``, an email address). Each page that shows such names is
opened in Debian's chromium as an admin; charts, verdicts, warnings and flash messages must
show the literal text and build no link, image, bold, colour or math from it.
"""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest

from diffwatch.db.queries.dashboard_cost import set_gpu_price
from diffwatch.db.queries.rollups import refresh
from tests.app.accounts import PW, add_account
from tests.app.ratings_dataset import seed_ratings
from tests.app.server import CHROMIUM, REPO, log_in, serve
from tests.app.test_alerts_page import add_rule, rule

WAIT_MS = 60_000
WJ = "\u2060"  # the word joiner that breaks autolinks: invisible, so ignored when reading
LINK = '<a href="http://evil.example/">click</a>'
HUGE = '<b style="font-size:80px">HUGE</b>'
MD = "**bold** :red[red] $x^2$"
WWW = "www.evil.example"
PHISH = "[phish](http://evil.example)"
ERROR = "<b>boom</b> <i>failed</i> now"  # its error kind is the whole text
ADMIN = "adm@evil.example"  # an email autolink
RATERS = ("alice", "bob", WWW)  # the last one rates lower: named in the deviation warning


class Tracker:
    """A loopback HTTP server that records every path a browser asks it for."""

    def __init__(self) -> None:
        seen: list[str] = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                seen.append(self.path)
                self.send_response(404)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.seen = seen
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def image(self, name: str) -> str:
        """A Markdown image whose fetch this tracker would record."""
        return f"![x](http://127.0.0.1:{self.port}/{name}.png)"


@pytest.fixture
def tracker() -> Iterator[Tracker]:
    t = Tracker()
    t.thread.start()
    yield t
    t.server.shutdown()
    t.server.server_close()


class Names:
    """The hostile names of one run (the image ones carry the tracker's port)."""

    def __init__(self, t: Tracker) -> None:
        self.model = LINK
        # Sorted, and before the rollups' '*': the Model versions page's default baseline
        # and candidate. The candidate's name is in the verdict.
        self.versions = (
            f"{t.image('v1')} {LINK} v1",
            f"$x^2$ {HUGE} {t.image('version')} **bold** :red[red] {WWW}",
        )
        self.deployments = (
            f"{t.image('stable')} {LINK} stable",
            f"$x^2$ {PHISH} **bold** :red[red] canary",
        )
        self.gpus = (f"{HUGE} {WWW} L4", f"{LINK} {PHISH} H100")
        self.host = f"{LINK} {HUGE} host"
        self.rule = f"{PHISH} {WWW} {t.image('rule')} {MD}"
        self.source = f"yaml:{WWW}/{PHISH}.yaml"
        self.price_gpu = f"{PHISH} {t.image('price')} {MD}"


def seed_hostile(conninfo: str, n: Names) -> None:
    """Generations of both versions (every 7th an error), GPU samples, prices, ratings by
    three raters, an alert rule from a file, and the admin account."""
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    with psycopg.connect(conninfo) as conn:
        conn.execute(
            "INSERT INTO generations (request_id, ts, model, model_version, prompt, status,"
            " batch_size, queue_ms, inference_ms, total_ms, gpu_type, deployment, error)"
            " SELECT 'h-' || i, %(now)s - make_interval(secs => i * 10800.0 / 1600), %(model)s,"
            " CASE WHEN i %% 2 = 0 THEN %(v2)s ELSE %(v1)s END, 'prompt ' || i,"
            " CASE WHEN i %% 7 = 0 THEN 'error' ELSE 'ok' END, 1, 5,"
            " 1500 + (i %% 97) * 7 + CASE WHEN i %% 2 = 0 THEN 600 ELSE 0 END,"
            " 1600 + (i %% 97) * 7 + CASE WHEN i %% 2 = 0 THEN 600 ELSE 0 END,"
            " CASE WHEN i %% 2 = 0 THEN %(g2)s ELSE %(g1)s END,"
            " CASE WHEN i %% 2 = 0 THEN %(d2)s ELSE %(d1)s END,"
            " CASE WHEN i %% 7 = 0 THEN %(error)s END"
            " FROM generate_series(1, 1600) i",
            {"now": now, "model": n.model, "v1": n.versions[0], "v2": n.versions[1],
             "g1": n.gpus[0], "g2": n.gpus[1], "d1": n.deployments[0], "d2": n.deployments[1],
             "error": ERROR},
        )  # fmt: skip
        conn.execute(
            "INSERT INTO scorer_results (generation_id, scorer, scorer_version, value, flagged)"
            " SELECT id, 'clip', 'c', 20 + id % 10, NULL FROM generations"
            " WHERE request_id LIKE 'h-%' AND status = 'ok' UNION ALL"
            " SELECT id, 'nsfw', 'n', 0.9, id % 50 = 0 FROM generations"
            " WHERE request_id LIKE 'h-%' AND status = 'ok'"
        )
        conn.execute(
            "INSERT INTO gpu_samples (ts, host, gpu_index, gpu_name, util_pct, mem_used_mib,"
            " mem_total_mib, power_w, source)"
            " SELECT %(t)s - make_interval(mins => i), h, 0, %(g)s, 60, 1000, 24000, 70, 'nvml'"
            " FROM generate_series(0, 179) i, unnest(ARRAY[%(h)s, 'plain-host']) h",
            {"t": now, "g": n.gpus[0], "h": n.host},
        )
        set_gpu_price(conn, n.gpus[0], 0.8)
        set_gpu_price(conn, n.gpus[1], 3.0)
        conn.commit()
        refresh(conn)
    seed_ratings(conninfo, RATERS, n.versions, n.deployments, n.gpus[0])
    add_rule(conninfo, rule(n.rule, versions=[n.versions[1]], deployments=[n.deployments[1]]))
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("UPDATE alert_rules SET source = %s", (n.source,))
    add_account(conninfo, ADMIN, "admin")


# The inner text of the names' tags: Plotly draws a tag it obeys as a tspan of its own,
# holding only this text; drawn as text, a tag stays in the same node as its content.
TAG_CONTENT = ["HUGE", "boom", "failed", "click"]
OWN_TSPAN = """words => [...document.querySelectorAll('.js-plotly-plot tspan')]
    .filter(t => words.includes(t.textContent.trim())).length"""


def inert(page: Any, where: str, problems: list[str]) -> None:
    """Note in ``problems`` anything on the page built from a hostile name: a link to the
    evil host, an anchor in an SVG (Plotly), a remote image, 80 px text, a Plotly tag
    obeyed (bold, italic or link text in a tspan of its own), Markdown bold, colour,
    strikethrough or math; and any exception."""
    checks = {
        "link to evil.example": "a[href*='evil.example']",
        "anchor inside an SVG (a Plotly link)": "svg a",
        "image from the loopback tracker": "img[src*='127.0.0.1']",
        "80 px text": "[style*='font-size:80px'], [style*='font-size: 80px']",
        "Markdown bold from a name": "strong:has-text('bold'), b:has-text('HUGE')",
        "Markdown colour": ".stMarkdownColoredText",
        "KaTeX math": ".katex",
        "strikethrough": "del",
        "exception": "[data-testid='stException']",
    }
    for what, css in checks.items():
        if count := page.locator(css).count():
            first = page.locator(css).first.evaluate("e => e.outerHTML")[:300]
            problems.append(f"{where}: {count} x {what}, such as {first}")
    if count := page.evaluate(OWN_TSPAN, TAG_CONTENT):
        problems.append(f"{where}: {count} x a tag's content in a Plotly tspan of its own")


def shows(where: str, text: str, literal: str, problems: list[str]) -> None:
    """Note in ``problems`` when ``literal`` is not in ``text`` (what a reader sees)."""
    if literal not in text:
        problems.append(f"{where}: {literal!r} not shown literally in {text[:600]!r}")


def plain(text: str) -> str:
    """Text as a reader sees it (the invisible word joiners left out)."""
    return text.replace(WJ, "")


def alerts_text(page: Any) -> str:
    """The text of every alert box (st.info/success/warning/error) on the page."""
    return plain("\n".join(page.locator("[data-testid='stAlert']").all_inner_texts()))


def charts_text(page: Any) -> str:
    """The text of every Plotly chart on the page (titles, legends, ticks)."""
    return plain("\n".join(page.locator(".js-plotly-plot").all_text_contents()))


def open_page(page: Any, base: str, path: str, title: str, plots: int = 0) -> None:
    """Open ``path`` and wait for its title and its first ``plots`` Plotly charts."""
    page.goto(f"{base}/{path}", wait_until="networkidle")
    page.get_by_role("heading", name=title).first.wait_for(timeout=WAIT_MS)
    if plots:
        last = page.locator(".js-plotly-plot").nth(plots - 1).locator(".main-svg").first
        try:
            last.wait_for(timeout=WAIT_MS)
        except Exception:
            shot = REPO / "test-results" / f"hostile-{path.split('?')[0] or 'overview'}.png"
            shot.parent.mkdir(exist_ok=True)
            page.screenshot(path=str(shot), full_page=True)
            raise AssertionError(f"{path}: {plots} charts expected; see {shot}") from None
    page.wait_for_timeout(1000)  # Plotly's transitions, Streamlit's last deltas


@pytest.mark.slow
def test_hostile_names_render_as_inert_text_on_every_page(
    db_url: str, conninfo: str, tracker: Tracker
) -> None:
    from playwright.sync_api import sync_playwright

    assert CHROMIUM, "Debian's chromium is needed: apt-get install chromium (make test does it)"
    n = Names(tracker)
    seed_hostile(conninfo, n)
    problems: list[str] = []  # every page is checked, then all that went wrong is reported
    with serve(db_url) as base, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1500, "height": 2600})
        log_in(page, base, ADMIN, PW)

        # Charts: names as legend entries, category ticks and titles.
        for path, title, plots, names in (
            ("cost?range=24h", "Cost", 2, [n.versions[1], n.gpus[0], n.gpus[1]]),
            ("gpu?range=24h", "GPU", 3, [n.host]),
            ("quality?range=24h", "Quality & safety", 3, list(n.versions)),
            ("latency?range=24h", "Latency & throughput", 4, [ERROR]),
            ("ratings?range=24h", "Rating analytics", 1, list(n.versions)),
        ):
            open_page(page, base, path, title, plots)
            inert(page, path, problems)
            for name in names:
                shows(f"{path} charts", charts_text(page), name, problems)
        # Rating analytics: the deviating rater is named in a warning.
        shows("ratings warning", alerts_text(page), f"other raters: {WWW}", problems)
        # Latency split by each kind of name: the legends.
        for by, names in (("version", n.versions), ("deployment", n.deployments),
                          ("gpu_type", n.gpus)):  # fmt: skip
            open_page(page, base, "latency?range=24h", "Latency & throughput", 4)
            page.get_by_role("radiogroup").get_by_text(by, exact=True).click()
            page.wait_for_timeout(2500)
            inert(page, f"latency by {by}", problems)
            for name in names:
                shows(f"latency by {by}", charts_text(page), name, problems)

        # Model versions: the chart's title and the verdict, by deployment, then by version.
        open_page(page, base, "versions?range=24h", "Model versions", 1)
        page.get_by_role("heading", name="Verdict").wait_for(timeout=WAIT_MS)
        inert(page, "versions by deployment", problems)
        shows("deployment verdict", alerts_text(page), n.deployments[1], problems)
        for name in n.deployments:
            shows("deployment chart", charts_text(page), name, problems)
        page.get_by_role("radiogroup").get_by_text("version", exact=True).click()
        page.wait_for_timeout(2500)
        page.get_by_role("heading", name="Verdict").wait_for(timeout=WAIT_MS)
        inert(page, "versions by version", problems)
        shows("version verdict", alerts_text(page), n.versions[1], problems)
        for name in n.versions:
            shows("version chart", charts_text(page), name, problems)

        # Alerts: the rule's source in a warning, its name in the flash after disabling it.
        open_page(page, base, "alerts", "Alerts")
        page.get_by_role("tab", name="Change a rule").click()
        page.get_by_role("button", name="Disable rule").wait_for(timeout=WAIT_MS)
        inert(page, "alerts", problems)
        shows("rule source", alerts_text(page), f"This rule comes from {n.source}", problems)
        page.get_by_role("button", name="Disable rule").click()
        page.get_by_text(": disabled").wait_for(timeout=WAIT_MS)
        page.wait_for_timeout(1000)
        inert(page, "alerts flash", problems)
        shows("alerts flash", alerts_text(page), f"{n.rule}: disabled", problems)

        # Cost: an admin saves a price for a hostile GPU type; the flash names it.
        open_page(page, base, "cost?range=24h", "Cost", 2)
        page.get_by_label("GPU type (as the logs name it)").fill(n.price_gpu)
        page.get_by_role("button", name="Save price").click()
        page.get_by_text("USD/h").first.wait_for(timeout=WAIT_MS)
        page.wait_for_timeout(1000)
        inert(page, "cost flash", problems)
        shows("cost flash", alerts_text(page), f"Saved {n.price_gpu}: 0.000 USD/h", problems)

        # Accounts: saving the admin's own account names it in the flash.
        open_page(page, base, "admin", "Accounts & audit log")
        page.get_by_role("button", name="Save account").click()
        page.get_by_text("nothing changed").wait_for(timeout=WAIT_MS)
        page.wait_for_timeout(1000)
        inert(page, "admin flash", problems)
        shows("admin flash", alerts_text(page), f"{ADMIN}: nothing changed", problems)

        # The other pages that list these names (filters, tables, selectboxes).
        for path, title in (("?range=24h", "Overview"), ("explorer?q=prompt&range=24h",
                            "Generation explorer"), ("my-ratings", "My ratings")):  # fmt: skip
            open_page(page, base, path, title)
            inert(page, path or "overview", problems)
        browser.close()
    if tracker.seen:
        problems.append(f"the browser fetched hostile image URLs: {tracker.seen}")
    assert not problems, "\n".join(problems)
