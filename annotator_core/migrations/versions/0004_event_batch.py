"""annotation events carry a batch id: the changes of one group labelling are undone as one step

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30 09:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("annotation_events") as batch_op:
        batch_op.add_column(sa.Column("batch", sa.String(length=36), nullable=False, server_default=""))
        batch_op.create_index("ix_events_batch", ["label_id", "batch"])


def downgrade() -> None:
    with op.batch_alter_table("annotation_events") as batch_op:
        batch_op.drop_index("ix_events_batch")
        batch_op.drop_column("batch")
