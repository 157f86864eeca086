"""billing: the shortfall of a settlement on the usage record

Revision ID: 20261129_billing
Revises: 20261129_usage_widths
Create Date: 2026-11-29 09:00:00

A settlement whose real cost exceeds the reservation by more than the quota left charges the quota down
to exactly zero; the part it could not charge is kept on the record.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = "20261129_billing"
down_revision: str | None = "20261129_usage_widths"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("usage_records", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("shortfall_micro_usd", sa.BigInteger(), nullable=False, server_default="0")
        )


def downgrade() -> None:
    with op.batch_alter_table("usage_records", schema=None) as batch_op:
        batch_op.drop_column("shortfall_micro_usd")
