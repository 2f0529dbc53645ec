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
import sys
import threading
import uuid
from typing import Any, TextIO

from bot.events import Incoming, Turn
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


def _show(turn: Turn, out: TextIO, ansi: bool) -> list[str]:
    """Print the replies; return the choice ids in the order they were numbered."""
    numbered: list[str] = []
    for reply in turn.replies:
        out.write("\n" + render_plain(reply, ansi=ansi) + "\n")
        for choice in reply.choices:
            numbered.append(choice.id)
            out.write(f"  [{len(numbered)}] {choice.label}\n")
    out.flush()
    return numbered


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
                except asyncio.TimeoutError:
                    break
                if nxt is None:
                    self.queue.put_nowait(None)
                    break
                lines.append(nxt)
        text = "".join(lines).replace(PASTE_START, "").replace(PASTE_END, "")
        return text.strip("\n")


async def _chat(rt: Runtime, conversation: str, stdin: TextIO, stdout: TextIO, interactive: bool) -> None:
    ansi = interactive and stdout.isatty()
    stdout.write(
        "scim-help — SCIM provisioning troubleshooting for the Cato Management Application.\n"
        "Describe the problem, answer with a number to pick a choice, or type freely. Ctrl-D to quit.\n"
        f"(conversation {conversation}; resume later with --conversation {conversation})\n"
    )
    if ansi:
        stdout.write(BRACKETED_PASTE_ON)
    state = await rt.engine.state(conversation)
    numbered: list[str] = []
    if state is None:
        # A new conversation opens with the greeting and the symptom picker, so "1" works at once.
        numbered = _show(await rt.handle(Incoming(channel="terminal", conversation_id=conversation, text="")), stdout, ansi)
    elif state.pending is not None:
        numbered = _show(await rt.handle(Incoming(channel="terminal", conversation_id=conversation, text="help")), stdout, ansi)
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
            numbered = _show(await rt.handle(msg), stdout, ansi)
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
