"""Alembic environment: async engines, batch mode on SQLite (its ALTER TABLE is limited)."""

from __future__ import annotations

import asyncio
import threading

from alembic import context
from sqlalchemy.ext.asyncio import create_async_engine

from mes_kernel.db import models  # noqa: F401  (registers the tables on the metadata)
from mes_kernel.db.base import Base

config = context.config
target_metadata = Base.metadata


def _configure(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_async(url: str) -> None:
    engine = create_async_engine(url)
    async with engine.connect() as conn:
        await conn.run_sync(_configure)
        await conn.commit()
    await engine.dispose()


def run_blocking(coro) -> None:
    """asyncio.run, also when called from inside a running loop (then in a helper thread)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        asyncio.run(coro)
        return
    errors: list[BaseException] = []

    def target():
        try:
            asyncio.run(coro)
        except BaseException as exc:  # handed back to the caller's thread
            errors.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if errors:
        raise errors[0]


def run_offline(url: str) -> None:
    context.configure(url=url, target_metadata=target_metadata, literal_binds=True,
                      render_as_batch=url.startswith("sqlite"))
    with context.begin_transaction():
        context.run_migrations()


url = config.get_main_option("sqlalchemy.url")
connection = config.attributes.get("connection")
if connection is not None:
    _configure(connection)
elif context.is_offline_mode():
    run_offline(url)
else:
    run_blocking(_run_async(url))
