"""usage record widths: request_id holds every request id the edge accepts (128 characters)

Revision ID: 20261129_usage_widths
Revises: 0001
Create Date: 2026-11-29 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '20261129_usage_widths'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('usage_records', schema=None) as batch_op:
        batch_op.alter_column('request_id',
               existing_type=sa.String(length=64),
               type_=sa.String(length=128),
               existing_nullable=False)


def downgrade() -> None:
    # Longer ids would not fit the narrower column: cut them rather than lose the records.
    op.execute("UPDATE usage_records SET request_id = substr(request_id, 1, 64) WHERE length(request_id) > 64")
    with op.batch_alter_table('usage_records', schema=None) as batch_op:
        batch_op.alter_column('request_id',
               existing_type=sa.String(length=128),
               type_=sa.String(length=64),
               existing_nullable=False)
