"""What each alert metric means: its label, unit, scope and dashboard page (no calculation).

The calculation lives in ``diffwatch.db.queries.alert_metrics``; keeping the definition apart lets
the rule editor, the YAML loader, the email and the evaluator agree on one table.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Scope = Literal["generations", "fleet", "drift", "ratings"]


@dataclass(frozen=True, slots=True)
class MetricDef:
    """One metric an alert rule can watch."""

    key: str
    label: str
    unit: str  # '' for a share (shown as %), 'ms', 'USD', '' for scores
    scope: Scope  # generations: filters on model/version/deployment apply; fleet: none
    page: str  # dashboard url path that shows it
    percent: bool = False  # a share in 0..1, shown as a percentage
    digits: int = 2
    help: str = ""

    def format(self, value: float | None) -> str:
        """The value as a person reads it: '12.5 %', '812 ms', '0.0042 USD', 'no data'."""
        if value is None:
            return "no data"
        if self.percent:
            return f"{100 * value:.{self.digits}f} %"
        return f"{value:,.{self.digits}f}{' ' + self.unit if self.unit else ''}"

    @property
    def filterable(self) -> bool:
        """Whether model, version and deployment filters mean anything for this metric."""
        return self.scope in ("generations", "ratings", "drift")


METRICS: dict[str, MetricDef] = {
    m.key: m
    for m in (
        MetricDef(
            "clip_mean",
            "mean CLIP score",
            "",
            "generations",
            "quality",
            digits=2,
            help="Mean CLIPScore (0-100) of the images scored in the window.",
        ),
        MetricDef(
            "nsfw_rate",
            "NSFW rate",
            "",
            "generations",
            "quality",
            percent=True,
            help="Share of NSFW-scored images that were flagged.",
        ),
        MetricDef(
            "latency_p50_ms",
            "median latency",
            "ms",
            "generations",
            "latency",
            digits=0,
            help="Median (p50) of total request latency (ms): where the model's own speed "
            "shows; the p95 is often set by queueing that every version shares.",
        ),
        MetricDef(
            "latency_p95_ms",
            "p95 latency",
            "ms",
            "generations",
            "latency",
            digits=0,
            help="95th percentile of total request latency (ms).",
        ),
        MetricDef(
            "error_rate",
            "error rate",
            "",
            "generations",
            "latency",
            percent=True,
            help="Failed requests / all requests.",
        ),
        MetricDef(
            "cost_per_image_attributed",
            "cost per image (attributed)",
            "USD",
            "generations",
            "cost",
            digits=5,
            help="Inference GPU time of the requests x GPU price / images (USD).",
        ),
        MetricDef(
            "cost_per_image_fleet",
            "cost per image (fleet)",
            "USD",
            "fleet",
            "cost",
            digits=5,
            help="All GPU time held by the fleet x price / images made (USD); idle included.",
        ),
        MetricDef(
            "gpu_idle_share",
            "GPU idle share",
            "",
            "fleet",
            "gpu",
            percent=True,
            help="Share of GPU samples with 0 % utilisation.",
        ),
        MetricDef(
            "prompt_drift",
            "prompt drift effect size",
            "",
            "drift",
            "drift",
            digits=3,
            help="Effect size (ROC AUC, 0.5 = no drift) of the newest prompt-drift run that "
            "finished in the window.",
        ),
        MetricDef(
            "regen_drift",
            "re-generation drift (share flagged)",
            "",
            "drift",
            "drift",
            percent=True,
            help="Share of re-generated prompts flagged by the newest regeneration or golden "
            "drift run that finished in the window.",
        ),
        MetricDef(
            "image_drift",
            "image drift effect size",
            "",
            "drift",
            "drift",
            digits=3,
            help="Effect size (k-NN AUC of the CLIP image embeddings, 0.5 = no drift) of the "
            "newest `drift images` run that finished in the window: the largest of its "
            "overall, per-version and same-prompt comparisons.",
        ),
        MetricDef(
            "duplicate_share",
            "near-duplicate share",
            "",
            "generations",
            "quality",
            percent=True,
            help="Share of images (an even sample of up to 2,000 a version) with a "
            "near-duplicate from another seed or prompt of the same version: CLIP image "
            "cosine >= 0.95, a mode-collapse signal. Needs pgvector (stored embeddings).",
        ),
        MetricDef(
            "bias_worst_skew",
            "bias: worst-k skew",
            "",
            "drift",
            "fairness",
            digits=3,
            help="Headline skew of the newest bias probe run that finished in the window: "
            "the mean MaxSkew (ln of a class's share over its expected share) of the suite's "
            "k most skewed prompts, for the suite's headline attribute as CLIP perceives it "
            "(0 = as expected; ln 2 = 0.69: a class twice as common as expected).",
        ),
        MetricDef(
            "bias_skew_change",
            "bias: skew change since the last run",
            "",
            "drift",
            "fairness",
            digits=3,
            help="The newest bias probe run's worst-k skew minus that of the run before it on "
            "the same suite and model (a new version, a fine-tune): above 0 means more skewed.",
        ),
        MetricDef(
            "human_rating_mean",
            "mean human rating",
            "",
            "ratings",
            "ratings",
            digits=2,
            help="Mean rater quality score (1-5) of ratings made in the window.",
        ),
    )
}


def metric(key: str) -> MetricDef:
    """The definition of ``key``; ValueError naming the known metrics otherwise."""
    try:
        return METRICS[key]
    except KeyError:
        raise ValueError(f"unknown metric {key!r}; choose one of {', '.join(METRICS)}") from None
