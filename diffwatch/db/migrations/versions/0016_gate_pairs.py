"""release gate, human side-by-side: pairs enqueued for raters and their blinded votes

``gate_pairs`` holds the (prompt, seed) pairs of a finished gate run that were sampled for
human raters (``diffwatch gate enqueue`` or ``gate run --enqueue-pairs``): the prompt, both
sides' image URIs and NSFW flags, and how many votes it wants. ``gate_votes`` holds one vote
per (pair, rater username): which side that rater was shown on the left (a stable random
assignment) and whether they preferred the left image, the right one, or neither. The
username is a snapshot, as in the review queue, so votes outlive accounts; the ``users.id``
beside it becomes NULL when an account is removed. ``gate report`` folds the votes into the
run's ``human`` metric.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-08 09:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "gate_pairs",
        sa.Column("run_id", sa.BigInteger(), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("prompt", sa.Text(), nullable=False),
        sa.Column("candidate_uri", sa.Text(), nullable=False),
        sa.Column("baseline_uri", sa.Text(), nullable=False),
        sa.Column("candidate_nsfw", sa.Boolean(), nullable=True),
        sa.Column("baseline_nsfw", sa.Boolean(), nullable=True),
        sa.Column("required_votes", sa.Integer(), server_default="1", nullable=False),
        sa.Column("enqueued_at", _TS, server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("required_votes >= 1", name=op.f("ck_gate_pairs_required_votes")),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["gate_runs.id"],
            name=op.f("fk_gate_pairs_run_id_gate_runs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("run_id", "key", name=op.f("pk_gate_pairs")),
    )
    op.create_table(
        "gate_votes",
        sa.Column("run_id", sa.BigInteger(), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("rater_username", sa.Text(), nullable=False),
        sa.Column("rater_id", sa.BigInteger(), nullable=True),
        sa.Column("left_side", sa.Text(), nullable=False),
        sa.Column("vote", sa.Text(), nullable=False),
        sa.Column("voted_at", _TS, server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint(
            "left_side IN ('candidate', 'baseline')", name=op.f("ck_gate_votes_left_side")
        ),
        sa.CheckConstraint("vote IN ('left', 'same', 'right')", name=op.f("ck_gate_votes_vote")),
        sa.ForeignKeyConstraint(
            ["run_id", "key"],
            ["gate_pairs.run_id", "gate_pairs.key"],
            name=op.f("fk_gate_votes_run_id_gate_pairs"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["rater_id"],
            ["users.id"],
            name=op.f("fk_gate_votes_rater_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("run_id", "key", "rater_username", name=op.f("pk_gate_votes")),
    )
    op.create_index(
        op.f("ix_gate_votes_rater_username_voted_at"), "gate_votes", ["rater_username", "voted_at"]
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_gate_votes_rater_username_voted_at"), table_name="gate_votes")
    op.drop_table("gate_votes")
    op.drop_table("gate_pairs")
