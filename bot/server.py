"""`scim-help serve`: one aiohttp application for every channel and everything operational.

    /                  web chat (bot/channels/web.py + bot/web/), unless SCIM_HELP_WEB_CHAT=false
    /api/chat          web chat JSON API
    /slack/events      Slack Events API (HTTP mode; Socket Mode runs as a background connection instead)
    /api/messages      Microsoft Teams (Bot Framework)
    /healthz           liveness: 200 while the event loop runs
    /readyz            readiness: 200 when the store answers and the knowledge pack is loaded, else 503
    /metrics           Prometheus exposition (bot/metrics.py)

The server's runtime is made by `create_runtime`, which composes the server's `Instruments` into it: the
store wrapped for metrics, and a middleware counting turns in flight around every `runtime.handle()`, so
a SIGTERM (`web.run_app` handles it) stops accepting connections, waits for those turns to finish (up to
SCIM_HELP_SHUTDOWN_TIMEOUT), then closes the store. Store outages become a polite 503 on every endpoint;
anything unexpected becomes a 500 JSON without details (logged and counted).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import socket
import sys
from typing import TYPE_CHECKING, Any

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from bot.admission import GATES
from bot.events import Incoming, Turn
from bot.logs import floor_library_logs
from bot.metrics import CONTENT_TYPE, Metrics, ObservedStore, error_kind
from bot.runtime import Handler, Runtime
from bot.service import Channel, Conversations, attach
from bot.settings import Settings, SettingsError, load_settings
from bot.store.base import Store, StoreUnavailable

if TYPE_CHECKING:
    from knowledge.loader import KnowledgeError

log = logging.getLogger("scim_help.server")

RUNTIME = web.AppKey("scim_help_runtime", Runtime)
METRICS = web.AppKey("scim_help_metrics", Metrics)
STATE = web.AppKey("scim_help_state", dict)

POLITE_503 = (
    "The assistant can't reach its conversation store right now, so it can't continue this conversation. "
    "Please try again in a minute."
)
PROBE_TIMEOUT = 3.0
# Requests logged only when they fail, are slow or the level is DEBUG: probes and scrapes, and the platform
# webhooks, whose every turn is logged by the engine ("turn") — a second line per event cost ~3 % of the
# server's CPU under load (bench/NOTES.md).
QUIET_PATHS = {"/healthz", "/readyz", "/metrics", "/slack/events", "/api/messages"}
SLOW_REQUEST = 1.0


class InFlight:
    """Counts turns being handled; shutdown waits until it drops to zero."""

    def __init__(self) -> None:
        self.count = 0
        self._idle = asyncio.Event()
        self._idle.set()

    def enter(self) -> None:
        self.count += 1
        self._idle.clear()

    def leave(self) -> None:
        self.count -= 1
        if self.count <= 0:
            self.count = 0
            self._idle.set()

    async def wait_idle(self, timeout: float) -> bool:
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
            return True
        except TimeoutError:
            return False


INFLIGHT = web.AppKey("scim_help_inflight", InFlight)


# ---- middleware --------------------------------------------------------------------------------------


def _json_error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"error": code, "message": message}, status=status, headers=headers)


def _client_gone(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


@web.middleware
async def error_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    metrics = request.app[METRICS]
    try:
        response = await handler(request)
        if response.status == 429:
            # A client held back by its own limit: counted, so an operator sees who is being refused.
            metrics.rate_limited.labels(_endpoint(request.path)).inc()
        return response
    except web.HTTPException as exc:
        if exc.status >= 400 and request.path.startswith("/api/chat"):
            return _json_error(exc.status, exc.reason.lower().replace(" ", "_"), exc.reason)
        raise
    except (StoreUnavailable, TimeoutError) as exc:
        if not getattr(exc, "_scim_help_counted", False):
            metrics.errors.labels(error_kind(exc)).inc()
        if isinstance(exc, StoreUnavailable):
            metrics.store_up.set(0)
        # The reason names no conversation (the stores' messages carry no keys): "conversation lock busy"
        # or the backend's own error.
        log.warning("store unavailable", extra={"path": _logged_path(request.path), "error": type(exc).__name__, "reason": str(exc)[:160]})
        return _json_error(503, "unavailable", POLITE_503, headers={"Retry-After": "5"})
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        if isinstance(exc, ConnectionResetError) and _client_gone(request):
            # The client hung up before its request was read: nobody to answer, nothing wrong here. (An
            # outgoing connection reset while the client waits is a server error like any other.)
            log.info("client closed the connection before its request was read", extra={"path": _logged_path(request.path)})
            return web.Response(status=400)
        if not getattr(exc, "_scim_help_counted", False):
            metrics.errors.labels("unhandled").inc()
        log.exception("unhandled error", extra={"path": _logged_path(request.path), "error": type(exc).__name__})
        return _json_error(500, "internal", "Something went wrong on our side. Please try again.")


SERVER_NAME = "scim-help"
# On every response the app prepares. The page sets its own, looser Content-Security-Policy (scripts and
# styles from 'self'); everything else (JSON, metrics, errors) may load nothing and be framed nowhere.
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=(), usb=()",
}


async def _security_headers(request: web.Request, response: web.StreamResponse) -> None:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    response.headers["Server"] = SERVER_NAME  # no versions


def hide_server_version() -> None:
    """aiohttp names itself and Python, with versions, in the Server header of the responses it writes
    before the app sees a request (a malformed request line): applied once, explicitly, at start-up."""
    from aiohttp import web_response

    web_response.SERVER_SOFTWARE = SERVER_NAME


def _endpoint(path: str) -> str:
    """A bounded label for a path (never a client's own text)."""
    for known in ("/api/chat", "/api/messages", "/slack/events"):
        if path == known or path.startswith(known + "/"):
            return known
    return "other"


def _logged_path(path: str) -> str:
    """Paths are logged without anything a client put after /api/chat/ (an old client's conversation id)."""
    return "/api/chat/…" if path.startswith("/api/chat/") else path


# ---- operational endpoints --------------------------------------------------------------------------


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def _ping(runtime: Runtime) -> bool:
    try:
        return await asyncio.wait_for(runtime.store.ping(), PROBE_TIMEOUT)
    except (TimeoutError, StoreUnavailable, OSError):
        return False


async def readyz(request: web.Request) -> web.Response:
    app = request.app
    runtime = app[RUNTIME]
    reasons = []
    if app[STATE].get("shutting_down"):
        reasons.append("shutting down")
    bundle = runtime.bundle
    if bundle is None or not bundle.pack.symptoms:
        reasons.append("knowledge pack not loaded")
    if not await _ping(runtime):
        app[METRICS].store_up.set(0)
        reasons.append(f"store ({runtime.store.name}) not answering")
    if reasons:
        return web.json_response({"status": "not ready", "reasons": reasons}, status=503)
    return web.json_response(
        {
            "status": "ready",
            "store": runtime.store.name,
            "knowledge": {"symptoms": len(bundle.pack.symptoms), "causes": len(bundle.pack.causes)},
        }
    )


async def metrics_endpoint(request: web.Request) -> web.Response:
    metrics = request.app[METRICS]
    await _ping(request.app[RUNTIME])  # ObservedStore.ping sets scim_help_store_up
    return web.Response(body=metrics.exposition(), headers={"Content-Type": CONTENT_TYPE})


async def web_chat_disabled(request: web.Request) -> web.Response:
    return web.Response(
        text="scim-help is running. The web chat is disabled: SCIM_HELP_WEB_CHAT=false, or the server listens beyond "
        "this machine without SCIM_HELP_WEB_IDENTITY_HEADER (see README, Web chat).\n"
    )


# ---- application --------------------------------------------------------------------------------------


class Instruments:
    """What the server measures of its runtime, composed into it when it is made (`create_runtime`):
    the store wrapped for metrics, turns counted in flight (shutdown waits for them), every turn observed."""

    def __init__(self) -> None:
        self.metrics = Metrics()
        self.inflight = InFlight()

    def observe_store(self, store: Store) -> Store:
        return ObservedStore(store, self.metrics)

    async def __call__(self, msg: Incoming, handle: Handler) -> Turn:
        """Middleware around every turn, admission wait included."""
        self.inflight.enter()
        self.metrics.in_flight.inc()
        try:
            return await handle(msg)
        finally:
            self.inflight.leave()
            self.metrics.in_flight.dec()

    @staticmethod
    def of(runtime: Runtime) -> Instruments:
        found = next((m for m in runtime.middleware if isinstance(m, Instruments)), None)
        if found is None:
            raise ValueError("build_app needs a runtime made by bot.server.create_runtime (its metrics are composed in)")
        return found


def create_runtime(settings: Settings | None = None, store: Store | None = None) -> Runtime:
    """The runtime `serve` runs: the core with the server's instruments composed in."""
    instruments = Instruments()
    return Runtime.create(
        settings, store, store_wrappers=[instruments.observe_store], middleware=[instruments], observers=[instruments.metrics.observe]
    )


def _optional_channel(name: str) -> Any:
    """Import bot.channels.<name>, or None (logged) while a colleague has not landed it yet."""
    import importlib

    module = f"bot.channels.{name}"
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name != module:
            raise
        log.warning("channel not available in this build, skipped", extra={"channel": name})
        return None


def _wanted(settings: Settings, name: str) -> bool:
    return {"web": settings.web_chat_on, "slack": settings.slack_enabled, "teams": settings.teams_enabled}[name]


def _channels(app: web.Application, conversations: Conversations) -> None:
    """Each channel the settings ask for, loaded by name and run through the Channel protocol."""
    for name in ("web", "slack", "teams"):
        if not _wanted(conversations.settings, name):
            continue
        module = _optional_channel(name)
        if module is None:
            continue
        channel: Channel = module.channel(conversations)
        attach(app, channel)
        app[STATE]["channels"].append(channel.name)


def build_app(runtime: Runtime) -> web.Application:
    """The application around a runtime made by `create_runtime`."""
    settings = runtime.settings
    instruments = Instruments.of(runtime)
    metrics, inflight = instruments.metrics, instruments.inflight

    hide_server_version()
    # Before any channel is built: the Slack channel's loggers take their levels when it is.
    floor_library_logs()
    app = web.Application(middlewares=[error_middleware])
    app[RUNTIME] = runtime
    app[METRICS] = metrics
    app[INFLIGHT] = inflight
    app[STATE] = {"channels": []}
    app.on_response_prepare.append(_security_headers)

    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_endpoint)

    _channels(app, Conversations(runtime))
    if settings.web_chat_on:
        _warn_about_web_chat(settings)
    else:
        app.router.add_get("/", web_chat_disabled)
        if settings.web_chat is None:
            log.warning(
                "web chat off: the server listens beyond this machine and no SCIM_HELP_WEB_IDENTITY_HEADER is set",
                extra={"host": settings.host},
            )
    if not settings.teams_enabled:
        log.warning(
            "Teams endpoint /api/messages is off: MicrosoftAppId is not set and the server listens on %s, not "
            "on loopback; unauthenticated Teams is only served on 127.0.0.1 (Emulator, Agents Playground)",
            settings.host,
        )

    for gate in app.get(GATES, []):
        metrics.watch(gate)

    app.on_shutdown.append(_drain)
    return app


def _warn_about_web_chat(settings: Settings) -> None:
    if not settings.loopback_only and settings.web_identity_header is None:
        log.warning(
            "web chat open to anyone who can reach the server (SCIM_HELP_WEB_CHAT=true without "
            "SCIM_HELP_WEB_IDENTITY_HEADER): put it behind a proxy that signs users in",
            extra={"host": settings.host},
        )
    if settings.store == "redis" and settings.secret_key is None:
        log.info("web chat ids are signed with the key in the data dir: replicas that do not share it need SCIM_HELP_SECRET_KEY")


async def _drain(app: web.Application) -> None:
    """on_shutdown: the listening socket is closed; let turns in flight finish before cleanup."""
    app[STATE]["shutting_down"] = True
    inflight = app[INFLIGHT]
    if inflight.count:
        log.info("waiting for turns in flight", extra={"turns": inflight.count})
    timeout = app[RUNTIME].settings.shutdown_timeout
    if not await inflight.wait_idle(timeout):
        log.warning("shutdown timeout: turns still in flight", extra={"turns": inflight.count})


class AccessLogger(AbstractAccessLogger):
    """One structured line per request; QUIET_PATHS only when they fail or are slow (or at DEBUG)."""

    def log(self, request, response, time):
        if request.path in QUIET_PATHS and response.status < 400 and time < SLOW_REQUEST and not self.logger.isEnabledFor(logging.DEBUG):
            return
        self.logger.info(
            "request",
            extra={
                "method": request.method,
                "path": _logged_path(request.path),
                "status": response.status,
                "ms": round(time * 1000, 1),
            },
        )


# ---- command ----------------------------------------------------------------------------------------


def _listen(host: str, port: int) -> socket.socket:
    family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0][0]
    return socket.create_server((host, port), family=family, backlog=128)


def _browser_url(host: str, port: int) -> str:
    shown = "127.0.0.1" if host in ("0.0.0.0", "", "*") else ("localhost" if host == "::" else host)
    if ":" in shown:
        shown = f"[{shown}]"
    return f"http://{shown}:{port}/"


def _knowledge_error(exc: KnowledgeError) -> int:
    print(f"scim-help: invalid configuration: the knowledge pack has {len(exc.issues)} problem(s) "
          "(SCIM_HELP_KNOWLEDGE / --knowledge):", file=sys.stderr)
    for issue in exc.issues:
        print(f"  {issue}", file=sys.stderr)
    return 2


def _ca_file_problem(env: Any) -> str | None:
    for name in ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE"):
        path = env.get(name)
        if path and not os.path.isfile(path):
            return f"{name}: no such file: {path}"
    return None


def _listen_error(settings: Settings, exc: OSError) -> int:
    print(
        f"scim-help: cannot listen on {settings.host}:{settings.port}: {exc.strerror or exc} "
        "(choose another with --port or PORT, or --host / SCIM_HELP_HOST)",
        file=sys.stderr,
    )
    return 2


def run_server(args: argparse.Namespace) -> int:
    from bot.logs import setup_from_settings
    from knowledge.loader import KnowledgeError

    overrides: dict[str, Any] = {}
    if getattr(args, "host", None):
        overrides["host"] = args.host
    if getattr(args, "port", None) is not None:
        overrides["port"] = args.port
    if getattr(args, "knowledge", None):
        overrides["knowledge"] = args.knowledge
    if getattr(args, "workers", None) is not None:
        overrides["workers"] = args.workers
    if getattr(args, "processors", None) is not None:
        overrides["processors"] = args.processors
    try:
        settings = load_settings(**overrides)
    except SettingsError as exc:
        print(f"scim-help: {exc}", file=sys.stderr)
        return 2
    setup_from_settings(settings)

    ca = _ca_file_problem(os.environ)
    if ca:
        # httpx and OpenSSL read these themselves: a missing file fails every outgoing call later (each
        # Teams reply, each Graph look), so it is refused here, where it is plain what is wrong.
        print(f"scim-help: invalid configuration:\n  {ca}", file=sys.stderr)
        return 2
    if settings.store == "sqlite":
        problem = _data_dir_problem(settings)
        if problem:
            print(f"scim-help: invalid configuration:\n  SCIM_HELP_DATA_DIR: {problem}", file=sys.stderr)
            return 2
    if settings.workers > 1 or settings.processors:  # (the supervisor says when processors are ignored)
        from bot.workers import run_workers

        return run_workers(
            settings,
            serve=_serve,
            process=_process,
            create=create_runtime,
            knowledge_error=_knowledge_error,
            listen_error=_listen_error,
            preload=lambda: (_optional_channel("slack"), _optional_channel("teams"), _optional_channel("web")),
        )
    try:
        runtime = create_runtime(settings)
    except KnowledgeError as exc:
        return _knowledge_error(exc)
    try:
        sock = _listen(settings.host, settings.port)
    except OSError as exc:
        return _listen_error(settings, exc)
    port = sock.getsockname()[1]
    _serve(settings, runtime, sock, port)
    return 0


def _serve(settings: Settings, runtime: Runtime, sock: socket.socket, port: int, worker: str = "") -> None:
    app = build_app(runtime)

    async def close_runtime(app: web.Application) -> None:
        await runtime.close()

    app.on_cleanup.append(close_runtime)
    channels = app[STATE]["channels"]

    def announce(_aiohttp_banner: str) -> None:
        if worker not in ("", "0"):
            return  # with several workers the first one speaks for all
        url = _browser_url(settings.host, port)
        if settings.web_chat_on:
            print(f"scim-help is running: open {url} in your browser", flush=True)
        else:
            print(f"scim-help is running on {url}", flush=True)
        workers = f"workers: {settings.workers} | " if settings.workers > 1 else ""
        if settings.slack_processors:
            workers += f"slack processors: {settings.slack_processors} | "
        print(
            f"  channels: {', '.join(channels) or 'none'} | store: {settings.store} | {workers}"
            f"health: {url}healthz {url}readyz | metrics: {url}metrics | Ctrl+C to stop",
            flush=True,
        )

    web.run_app(
        app,
        sock=sock,
        print=announce,
        shutdown_timeout=settings.shutdown_timeout,
        access_log_class=AccessLogger,
        handle_signals=True,
    )
    log.info("stopped", extra={"worker": worker} if worker else None)


def _process(settings: Settings, runtime: Runtime, label: str) -> None:
    """A processor process (bot/workers.py): runs the Slack requests the workers record, until SIGTERM,
    then lets those in progress finish (SCIM_HELP_SHUTDOWN_TIMEOUT); what is left stays recorded."""
    asyncio.run(_processing(runtime, label))


async def _processing(runtime: Runtime, label: str) -> None:
    import signal

    from bot.channels.slack import processor

    floor_library_logs()
    slack = processor(Conversations(runtime))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await slack.start()
    try:
        await stop.wait()
    finally:
        await slack.stop()
        await slack.close()
        await runtime.close()
        log.info("stopped", extra={"worker": label})


def _data_dir_problem(settings: Settings) -> str | None:
    import os

    from bot.private import private_dir

    path = settings.data_dir
    try:
        private_dir(path)  # 0700: conversations and the key live here
    except OSError as exc:
        return f"cannot create {path}: {exc.strerror or exc}"
    if not os.access(path, os.W_OK | os.X_OK):
        return f"{path} is not writable by this user"
    return None
