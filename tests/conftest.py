"""Shared fixtures: the shipped knowledge pack, every store backend, and a runtime factory.

Redis tests run against the real server on 127.0.0.1:6379 (SCIM_HELP_TEST_REDIS_URL overrides). When it
is down they skip — unless SCIM_HELP_REQUIRE_REDIS=1 (set by .ci/run), where they fail instead.

`./dev test` runs the tests on several pytest-xdist workers, any test on any worker. What makes that safe:
servers and fakes listen on ephemeral ports, files go to tmp_path, store keys carry a per-test prefix,
and each worker has its own Redis database (_worker_redis_url).
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

from bot.settings import Settings
from bot.store.base import Store
from knowledge.loader import load_pack
from tests.support.timing import Clock

REDIS_URL = os.environ.get("SCIM_HELP_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def _worker_redis_url(url: str) -> str:
    """The Redis database of this xdist worker: gw0 the configured one, gw1 the one below it, and so on
    (modulo Redis's 16). The reliability stacks serve with RedisStore's default prefix, so two of them at
    once in one database would share one Slack inbox: one would take over the entries a SIGKILLed worker
    of the other left, and answer them to the wrong fakes. In a database per worker they run one after
    the other, as without xdist."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if not worker.startswith("gw"):
        return url
    parts = urlsplit(url)
    base = int(parts.path.strip("/") or 0)
    return urlunsplit(parts._replace(path=f"/{(base - int(worker[2:])) % 16}"))


# Modules where every test runs real processes (servers, a browser, Redis stopped and started) or floods
# endpoints with generated input: slow as a whole. Other modules mark their slow tests one by one
# (@pytest.mark.slow). `./dev test -m "not slow"` is the quick loop; `./dev test` runs everything.
SLOW_MODULES = {"test_reliability", "test_webchat_browser", "test_teams_playground", "test_terminal", "test_fuzz"}
# Tests that legitimately need more than the 120 s default ([tool.pytest.ini_options] timeout): the
# Agents Playground installs its npm packages (up to 600 s) before it drives Teams' own client.
LONG = {"test_teams_playground": 900}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        module = item.nodeid.split("::")[0].rsplit("/", 1)[-1].removesuffix(".py")
        if module in SLOW_MODULES:
            item.add_marker(pytest.mark.slow)
        if module in LONG and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(LONG[module]))


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
    url = _worker_redis_url(REDIS_URL)
    if not _redis_up(url):
        if os.environ.get("SCIM_HELP_REQUIRE_REDIS") == "1":
            pytest.fail(f"Redis is required (SCIM_HELP_REQUIRE_REDIS=1) but not answering at {url}")
        pytest.skip(f"Redis not answering at {url}")
    return url


def open_store(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    """A store of `kind` (memory, sqlite, redis) for one test. Opened again in the same test, a SQLite or
    Redis store sees the same data, as a restarted process would; each test has its own. Memory and SQLite
    stores of one test share a `Clock` (tests.support.timing.pass_time moves it past a TTL)."""
    clock = request.node.stash.setdefault(_CLOCK, Clock())
    if kind == "memory":
        from bot.store.memory import MemoryStore

        return MemoryStore(clock=clock)
    if kind == "sqlite":
        from bot.store.sqlite import SQLiteStore

        return SQLiteStore(tmp_path / "store.sqlite3", clock=clock)
    url = request.getfixturevalue("redis_url")
    from bot.store.redis import RedisStore

    prefix = request.node.stash.setdefault(_REDIS_PREFIX, f"scim-help-test:{uuid.uuid4().hex}:")
    return RedisStore(url, prefix=prefix)


_REDIS_PREFIX = pytest.StashKey[str]()
_CLOCK = pytest.StashKey[Clock]()


@pytest.fixture(params=["memory", "sqlite", "redis"])
async def store(request, tmp_path: Path):
    """Every backend, each test run once per backend (the store contract)."""
    s = open_store(request.param, request, tmp_path)
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
    """Build the server's Runtime (bot.server.create_runtime) on a given store (default: SQLite in tmp) with
    optional settings overrides."""
    from bot.server import create_runtime

    made = []

    def factory(store=None, **overrides):
        s = settings.model_copy(update=overrides) if overrides else settings
        rt = create_runtime(s, store=store)
        made.append(rt)
        return rt

    yield factory


@pytest.fixture
def shared_pack(bundle, monkeypatch):
    """Runtime.create reuses the session's parsed knowledge pack instead of parsing it per test."""
    monkeypatch.setattr("bot.runtime.load_pack", lambda path=None: bundle)
    return bundle


@pytest.fixture
async def serve_app(make_runtime, shared_pack):
    """Start build_app(runtime) on a test server; yields a factory returning a TestClient."""
    from aiohttp.test_utils import TestClient, TestServer

    from bot.server import build_app

    made: list[tuple[TestClient, Any]] = []

    async def factory(runtime=None, store=None, **overrides) -> TestClient:
        rt = runtime or make_runtime(store=store, **overrides)
        client = TestClient(TestServer(build_app(rt)))
        await client.start_server()
        made.append((client, rt))
        return client

    yield factory
    for client, rt in made:
        await client.close()
        await rt.close()
