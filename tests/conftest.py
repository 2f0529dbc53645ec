"""Shared fixtures: the shipped knowledge pack, every store backend, and a runtime factory.

Redis tests run against the real server on 127.0.0.1:6379 (SCIM_HELP_TEST_REDIS_URL overrides). When it
is down they skip — unless SCIM_HELP_REQUIRE_REDIS=1 (set by .ci/run), where they fail instead.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from bot.settings import Settings
from bot.store.base import Store
from knowledge.loader import load_pack

REDIS_URL = os.environ.get("SCIM_HELP_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


@pytest.fixture(scope="session")
def bundle():
    return load_pack()


def _redis_up(url: str) -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=1).ping())
    except Exception:
        return False


@pytest.fixture
def redis_url() -> str:
    if not _redis_up(REDIS_URL):
        if os.environ.get("SCIM_HELP_REQUIRE_REDIS") == "1":
            pytest.fail(f"Redis is required (SCIM_HELP_REQUIRE_REDIS=1) but not answering at {REDIS_URL}")
        pytest.skip(f"Redis not answering at {REDIS_URL}")
    return REDIS_URL


@pytest.fixture(params=["memory", "sqlite", "redis"])
async def store(request, tmp_path: Path):
    """Every backend, each test run once per backend (the store contract)."""
    kind = request.param
    s: Store
    if kind == "memory":
        from bot.store.memory import MemoryStore

        s = MemoryStore()
    elif kind == "sqlite":
        from bot.store.sqlite import SQLiteStore

        s = SQLiteStore(tmp_path / "store.sqlite3")
    else:
        url = request.getfixturevalue("redis_url")
        from bot.store.redis import RedisStore

        s = RedisStore(url, prefix=f"scim-help-test:{uuid.uuid4().hex}:")
    yield s
    await s.close()


@pytest.fixture
def settings(tmp_path: Path, monkeypatch) -> Settings:
    """Settings isolated from the developer's environment and .env file."""
    for key in list(os.environ):
        if key.startswith(("SCIM_HELP_", "SLACK_", "Microsoft")) or key == "PORT":
            monkeypatch.delenv(key, raising=False)
    monkeypatch.chdir(tmp_path)  # no stray .env is picked up
    return Settings(SCIM_HELP_DATA_DIR=tmp_path / "data")


@pytest.fixture
def make_runtime(settings, bundle):
    """Build a Runtime on a given store (default: SQLite in tmp) with optional settings overrides."""
    from bot.runtime import Runtime

    made = []

    def factory(store=None, **overrides):
        s = settings.model_copy(update=overrides) if overrides else settings
        rt = Runtime.create(s, store=store)
        made.append(rt)
        return rt

    yield factory
