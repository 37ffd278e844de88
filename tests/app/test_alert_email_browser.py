"""A real alert email, received by a real SMTP server, rendered in Chromium.

The email is made the way production makes it: a rule over seeded rows, evaluated on an
injected clock, delivered over SMTP. Its screenshot goes to ``test-results/screenshots``
(or ``$DIFFWATCH_SCREENSHOTS``).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.alerts_seed import base_time
from tests.app.email_view import screenshot
from tests.app.server import CHROMIUM, REPO
from tests.integration.test_alert_evaluate import TO, add_rule, walk

HOSTILE = "canary <script>window.__xss='name'</script> errors"


@pytest.mark.slow
def test_the_received_alert_email_renders_with_its_chart_and_link(
    conninfo: str, smtp, smtp_settings
) -> None:
    assert CHROMIUM, "Debian's chromium is needed: apt-get install chromium (make test does it)"
    add_rule(conninfo, name=HOSTILE, window="10m", **{"for": "2m"})
    t0 = base_time()
    walk(conninfo, smtp_settings, t0, [0] * 8 + [6] * 6)
    (msg,) = smtp.mailbox.for_recipient(TO[0])
    shots = Path(os.environ.get("DIFFWATCH_SCREENSHOTS", REPO / "test-results" / "screenshots"))
    seen = screenshot(msg, shots / "alert-email.png", CHROMIUM)
    assert seen["img"] == [[480, 160]]  # the inline chart decoded at its size
    text = str(seen["text"])
    assert "FIRING" in text and HOSTILE in text  # the name shown as text, not run
    assert "error rate" in text and "20.00 %" in text
    assert seen["xss"] is None
    (link,) = seen["links"]
    assert link.startswith("https://dash.example/latency?") and "deployment=canary" in link
    assert (shots / "alert-email.png").stat().st_size > 10_000
