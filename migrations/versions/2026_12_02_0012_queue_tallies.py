"""queue tallies: each rater's item count and done count per project, kept by triggers on queue_items,
so that serving an item reads its queue's size and progress by primary key instead of counting the
rater's whole queue (labeler/allocation/models.QueueTally)

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02 18:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

# One row's effect on its (project, rater) tally: added (+1) or taken away (-1). An UPDATE that moves
# an item to another rater or changes its status takes the old row away and adds the new one.
_ADD = (
    "INSERT INTO queue_tallies (project_id, rater_id, total, done) "
    "VALUES (NEW.project_id, NEW.rater_id, 1, CASE WHEN NEW.status = 'done' THEN 1 ELSE 0 END) "
    "ON CONFLICT (project_id, rater_id) DO UPDATE SET "
    "total = queue_tallies.total + 1, done = queue_tallies.done + excluded.done"
)
_TAKE = (
    "UPDATE queue_tallies SET total = total - 1, "
    "done = done - CASE WHEN OLD.status = 'done' THEN 1 ELSE 0 END "
    "WHERE project_id = OLD.project_id AND rater_id = OLD.rater_id"
)
_CHANGED = (
    "OLD.status <> NEW.status OR OLD.rater_id <> NEW.rater_id OR OLD.project_id <> NEW.project_id"
)
_DONE = "count(*) FILTER (WHERE status = 'done')"
_TRIGGERS = ("queue_tally_insert", "queue_tally_delete", "queue_tally_update")
_UPDATE_OF = "AFTER UPDATE OF status, rater_id, project_id ON queue_items FOR EACH ROW"


def upgrade() -> None:
    op.create_table(
        "queue_tallies",
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("rater_id", sa.Integer(), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("done", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_queue_tallies_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["rater_id"],
            ["users.id"],
            name=op.f("fk_queue_tallies_rater_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("project_id", "rater_id", name=op.f("pk_queue_tallies")),
    )
    if op.get_bind().dialect.name == "postgresql":
        # Inserts and deletes once per statement, from its transition table. Once per row, each
        # item's upsert of the same tally row in one transaction leaves a longer chain of row
        # versions for the next one to walk: an allocation of 118,527 items took 2.7 times as long.
        # (An allocation inserts its items in one statement: allocation.services.insert_items.)
        op.execute(
            "CREATE FUNCTION queue_tally_added() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            "INSERT INTO queue_tallies (project_id, rater_id, total, done) "
            f"SELECT project_id, rater_id, count(*), {_DONE} FROM added "
            "GROUP BY project_id, rater_id ON CONFLICT (project_id, rater_id) DO UPDATE SET "
            "total = queue_tallies.total + excluded.total, done = queue_tallies.done + excluded.done; "
            "RETURN NULL; END $$"
        )
        op.execute(
            "CREATE FUNCTION queue_tally_taken() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            "UPDATE queue_tallies SET total = queue_tallies.total - gone.total, "
            "done = queue_tallies.done - gone.done "
            f"FROM (SELECT project_id, rater_id, count(*) AS total, {_DONE} AS done FROM taken "
            "GROUP BY project_id, rater_id) AS gone "
            "WHERE queue_tallies.project_id = gone.project_id "
            "AND queue_tallies.rater_id = gone.rater_id; "
            "RETURN NULL; END $$"
        )
        # A change once per row, and only a change of status, rater or project: a transition table
        # cannot go with a column list, and without one every first-showing stamp and position
        # update would run it. The app changes those columns one item at a time (a label, a skip).
        op.execute(
            "CREATE FUNCTION queue_tally_changed() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            f"{_TAKE}; {_ADD}; RETURN NULL; END $$"
        )
        op.execute(
            "CREATE TRIGGER queue_tally_insert AFTER INSERT ON queue_items "
            "REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION queue_tally_added()"
        )
        op.execute(
            "CREATE TRIGGER queue_tally_delete AFTER DELETE ON queue_items "
            "REFERENCING OLD TABLE AS taken FOR EACH STATEMENT EXECUTE FUNCTION queue_tally_taken()"
        )
        op.execute(
            f"CREATE TRIGGER queue_tally_update {_UPDATE_OF} WHEN ({_CHANGED}) "
            "EXECUTE FUNCTION queue_tally_changed()"
        )
    else:  # SQLite: row triggers only (it updates a row in place: no chain of versions)
        op.execute(
            f"CREATE TRIGGER queue_tally_insert AFTER INSERT ON queue_items BEGIN {_ADD}; END"
        )
        op.execute(
            f"CREATE TRIGGER queue_tally_delete AFTER DELETE ON queue_items BEGIN {_TAKE}; END"
        )
        op.execute(
            f"CREATE TRIGGER queue_tally_update {_UPDATE_OF} WHEN {_CHANGED} "
            f"BEGIN {_TAKE}; {_ADD}; END"
        )
    # the queues as they stand
    op.execute(
        "INSERT INTO queue_tallies (project_id, rater_id, total, done) "
        "SELECT project_id, rater_id, count(*), "
        "sum(CASE WHEN status = 'done' THEN 1 ELSE 0 END) FROM queue_items "
        "GROUP BY project_id, rater_id"
    )


def downgrade() -> None:
    postgresql = op.get_bind().dialect.name == "postgresql"
    for name in _TRIGGERS:
        op.execute(f"DROP TRIGGER {name}" + (" ON queue_items" if postgresql else ""))
    if postgresql:
        for name in ("added", "taken", "changed"):
            op.execute(f"DROP FUNCTION queue_tally_{name}()")
    op.drop_table("queue_tallies")
