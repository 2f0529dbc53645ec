"""A running deployment for black-box tests: `scim-help serve` (subprocess) + the platform fakes (another
subprocess), with Slack switched on (signed requests, Web API at the fake) and Teams at the fake connector.

It also reads the store directly — the SQLite file (read-only) or Redis — so a test can tell whether a
request reached the engine ("the store has no conversation") and check turn counters exactly.
"""

from __future__ import annotations

import json
import re
import sqlite3
import time
from pathlib import Path
from typing import Any

from tests.support import platform as P
from tests.support.fakes_proc import FakesProcess
from tests.support.procs import PROXY_GUARD, ServerProcess, base_env, wait_until

REDIS_PREFIX = "scim-help:"  # RedisStore's default prefix, used by `serve`


class Stack:
    def __init__(
        self,
        tmp: Path,
        *,
        store: str = "sqlite",
        redis_url: str | None = None,
        fakes: FakesProcess | None = None,
        env: dict[str, str] | None = None,
        slack: bool = True,
        workers: int = 1,
        processors: int = 0,
    ) -> None:
        self.tmp = Path(tmp)
        self.store = store
        self.redis_url = redis_url
        self._own_fakes = fakes is None
        self.fakes = fakes or FakesProcess()
        self.data_dir = self.tmp / "data"
        self.extra_env = env or {}
        self.slack = slack
        self.workers = workers
        self.processors = processors
        self.server: ServerProcess | None = None

    # lifecycle -------------------------------------------------------------------------------------

    def start(self) -> Stack:
        if self._own_fakes:
            self.fakes.start()
        # Tests send many web chat messages from one address: budgets high unless a test sets its own.
        extra: dict[str, str] = {"SCIM_HELP_STORE": self.store, "SCIM_HELP_WEB_TURNS_PER_MINUTE": "100000", "SCIM_HELP_WEB_NEW_PER_MINUTE": "10000"}
        if self.slack:
            extra.update(
                SLACK_BOT_TOKEN=P.BOT_TOKEN,
                SLACK_SIGNING_SECRET=P.SIGNING_SECRET,
                SCIM_HELP_SLACK_API_URL=self.fakes.slack_api_url,
            )
        else:
            extra.update(PROXY_GUARD)
        if self.redis_url:
            extra["SCIM_HELP_REDIS_URL"] = self.redis_url
        extra.update(self.extra_env)
        args: tuple[str, ...] = ("--workers", str(self.workers)) if self.workers > 1 else ()
        if self.processors:
            args += ("--processors", str(self.processors))
        self.server = ServerProcess(base_env(self.data_dir, **extra), args=args, cwd=self.tmp).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.cleanup()
        if self._own_fakes:
            self.fakes.stop()

    def __enter__(self) -> Stack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def srv(self) -> ServerProcess:
        assert self.server is not None
        return self.server

    # requests --------------------------------------------------------------------------------------

    def slack_event(self, event: dict[str, Any], *, event_id: str | None = None, **sign: Any):
        body, headers = P.signed(P.event_callback(event, event_id=event_id), **sign)
        return self.srv.post("/slack/events", body, headers)

    def teams(self, activity: dict[str, Any], headers: dict[str, str] | None = None):
        return self.srv.post_json("/api/messages", activity, headers)

    def chat(self, conversation: str | None = None, *, text: str | None = None, choice: str | None = None, timeout: float = 30.0):
        payload: dict[str, Any] = {}
        if conversation:
            payload["conversation"] = conversation
        if text is not None:
            payload["text"] = text
        if choice is not None:
            payload["choice"] = choice
        return self.srv.post_json("/api/chat", payload, timeout=timeout)

    def restore(self, conversation: str):
        """The web chat's transcript request (the id travels in a header, never in the URL)."""
        return self.srv.get("/api/chat", headers={"X-Conversation": conversation})

    # the store, read directly ----------------------------------------------------------------------

    def store_key(self, conversation: str) -> str:
        """The key the store knows a conversation by: a web chat id is known by its keyed hash (the key is
        in the data dir)."""
        if not conversation.startswith("web:"):
            return conversation
        from bot.channels.web import WebIds
        from bot.keys import Keyed

        internal = WebIds(Keyed((self.data_dir / "secret.key").read_text().strip().encode())).verify(conversation, None)
        return internal or conversation

    def raw(self, key: str) -> str | None:
        key = self.store_key(key)
        if self.store == "sqlite":
            path = self.data_dir / "scim-help.sqlite3"
            if not path.exists():
                return None
            conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
            try:
                row = conn.execute("SELECT data FROM conversations WHERE key=?", (key,)).fetchone()
            finally:
                conn.close()
            return row[0] if row else None
        import redis

        r = redis.Redis.from_url(self.redis_url or "redis://127.0.0.1:6379/0", decode_responses=True, socket_timeout=5)
        try:
            # redis-py types replies as bytes | str; this client is made with decode_responses=True (str).
            return r.get(f"{REDIS_PREFIX}conv:{key}")  # type: ignore[return-value]
        finally:
            r.close()

    def state(self, conversation: str) -> dict[str, Any] | None:
        raw = self.raw(conversation)
        return json.loads(raw) if raw else None

    def claimed(self, key: str) -> bool:
        if self.store == "sqlite":
            path = self.data_dir / "scim-help.sqlite3"
            if not path.exists():
                return False
            conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
            try:
                return conn.execute("SELECT 1 FROM claims WHERE key=? AND expires_at>?", (key, time.time())).fetchone() is not None
            finally:
                conn.close()
        import redis

        r = redis.Redis.from_url(self.redis_url or "redis://127.0.0.1:6379/0", decode_responses=True, socket_timeout=5)
        try:
            return bool(r.exists(f"{REDIS_PREFIX}claim:{key}"))
        finally:
            r.close()

    # metrics ---------------------------------------------------------------------------------------

    def metrics(self) -> dict[str, float]:
        """Prometheus samples as {"name{labels}": value}."""
        r = self.srv.get("/metrics")
        assert r.status == 200, r
        out: dict[str, float] = {}
        for line in r.text.splitlines():
            if not line or line.startswith("#"):
                continue
            m = re.match(r"^(\S+)\s+(\S+)$", line)
            if m:
                try:
                    out[m.group(1)] = float(m.group(2))
                except ValueError:
                    pass
        return out

    def messages_handled(self) -> float:
        return sum(v for k, v in self.metrics().items() if k.startswith("scim_help_messages_total"))

    def unhandled_errors(self) -> float:
        return sum(v for k, v in self.metrics().items() if k.startswith("scim_help_errors_total") and 'kind="unhandled"' in k)

    # waiting on the platforms ----------------------------------------------------------------------

    def slack_posts(self, since: int = 0, **match: Any) -> list[dict[str, Any]]:
        return [
            c
            for c in self.fakes.calls(since)
            if c["source"] == "slack" and c["method"] == "chat.postMessage" and all(c.get(k) == v for k, v in match.items())
        ]

    def wait_slack_posts(self, count: int = 1, timeout: float = 30.0, **match: Any) -> list[dict[str, Any]]:
        return wait_until(lambda: (lambda p: p if len(p) >= count else None)(self.slack_posts(**match)), timeout, what=f"{count} chat.postMessage {match}")

    def connector_replies(self, conversation: str | None = None) -> list[dict[str, Any]]:
        return [
            c
            for c in self.fakes.calls()
            if c["source"] == "connector" and c.get("kind") in ("reply", "send") and (conversation is None or c.get("conversation") == conversation)
        ]
