"""Configuration from the environment and ``.env``: secrets refused in production, pools sized to fit."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from mes_kernel.db.base import make_engine
from mes_kernel.settings import DEFAULT_SECRET, Settings

GOOD_SECRET = "k" * 48
ENV_NAMES = (
    "ENVIRONMENT",
    "SECRET_KEY",
    "DATABASE_URL",
    "REDIS_URL",
    "WORKERS",
    "DB_MAX_CONNECTIONS",
    "DB_RESERVED_CONNECTIONS",
    "DB_POOL_SIZE",
    "DB_MAX_OVERFLOW",
    "RATE_LIMIT_PER_MINUTE",
)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch, tmp_path):
    """No variable of the developer's shell and no stray .env may leak into these tests."""
    for name in ENV_NAMES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


@pytest.mark.parametrize("secret", [DEFAULT_SECRET, "short-secret", "x" * 31])
def test_production_refuses_the_published_placeholder_or_a_short_secret_key(secret):
    with pytest.raises(ValidationError, match="SECRET_KEY"):
        Settings(environment="production", secret_key=secret, _env_file=None)


@pytest.mark.parametrize("environment", ["development", "test", "production"])
def test_the_published_placeholder_secret_is_refused_in_every_mode(environment):
    with pytest.raises(ValidationError, match="placeholder"):
        Settings(environment=environment, secret_key=DEFAULT_SECRET, _env_file=None)


def test_secret_key_comes_from_the_environment_and_is_empty_without_it(monkeypatch):
    """Empty means: generated on first run and kept in var/ (tests/test_auth.py)."""
    monkeypatch.setenv("ENVIRONMENT", "production")
    assert Settings(_env_file=None).secret_key == ""
    monkeypatch.setenv("SECRET_KEY", GOOD_SECRET)
    assert Settings(_env_file=None).secret_key == GOOD_SECRET


def test_development_runs_on_the_embedded_defaults():
    settings = Settings(_env_file=None)
    assert settings.environment == "development"
    assert settings.is_sqlite
    assert settings.redis_url is None
    assert (settings.access_token_minutes, settings.refresh_token_days, settings.rate_limit_per_minute) == (15, 7, 100)


@pytest.mark.parametrize("workers", [1, 2, 3, 4, 8, 16, 24, 45, 64, 90])
@pytest.mark.parametrize("max_connections,reserved", [(100, 10), (100, 3), (200, 20), (500, 50)])
def test_workers_times_pool_plus_overflow_fits_the_servers_connections(workers, max_connections, reserved):
    settings = Settings(
        workers=workers, db_max_connections=max_connections, db_reserved_connections=reserved, _env_file=None
    )
    assert settings.worker_count == workers
    assert settings.pool_size >= 1
    assert settings.max_overflow >= 0
    assert workers * (settings.pool_size + settings.max_overflow) <= max_connections - reserved


def test_the_specs_eight_workers_do_not_exhaust_postgres_default_100_connections():
    settings = Settings(workers=8, _env_file=None)
    assert settings.db_max_connections == 100
    per_worker = settings.pool_size + settings.max_overflow
    assert 8 * per_worker <= 100 - settings.db_reserved_connections
    assert per_worker < 50 + 20  # the seed's 50 + 20 per worker would ask for 560
    assert settings.pool_size >= 5  # and the pools are still useful


def test_worker_count_defaults_to_twice_the_cores(monkeypatch):
    monkeypatch.setattr("os.cpu_count", lambda: 3)
    settings = Settings(_env_file=None)
    assert settings.worker_count == 6
    assert 6 * (settings.pool_size + settings.max_overflow) <= 100 - settings.db_reserved_connections


def test_postgres_engine_uses_the_derived_pool_sizes():
    settings = Settings(database_url="postgresql+asyncpg://mes@127.0.0.1:1/mes", workers=8, _env_file=None)
    engine = make_engine(settings)  # nothing connects until first use
    try:
        assert engine.pool.size() == settings.pool_size
        assert engine.pool._max_overflow == settings.max_overflow
    finally:
        engine.sync_engine.dispose()


def test_dotenv_file_is_read_and_the_environment_wins(tmp_path, monkeypatch):
    env_file = tmp_path / "custom.env"
    env_file.write_text(
        "DATABASE_URL=postgresql+asyncpg://mes@db.internal:5432/mes\n"
        "REDIS_URL=redis://cache.internal:6379/0\n"
        f"SECRET_KEY={GOOD_SECRET}\n"
        "ENVIRONMENT=production\n"
        "WORKERS=4\n"
        "RATE_LIMIT_PER_MINUTE=250\n"
    )
    settings = Settings(_env_file=env_file)
    assert settings.database_url == "postgresql+asyncpg://mes@db.internal:5432/mes"
    assert settings.redis_url == "redis://cache.internal:6379/0"
    assert (settings.environment, settings.secret_key) == ("production", GOOD_SECRET)
    assert (settings.worker_count, settings.rate_limit_per_minute) == (4, 250)

    monkeypatch.setenv("WORKERS", "3")
    assert Settings(_env_file=env_file).worker_count == 3


def test_dotenv_in_the_working_directory_is_read_by_default(tmp_path):
    (tmp_path / ".env").write_text("REDIS_URL=redis://from-dotenv:6379/2\nSECRET_KEY=short\nENVIRONMENT=production\n")
    with pytest.raises(ValidationError, match="SECRET_KEY"):
        Settings()
    (tmp_path / ".env").write_text("REDIS_URL=redis://from-dotenv:6379/2\n")
    assert Settings().redis_url == "redis://from-dotenv:6379/2"


@pytest.mark.parametrize(
    "overrides",
    [
        {"workers": 8, "db_pool_size": 50, "db_max_overflow": 20},  # the seed's numbers, set explicitly
        {"workers": 150},  # more workers than connections: no pool size can fit
    ],
)
def test_settings_that_cannot_fit_the_connection_budget_are_refused(overrides):
    try:
        settings = Settings(database_url="postgresql+asyncpg://mes@127.0.0.1/mes", _env_file=None, **overrides)
    except ValidationError:
        return
    total = settings.worker_count * (settings.pool_size + settings.max_overflow)
    assert total <= settings.db_max_connections - settings.db_reserved_connections, total


def test_a_copy_with_other_workers_derives_its_own_pool_sizes():
    settings = Settings(workers=2, _env_file=None)
    assert settings.pool_size + settings.max_overflow == 45  # computed (and cached) for 2 workers
    copy = settings.model_copy(update={"workers": 8})
    assert copy.worker_count == 8
    assert 8 * (copy.pool_size + copy.max_overflow) <= 90
