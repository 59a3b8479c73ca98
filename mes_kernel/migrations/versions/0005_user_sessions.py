"""Users: case-insensitive unique usernames, token versions for revocation, login throttling.

``username_key`` is ``security.username_key(username)`` (NFKC, case-folded). Existing users whose
names collide under that rule (``ADM`` and ``adm``) make the upgrade stop with their names: an
administrator renames or removes one of each pair first. Nothing is merged or renamed silently.

Revision ID: 0005
Revises: 0002
Create Date: 2026-11-30 12:00:00
"""

import unicodedata
from collections import defaultdict

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0002"
branch_labels = None
depends_on = None


def _key(username: str) -> str:
    # A copy of mes_kernel.security.username_key: a migration must not change when the app does.
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", username).casefold())


def upgrade() -> None:
    bind = op.get_bind()
    users = bind.execute(sa.text("SELECT id, username FROM users ORDER BY id")).all()
    by_key: dict[str, list[str]] = defaultdict(list)
    for _, username in users:
        by_key[_key(username)].append(username)
    clashes = [names for names in by_key.values() if len(names) > 1]
    if clashes:
        listed = "; ".join(" = ".join(repr(n) for n in names) for names in clashes)
        raise RuntimeError(
            "usernames are now matched case-insensitively (NFKC) and these existing users collide: "
            f"{listed}. Rename or delete one of each group (SQL: UPDATE users SET username = ... WHERE id = ...), "
            "then run the upgrade again."
        )
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("username_key", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("token_version", sa.Integer(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("failed_logins", sa.Integer(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True))
    for user_id, username in users:
        bind.execute(
            sa.text("UPDATE users SET username_key = :key WHERE id = :id"), {"key": _key(username), "id": user_id}
        )
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.alter_column("username_key", existing_type=sa.String(length=64), nullable=False)
        batch_op.create_unique_constraint(batch_op.f("uq_users_username_key"), ["username_key"])


def downgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_users_username_key"), type_="unique")
        batch_op.drop_column("locked_until")
        batch_op.drop_column("failed_logins")
        batch_op.drop_column("token_version")
        batch_op.drop_column("username_key")
