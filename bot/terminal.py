"""`scim-help chat` (a person at a terminal) and `scim-help replay` (a program driving the engine).

Both speak to the same engine as every other channel. `chat` keeps its conversation in the configured
store, so `--conversation ID` resumes one after a restart. `replay` is a protocol other tools depend on:
one JSON line in, exactly one JSON line out (flushed), all in one conversation; it keeps state in memory
unless `--conversation` names one to persist.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import shutil
import sys
import textwrap
import threading
import uuid
from collections.abc import Collection
from typing import Any, TextIO

from bot.events import Incoming, Reply, Turn
from bot.render.text import render_plain
from bot.runtime import Runtime
from bot.settings import SettingsError, load_settings
from knowledge.loader import KnowledgeError


def _runtime(args: argparse.Namespace, persistent: bool) -> Runtime:
    overrides: dict[str, Any] = {}
    if getattr(args, "knowledge", None):
        overrides["knowledge"] = args.knowledge
    settings = load_settings().model_copy(update=overrides) if overrides else load_settings()
    store = None
    if not persistent:
        from bot.store.memory import MemoryStore

        store = MemoryStore()
    return Runtime.create(settings, store=store)


def _start(args: argparse.Namespace, persistent: bool) -> Runtime | None:
    try:
        return _runtime(args, persistent)
    except SettingsError as exc:
        print(exc, file=sys.stderr)
    except KnowledgeError as exc:
        print(f"knowledge pack is invalid:\n{exc}", file=sys.stderr)
    return None


# ---- replay -------------------------------------------------------------------------------------


def turn_json(turn: Turn) -> dict[str, Any]:
    """The replay contract: exactly these keys, in this shape."""
    ticket = None
    if turn.ticket is not None:
        t = turn.ticket
        ticket = {
            "account": t.account,
            "idp": t.idp_id,
            "upns": list(t.upns),
            "groups": list(t.groups),
            "symptom": t.symptom,
            "cause": t.cause,
            "steps": [{"check": s.check, "answer": s.answer} for s in t.steps],
            "body": t.body,
        }
    return {
        "replies": [
            {"text": render_plain(r), "choices": [{"id": c.id, "label": c.label} for c in r.choices]}
            for r in turn.replies
        ],
        "phase": turn.phase,
        "symptom": turn.symptom,
        "probing": turn.probing,
        "cause": turn.cause,
        "asking": turn.asking,
        "ticket": ticket,
    }


def _parse_turn(line: str) -> tuple[str | None, str | None]:
    item = json.loads(line)
    if not isinstance(item, dict):
        raise ValueError('each line must be a JSON object: {"text": "..."} or {"choice": "..."}')
    text, choice = item.get("text"), item.get("choice")
    if text is not None and not isinstance(text, str):
        raise ValueError('"text" must be a string')
    if choice is not None and not isinstance(choice, str):
        raise ValueError('"choice" must be a string')
    if text is None and choice is None:
        raise ValueError('expected "text" or "choice"')
    return text, choice


async def _replay(rt: Runtime, conversation: str, stdin: TextIO, stdout: TextIO) -> None:
    last: dict[str, Any] = {"phase": "triage", "symptom": None, "probing": None, "cause": None, "asking": None}
    for lineno, line in enumerate(stdin, 1):
        if not line.strip():
            continue
        try:
            text, choice = _parse_turn(line)
        except ValueError as exc:
            out = {**last, "replies": [{"text": f"Input line {lineno} ignored: {exc}", "choices": []}], "ticket": None, "error": str(exc)}
        else:
            turn = await rt.handle(Incoming(channel="replay", conversation_id=conversation, text=text, choice=choice))
            out = turn_json(turn)
            last = {k: out[k] for k in ("phase", "symptom", "probing", "cause", "asking")}
        stdout.write(json.dumps(out, ensure_ascii=False) + "\n")
        stdout.flush()


def run_replay(args: argparse.Namespace) -> int:
    rt = _start(args, persistent=bool(args.conversation))
    if rt is None:
        return 2
    conversation = args.conversation or f"replay:{uuid.uuid4().hex}"

    async def main() -> None:
        try:
            await _replay(rt, conversation, sys.stdin, sys.stdout)
        finally:
            await rt.close()

    asyncio.run(main())
    return 0


# ---- chat ---------------------------------------------------------------------------------------


def _show(turn: Turn, out: TextIO, ansi: bool, width: int | None = None) -> list[str]:
    """Print the replies, wrapped to `width` columns when given; return the choice ids in the order they
    were numbered."""
    numbered: list[str] = []
    for reply in turn.replies:
        keep = set(reply.ticket.body.splitlines()) if reply.ticket is not None else set()
        text = wrap(render_plain(_untitled(reply)), width, keep=keep)
        out.write("\n" + (_bold(text) if ansi else text) + "\n")
        for choice in reply.choices:
            numbered.append(choice.id)
            out.write(wrap(f"  [{len(numbered)}] {choice.label}", width) + "\n")
    out.flush()
    return numbered


def _untitled(reply: Reply) -> Reply:
    """The reply without its title when its text already opens with it, or with a bold label and then it
    ("Did that fix it?" then "Did that fix it? (It can take…)"; a cause's title then "**Cause found:** "
    and the title again): said once, not twice."""
    if reply.title:
        text = _LABEL.sub("", reply.text, count=1)
        if _words(text).startswith(_words(reply.title)):
            return reply.model_copy(update={"title": None})
    return reply


def _words(text: str) -> str:
    return " ".join(text.replace("**", "").split()).casefold()


_BOLD = re.compile(r"\*\*(.+?)\*\*", re.S)
_LABEL = re.compile(r"^\s*\*\*[^*\n]{1,40}:\*\*\s*")  # "**Cause found:** "
# What a wrapped line's continuation lines are indented under: a list number, a choice number, a bullet.
_LEAD = re.compile(r"\s*(?:(?:\d+\.|\[\d+\]|[-*•])\s+)?")


def _bold(text: str) -> str:
    return _BOLD.sub("\x1b[1m\\1\x1b[0m", text)


def terminal_width(out: TextIO) -> int | None:
    """Columns to wrap to: the window's, read at every turn (it may have been resized); None when `out` is
    not a terminal (a pipe keeps each reply's lines whole for the program reading it)."""
    try:
        if not out.isatty():
            return None
    except (AttributeError, ValueError):
        return None
    # One column spare: a line exactly as wide as the window makes some terminals add a blank line.
    return max(20, shutil.get_terminal_size().columns - 1)


def wrap(text: str, width: int | None, keep: Collection[str] = ()) -> str:
    """Each line of `text` wrapped at word boundaries to `width` columns, continuation lines indented under
    its list or choice number; a word longer than the line (a URL) is never cut, and lines in `keep` (a
    ticket's body, pasted elsewhere as it is) are left whole."""
    if not width:
        return text
    out: list[str] = []
    for line in text.split("\n"):
        if len(line) <= width or line in keep:
            out.append(line)
            continue
        lead = _LEAD.match(line)
        indent = " " * (lead.end() if lead else 0)
        out += textwrap.wrap(line, width, subsequent_indent=indent, break_long_words=False, break_on_hyphens=False) or [""]
    return "\n".join(out)


# Lines that arrive within this pause of each other are one message: a multi-line paste (a log excerpt)
# reaches a terminal as several lines in one burst, while a person typing needs far longer than this
# between two Enter presses.
PASTE_PAUSE = 0.15
BRACKETED_PASTE_ON, BRACKETED_PASTE_OFF = "\x1b[?2004h", "\x1b[?2004l"
PASTE_START, PASTE_END = "\x1b[200~", "\x1b[201~"


class Lines:
    """Reads the terminal's lines in a thread and hands out messages: one line, or — at an interactive
    terminal — a whole paste (bracketed paste where the terminal supports it, else lines in one burst)."""

    def __init__(self, stdin: TextIO, interactive: bool):
        self.stdin = stdin
        self.interactive = interactive
        self.queue: asyncio.Queue[str | None] = asyncio.Queue()

    def start(self) -> None:
        loop = asyncio.get_running_loop()

        def pump() -> None:
            while True:
                line = self.stdin.readline()
                loop.call_soon_threadsafe(self.queue.put_nowait, line or None)
                if not line:
                    return

        # A daemon thread, not the loop's executor: after "quit" it may still wait in readline(), and
        # asyncio.run() would wait for an executor thread forever.
        threading.Thread(target=pump, name="terminal-input", daemon=True).start()

    async def message(self) -> str | None:
        first = await self.queue.get()
        if first is None:
            return None
        lines = [first]
        if PASTE_START in first:
            while PASTE_END not in lines[-1]:
                nxt = await self.queue.get()
                if nxt is None:
                    break
                lines.append(nxt)
        elif self.interactive:
            while True:
                try:
                    nxt = await asyncio.wait_for(self.queue.get(), PASTE_PAUSE)
                except TimeoutError:
                    break
                if nxt is None:
                    self.queue.put_nowait(None)
                    break
                lines.append(nxt)
        text = "".join(lines).replace(PASTE_START, "").replace(PASTE_END, "")
        return text.strip("\n")


async def _chat(rt: Runtime, conversation: str, stdin: TextIO, stdout: TextIO, interactive: bool) -> None:
    ansi = interactive and stdout.isatty()
    width = terminal_width(stdout) if interactive else None
    header = (
        "scim-help — SCIM provisioning troubleshooting for the Cato Management Application.\n"
        "Describe the problem, answer with a number to pick a choice, or type freely. Ctrl-D to quit.\n"
        f"(conversation {conversation}; resume later with --conversation {conversation})"
    )
    stdout.write(wrap(header, width) + "\n")
    if ansi:
        stdout.write(BRACKETED_PASTE_ON)
    state = await rt.engine.state(conversation)
    numbered: list[str] = []
    if state is None:
        # A new conversation opens with the greeting and the symptom picker, so "1" works at once.
        numbered = _show(await rt.handle(Incoming(channel="terminal", conversation_id=conversation, text="")), stdout, ansi, width)
    elif state.pending is not None:
        numbered = _show(await rt.handle(Incoming(channel="terminal", conversation_id=conversation, text="help")), stdout, ansi, width)
    lines = Lines(stdin, interactive)
    lines.start()
    try:
        while True:
            if interactive:
                stdout.write("\nyou> ")
                stdout.flush()
            text = await lines.message()
            if text is None:
                break
            line = text.strip()
            if not line:
                continue
            if line.lower() in ("quit", "exit", ":q"):
                break
            msg = Incoming(channel="terminal", conversation_id=conversation, text=text)
            if line.isdigit() and 1 <= int(line) <= len(numbered):
                msg = Incoming(channel="terminal", conversation_id=conversation, choice=numbered[int(line) - 1])
            elif not interactive:
                stdout.write(f"\nyou> {line}\n")
            width = terminal_width(stdout) if interactive else None
            numbered = _show(await rt.handle(msg), stdout, ansi, width)
    finally:
        if ansi:
            stdout.write(BRACKETED_PASTE_OFF)
            stdout.flush()


def run_chat(args: argparse.Namespace) -> int:
    rt = _start(args, persistent=True)
    if rt is None:
        return 2
    conversation = args.conversation or f"terminal:{uuid.uuid4().hex[:12]}"

    async def main() -> None:
        try:
            await _chat(rt, conversation, sys.stdin, sys.stdout, interactive=sys.stdin.isatty())
        finally:
            await rt.close()

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        print()
    return 0
