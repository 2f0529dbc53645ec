"""The HTTP bench's requests: signed Slack events and Teams activities on a schedule (open loop), an endless
supply of fresh ones (closed loop), and how many messages the platform should receive for each."""

from __future__ import annotations

import json
import random
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support import platform as P

RETRY_SHARE = 0.02
DM_TURN_GAP = 2.0


@dataclass
class Req:
    at: float  # seconds after the phase starts
    path: str
    body: bytes
    headers: dict[str, str]
    key: str  # what its answer is recorded under at the fake
    script: tuple[str, ...]  # the conversation's texts up to and including this turn (for the expected count)
    channel: str  # slack | teams
    retry_of: str | None = None  # key of the original for a Slack redelivery


def _slack_plan(rate: float, duration: float, rng: random.Random) -> list[tuple[float, dict[str, Any], str, tuple[str, ...]]]:
    """(time, event, answer key, script) sorted by time; times are then spread evenly."""
    n = int(rate * duration)
    raw: list[tuple[float, dict[str, Any], str, tuple[str, ...]]] = []
    run = uuid.uuid4().hex[:6].upper()
    i = 0
    while len(raw) < n:
        t = rng.uniform(0, duration)
        if i % 2 == 0:
            channel = f"C{run}{i:06d}"
            text = rng.choice(P.REPORTS) if rng.random() < 0.9 else rng.choice(P.OFF_TOPIC)
            ev = P.mention_event(channel, f"U{rng.randrange(10**6):06d}", text)
            raw.append((t, ev, f"{channel}|{ev['ts']}", (f"mention:{text}",)))
        else:
            dm = f"D{run}{i:06d}"
            user = f"U{rng.randrange(10**6):06d}"
            texts = [rng.choice(P.REPORTS)] + [rng.choice(P.FOLLOW_UPS) for _ in range(2)]
            for k, text in enumerate(texts):
                tk = t + k * DM_TURN_GAP
                if tk >= duration or len(raw) >= n:
                    break
                anchor = P.next_ts()
                ev = P.dm_event(dm, user, text, thread_ts=anchor)
                raw.append((tk, ev, f"{dm}|{anchor}", tuple(texts[: k + 1])))
        i += 1
    raw.sort(key=lambda x: x[0])
    return [(j / rate, ev, key, script) for j, (_, ev, key, script) in enumerate(raw[:n])]


def slack_requests(rate: float, duration: float, seed: int = 7) -> list[Req]:
    rng = random.Random(seed * 1000 + int(rate))
    reqs: list[Req] = []
    for at, ev, key, script in _slack_plan(rate, duration, rng):
        payload = P.event_callback(ev)
        body, headers = P.signed(payload)
        reqs.append(Req(at, "/slack/events", body, headers, key, script, "slack"))
        if rng.random() < RETRY_SHARE:
            rbody, rheaders = P.signed(payload, retry=1)
            reqs.append(Req(at + 1.0, "/slack/events", rbody, rheaders, key, script, "slack", retry_of=key))
    reqs.sort(key=lambda r: r.at)
    return [r for r in reqs if r.at < duration + 1.0]


def teams_requests(rate: float, duration: float, service_url: str, seed: int = 11) -> list[Req]:
    rng = random.Random(seed * 1000 + int(rate))
    n = int(rate * duration)
    run = uuid.uuid4().hex[:8]
    raw: list[tuple[float, str, str, tuple[str, ...]]] = []
    i = 0
    while len(raw) < n:
        t = rng.uniform(0, duration)
        conv = f"a:{run}{i:06d}"
        texts = [rng.choice(P.REPORTS)] + [rng.choice(P.FOLLOW_UPS) for _ in range(2)]
        for k, text in enumerate(texts):
            tk = t + k * DM_TURN_GAP
            if tk >= duration or len(raw) >= n:
                break
            raw.append((tk, conv, text, tuple(texts[: k + 1])))
        i += 1
    raw.sort(key=lambda x: x[0])
    reqs = []
    for j, (_, conv, text, script) in enumerate(raw[:n]):
        aid = uuid.uuid4().hex[:16]
        act = P.teams_message(service_url, conv, text, activity_id=aid)
        reqs.append(Req(j / rate, "/api/messages", json.dumps(act).encode(), {"Content-Type": "application/json"}, f"{conv}|{aid}", tuple(f"teams:{x}" for x in script), "teams"))
    return reqs


class Endless:
    """An unbounded supply of fresh single-turn requests (new conversations), signed in batches."""

    def __init__(self, channel: str, service_url: str = "") -> None:
        self.channel = channel
        self.service_url = service_url
        self.buf: list[Req] = []
        self.rng = random.Random(3)
        self.n = 0

    def __call__(self) -> Req:
        if not self.buf:
            self.buf = self._batch(2000)
        return self.buf.pop()

    def _batch(self, n: int) -> list[Req]:
        out = []
        run = uuid.uuid4().hex[:6].upper()
        for i in range(n):
            self.n += 1
            text = self.rng.choice(P.REPORTS)
            if self.channel == "slack":
                if i % 2:
                    ch = f"C{run}{i:06d}"
                    ev = P.mention_event(ch, "U0LOAD", text)
                    key = f"{ch}|{ev['ts']}"
                else:
                    ch = f"D{run}{i:06d}"
                    anchor = P.next_ts()
                    ev = P.dm_event(ch, "U0LOAD", text, thread_ts=anchor)
                    key = f"{ch}|{anchor}"
                body, headers = P.signed(P.event_callback(ev))
                out.append(Req(0, "/slack/events", body, headers, key, (text,), "slack"))
            else:
                conv = f"a:closed{run}{i:06d}"
                aid = uuid.uuid4().hex[:16]
                act = P.teams_message(self.service_url, conv, text, activity_id=aid)
                out.append(Req(0, "/api/messages", json.dumps(act).encode(), {"Content-Type": "application/json"}, f"{conv}|{aid}", (text,), "teams"))
        return out


# ---- how many messages one turn gives ------------------------------------------------------------------


class Expected:
    """Messages the platform should receive for the last turn of a script: played once on an in-memory
    engine with the channel's renderer (memoised per script)."""

    def __init__(self) -> None:
        from bot.runtime import Runtime
        from bot.settings import Settings
        from bot.store.memory import MemoryStore

        self.runtime = Runtime.create(Settings(SCIM_HELP_DATA_DIR=Path(tempfile.gettempdir()) / "scim-help-bench-expected"), store=MemoryStore())
        self.memo: dict[tuple[str, ...], int] = {}

    async def count(self, script: tuple[str, ...]) -> int:
        if script not in self.memo:
            self.memo[script] = await self._play(script)
        return self.memo[script]

    async def _play(self, script: tuple[str, ...]) -> int:
        from bot.events import Incoming
        from bot.render import blocks as bk
        from bot.render import cards

        conv = f"expected:{uuid.uuid4().hex}"
        turn = None
        kind = "slack"
        for item in script:
            kind, _, text = item.partition(":") if item.startswith(("mention:", "teams:")) else ("slack", "", item)
            channel = "teams" if kind == "teams" else "slack"
            turn = await self.runtime.handle(Incoming(channel=channel, conversation_id=conv, text=text, directed=True))
        assert turn is not None
        if turn.silent:
            return 0
        if kind == "teams":
            return len(cards.render_replies(turn.replies, support_url=self.runtime.engine.support_url))
        return len(bk.render_replies(turn.replies, conversation_id=conv, support_url=self.runtime.engine.support_url, portal_label="Cato Support", handoff=False))

    def close(self) -> None:
        pass
