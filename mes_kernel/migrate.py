"""Alembic migrations run from code (``mes db upgrade``), on SQLite and PostgreSQL alike."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from .settings import Settings

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(settings: Settings) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", settings.database_url.replace("%", "%%"))
    return cfg


def upgrade(settings: Settings, revision: str = "head") -> None:
    from .private_files import secure_sqlite

    secure_sqlite(settings.database_url)  # folder 0700 and file 0600 before SQLite creates it
    command.upgrade(alembic_config(settings), revision)


def downgrade(settings: Settings, revision: str = "base") -> None:
    command.downgrade(alembic_config(settings), revision)


@lru_cache(maxsize=1)
def head_revisions() -> frozenset[str]:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return frozenset(ScriptDirectory.from_config(cfg).get_heads())


def current_matches_head(sync_conn) -> bool:
    current = set(MigrationContext.configure(sync_conn).get_current_heads())
    return current == set(head_revisions())
