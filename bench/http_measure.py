"""The HTTP bench's measuring: a raw keep-alive client, open and closed loops against a running server, the
answers the platform fakes recorded, and the server's peak RSS and CPU."""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from dataclasses import replace
from typing import Any

from bench.engine_bench import percentile
from bench.http_requests import Expected, Req
from tests.support.fakes_proc import FakesProcess
from tests.support.procs import ServerProcess

# What the platforms do with a refused request (a 503 from a full server): deliver it again later, with
# Slack's retry headers, three times at most. Slack waits about 0 s, 1 min and 5 min; the bench keeps that
# shape but compresses it so a phase stays short (seconds before each redelivery).
REDELIVER_AFTER = (1.0, 5.0, 15.0)
ANSWER_TIMEOUT = 60.0


pct = percentile  # nearest-rank, the same definition the engine benchmark reports


def lat_summary(ms: list[float]) -> dict[str, float]:
    return {"p50_ms": pct(ms, 50), "p99_ms": pct(ms, 99), "max_ms": max(ms) if ms else float("nan"), "n": len(ms)}


def cpu_of(psutil: Any, procs: list[Any]) -> float:
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
        return cpu_of(self.psutil, self._procs())

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
            except Exception as exc:  # a refused/aborted request is a result, not a crash
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
                except Exception:  # a refused/aborted request counts as an error
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
