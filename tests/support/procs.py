"""Real processes for the reliability suite and the HTTP benchmark, on loopback only.

- `ServerProcess`: `scim-help serve` on a free 127.0.0.1 port with a given environment; start, wait until
  `/healthz` answers, SIGKILL, restart on the same port and data, stop (SIGTERM), read its log.
- `RedisProcess`: a throwaway `redis-server` on a free port (never the shared one on 6379), which a test may
  stop and start again on the same port while the server keeps running.
- `free_port()`, `http()`: small helpers (http.client, no proxies, loopback only).
"""

from __future__ import annotations

import http.client as httpclient
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
LOOPBACK = "127.0.0.1"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def wait_until(predicate, timeout: float, poll: float = 0.05, what: str = "condition"):
    """Poll `predicate()` until it returns something truthy; return it. AssertionError after `timeout`."""
    deadline = time.monotonic() + timeout
    last_exc: BaseException | None = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:  # keep polling, report the last error
            last_exc = exc
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}" + (f" (last error: {last_exc!r})" if last_exc else ""))
        time.sleep(poll)


class Response:
    def __init__(self, status: int, headers: dict[str, str], body: bytes):
        self.status = status
        self.headers = headers
        self.body = body

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def __repr__(self) -> str:
        return f"<Response {self.status} {self.body[:200]!r}>"


def http(
    port: int,
    method: str,
    path: str,
    body: bytes | str | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: float = 30.0,
) -> Response:
    """One request to 127.0.0.1:port on a fresh connection."""
    if isinstance(body, str):
        body = body.encode("utf-8", "surrogatepass")
    conn = httpclient.HTTPConnection(LOOPBACK, port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=dict(headers or {}))
        r = conn.getresponse()
        data = r.read()
        return Response(r.status, {k.lower(): v for k, v in r.getheaders()}, data)
    finally:
        conn.close()


def post_json(port: int, path: str, payload: Any, headers: Mapping[str, str] | None = None, timeout: float = 30.0) -> Response:
    h = {"Content-Type": "application/json"}
    h.update(headers or {})
    return http(port, "POST", path, json.dumps(payload), h, timeout)


# ---- scim-help serve --------------------------------------------------------------------------------------


def base_env(data_dir: Path, **extra: str) -> dict[str, str]:
    """The environment for a server: the caller's, minus any scim-help/Slack/Teams settings, plus `extra`."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SCIM_HELP_", "SLACK_", "Microsoft")) and k.lower() not in ("port", "http_proxy", "https_proxy", "no_proxy", "all_proxy")
    }
    env.update(
        {
            "SCIM_HELP_DATA_DIR": str(data_dir),
            "SCIM_HELP_HOST": LOOPBACK,
            "SCIM_HELP_LOG_FORMAT": "json",
            "SCIM_HELP_LOG_LEVEL": "INFO",
            "SCIM_HELP_SHUTDOWN_TIMEOUT": "5",
            "PYTHONUNBUFFERED": "1",
            "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
        }
    )
    env.update(extra)
    return env


# Loopback only: with these, anything that would leave the machine through requests (botbuilder's OpenID
# metadata fetch) hits a closed local port. Not for servers with Slack on: slack_sdk reads HTTPS_PROXY but
# ignores NO_PROXY, so it would send its calls to the fake through the dead proxy too.
PROXY_GUARD = {
    "HTTP_PROXY": "http://127.0.0.1:9",
    "HTTPS_PROXY": "http://127.0.0.1:9",
    "NO_PROXY": "127.0.0.1,localhost",
}


def scim_help_command(*args: str) -> list[str]:
    exe = Path(sys.executable).parent / "scim-help"
    if exe.exists():
        return [str(exe), *args]
    return [sys.executable, "-m", "bot.cli", *args]


class ServerProcess:
    """`scim-help serve` as a subprocess on loopback. The log (stdout+stderr) goes to a file."""

    def __init__(self, env: Mapping[str, str], port: int | None = None, args: tuple[str, ...] = (), cwd: Path | None = None):
        self.env = dict(env)
        self.port = port or free_port()
        self.args = args
        self.cwd = cwd or Path(self.env.get("SCIM_HELP_DATA_DIR", tempfile.gettempdir())).parent
        self.proc: subprocess.Popen[bytes] | None = None
        self._logdir = Path(tempfile.mkdtemp(prefix="scim-help-server-log-"))
        self.log_path = self._logdir / "server.log"
        self.starts = 0

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def start(self, timeout: float = 60.0) -> ServerProcess:
        assert self.proc is None or self.proc.poll() is not None, "already running"
        self.starts += 1
        log = open(self.log_path, "ab")
        log.write(f"\n===== start #{self.starts} =====\n".encode())
        log.flush()
        self.proc = subprocess.Popen(
            scim_help_command("serve", "--host", LOOPBACK, "--port", str(self.port), *self.args),
            env=self.env,
            cwd=self.cwd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        self.wait_healthy(timeout)
        return self

    def wait_healthy(self, timeout: float = 60.0) -> None:
        def up() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log()[-3000:]}")
            return http(self.port, "GET", "/healthz", timeout=2).status == 200

        deadline = time.monotonic() + timeout
        while True:
            try:
                if up():
                    return
            except RuntimeError:
                raise
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"server did not become healthy in {timeout}s:\n{self.log()[-3000:]}")
            time.sleep(0.05)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL the server (and any workers in its process group): no shutdown hooks run."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)
        # The port must be free again before a restart binds it.
        wait_until(lambda: _port_free(self.port), 30, what=f"port {self.port} to be released")

    def stop(self, timeout: float = 20.0) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode

    def restart(self, timeout: float = 60.0) -> ServerProcess:
        self.kill()
        return self.start(timeout)

    def log(self) -> str:
        try:
            return self.log_path.read_text("utf-8", "replace")
        except OSError:
            return ""

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self._logdir, ignore_errors=True)

    # requests ------------------------------------------------------------------------------------------

    def get(self, path: str, **kw: Any) -> Response:
        return http(self.port, "GET", path, **kw)

    def post(self, path: str, body: bytes | str | None = None, headers: Mapping[str, str] | None = None, **kw: Any) -> Response:
        return http(self.port, "POST", path, body, headers, **kw)

    def post_json(self, path: str, payload: Any, headers: Mapping[str, str] | None = None, **kw: Any) -> Response:
        return post_json(self.port, path, payload, headers, **kw)


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.connect((LOOPBACK, port))
        except OSError:
            return True
        return False


# ---- a throwaway Redis ------------------------------------------------------------------------------------


class RedisProcess:
    """`redis-server` on a free loopback port. `stop()` (SIGKILL) then `start()` keeps the port and, with
    `persist=True`, the data."""

    def __init__(self, port: int | None = None, persist: bool = False):
        self.port = port or free_port()
        # persist: an append-only file fsynced on every write, so a SIGKILLed Redis comes back with its data.
        self.persist = persist
        self.proc: subprocess.Popen[bytes] | None = None
        self.dir = Path(tempfile.mkdtemp(prefix="scim-help-redis-"))

    @staticmethod
    def available() -> bool:
        return shutil.which("redis-server") is not None

    @property
    def url(self) -> str:
        return f"redis://{LOOPBACK}:{self.port}/0"

    def start(self, timeout: float = 30.0) -> RedisProcess:
        self.proc = subprocess.Popen(
            [
                shutil.which("redis-server") or "redis-server",
                "--bind", LOOPBACK,
                "--port", str(self.port),
                "--save", "",
                "--appendonly", "yes" if self.persist else "no",
                "--appendfsync", "always",
                "--dir", str(self.dir),
                "--protected-mode", "yes",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until(self.ping, timeout, what=f"redis-server on port {self.port}")
        return self

    def ping(self) -> bool:
        try:
            with socket.create_connection((LOOPBACK, self.port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)
        self.proc = None
        wait_until(lambda: _port_free(self.port), 30, what=f"redis port {self.port} to be released")

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
