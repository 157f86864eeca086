"""image jobs (§4.6): async image requests, their lease, reservation and result

Revision ID: 20261129_image_jobs
Revises: 20261129_billing
Create Date: 2026-11-29 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '20261129_image_jobs'
down_revision: str | None = "20261129_billing"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('image_jobs',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('token_id', sa.String(length=40), nullable=False),
    sa.Column('request_id', sa.String(length=64), nullable=False),
    sa.Column('endpoint', sa.String(length=64), nullable=False),
    sa.Column('model', sa.String(length=200), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('node', sa.String(length=100), nullable=True),
    sa.Column('lease_expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('reserved_micro_usd', sa.BigInteger(), nullable=False),
    sa.Column('result', sa.Text(), nullable=True),
    sa.Column('error', sa.JSON(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_image_jobs'))
    )
    with op.batch_alter_table('image_jobs', schema=None) as batch_op:
        batch_op.create_index('ix_image_jobs_finished_at', ['finished_at'], unique=False)
        batch_op.create_index('ix_image_jobs_status_lease_expires_at', ['status', 'lease_expires_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('image_jobs', schema=None) as batch_op:
        batch_op.drop_index('ix_image_jobs_status_lease_expires_at')
        batch_op.drop_index('ix_image_jobs_finished_at')

    op.drop_table('image_jobs')
