"""Outbound TLS for the Graph connection, trusted like any Python client is expected to be.

One `ssl.SSLContext` for both HTTP stacks (aiohttp for Graph, requests under MSAL for tokens):
- the system store and `SSL_CERT_FILE` / `SSL_CERT_DIR` (OpenSSL's default paths, which read both),
- plus `REQUESTS_CA_BUNDLE` (or `CURL_CA_BUNDLE`) when set — what requests-based tools honour, so a
  corporate proxy's CA configured for them works here too.
Nothing is ever switched to "don't verify".
"""

from __future__ import annotations

import functools
import os
import ssl
from typing import Any


def ssl_context() -> ssl.SSLContext:
    ctx = ssl.create_default_context()  # system store + SSL_CERT_FILE / SSL_CERT_DIR
    for var in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        path = os.environ.get(var)
        if not path:
            continue
        if os.path.isdir(path):
            ctx.load_verify_locations(capath=path)
        elif os.path.isfile(path):
            ctx.load_verify_locations(cafile=path)
    return ctx


def requests_session(ctx: ssl.SSLContext, timeout: float) -> Any:
    """A requests.Session for MSAL's `http_client` that verifies with `ctx` and bounds every request in
    time (MSAL documents the same partial-timeout pattern for its default session)."""
    import requests
    from requests.adapters import HTTPAdapter

    class _Adapter(HTTPAdapter):
        def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
            kwargs["ssl_context"] = ctx
            super().init_poolmanager(*args, **kwargs)

    session = requests.Session()
    session.mount("https://", _Adapter(max_retries=0))
    session.request = functools.partial(session.request, timeout=timeout)  # type: ignore[method-assign]
    return session
