"""Where the bot may send its replies: the activity's `serviceUrl`, checked once.

The URL is parsed once, with the parser of the HTTP client that will connect to it (httpx, under the
Teams SDK's client), and what passes is that parse, re-serialised: the host that was checked is the host
the client connects to. (Before, the check read `http://0.0.0.0:19001\\@127.0.0.1:9` as host 127.0.0.1
while the client connected to 0.0.0.0.) Refused outright:
- anything but http(s), userinfo (`user@`), a backslash, whitespace or control characters, a query or
  a fragment, no host;
- without MicrosoftAppId (Bot Framework Emulator, Agents Playground): any host that is not loopback
  (`localhost` or a loopback IP literal; names are never resolved);
- with MicrosoftAppId: any URL that is not the one the caller's token was issued for (its `serviceurl`
  claim) — only Microsoft can mint that token.
"""

from __future__ import annotations

import ipaddress
import re

import httpx

_BAD_CHARS = re.compile(r"[\\\s\x00-\x1f\x7f]")


class ServiceUrlRefused(ValueError):
    """The reason is safe to log (it never quotes the URL). `status`: 400 malformed, 403 not allowed."""

    def __init__(self, reason: str, status: int = 403) -> None:
        super().__init__(reason)
        self.status = status


def parse(raw: object) -> httpx.URL:
    """The serviceUrl as the HTTP client reads it, or ServiceUrlRefused."""
    if not isinstance(raw, str) or not raw:
        raise ServiceUrlRefused("no serviceUrl", 400)
    if _BAD_CHARS.search(raw):
        raise ServiceUrlRefused("backslash, whitespace or control character in serviceUrl")
    try:
        url = httpx.URL(raw)
    except (httpx.InvalidURL, ValueError, TypeError):
        raise ServiceUrlRefused("serviceUrl is not a valid URL", 400) from None
    if url.scheme not in ("http", "https"):
        raise ServiceUrlRefused("serviceUrl must be http(s)", 400)
    if url.userinfo or "@" in url.netloc.decode("ascii", "replace"):
        raise ServiceUrlRefused("serviceUrl carries userinfo")
    if not url.host:
        raise ServiceUrlRefused("serviceUrl has no host")
    if url.query or url.fragment or "?" in raw or "#" in raw:
        raise ServiceUrlRefused("serviceUrl carries a query or fragment")
    return url


def is_loopback(url: httpx.URL) -> bool:
    host = url.host.lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def normalised(url: httpx.URL) -> str:
    """The URL as the client will use it, without a trailing slash (the SDK appends `/v3/...`)."""
    return str(url).rstrip("/")


def allowed(raw: object, *, token_service_url: str | None, authenticated: bool) -> str:
    """The serviceUrl to reply to, or ServiceUrlRefused.

    `authenticated`: an app id is configured, and `token_service_url` is the verified token's
    `serviceurl` claim. Otherwise only loopback is allowed."""
    url = parse(raw)
    if not authenticated:
        if not is_loopback(url):
            raise ServiceUrlRefused("without MicrosoftAppId only a loopback serviceUrl is accepted")
        return normalised(url)
    if not token_service_url:
        raise ServiceUrlRefused("the token names no serviceurl")
    try:
        claimed = parse(token_service_url)
    except ServiceUrlRefused:
        raise ServiceUrlRefused("the token's serviceurl claim is not a valid URL") from None
    if normalised(claimed).lower() != normalised(url).lower():
        raise ServiceUrlRefused("serviceUrl differs from the token's serviceurl claim")
    return normalised(url)
