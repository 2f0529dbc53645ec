"""The Slack Web API and Bot Connector fakes (tests/fakes/) in a process of their own.

    python -m tests.support.fakes_proc        # prints one JSON line: {"slack": url, "connector": url, "control": url}

Running them apart from the test or load generator keeps their CPU out of the server's accounting and
lets a test SIGKILL the server without touching the recorders. A small control API (loopback only) reads
what was recorded:

    GET  /calls?since=N     {"next": M, "calls": [{"i", "source", "method", "at", "channel", "thread_ts",
                                               "conversation", "kind", "text"}, ...]}
    GET  /count             {"slack": n, "connector": n}
    POST /fail              {"method": "chat.postMessage", "status": 500, "times": 3}  (Slack faults)
    POST /reset             forget every recorded call

`at` is `time.monotonic()` when the call was recorded, comparable with the same clock in other processes
on the machine (CLOCK_MONOTONIC).

`FakesProcess` starts and stops it from a test or a benchmark.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


# ---- the child process ----------------------------------------------------------------------------------


async def _serve() -> None:
    from aiohttp import web

    from tests.fakes.bot_connector import FakeBotConnector
    from tests.fakes.slack_api import FakeSlackAPI

    slack = await FakeSlackAPI().start()
    connector = FakeBotConnector().start()
    # Both recorders append to their own lists; a merged, stable numbering is kept here.
    merged: list[dict[str, Any]] = []
    seen = {"slack": 0, "connector": 0}

    def sync() -> None:
        new_slack = slack.calls[seen["slack"] :]
        seen["slack"] += len(new_slack)
        for c in new_slack:
            merged.append(
                {
                    "source": "slack",
                    "method": c.method,
                    "at": c.at,
                    "channel": c.body.get("channel"),
                    "thread_ts": c.body.get("thread_ts"),
                    "text": str(c.body.get("text") or "")[:300],
                }
            )
        new_conn = connector.snapshot(seen["connector"])
        seen["connector"] += len(new_conn)
        for call in new_conn:
            merged.append(
                {
                    "source": "connector",
                    "method": call.method,
                    "kind": call.kind,
                    "at": call.at,
                    "conversation": call.conversation_id,
                    "reply_to": call.reply_to,
                    "text": call.texts()[:300],
                }
            )

    async def calls(request: web.Request) -> web.Response:
        sync()
        since = int(request.query.get("since", "0"))
        out = [{"i": i, **c} for i, c in enumerate(merged[since:], start=since)]
        return web.json_response({"next": len(merged), "calls": out})

    async def count(request: web.Request) -> web.Response:
        sync()
        return web.json_response(
            {"slack": sum(1 for c in merged if c["source"] == "slack"), "connector": sum(1 for c in merged if c["source"] == "connector")}
        )

    async def fail(request: web.Request) -> web.Response:
        spec = await request.json()
        slack.fail(spec["method"], status=int(spec.get("status", 200)), error=spec.get("error"), times=int(spec.get("times", 1)))
        return web.json_response({"ok": True})

    async def reset(request: web.Request) -> web.Response:
        sync()
        merged.clear()
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_get("/calls", calls)
    app.router.add_get("/count", count)
    app.router.add_post("/fail", fail)
    app.router.add_post("/reset", reset)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    print(json.dumps({"slack": slack.api_url, "connector": connector.url, "control": f"http://127.0.0.1:{port}"}), flush=True)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    # Also stop when the parent goes away (stdin closes).
    loop.add_reader(sys.stdin.fileno(), lambda: stop.set() if not os.read(sys.stdin.fileno(), 1024) else None)
    await stop.wait()
    await runner.cleanup()
    await slack.close()
    connector.stop()


def main() -> None:
    try:
        import uvloop  # type: ignore[import-not-found]

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(_serve())


# ---- the parent side ------------------------------------------------------------------------------------


class FakesProcess:
    """Start the fakes in a subprocess; read and reset what they recorded over the control API."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen[str] | None = None
        self.slack_api_url = ""
        self.connector_url = ""
        self.control_url = ""
        self._since = 0

    def start(self, timeout: float = 30.0) -> FakesProcess:
        env = dict(os.environ)
        env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.support.fakes_proc"],
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + timeout
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line or time.monotonic() > deadline:
            self.stop()
            raise RuntimeError("the fakes process did not start")
        info = json.loads(line)
        self.slack_api_url = info["slack"]
        self.connector_url = info["connector"]
        self.control_url = info["control"]
        return self

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                if self.proc.stdin:
                    self.proc.stdin.close()
            except OSError:
                pass
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None

    def __enter__(self) -> FakesProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def _get(self, path: str) -> Any:
        with urllib.request.urlopen(self.control_url + path, timeout=30) as r:
            return json.loads(r.read())

    def _post(self, path: str, body: dict[str, Any]) -> Any:
        req = urllib.request.Request(
            self.control_url + path, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read())

    def calls(self, since: int = 0) -> list[dict[str, Any]]:
        return self._get(f"/calls?since={since}")["calls"]

    def count(self) -> dict[str, int]:
        return self._get("/count")

    def fail(self, method: str, *, status: int = 200, error: str | None = None, times: int = 1) -> None:
        self._post("/fail", {"method": method, "status": status, "error": error, "times": times})

    def reset(self) -> None:
        self._post("/reset", {})

    def wait_calls(self, predicate, timeout: float = 30.0, poll: float = 0.05) -> list[dict[str, Any]]:
        """Poll until `predicate(calls)` is true; return the calls (AssertionError after `timeout`)."""
        deadline = time.monotonic() + timeout
        while True:
            calls = self.calls()
            if predicate(calls):
                return calls
            if time.monotonic() > deadline:
                shown = [(c["source"], c["method"], c.get("channel") or c.get("conversation")) for c in calls][-20:]
                raise AssertionError(f"timed out after {timeout}s waiting for fake platform calls; last: {shown}")
            time.sleep(poll)


if __name__ == "__main__":
    main()
