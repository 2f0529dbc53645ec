"""Prometheus metrics for `serve`: one `CollectorRegistry` per application, so tests (and anything else)
can build several apps in one process.

Where the numbers come from:
- every turn, through `Runtime.observers` (`Metrics.observe`): messages, conversations started, turn
  latency, turn errors by kind;
- every outcome the engine records, reported with its turn (`Turn.ending`, bot/outcome.py): a
  conversation *ended* the first time its episode is recorded with that outcome, and its feedback was
  given when `helpful` first turns from null to true/false. The engine compares with what the episode's
  stored state had recorded (under the conversation lock), so each episode counts once, whichever replica
  served it;
- every store call, through `ObservedStore` (a thin wrapper around the real store): `scim_help_store_up`;
- `/readyz` and `/metrics` ping the store (`scim_help_store_up`); a store error anywhere sets it to 0;
- the server's error middleware: unexpected exceptions in any endpoint (`kind="unhandled"`);
- the channels' admission gates (bot/admission.py), read when scraped: requests in progress, waiting, and
  refused because the process was over capacity (alert on the last one: the platforms deliver those again,
  late).

Labels are bounded: channel is a Literal, symptom/cause/outcome are pack ids (or "none").

Several processes (`serve --workers N --processors M`): each process the supervisor forks keeps its
counters, histograms and gauges in files of one private directory (prometheus_client's multiprocess mode,
`share_between_processes`), and /metrics on whichever worker answers the scrape adds up every process's:
turns run in a processor and turns run in the other worker are counted too. The admission gauges are the
answering worker's own.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, values
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from bot.admission import Gate
from bot.events import Incoming, Turn
from bot.outcome import Ending
from bot.store.base import Held, Store, StoreUnavailable
from bot.store.inbox import Inbox

log = logging.getLogger("scim_help.metrics")

CONTENT_TYPE = CONTENT_TYPE_LATEST
# A turn is pure CPU plus a few store round trips: ~1 ms on SQLite, a few ms on Redis; a slow lock wait
# shows up in the upper buckets.
LATENCY_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0, 2.5)


def error_kind(exc: BaseException) -> str:
    if isinstance(exc, StoreUnavailable):
        return "store_unavailable"
    if isinstance(exc, TimeoutError):
        return "lock_timeout"
    return "engine"


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None):
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        self.messages = Counter(
            "scim_help_messages", "Messages handled by the engine, by channel.", ["channel"], registry=r
        )
        self.started = Counter(
            "scim_help_conversations_started",
            "Conversations (episodes) started, by channel.",
            ["channel"],
            registry=r,
        )
        self.ended = Counter(
            "scim_help_conversations_ended",
            "Conversations (episodes) ended, by symptom, cause and outcome (resolved|answered|escalated|cancelled|off-topic).",
            ["channel", "symptom", "cause", "outcome"],
            registry=r,
        )
        self.escalations = Counter(
            "scim_help_escalations",
            "Support tickets produced (conversations ended as escalated), by symptom.",
            ["channel", "symptom"],
            registry=r,
        )
        self.feedback = Counter(
            "scim_help_feedback",
            'Answers to "Was this conversation helpful?", by symptom.',
            ["symptom", "helpful"],
            registry=r,
        )
        self.latency = Histogram(
            "scim_help_turn_seconds",
            "Time to handle one message (engine turn incl. store), by channel.",
            ["channel"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.errors = Counter(
            "scim_help_errors",
            "Errors by kind: store_unavailable, lock_timeout, engine (in a turn), unhandled (HTTP 500).",
            ["kind"],
            registry=r,
        )
        self.rate_limited = Counter(
            "scim_help_rate_limited",
            "Requests refused with 429 by a per-client limit, by endpoint (web chat messages and new conversations, Teams reads).",
            ["endpoint"],
            registry=r,
        )
        # Several processes: the store is down if it is down for any live one; turns in flight add up.
        self.store_up = Gauge(
            "scim_help_store_up", "1 when the last store ping/operation succeeded.", registry=r, multiprocess_mode="livemin"
        )
        self.in_flight = Gauge("scim_help_turns_in_flight", "Turns being handled right now.", registry=r, multiprocess_mode="livesum")
        self.store_up.set(1)
        self.gates = _GateCollector()
        r.register(self.gates)

    def watch(self, gate: Gate) -> None:
        self.gates.gates.append(gate)

    # -- runtime observer -------------------------------------------------------------------------

    def observe(self, msg: Incoming, turn: Turn | None, seconds: float, error: BaseException | None) -> None:
        if turn is not None and turn.duplicate:
            return  # a platform's redelivery of a message already counted
        self.messages.labels(msg.channel).inc()
        self.latency.labels(msg.channel).observe(seconds)
        if error is not None:
            kind = error_kind(error)
            self.errors.labels(kind).inc()
            if kind == "store_unavailable":
                self.store_up.set(0)
            try:
                error._scim_help_counted = True  # type: ignore[attr-defined]  # the HTTP layer must not count it again
            except (AttributeError, TypeError):
                pass
            return
        if turn is not None and turn.started and not turn.silent:
            self.started.labels(msg.channel).inc()
        if turn is not None and turn.ending is not None:
            self.record_outcome(turn.ending)

    def record_outcome(self, ending: Ending) -> None:
        new = ending.now
        channel = new.channel or "unknown"
        symptom = new.symptom or new.topic or "none"
        if ending.first:
            outcome = new.outcome or "unknown"
            self.ended.labels(channel, symptom, new.cause or "none", outcome).inc()
            if outcome == "escalated":
                self.escalations.labels(channel, symptom).inc()
        if ending.rated:
            self.feedback.labels(symptom, "yes" if new.helpful else "no").inc()

    def exposition(self) -> bytes:
        shared = os.environ.get(SHARED_DIR)
        if not shared:
            return generate_latest(self.registry)
        every_process = CollectorRegistry(auto_describe=True)
        MultiProcessCollector(every_process, path=shared)
        every_process.register(self.gates)
        return generate_latest(every_process)


# prometheus_client's variable for the directory of the processes' metric files.
SHARED_DIR = "PROMETHEUS_MULTIPROC_DIR"


def share_between_processes(directory: str) -> None:
    """In a process the supervisor forked, before any Metrics exist: keep every value in a file of
    `directory`, where /metrics on any worker reads them all."""
    os.environ[SHARED_DIR] = directory
    values.ValueClass = values.MultiProcessValue()


class _GateCollector(Collector):
    def __init__(self) -> None:
        self.gates: list[Gate] = []

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        in_use = GaugeMetricFamily("scim_help_admission_in_use", "Requests admitted and not finished, by gate.", labels=["gate"])
        waiting = GaugeMetricFamily("scim_help_admission_waiting", "Requests waiting for admission, by gate.", labels=["gate"])
        refused = CounterMetricFamily(
            "scim_help_admission_refused", "Requests refused over capacity (the platform delivers them again), by gate.", labels=["gate"]
        )
        for gate in self.gates:
            in_use.add_metric([gate.name], gate.in_use)
            waiting.add_metric([gate.name], gate.waiting)
            refused.add_metric([gate.name], gate.refused)
        yield from (in_use, waiting, refused)


class ObservedStore(Store):
    """Delegates everything to the real store; notices store failures (and recoveries)."""

    def __init__(self, inner: Store, metrics: Metrics):
        self.inner = inner
        self.metrics = metrics
        self.name = inner.name

    @contextmanager
    def _outage_noticed(self) -> Iterator[None]:
        """A StoreUnavailable raised inside sets `store_up` to 0 on its way out."""
        try:
            yield
        except StoreUnavailable:
            self.metrics.store_up.set(0)
            raise

    async def _call(self, coro):
        with self._outage_noticed():
            result = await coro
        self.metrics.store_up.set(1)
        return result

    async def load(self, key: str) -> str | None:
        return await self._call(self.inner.load(key))

    async def save(self, key: str, data: str, ttl: int) -> None:
        await self._call(self.inner.save(key, data, ttl))

    async def delete(self, key: str) -> None:
        await self._call(self.inner.delete(key))

    @asynccontextmanager
    async def lock(self, key: str, timeout: float = 10.0) -> AsyncIterator[None]:
        with self._outage_noticed():
            async with self.inner.lock(key, timeout):
                yield

    @asynccontextmanager
    async def hold(self, key: str, timeout: float = 10.0, *, claims: Sequence[str] = (), claim_ttl: int = 86400) -> AsyncIterator[Held]:
        with self._outage_noticed():
            async with self.inner.hold(key, timeout, claims=claims, claim_ttl=claim_ttl) as held:
                yield held

    async def claim(self, key: str, ttl: int) -> bool:
        return await self._call(self.inner.claim(key, ttl))

    async def claim_all(self, keys: Sequence[str], ttl: int) -> bool:
        return await self._call(self.inner.claim_all(keys, ttl))

    async def put_record(self, kind: str, key: str, data: str) -> None:
        await self._call(self.inner.put_record(kind, key, data))

    async def get_record(self, kind: str, key: str) -> str | None:
        return await self._call(self.inner.get_record(kind, key))

    async def delete_record(self, kind: str, key: str) -> None:
        await self._call(self.inner.delete_record(kind, key))

    def inbox(self, name: str) -> Inbox:
        return self.inner.inbox(name)

    async def records(self, kind: str) -> dict[str, str]:
        return await self._call(self.inner.records(kind))

    async def ping(self) -> bool:
        ok = await self.inner.ping()
        self.metrics.store_up.set(1 if ok else 0)
        return ok

    async def close(self) -> None:
        await self.inner.close()
