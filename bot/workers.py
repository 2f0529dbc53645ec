"""`scim-help serve --workers N`: N server processes on one port, and the supervisor that runs them.

Each worker is a complete server (its own event loop, runtime and store connection) listening on the same
port with SO_REUSEPORT; the kernel spreads connections over them. Conversation state, locks and
de-duplication live in the shared store, so any worker can take any request. This process only
supervises: SIGTERM/SIGINT are passed on (each worker drains its turns in flight), and when a worker dies
the others are stopped and the exit status says so, for the supervisor (docker, Kubernetes, systemd) to
restart the whole server. Workers die with it, even on SIGKILL (PR_SET_PDEATHSIG).

With `--processors M` (SCIM_HELP_PROCESSORS) it also runs M processor processes: no port, they run the
Slack requests the workers record (bot/channels/slack/inbox.py), woken through a pipe made here before
the forks (bot/doorbell.py). They run at a lower CPU priority (PROCESSOR_NICE) than the workers: a worker
only verifies, records and acknowledges, and when the two cores are short that ack must not wait for the
turns (Slack gives up after 3 s and retries; the ack target is 50 ms at p99), while an answer a few
hundred milliseconds later is fine.

The server module hands in what a worker runs (`serve`), what a processor runs (`process`), how both make
their runtime (`create`) and how start-up errors are reported, so this module imports nothing of the
HTTP server.
"""

from __future__ import annotations

import ctypes
import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
from collections.abc import Callable
from typing import Any

from aiohttp import web

from bot import doorbell
from bot.metrics import share_between_processes
from bot.runtime import Runtime
from bot.settings import Settings
from knowledge.loader import KnowledgeError, load_pack

log = logging.getLogger("scim_help.server")

Serve = Callable[[Settings, Runtime, socket.socket, int, str], None]
Process = Callable[[Settings, Runtime, str], None]

# A processor's niceness over the workers' (man 2 nice): under CFS/EEVDF a waking worker then gets a core
# ahead of the processors' turns instead of sharing it with them.
PROCESSOR_NICE = 10


def reuseport_socket(host: str, port: int, listen: bool) -> socket.socket:
    family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0][0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    if listen:
        sock.listen(1024)
    return sock


def run_workers(
    settings: Settings,
    *,
    serve: Serve,
    process: Process,
    create: Callable[[Settings], Runtime],
    knowledge_error: Callable[[KnowledgeError], int],
    listen_error: Callable[[Settings, OSError], int],
    preload: Callable[[], Any],
) -> int:
    if not hasattr(socket, "SO_REUSEPORT"):
        print("scim-help: --workers needs SO_REUSEPORT (Linux); run one worker per container instead", file=sys.stderr)
        return 2
    try:
        load_pack(settings.knowledge)  # fail here, once, with the readable message
    except KnowledgeError as exc:
        return knowledge_error(exc)
    try:
        # Bound but not listening: resolves port 0 and holds the port; takes no connections.
        holder = reuseport_socket(settings.host, settings.port, listen=False)
    except OSError as exc:
        return listen_error(settings, exc)
    port = holder.getsockname()[1]
    preload()  # heavy imports once, before forking: the workers share those pages and start faster
    if settings.processors and not settings.slack_processors:
        log.warning("SCIM_HELP_PROCESSORS ignored: processors run Slack's Events API requests, and Slack over http is off")
    if settings.slack_processors:
        doorbell.inherited = doorbell.Doorbell()
    # Every process's metrics in one private directory, summed by /metrics on any worker (bot/metrics.py).
    shared_metrics = tempfile.mkdtemp(prefix="scim-help-metrics-")
    children = {
        _fork(str(n), shared_metrics, _worker(settings, serve, create, holder, port, str(n))): str(n) for n in range(settings.workers)
    }
    for n in range(settings.slack_processors):
        label = f"processor-{n}"
        children[_fork(label, shared_metrics, _processor(settings, process, create, holder, label))] = label
    log.info("workers started", extra={"workers": settings.workers, "processors": settings.slack_processors, "port": port})
    failed = _supervise(children)
    holder.close()
    shutil.rmtree(shared_metrics, ignore_errors=True)
    log.info("stopped")
    return 1 if failed else 0


def _worker(
    settings: Settings, serve: Serve, create: Callable[[Settings], Runtime], holder: socket.socket, port: int, label: str
) -> Callable[[], None]:
    def run() -> None:
        holder.close()
        runtime = create(settings)
        sock = reuseport_socket(settings.host, port, listen=True)
        serve(settings, runtime, sock, port, label)

    return run


def _processor(
    settings: Settings, process: Process, create: Callable[[Settings], Runtime], holder: socket.socket, label: str
) -> Callable[[], None]:
    def run() -> None:
        holder.close()
        os.nice(PROCESSOR_NICE)
        process(settings, create(settings), label)

    return run


def _fork(label: str, shared_metrics: str, run: Callable[[], None]) -> int:
    pid = os.fork()
    if pid:
        return pid
    status = 1  # the child: it reports and exits, never returns into the parent's code
    try:
        _die_with_parent()
        # Own process group: a terminal's Ctrl+C reaches the supervisor only, which passes on one SIGTERM
        # (two signals would cut a worker's graceful shutdown short).
        os.setpgid(0, 0)
        share_between_processes(shared_metrics)
        run()
        status = 0
    except web.GracefulExit:
        status = 0
    except BaseException:
        log.exception("worker failed", extra={"worker": label})
    finally:
        os._exit(status)


def _supervise(children: dict[int, str]) -> bool:
    """Pass SIGTERM/SIGINT on to the workers; when one dies unasked, stop the others. True if one failed."""
    stopping = False

    def stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        if stopping:
            return
        stopping = True
        for pid in list(children):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    failed = False
    while children:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        except InterruptedError:
            continue
        worker = children.pop(pid, None)
        code = os.waitstatus_to_exitcode(status)
        if not stopping:
            log.error("worker exited; stopping the others", extra={"worker": str(worker), "status": code})
            failed = True
            stop(signal.SIGTERM, None)
    return failed


def _die_with_parent() -> None:
    """Linux: SIGKILL this process when the supervisor dies, so no orphan keeps serving the port."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGKILL), 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() == 1:  # the parent died before prctl took effect
        os._exit(1)
