"""Evidently's text drift on the splits of ``bench/prompt_drift.py`` (the same-run baseline).

Runs in an interpreter that has Evidently (a benchmark, not a dependency of diffwatch), e.g.::

    uv venv build/venv-bench && uv pip install --python build/venv-bench evidently "pandas<3"

``bench/prompt_drift.py`` writes the splits to a JSON file and calls ``run(in_path, out_path)``
here in that interpreter (``python -c``; this module imports neither diffwatch nor numpy at
the top, and has no ``__main__`` block, so the smoke suite does not run it on its own).

Each split goes through Evidently's public API as a user would call it:
``Report([ValueDrift(column="prompt")], include_tests=True)`` on a text column, with the
method Evidently picks itself: up to 1,000 reference rows its "percentile" domain classifier
(TF-IDF + SGD, ROC AUC against the 95th percentile of 1,000 random classifiers' AUCs on the
same held-out labels), above that its "absolute" rule (drift when that AUC > 0.55).

One speed-up, which changes no result: the random classifiers' percentile depends only on the
held-out labels (a fixed ``train_test_split`` seed) and its own fixed seed, so it is memoised
per label vector; it took about 6 s a split and every split of one size has the same labels.
"""

from __future__ import annotations

import json
import time
from typing import Any


def run(in_path: str, out_path: str) -> None:
    """Evidently's verdict and drift score (ROC AUC) on every split in ``in_path``."""
    t0 = time.perf_counter()
    import evidently
    import evidently.legacy.utils.data_drift_utils as ddu
    import numpy as np
    import pandas as pd
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import ValueDrift

    import_s = time.perf_counter() - t0
    original = ddu.roc_auc_random_classifier_percentile
    cache: dict[Any, float] = {}

    def percentile(y_test, p_value=0.05, iter_num=1000, seed=42):  # type: ignore[no-untyped-def]
        key = (np.asarray(y_test).tobytes(), p_value, iter_num, seed)
        if key not in cache:
            cache[key] = original(y_test, p_value=p_value, iter_num=iter_num, seed=seed)
        return cache[key]

    ddu.roc_auc_random_classifier_percentile = percentile
    with open(in_path, encoding="utf-8") as f:
        splits = json.load(f)["splits"]
    definition = DataDefinition(text_columns=["prompt"])
    results = []
    for split in splits:
        s0 = time.perf_counter()
        ref = Dataset.from_pandas(
            pd.DataFrame({"prompt": split["reference"]}), data_definition=definition
        )
        cur = Dataset.from_pandas(
            pd.DataFrame({"prompt": split["current"]}), data_definition=definition
        )
        snapshot = Report([ValueDrift(column="prompt")], include_tests=True).run(cur, ref)
        d = snapshot.dict()
        metric, test = d["metrics"][0], d["tests"][0]
        results.append(
            {
                "id": split["id"],
                "method": metric["config"]["method"],
                "threshold": metric["config"]["threshold"],
                "drift_score": float(metric["value"]),
                "drifted": str(test["status"]).endswith("FAIL"),
                "seconds": time.perf_counter() - s0,
            }
        )
    with open(out_path, "w", encoding="utf-8") as f:
        json.dump(
            {
                "evidently": evidently.__version__,
                "import_s": import_s,
                "percentile_computations": len(cache),
                "results": results,
            },
            f,
        )
