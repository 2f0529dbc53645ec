"""Structured logging for every process (`serve`, `stats`, the terminal chat).

`SCIM_HELP_LOG_FORMAT=json` writes one JSON object per line — `ts`, `level`, `logger`, `event` (the
message), `conversation` when the record carries one, then every `extra` field the caller passed — which is
what log shippers (Loki, CloudWatch, Elastic) want. `text` (the default) writes the same fields on one
readable line for a terminal.

Privacy: log calls are written not to include user text, UPNs or tokens, but admins paste all three into a
chat, so a filter on the handler is the safety net: it runs `bot.redact.scrub_pii` (secrets -> redacted,
emails/UPNs -> a short stable hash) on the message, on every string `extra` (also inside lists/dicts) and
on formatted tracebacks, before any formatter sees the record.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import IO, Any

from bot.redact import scrub_pii

# Attributes every LogRecord has; anything else on a record came from `extra=`.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}
_MARK = "_scim_help_handler"


def _scrub(value: Any, depth: int = 0) -> Any:
    if isinstance(value, str):
        return scrub_pii(value)
    if depth > 4:
        return value
    if isinstance(value, (list, tuple)):
        return type(value)(_scrub(v, depth + 1) for v in value)
    if isinstance(value, dict):
        return {k: _scrub(v, depth + 1) for k, v in value.items()}
    return value


class RedactingFilter(logging.Filter):
    """Masks secrets and emails in the message and the extras. Never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "_scim_help_scrubbed", False):
            return True
        try:
            message = record.getMessage()
        except Exception:  # a bad format string must not lose the record
            message = f"{record.msg!r} {record.args!r}"
        record.msg = scrub_pii(message)
        record.args = None
        for key, value in list(vars(record).items()):
            if key not in _STANDARD and not key.startswith("_"):
                setattr(record, key, _scrub(value))
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = scrub_pii(record.exc_text)
        record.exc_info = None  # the scrubbed exc_text is what gets printed
        record._scim_help_scrubbed = True
        return True


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "event": record.getMessage(),
        }
        extras = _extras(record)
        if "conversation" in extras:
            out["conversation"] = extras.pop("conversation")
        for key, value in extras.items():
            out.setdefault(key, value)
        if record.exc_text:
            out["exc"] = record.exc_text
        return json.dumps(out, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        ts = datetime.fromtimestamp(record.created).strftime("%H:%M:%S")
        line = f"{ts} {record.levelname:<7} {record.name}: {record.getMessage()}"
        extras = _extras(record)
        if extras:
            line += " " + " ".join(f"{k}={_short(v)}" for k, v in extras.items() if v is not None)
        if record.exc_text:
            line += "\n" + record.exc_text
        return line


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return json.dumps(text, ensure_ascii=False) if (" " in text or not text) else text


def setup_logging(
    fmt: str = "text", level: str = "INFO", stream: IO[str] | None = None
) -> logging.Handler:
    """Install one handler on the root logger (replacing the one a previous call installed)."""
    root = logging.getLogger()
    for h in list(root.handlers):
        if getattr(h, _MARK, False):
            root.removeHandler(h)
    handler = logging.StreamHandler(stream or sys.stderr)
    setattr(handler, _MARK, True)
    handler.addFilter(RedactingFilter())
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root.addHandler(handler)
    root.setLevel(level)
    # Chatty third-party loggers stay at WARNING unless we debug.
    quiet = logging.WARNING if level != "DEBUG" else logging.DEBUG
    # httpx logs every request line (with the conversation id in the URL) at INFO: the Teams SDK uses it,
    # and its HTTP client copies the level of its own module's logger onto httpx's when it is built.
    for name in ("slack_bolt", "slack_sdk", "httpx", "httpcore", "microsoft_teams", "microsoft_teams.common.http.client", "msal", "urllib3", "asyncio"):
        logging.getLogger(name).setLevel(quiet)
    floor_library_logs()
    return handler


# Library loggers and the least severe level they may log at, even when we debug. At DEBUG, bolt and
# slack_sdk log whole request and response bodies (message text, UPNs), and bolt logs the body of a
# request whose signature fails at INFO. bolt copies its app logger's level to its middleware loggers when
# the app is built, so capping "scim_help.slack.bolt" before the Slack channel is built caps them all.
LOG_FLOORS = {
    "scim_help.slack.bolt": logging.WARNING,
    "scim_help.slack.sdk": logging.INFO,
    "scim_help.slack.socket": logging.INFO,
    "slack_bolt": logging.WARNING,
    "slack_sdk": logging.INFO,
}


def floor_library_logs() -> None:
    """At start-up (`setup_logging`, and the server before it builds its channels), never in a
    constructor: an explicit level on each library logger, so turning the root logger to DEBUG later does
    not lower it."""
    for name, floor in LOG_FLOORS.items():
        logger = logging.getLogger(name)
        logger.setLevel(max(floor, logger.level))


def setup_from_settings(settings: Any, stream: IO[str] | None = None) -> logging.Handler:
    return setup_logging(settings.log_format, settings.log_level, stream)
