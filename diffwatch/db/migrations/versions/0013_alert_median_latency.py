"""alert rules may watch the median latency (``latency_p50_ms``)

The p95 of a deployment's latency is often set by queueing that every version shares; the
median shows the model's own speed. This widens ``ck_alert_rules_metric``; downgrading is
refused while a rule watches the median, so no rule is lost. See docs/alerts.md.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06 20:00:00
"""

from __future__ import annotations

from alembic import op
from sqlalchemy import text

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

_BEFORE = (
    "clip_mean",
    "nsfw_rate",
    "latency_p95_ms",
    "error_rate",
    "cost_per_image_attributed",
    "cost_per_image_fleet",
    "gpu_idle_share",
    "prompt_drift",
    "regen_drift",
    "human_rating_mean",
)
_AFTER = ("clip_mean", "nsfw_rate", "latency_p50_ms", *_BEFORE[2:])


def _check(metrics: tuple[str, ...]) -> None:
    op.drop_constraint(op.f("ck_alert_rules_metric"), "alert_rules", type_="check")
    values = ", ".join(f"'{m}'" for m in metrics)
    op.create_check_constraint(
        op.f("ck_alert_rules_metric"), "alert_rules", f"metric IN ({values})"
    )


def upgrade() -> None:
    _check(_AFTER)


def downgrade() -> None:
    n = (
        op.get_bind()
        .execute(text("SELECT count(*) FROM alert_rules WHERE metric = 'latency_p50_ms'"))
        .scalar_one()
    )
    if n:
        raise RuntimeError(
            f"{n} alert rule(s) watch latency_p50_ms, which revision 0012 does not know; "
            "change or delete them before downgrading"
        )
    _check(_BEFORE)
