"""Reading a request before it may take any of the channel's capacity.

A request takes one of the Teams places (`endpoint.MAX_ACTIVITIES_IN_PROGRESS`) only once its body is
read in full and it is authenticated. Reading is bounded in time (`BODY_TIMEOUT`) and size
(`MAX_BODY_BYTES`), and each client (remote address) may have at most `PER_CLIENT_UNAUTHENTICATED`
requests being read or verified at once; beyond that it is refused at once with a 429, so a client
trickling bytes over many sockets holds a handful of coroutines and no Teams place.
Without MicrosoftAppId no request is ever authenticated: there the same per-client bound also holds while
requests are answered (`ClientGates`), so one client cannot hold every place either.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict

import aiohttp
from aiohttp import web

from bot.admission import Gate, Release

MAX_BODY_BYTES = 1024 * 1024
BODY_TIMEOUT = 10.0
PER_CLIENT_UNAUTHENTICATED = 8


class BodyRefused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def client_of(request: web.Request) -> str:
    return request.remote or "-"


class PerClient:
    """At most `limit` requests per client at once; the rest are refused (the caller answers 429)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.counts: dict[str, int] = defaultdict(int)
        self.refused = 0

    def enter(self, client: str) -> bool:
        if self.counts[client] >= self.limit:
            self.refused += 1
            return False
        self.counts[client] += 1
        return True

    def leave(self, client: str) -> None:
        self.counts[client] -= 1
        if self.counts[client] <= 0:
            del self.counts[client]


class ClientGates:
    """One admission gate per client (unauthenticated mode): `limit` in progress, the rest wait in order."""

    def __init__(self, limit: int, max_waiting: int) -> None:
        self.limit = limit
        self.max_waiting = max_waiting
        self.gates: dict[str, Gate] = {}

    async def enter(self, client: str) -> Release | None:
        gate = self.gates.get(client)
        if gate is None:
            gate = self.gates[client] = Gate(f"teams-client-{client}", self.limit, max_waiting=self.max_waiting)
        release = await gate.enter()
        if release is None:
            return None

        def done() -> None:
            release()
            if gate.in_use == 0 and gate.waiting == 0 and self.gates.get(client) is gate:
                del self.gates[client]

        return done


async def read_body(request: web.Request) -> bytes:
    """The whole body, or BodyRefused (413 too big, 408 too slow, 400 cut off)."""
    length = request.content_length
    if length is not None and length > MAX_BODY_BYTES:
        raise BodyRefused(413, "body too large")
    try:
        async with asyncio.timeout(BODY_TIMEOUT):
            body = await request.content.read(MAX_BODY_BYTES + 1)
            while len(body) <= MAX_BODY_BYTES and not request.content.at_eof():
                more = await request.content.read(MAX_BODY_BYTES + 1 - len(body))
                if not more:
                    break
                body += more
    except TimeoutError:
        raise BodyRefused(408, "body not received in time") from None
    except ConnectionResetError:
        raise  # the client hung up: the server's middleware says so, like on every route
    except (ConnectionError, asyncio.IncompleteReadError, aiohttp.ClientPayloadError):
        raise BodyRefused(400, "body cut off") from None
    if len(body) > MAX_BODY_BYTES:
        raise BodyRefused(413, "body too large")
    return body
