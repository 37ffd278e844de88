"""The Drift page with a single run (a fresh install, or the demo): charts readable, α shown."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pandas as pd
from streamlit.testing.v1 import AppTest

T = datetime(2026, 12, 6, 20, 46, 3, tzinfo=UTC)


def _chart() -> None:  # runs inside AppTest
    import pandas as pd

    from diffwatch.app.views.drift import prompt_chart

    prompt_chart(
        pd.DataFrame(
            {
                "id": [1],
                "started_at": [pd.Timestamp("2026-12-06T20:46:03.524Z")],
                "p_value": [0.005],
                "alpha": [0.05],
                "effect_size": [0.6],
                "effect_size_name": ["knn_auc"],
                "drifted": [True],
            }
        )
    )


def _utc(x: str) -> pd.Timestamp:
    t = pd.Timestamp(x)
    return t.tz_convert(UTC) if t.tzinfo else t.tz_localize(UTC)


def test_one_run_shows_a_day_around_it_and_the_alpha_line() -> None:
    at = AppTest.from_function(_chart, default_timeout=60).run()
    assert not at.exception
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    lo, hi = (_utc(x) for x in spec["layout"]["xaxis"]["range"])
    assert hi - lo == timedelta(hours=24)  # not a millisecond labelled in fractions
    assert lo < T < hi
    alpha = [s for s in spec["layout"]["shapes"] if s.get("y0") == 0.05]
    assert alpha and alpha[0]["line"]["dash"] == "dash"
    lo_p, hi_p = spec["layout"]["yaxis2"]["range"]  # log10: both 0.005 and α in view
    assert lo_p < -2.3 and hi_p > -1.3
    assert any(t.get("name") == "α = 0.05" for t in spec["data"])


def _chart_with_marker() -> None:  # runs inside AppTest
    from datetime import UTC, datetime

    import pandas as pd

    from diffwatch.app.views.drift import prompt_chart
    from diffwatch.model.deploy_markers import DeployMarker

    at = datetime(2026, 12, 6, 18, 0, tzinfo=UTC)
    runs = pd.DataFrame(
        {
            "id": [1, 2],
            "started_at": [pd.Timestamp("2026-12-06T12:00Z"), pd.Timestamp("2026-12-06T20:00Z")],
            "p_value": [0.4, 0.005],
            "alpha": [0.05, 0.05],
            "effect_size": [0.1, 0.6],
            "effect_size_name": ["knn_auc", "knn_auc"],
            "drifted": [False, True],
        }
    )
    prompt_chart(runs, markers=[DeployMarker(at, "v1.5-rc1", "canary")])


def test_a_deploy_marker_sits_between_the_runs_it_explains() -> None:
    at = AppTest.from_function(_chart_with_marker, default_timeout=60).run()
    assert not at.exception
    layout = json.loads(at.get("plotly_chart")[0].proto.spec)["layout"]
    (label,) = [a for a in layout["annotations"] if "hovertext" in a]
    assert label["text"] == "v1.5-rc1 → canary"
    assert _utc(label["x"]) == datetime(2026, 12, 6, 18, 0, tzinfo=UTC)
    assert any(s["line"].get("dash") == "dot" for s in layout["shapes"])
