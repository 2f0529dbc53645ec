"""App-only Graph tokens by the client-credentials flow, through MSAL (nothing hand-rolled).

MSAL is synchronous and its constructor already talks to the authority (tenant discovery), so both run in
a worker thread, bounded by the caller's deadline; a slow first start does not block the event loop, and
the next turn finds the application built. MSAL keeps the token in its in-memory cache and renews it
before it expires. With an authority other than the public cloud's, instance discovery is off: it would
ask login.microsoftonline.com about a host it does not know.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import ssl
import threading
import time
from typing import Any

from bot.graph.errors import GraphError
from bot.graph.tls import requests_session

DEFAULT_AUTHORITY = "https://login.microsoftonline.com"
# Seconds one HTTP exchange with the authority may take (the caller's deadline usually cuts sooner).
HTTP_TIMEOUT = 5.0
_AADSTS = re.compile(r"AADSTS\d+")


class TokenSource:
    def __init__(
        self,
        tenant_id: str,
        client_id: str,
        client_secret: str,
        authority: str = DEFAULT_AUTHORITY,
        graph_url: str = "https://graph.microsoft.com",
        ssl_ctx: ssl.SSLContext | None = None,
    ):
        self._tenant = tenant_id
        self._client_id = client_id
        self._secret = client_secret
        self._authority = authority.rstrip("/")
        self._scope = graph_url.rstrip("/") + "/.default"
        self._ssl = ssl_ctx
        self._app: Any = None
        self._lock = threading.Lock()
        self._cached: tuple[str, float] | None = None  # (token, expires at, monotonic)
        # The request in flight, so concurrent reads of one look share it: (event loop, task).
        self._inflight: tuple[asyncio.AbstractEventLoop, asyncio.Future[str]] | None = None

    def __repr__(self) -> str:  # never show the secret
        return f"TokenSource(tenant={self._tenant!r}, client={self._client_id!r}, authority={self._authority!r})"

    # ---- blocking part (worker thread) --------------------------------------------------------------

    def _application(self) -> Any:
        with self._lock:
            if self._app is None:
                import msal
                import requests

                from bot.graph.tls import ssl_context

                session = requests_session(self._ssl or ssl_context(), HTTP_TIMEOUT)
                try:
                    self._app = msal.ConfidentialClientApplication(
                        self._client_id,
                        client_credential=self._secret,
                        authority=f"{self._authority}/{self._tenant}",
                        http_client=session,
                        # None = MSAL's default (on) for the public cloud; off for any other authority.
                        instance_discovery=None if self._authority == DEFAULT_AUTHORITY else False,
                        token_cache=msal.TokenCache(),
                    )
                except ValueError as exc:  # tenant discovery answered 4xx: unknown tenant, wrong authority
                    raise GraphError("token", "token", _first_sentence(str(exc), "the authority does not know this tenant")) from None
                except requests.exceptions.Timeout:
                    raise GraphError("timeout", "token", "the authority did not answer") from None
                except requests.exceptions.SSLError as exc:
                    raise GraphError("unreachable", "token", "TLS: " + _tls_reason(exc)) from None
                except requests.exceptions.RequestException as exc:
                    raise GraphError("unreachable", "token", type(exc).__name__) from None
            return self._app

    def acquire_sync(self) -> str:
        import requests

        cached = self._cached
        if cached and cached[1] - time.monotonic() > 300:
            return cached[0]
        app = self._application()
        try:
            result = app.acquire_token_for_client(scopes=[self._scope])
        except requests.exceptions.Timeout:
            raise GraphError("timeout", "token", "the authority did not answer") from None
        except requests.exceptions.SSLError as exc:
            raise GraphError("unreachable", "token", "TLS: " + _tls_reason(exc)) from None
        except requests.exceptions.RequestException as exc:
            raise GraphError("unreachable", "token", type(exc).__name__) from None
        if "access_token" not in result:
            error = str(result.get("error") or "error")
            description = str(result.get("error_description") or "")
            code = _AADSTS.search(description)
            detail = error + (f" {code.group(0)}" if code else "") + (": " + _first_sentence(description.split(":", 1)[-1], "") if description else "")
            raise GraphError("token", "token", detail.strip(": "))
        token = str(result["access_token"])
        self._cached = (token, time.monotonic() + float(result.get("expires_in") or 0))
        return token

    # ---- async entry point --------------------------------------------------------------------------

    async def token(self, deadline: float) -> str:
        cached = self._cached
        if cached and cached[1] - time.monotonic() > 300:
            return cached[0]
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise GraphError("timeout", "token", "no time left in this turn")
        loop = asyncio.get_running_loop()
        if self._inflight is None or self._inflight[0] is not loop or self._inflight[1].done():
            task = asyncio.ensure_future(asyncio.to_thread(self.acquire_sync))
            task.add_done_callback(lambda t: t.cancelled() or t.exception())  # observed even if nobody waits
            self._inflight = (loop, task)
        try:
            return await asyncio.wait_for(asyncio.shield(self._inflight[1]), remaining)
        except TimeoutError:
            raise GraphError("timeout", "token", "the authority did not answer in time") from None


def token_roles(token: str) -> set[str] | None:
    """The application permissions (`roles` claim) an access token carries, read without verifying it —
    only to tell the operator which permission is missing. None when the token is not a readable JWT."""
    try:
        payload = token.split(".")[1]
        data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError):
        return None
    roles = data.get("roles") if isinstance(data, dict) else None
    return {str(r) for r in roles} if isinstance(roles, list) else set()


def _first_sentence(text: str, default: str) -> str:
    text = " ".join(text.split())
    if not text:
        return default
    cut = text.split(". ", 1)[0].rstrip(".")
    return cut[:160]


def _tls_reason(exc: BaseException) -> str:
    text = str(exc)
    if "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text:
        return "certificate verify failed"
    return type(exc).__name__
