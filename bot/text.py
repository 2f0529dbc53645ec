"""Normalisation of chat text, shared by the classifier and the conversation engine.

Slack and Teams deliver messages with markup: Slack's angle-bracket tokens (`<@U123>`, `<#C1|general>`,
`<https://x|label>`, `<!here>`), Teams' HTML (`<at>Bot</at>`, `<p>`, `&nbsp;`), Markdown code fences and
backticks, and emoji shortcodes (`:sob:`). `strip_markup()` turns all of that into plain text, keeping case
(for showing a message back and for matching pasted error strings); `normalize()` also lower-cases it.

Both must never raise and stay cheap on any input: the text is cut to `MAX_CHARS` characters before any
regular expression runs, lone surrogates and control characters are replaced, and every pattern is bounded
so a hostile message cannot make the regexes backtrack for long.
"""

from __future__ import annotations

import html
import re
import unicodedata

# Work is capped: a chat message about a provisioning problem never needs more than this. The raw text is
# cut a little longer so markup removal at the edge still leaves about this much plain text.
MAX_CHARS = 4000
_RAW_CAP = MAX_CHARS * 2

# Teams mentions: the mentioned name is not part of the message.
_TEAMS_AT = re.compile(r"<at\b[^<>]{0,200}>[^<>]{0,200}</at\s*>", re.IGNORECASE)
# Slack special tokens (Slack escapes a literal < > & as &lt; &gt; &amp;, so a raw < starts markup).
_SLACK_USER = re.compile(r"<@[A-Za-z0-9._-]{1,64}(?:\|[^<>]{0,200})?>")
_SLACK_SPECIAL = re.compile(r"<![^<>]{0,200}>")  # <!here>, <!channel>, <!subteam^S1|@team>, <!date^...|text>
_SLACK_CHANNEL = re.compile(r"<#[A-Za-z0-9._-]{1,64}(?:\|([^<>]{0,200}))?>")
_SLACK_LINK = re.compile(r"<((?:https?|mailto|ftp|tel|sms|slack):[^<>|\s]{0,2000})(?:\|([^<>]{0,500}))?>", re.IGNORECASE)
# Any other HTML-ish tag (Teams delivers HTML): <p>, </div>, <br/>, <a href="...">, <img ...>.
_HTML_TAG = re.compile(r"</?[A-Za-z][A-Za-z0-9:-]{0,40}(?:\s[^<>]{0,1000})?/?>")
_HTML_COMMENT = re.compile(r"<!--.{0,2000}?-->", re.DOTALL)
# Code fences (with an optional language tag right after the opening fence) and inline backticks.
_FENCE = re.compile(r"```[A-Za-z0-9_+-]{0,20}(?=\s)|```")
_BACKTICK = re.compile(r"`+")
# Emoji shortcodes, not glued to other words (so `urn:ietf:params` and `10:30:45` survive).
_SHORTCODE = re.compile(r"(?<![\w:]):[a-z0-9_+'-]{1,40}:(?::skin-tone-\d:)?(?![\w:])", re.IGNORECASE)
# Control characters other than whitespace, and the replacement char left by bad decodes.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ufffd\u200b-\u200d\u2060\ufeff]")
_WS = re.compile(r"\s+")
# With `lines=True`: spaces collapse within a line, and runs of line breaks (with the blanks around them)
# become one "\n".
_HTML_BREAK = re.compile(r"<br\s{0,5}/?>|</(?:p|div|li)\s{0,5}>", re.IGNORECASE)
_HSPACE = re.compile(r"[^\S\n]+")
_BREAKS = re.compile(r" ?\n[\s]*")


_SURROGATE = re.compile("[\ud800-\udfff]")


def valid_unicode(text: str) -> str:
    """`text` with every lone surrogate (JSON allows `"\\ud800"`) replaced by U+FFFD: such a str cannot
    be encoded as UTF-8, so it could not be stored, logged or sent on."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return _SURROGATE.sub("\ufffd", text)
    return text


def valid_unicode_json(value: object, depth: int = 0) -> object:
    """`valid_unicode` over every string of parsed JSON, keys included."""
    if isinstance(value, str):
        return valid_unicode(value)
    if depth > 64:  # deeper than any platform payload; the caller's parser already bounds nesting
        return value
    if isinstance(value, list):
        return [valid_unicode_json(v, depth + 1) for v in value]
    if isinstance(value, dict):
        return {valid_unicode(str(k)): valid_unicode_json(v, depth + 1) for k, v in value.items()}
    return value


def _as_text(text: object) -> str:
    """Any input as a str of valid Unicode: bytes decoded leniently, lone surrogates replaced."""
    if text is None:
        return ""
    if isinstance(text, (bytes, bytearray, memoryview)):
        text = bytes(text[:_RAW_CAP]).decode("utf-8", "replace")
    elif not isinstance(text, str):
        try:
            text = str(text)
        except Exception:  # a hostile __str__ must not break us
            return ""
    text = text[:_RAW_CAP]
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "replace").decode("utf-8", "replace")
    return text


def _channel(m: re.Match[str]) -> str:
    return f" {m.group(1)} " if m.group(1) else " "


def _link(m: re.Match[str]) -> str:
    target, label = m.group(1), m.group(2)
    if label:
        return f" {label} "
    if target[:7].lower() == "mailto:":
        return f" {target[7:]} "
    return " "


def strip_markup(text: str, lines: bool = False) -> str:
    """Plain text of a Slack or Teams message, case kept, whitespace collapsed (line breaks kept as single
    "\n" when `lines`: a pasted list or log keeps its lines). Never raises."""
    try:
        s = _as_text(text)
        if not s:
            return ""
        if "<" in s:
            s = _TEAMS_AT.sub(" ", s)
            s = _HTML_COMMENT.sub(" ", s)
            s = _SLACK_USER.sub(" ", s)
            s = _SLACK_SPECIAL.sub(" ", s)
            s = _SLACK_CHANNEL.sub(_channel, s)
            s = _SLACK_LINK.sub(_link, s)
            if lines:
                s = _HTML_BREAK.sub("\n", s)
            s = _HTML_TAG.sub(" ", s)
        if "`" in s:
            s = _FENCE.sub(" ", s)
            s = _BACKTICK.sub("", s)
        if ":" in s:
            s = _SHORTCODE.sub(" ", s)
        if "&" in s:
            s = html.unescape(s)
        s = unicodedata.normalize("NFKC", s)
        s = _CONTROL.sub(" ", s)
        if lines:
            s = _BREAKS.sub("\n", _HSPACE.sub(" ", s.replace("\r\n", "\n").replace("\r", "\n"))).strip()
        else:
            s = _WS.sub(" ", s).strip()
        return s[:MAX_CHARS].rstrip()
    except Exception:  # normalisation is best effort, never a crash
        return ""


def normalize(text: str) -> str:
    """Lower-case plain words of a Slack or Teams message (see `strip_markup`). Never raises."""
    # Lower-casing can lengthen a string ("İ" -> "i̇"): cap again.
    return strip_markup(text).lower()[:MAX_CHARS].rstrip()


def as_text(text: object) -> str:
    """Any input as a str of valid Unicode, cut to a bounded length (the first step of normalising)."""
    try:
        return _as_text(text)
    except Exception:  # never raises
        return ""


def message_forms(text: object) -> tuple[str, str, str]:
    """The one normalisation of a chat message, after secrets are scrubbed by the caller: (plain text with
    its line breaks, plain text on one line, lower-cased one line)."""
    lines = strip_markup(text, lines=True)  # type: ignore[arg-type]
    plain = lines.replace("\n", " ")
    return lines, plain, plain.lower()
