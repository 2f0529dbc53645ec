"""HTTP load benchmark: signed Slack events and Teams activities against a running `scim-help serve`.

    python -m bench.http_load [--stores sqlite,redis] [--rates 50,200,500] [--duration 10]
                              [--concurrency 1,50,200] [--closed-duration 6] [--workers N] [--json OUT]

Everything runs on 127.0.0.1 only:
- the server is a real `scim-help serve` subprocess (SQLite in a temporary directory, or Redis — a
  throwaway `redis-server` on a free port), with the deployment's logging (JSON at INFO);
- the Slack Web API and the Bot Connector are the local recorder fakes (tests/fakes/) in a separate process
  (tests/support/fakes_proc.py), so their CPU is not the server's; `SCIM_HELP_SLACK_API_URL` and each
  activity's `serviceUrl` point at them;
- this process generates load: every request is built and signed before the clock starts.

Open loop (Slack and Teams): requests arrive on a fixed schedule (`rate` per second for `duration` seconds)
whatever the server does; latencies are measured from the scheduled arrival, so a stalled server is not
hidden (no coordinated omission). Reported: ack latency p50/p99/max (HTTP response), whether every event
was answered exactly once (the recorder's `chat.postMessage` / connector replies per event, against the
number of messages one rendering of that turn gives), and answer latency p50/p99/max (recorder receipt
minus scheduled arrival; both clocks are CLOCK_MONOTONIC).

The Slack mix: half app mentions in channels (each a new thread), half DM turns — conversations of up to
three turns two seconds apart (report, then answers such as "yes", "it says 401"), each turn written in its
own DM thread so its answer is attributable — plus 2% of events redelivered by "Slack" one second later
with `X-Slack-Retry-Num` (same `event_id`), which must not be answered again.

Closed loop (1, 50, 200 concurrent clients sending back to back): saturation throughput. For Slack the ack
comes before the work, so both the ack rate and the answered rate (events answered / time until the last
answer) are given.

Peak RSS of the server process(es) is sampled every 100 ms (psutil) over each store's whole run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.support import platform as P  # noqa: E402
from tests.support.fakes_proc import FakesProcess  # noqa: E402
from tests.support.procs import RedisProcess, ServerProcess, base_env, free_port  # noqa: E402
from bench.engine_bench import percentile

RETRY_SHARE = 0.02
# What the platforms do with a refused request (a 503 from a full server): deliver it again later, with
# Slack's retry headers, three times at most. Slack waits about 0 s, 1 min and 5 min; the bench keeps that
# shape but compresses it so a phase stays short (seconds before each redelivery).
REDELIVER_AFTER = (1.0, 5.0, 15.0)
DM_TURN_GAP = 2.0
ANSWER_TIMEOUT = 60.0


# ---- the requests ----------------------------------------------------------------------------------------


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


# ---- measuring -----------------------------------------------------------------------------------------


pct = percentile  # nearest-rank, the same definition the engine benchmark reports


def lat_summary(ms: list[float]) -> dict[str, float]:
    return {"p50_ms": pct(ms, 50), "p99_ms": pct(ms, 99), "max_ms": max(ms) if ms else float("nan"), "n": len(ms)}


def _cpu_of(psutil: Any, procs: list[Any]) -> float:
    """User + system CPU seconds used so far by these processes (gone ones count 0)."""
    total = 0.0
    for p in procs:
        try:
            ct = p.cpu_times()
            total += ct.user + ct.system
        except psutil.Error:
            pass
    return total


class RssSampler:
    """Peak RSS of a process and its children, sampled every `interval` seconds in a thread."""

    def __init__(self, interval: float = 0.1) -> None:
        import psutil

        self.psutil = psutil
        self.interval = interval
        self.pids: set[int] = set()
        self.peak: dict[int, int] = {}
        self.cpu: dict[int, float] = {}
        self.phase: dict[int, int] = {}  # peak since phase_start()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._root: int | None = None

    def watch(self, pid: int) -> None:
        self._root = pid
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, daemon=True, name="rss-sampler")
            self._thread.start()

    def _procs(self) -> list[Any]:
        if self._root is None:
            return []
        try:
            root = self.psutil.Process(self._root)
            return [root, *root.children(recursive=True)]
        except self.psutil.Error:
            return []

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            for p in self._procs():
                try:
                    rss = p.memory_info().rss
                    ct = p.cpu_times()
                except self.psutil.Error:
                    continue
                self.peak[p.pid] = max(self.peak.get(p.pid, 0), rss)
                self.phase[p.pid] = max(self.phase.get(p.pid, 0), rss)
                self.cpu[p.pid] = ct.user + ct.system

    def phase_start(self) -> None:
        self.phase = {}

    def phase_peak_mb(self) -> float:
        return round(max(self.phase.values()) / 2**20, 1) if self.phase else float("nan")

    def cpu_seconds(self) -> float:
        return _cpu_of(self.psutil, self._procs())

    def stop(self) -> dict[str, Any]:
        self._stop.set()
        if self._thread:
            self._thread.join(2)
        mb = {pid: rss / 2**20 for pid, rss in self.peak.items()}
        return {"per_process_mb": sorted((round(v, 1) for v in mb.values()), reverse=True), "max_mb": round(max(mb.values()), 1) if mb else float("nan")}


class RawHttp:
    """Keep-alive HTTP/1.1 POSTs of pre-built request bytes over plain asyncio streams.

    The generator shares the two cores with the server; aiohttp's client cost about 0.7 ms of CPU per
    request here (3.7 s of the 10 s phase at 500/s), which the server then did not have. This writes
    bytes built before the clock starts and reads the status line, headers and Content-Length body back.
    Connections are reused when idle and opened when all are busy, so a stalled server is not hidden."""

    def __init__(self, url: str) -> None:
        rest = url.split("://", 1)[1].rstrip("/")
        host, _, port = rest.partition(":")
        self.host, self.port = host, int(port or 80)
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    def build(self, r: Req) -> bytes:
        head = [f"POST {r.path} HTTP/1.1", f"Host: {self.host}:{self.port}", f"Content-Length: {len(r.body)}"]
        head += [f"{k}: {v}" for k, v in r.headers.items() if k.lower() not in ("host", "content-length")]
        return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + r.body

    async def post(self, raw: bytes) -> int:
        """The response status; raises on a refused or dropped connection."""
        conn = self.idle.pop() if self.idle else await asyncio.open_connection(self.host, self.port)
        reader, writer = conn
        try:
            writer.write(raw)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            fields = {}
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                fields[name.strip().lower()] = value.strip().lower()
            if b"chunked" in fields.get(b"transfer-encoding", b""):
                raise RuntimeError("chunked responses are not expected from the server")
            length = int(fields.get(b"content-length", b"0"))
            if length:
                await reader.readexactly(length)
        except BaseException:
            writer.close()
            raise
        if fields.get(b"connection") == b"close":
            writer.close()
        else:
            self.idle.append(conn)
        return status

    def close(self) -> None:
        for _, writer in self.idle:
            writer.close()
        self.idle.clear()


def _redelivery(r: Req, attempt: int) -> Req:
    if r.channel != "slack":
        return r  # Teams sends the same activity again; its id makes it a repeat
    return replace(r, headers={**r.headers, "X-Slack-Retry-Num": str(attempt), "X-Slack-Retry-Reason": "http_error"})


async def _send_all(client: RawHttp, reqs: list[Req], t0: float, acks: dict[int, tuple[float, int]], again: list[tuple[float, int]]) -> None:
    """Send each request at its time; `acks[i]` is (seconds from its scheduled arrival to the response, status).
    A 503 is delivered again as the platform would; those later attempts go to `again`."""
    loop = asyncio.get_running_loop()
    raws = [client.build(r) for r in reqs]  # before the clock: only writing and reading are timed

    async def one(i: int, r: Req) -> None:
        raw, sent, attempt = raws[i], t0 + r.at, 0
        while True:
            try:
                status = await client.post(raw)
            except Exception as exc:  # noqa: BLE001 - a refused/aborted request is a result, not a crash
                acks[i] = (loop.time() - (t0 + r.at), -1)
                acks.setdefault(-1, (0.0, 0))
                print(f"  request failed: {type(exc).__name__}: {exc}", file=sys.stderr)
                return
            if attempt == 0:
                acks[i] = (loop.time() - sent, status)
            else:
                again.append((loop.time() - sent, status))
            if status != 503 or attempt >= len(REDELIVER_AFTER):
                return
            await asyncio.sleep(REDELIVER_AFTER[attempt])
            attempt += 1
            raw, sent = client.build(_redelivery(r, attempt)), loop.time()

    tasks = []
    for i, r in enumerate(reqs):
        delay = t0 + r.at - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i, r)))
    await asyncio.gather(*tasks)


class AnswerLog:
    """Answer key -> recorder receipt times of the messages posted for it since the log was opened.

    Fetched incrementally: re-reading every call since the phase began on each poll cost the fakes and
    the generator seconds of CPU while the server was still draining."""

    def __init__(self, fakes: FakesProcess, channel: str) -> None:
        self.fakes = fakes
        self.channel = channel
        self.next = fakes._get("/calls?since=1000000000")["next"]
        self.by_key: dict[str, list[float]] = {}

    def poll(self) -> dict[str, list[float]]:
        data = self.fakes._get(f"/calls?since={self.next}")
        self.next = data["next"]
        for c in data["calls"]:
            if self.channel == "slack" and c["source"] == "slack" and c["method"] in ("chat.postMessage", "chat.postEphemeral"):
                key = f"{c['channel']}|{c['thread_ts']}" if c["method"] == "chat.postMessage" else f"ephemeral|{c['channel']}"
                self.by_key.setdefault(key, []).append(c["at"])
            elif self.channel == "teams" and c["source"] == "connector" and c.get("kind") in ("reply", "send"):
                self.by_key.setdefault(f"{c['conversation']}|{c.get('reply_to')}", []).append(c["at"])
        return self.by_key


async def open_loop(server: ServerProcess, fakes: FakesProcess, reqs: list[Req], expected: Expected, label: str) -> dict[str, Any]:
    channel = reqs[0].channel
    originals = [r for r in reqs if r.retry_of is None]
    want = {r.key: await expected.count(r.script) for r in originals}
    arrival = {r.key: r.at for r in originals}
    answers = AnswerLog(fakes, channel)
    acks: dict[int, tuple[float, int]] = {}
    again: list[tuple[float, int]] = []
    client = RawHttp(server.url)
    cpu0 = time.process_time()
    try:
        t0 = asyncio.get_running_loop().time() + 0.2
        await _send_all(client, reqs, t0, acks, again)
    finally:
        client.close()
    # Wait until every expected answer arrived (or the time runs out), then a little longer for extras.
    deadline = time.monotonic() + ANSWER_TIMEOUT
    total_want = sum(want.values())
    while True:
        got = answers.poll()
        have = sum(min(len(got.get(k, [])), n) for k, n in want.items())
        if have >= total_want or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.25)
    await asyncio.sleep(1.0)
    got = answers.poll()
    generator_cpu = time.process_time() - cpu0
    ack_ms = [v[0] * 1000 for k, v in acks.items() if k >= 0]
    statuses: dict[str, int] = {}
    for st in [st for k, (_, st) in acks.items() if k >= 0] + [st for _, st in again]:
        statuses[str(st)] = statuses.get(str(st), 0) + 1
    answer_ms, missing, duplicated = [], 0, 0
    for key, n in want.items():
        times = sorted(got.get(key, []))
        if len(times) < n:
            missing += 1
        elif len(times) > n:
            duplicated += 1
        if times and n:
            answer_ms.append((times[min(n, len(times)) - 1] - (t0 + arrival[key])) * 1000)
    stray = sum(len(v) for k, v in got.items() if k not in want)
    within_2s = sum(1 for x in answer_ms if x <= 2000)
    return {
        "label": label,
        "channel": channel,
        "requests": len(reqs),
        "events": len(originals),
        "redeliveries": len(reqs) - len(originals),
        "statuses": statuses,
        "refused": statuses.get("503", 0),
        "delivered_again": len(again),
        "ack": lat_summary(ack_ms),
        "answer": lat_summary(answer_ms),
        "answered_exactly_once": len(originals) - missing - duplicated,
        "missing": missing,
        "duplicated": duplicated,
        "stray_messages": stray,
        "answered_within_2s": within_2s,
        "load_generator_cpu_s": round(generator_cpu, 2),
    }


async def closed_loop(server: ServerProcess, fakes: FakesProcess, make: Any, concurrency: int, duration: float, channel: str) -> dict[str, Any]:
    """`concurrency` clients sending back to back for `duration` seconds; `make()` returns the next Req."""
    answers = AnswerLog(fakes, channel)
    done = 0
    errors = 0
    keys: list[str] = []
    lat: list[float] = []
    http = RawHttp(server.url)
    try:
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        stop_at = t0 + duration

        async def client() -> None:
            nonlocal done, errors
            while loop.time() < stop_at:
                r = make()
                raw = http.build(r)
                t = loop.time()
                try:
                    ok = await http.post(raw) < 300
                except Exception:  # noqa: BLE001
                    ok = False
                lat.append((loop.time() - t) * 1000)
                if ok:
                    done += 1
                    keys.append(r.key)
                else:
                    errors += 1

        await asyncio.gather(*(client() for _ in range(concurrency)))
        elapsed = loop.time() - t0
    finally:
        http.close()
    # Answered throughput: wait for the answers to the acknowledged requests.
    deadline = time.monotonic() + ANSWER_TIMEOUT
    want = set(keys)
    last = t0
    while True:
        got = answers.poll()
        answered = [k for k in want if k in got]
        if len(answered) >= len(want) or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.25)
    if answered:
        last = max(min(got[k]) for k in answered)
    return {
        "channel": channel,
        "concurrency": concurrency,
        "requests": done,
        "errors": errors,
        "seconds": round(elapsed, 2),
        "req_per_s": done / elapsed if elapsed else float("nan"),
        "answered": len(answered),
        "answered_per_s": len(answered) / (last - t0) if answered and last > t0 else float("nan"),
        "latency": lat_summary(lat),
    }


class _Endless:
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


# ---- orchestration ---------------------------------------------------------------------------------------


def _server_env(store: str, data_dir: Path, fakes: FakesProcess, redis_url: str | None, workers: int) -> dict[str, str]:
    extra = {
        "SLACK_BOT_TOKEN": P.BOT_TOKEN,
        "SLACK_SIGNING_SECRET": P.SIGNING_SECRET,
        "SCIM_HELP_SLACK_API_URL": fakes.slack_api_url,
        "SCIM_HELP_STORE": store,
        "SCIM_HELP_CONVERSATION_TTL": "3600",
    }
    if redis_url:
        extra["SCIM_HELP_REDIS_URL"] = redis_url
    if workers > 1:
        extra["SCIM_HELP_WORKERS"] = str(workers)
    return base_env(data_dir, **extra)


async def run_store(store: str, args: argparse.Namespace, fakes: FakesProcess, expected: Expected) -> dict[str, Any]:
    workers = args.workers_by_store.get(store, 1)
    tmp = Path(tempfile.mkdtemp(prefix=f"scim-help-bench-{store}-"))
    redis: RedisProcess | None = None
    if store == "redis":
        redis = RedisProcess().start()
    server_args: tuple[str, ...] = ("--workers", str(workers)) if workers > 1 else ()
    server = ServerProcess(_server_env(store, tmp / "data", fakes, redis.url if redis else None, workers), port=free_port(), args=server_args, cwd=tmp)
    out: dict[str, Any] = {"store": store, "workers": workers, "open_loop": [], "closed_loop": []}
    rss = RssSampler()
    others = _OtherCpu(fakes, redis)
    try:
        server.start()
        rss.watch(server.pid)  # type: ignore[arg-type]
        profiler = _start_profiler(server, args, store)
        # Warm-up (imports, first auth.test, SQLite file, connection pools): not measured.
        for ch in ("slack", "teams"):
            warm = slack_requests(40, 1.0, seed=99) if ch == "slack" else teams_requests(40, 1.0, fakes.connector_url, seed=99)
            await open_loop(server, fakes, warm, expected, "warm-up")
        cpu0 = rss.cpu_seconds()
        for channel in args.channels:
            for rate in args.rates:
                if channel == "slack":
                    reqs = slack_requests(rate, args.duration)
                else:
                    reqs = teams_requests(rate, args.duration, fakes.connector_url)
                c0, o0, st0 = rss.cpu_seconds(), others.cpu(), _steal_seconds()
                rss.phase_start()
                r = await open_loop(server, fakes, reqs, expected, f"{channel} {rate}/s")
                r["rate"] = rate
                r["server_cpu_s"] = round(rss.cpu_seconds() - c0, 2)
                r["other_cpu_s"] = {"load_generator": r.pop("load_generator_cpu_s")} | {k: round(v - o0[k], 2) for k, v in others.cpu().items()}
                r["steal_s"] = round(_steal_seconds() - st0, 2)
                r["peak_rss_mb"] = rss.phase_peak_mb()
                out["open_loop"].append(r)
                _print_open(store, r)
        for channel in args.channels:
            for conc in args.concurrency:
                make = _Endless(channel, fakes.connector_url)
                rss.phase_start()
                r = await closed_loop(server, fakes, make, conc, args.closed_duration, channel)
                r["peak_rss_mb"] = rss.phase_peak_mb()
                out["closed_loop"].append(r)
                _print_closed(store, r)
        out["server_cpu_s"] = round(rss.cpu_seconds() - cpu0, 1)
        errors = [line for line in server.log().splitlines() if '"level": "ERROR"' in line or "Traceback" in line]
        out["server_errors_logged"] = len(errors)
        out["server_error_samples"] = errors[:3]
    finally:
        out["rss"] = rss.stop()
        if "profiler" in locals() and profiler is not None:
            profiler.send_signal(2)
            profiler.wait(60)
        server.cleanup()
        if redis:
            redis.cleanup()
    return out


def _steal_seconds() -> float:
    """CPU time the hypervisor gave to others while this VM wanted it (/proc/stat "steal", all CPUs):
    runs with much steal are slower for reasons outside the bot."""
    try:
        with open("/proc/stat", encoding="ascii") as f:
            fields = f.readline().split()
        return int(fields[8]) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return float("nan")


class _OtherCpu:
    """CPU of everything on the machine that is not the server, per phase: this load generator, the platform
    fakes and redis-server. All share the two cores with the server, so the server's headroom is what they
    leave."""

    def __init__(self, fakes: FakesProcess, redis: RedisProcess | None) -> None:
        import psutil

        self.psutil = psutil
        # The load generator's own CPU is taken in open_loop, from the first request on (building the
        # requests and their expected answers before the clock starts is not load).
        self.procs = {"fakes": [psutil.Process(fakes.proc.pid)]}  # type: ignore[union-attr]
        if redis is not None and redis.proc is not None:
            self.procs["redis"] = [psutil.Process(redis.proc.pid)]

    def cpu(self) -> dict[str, float]:
        return {k: _cpu_of(self.psutil, v) for k, v in self.procs.items()}


def _start_profiler(server: ServerProcess, args: argparse.Namespace, store: str) -> Any:
    """py-spy over the server process(es) for the whole run (`--profile DIR`): a speedscope file per store."""
    if not args.profile:
        return None
    import shutil
    import subprocess

    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    args.profile.mkdir(parents=True, exist_ok=True)
    out = args.profile / f"{store}.{args.profile_format}"
    cmd = [spy, "record", "--pid", str(server.pid), "--subprocesses", "--rate", "200", "--format", args.profile_format, "--output", str(out), "--nonblocking"]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _print_open(store: str, r: dict[str, Any]) -> None:
    a, w = r["ack"], r["answer"]
    print(
        f"  [{store}] open {r['label']:<14} events={r['events']:<5} ack p50={a['p50_ms']:.1f} p99={a['p99_ms']:.1f} max={a['max_ms']:.1f} ms | "
        f"exactly-once {r['answered_exactly_once']}/{r['events']} (missing {r['missing']}, dup {r['duplicated']}"
        f"{'; refused ' + str(r['refused']) + ', delivered again' if r.get('refused') else ''}) | "
        f"answer p50={w['p50_ms']:.0f} p99={w['p99_ms']:.0f} max={w['max_ms']:.0f} ms, within 2 s {r['answered_within_2s']} | cpu {r['server_cpu_s']}s "
        f"(others {', '.join(f'{k} {v}s' for k, v in r.get('other_cpu_s', {}).items())}; steal {r.get('steal_s')}s) | rss {r['peak_rss_mb']} MB",
        flush=True,
    )


def _print_closed(store: str, r: dict[str, Any]) -> None:
    print(
        f"  [{store}] closed {r['channel']:<5} x{r['concurrency']:<4} {r['req_per_s']:.0f} req/s acked, {r['answered_per_s']:.0f}/s answered "
        f"(p50 {r['latency']['p50_ms']:.1f} ms, p99 {r['latency']['p99_ms']:.1f} ms, errors {r['errors']})",
        flush=True,
    )


async def evaluate_async(args: argparse.Namespace) -> dict[str, Any]:
    expected = Expected()
    fakes = FakesProcess().start()
    try:
        results = []
        for store in args.stores:
            results.append(await run_store(store, args, fakes, expected))
    finally:
        fakes.stop()
        expected.close()
    return {
        "config": {
            "rates": args.rates,
            "duration_s": args.duration,
            "concurrency": args.concurrency,
            "closed_duration_s": args.closed_duration,
            "workers": args.workers_by_store,
            "channels": args.channels,
        },
        "stores": results,
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m bench.http_load", description=__doc__.split("\n")[0])
    ap.add_argument("--stores", default="sqlite,redis")
    ap.add_argument("--channels", default="slack,teams")
    ap.add_argument("--rates", default="50,200,500")
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--concurrency", default="1,50,200")
    ap.add_argument("--closed-duration", type=float, default=6.0)
    ap.add_argument("--workers", default=os.environ.get("SCIM_HELP_BENCH_WORKERS", "1"), help="server processes: N, or per store as sqlite=1,redis=2")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--profile", type=Path, help="record the server with py-spy into this directory")
    ap.add_argument("--profile-format", default="speedscope", choices=["speedscope", "flamegraph", "raw"])
    args = ap.parse_args(argv)
    args.stores = [s for s in args.stores.split(",") if s]
    args.channels = [s for s in args.channels.split(",") if s]
    args.rates = [float(x) for x in args.rates.split(",") if x]
    args.concurrency = [int(x) for x in args.concurrency.split(",") if x]
    spec = str(args.workers)
    if "=" in spec:
        args.workers_by_store = {k.strip(): int(v) for k, v in (p.split("=") for p in spec.split(",") if p.strip())}
    else:
        args.workers_by_store = {s: int(spec) for s in args.stores}
    return args


def evaluate(argv: list[str] | None = None) -> dict[str, Any]:
    return asyncio.run(evaluate_async(parse_args(argv)))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    report = asyncio.run(evaluate_async(args))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
