"""The Slack inbox: record, then acknowledge, then process — and recover what a dead process left.

    HTTP / Socket Mode handler   verify → check → put (the store's inbox) → 200 / socket ack
    this process                 processes the entry at once: bolt runs the listener to its end, the
                                 turn and its outbox are committed together, the messages are posted,
                                 `done` removes the entry and the outbox
    every SWEEP seconds          renews the leases of the entries in progress; takes over entries of
                                 processes that died (SIGKILL, OOM, a lost pod) and processes them

With processor processes (`serve --processors M`, role "record" here and "process" there) the split is
across processes: the HTTP workers only verify, record (unheld) and acknowledge, and ring the doorbell
(bot/doorbell.py); the processors claim entries oldest first, process them and sweep. A worker then never
runs a turn, so its acknowledgements never wait behind one, and the processors run at a lower CPU
priority than the workers (bot/workers.py): when the machine is short of CPU, answers are late, acks not.

A request is acknowledged only after `put` has returned: Slack does not deliver an event again once it has
had a 200 for it, so anything acknowledged must be on disk (SQLite) or in Redis first. When the store
cannot record it the answer is a 503, and Slack delivers it again later.

Above capacity at most MAX_BACKLOG acknowledged requests wait per process (bot/admission.py): a new one
waits up to BACKLOG_WAIT for room before its ack, else gets a 503 and Slack delivers it again; Slack's
last retry is always taken.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import TYPE_CHECKING, Any, Literal

from bot.admission import Gate, Release
from bot.channels.slack.core import OUTBOX, Job
from bot.doorbell import POLL
from bot.service import LEASE, Entry, Inbox, InboxFull, StoreUnavailable

if TYPE_CHECKING:
    from bot.channels.slack.app import SlackBot
    from bot.doorbell import Doorbell

log = logging.getLogger("scim_help.slack")

# Requests acknowledged but not yet finished, per process. Above capacity, Slack requests are acknowledged
# faster than they are answered; unbounded, that backlog grew by thousands of turns (~17 KB each: RSS 200–270
# MB in the closed-loop benchmark). At the bound a new request waits for room before its ack, so a client
# that sends back to back is slowed to the answer rate. 300 is more than a second of work for one worker;
# 1000 and then 500 let the closed-loop benchmark (200 clients back to back) peak at 160 and 154 MB per
# process on Redis, over the 150 MB target, now that the Teams SDK and the reader's model take more room
# (300: 146.5 MB, Slack at 500/s still acknowledged in 10 ms at p99).
MAX_BACKLOG = 300
# How long a request may wait for room. Slack gives up on an ack after 3 s and retries the event later.
BACKLOG_WAIT = 2.0
# Entries waiting in the store, all processes together, beyond which new requests are refused (Slack
# delivers them again): what a dead process can leave behind stays bounded.
INBOX_LIMIT = 20_000
# A request key (event id, signature) is remembered this long: longer than Slack's retries (about five
# minutes) and its 5-minute signature window.
SEEN_TTL = 3600
# How often leases are renewed and dead processes' entries looked for; at most RECLAIM entries taken over
# per sweep.
SWEEP = 2.0
RENEW_EVERY = LEASE / 3
RECLAIM = 100
# A processing failure (the store unreachable) is tried again after RETRY_DELAY seconds, doubling.
RETRY_DELAY = 1.0

# Entries waiting for the processors (all workers together) beyond which a new request is refused and Slack
# delivers it again. Slack retries a refused event after about a minute, so anything the processors will
# reach sooner is better answered late: 10,000 is about 30 s of their work on the 2-core VM (300-400
# answered/s). Unbounded (the inbox's 20,000), a closed-loop burst acknowledged at ~3,000/s filled the inbox
# and the answers trailed by a minute; at 2,000 the 500/s phase of the benchmark reached the bound on a slow
# VM and the refusals, counted on every recording and delivered again, held SQLite's ack p99 at 156 ms.
# Slack's last retry is always taken.
RECORDED_BACKLOG = 10_000
# Entries a processor holds at once (claimed, in progress). Small, so that processors share the work and
# an entry a processor cannot start soon is left for another; the runtime admits fewer turns still.
IN_HAND = 32
# A processor claims when at least this many entries fit (or it holds none): one claim per batch of
# finished entries, not one store round trip per entry.
CLAIM_BATCH = 8

Outcome = Literal["recorded", "repeat", "busy", "unavailable"]
# inline: record and process here (one process, or workers without processors); record: record only, for
# the processors; process: claim and process what the workers recorded (a processor process).
Role = Literal["inline", "record", "process"]


class SlackInbox:
    def __init__(self, bot: SlackBot, inbox: Inbox, gate: Gate, role: Role = "inline", doorbell: Doorbell | None = None) -> None:
        self.bot = bot
        self.inbox = inbox
        self.gate = gate
        self.role = role
        self.doorbell = doorbell
        self._work = asyncio.Event()
        self._claimer: asyncio.Task[None] | None = None
        self._live: dict[str, Job] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._sweeper: asyncio.Task[None] | None = None
        self._renewed = 0.0
        self._stopping = False

    # ---- the handler's side ----------------------------------------------------------------------

    async def accept(self, key: str, payload: dict[str, Any], *, last_chance: bool) -> Outcome:
        """Record the request and start processing it (role "record": ring the processors instead); what to
        answer the platform. Recording for the processors, the gate bounds only the requests being recorded:
        what waits for them is in the store and bounded there (RECORDED_BACKLOG)."""
        release = None if last_chance else await self.gate.enter()
        if release is None and not last_chance:
            return "busy"
        for_processors = self.role == "record"
        limit = RECORDED_BACKLOG if for_processors and not last_chance else INBOX_LIMIT
        entry = None
        try:
            entry = await self.inbox.put(key, json.dumps(payload), seen_ttl=SEEN_TTL, limit=limit, held=not for_processors)
        except InboxFull:
            log.warning("slack inbox full: request refused for Slack to deliver again", extra={"limit": limit})
            return "busy"
        except (StoreUnavailable, TimeoutError, OSError) as exc:
            log.warning("slack request not recorded: store unavailable", extra={"error": type(exc).__name__})
            return "unavailable"
        finally:
            if release is not None and (entry is None or for_processors):
                release()
        if entry is None:
            return "repeat"
        if not for_processors:
            self._spawn(entry, release)
        elif self.doorbell is not None:
            self.doorbell.ring()
        return "recorded"

    # ---- processing ------------------------------------------------------------------------------

    def _spawn(self, entry: Entry, release: Release | None) -> None:
        job = Job(entry)
        self._live[entry.id] = job
        task = asyncio.create_task(self._run(job, release), name=f"slack-entry-{entry.id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, job: Job, release: Release | None) -> None:
        delay = RETRY_DELAY
        try:
            while not await self._attempt(job) and not self._stopping:
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
                job.entry.attempts += 1
                job.retry_later = False
        finally:
            self._live.pop(job.entry.id, None)
            if release is not None:
                release()
            self._work.set()  # room for a processor to claim more

    async def _attempt(self, job: Job) -> bool:
        """True when the entry is finished with (done, or dropped after an error that retrying won't fix)."""
        try:
            await self.bot.process(job)
        except (StoreUnavailable, TimeoutError, OSError) as exc:
            log.warning("slack entry postponed: store unavailable", extra={"error": type(exc).__name__, "attempt": job.entry.attempts})
            return False
        except Exception as exc:  # a bug must not retry forever
            log.error("slack entry failed", extra={"error": type(exc).__name__, "attempt": job.entry.attempts})
        if job.retry_later:
            return False
        try:
            await self.inbox.done(job.entry, drop=[(OUTBOX, job.entry.id)] if job.outboxed else [])
        except (StoreUnavailable, TimeoutError, OSError) as exc:
            # Processed but still recorded: the next attempt finds the outbox and what Slack already has.
            log.warning("slack entry not cleared: store unavailable", extra={"error": type(exc).__name__})
            return False
        return True

    # ---- leases and recovery ---------------------------------------------------------------------

    def start(self) -> None:
        """inline and process: sweep (and a processor claims); record: nothing runs here."""
        if self.role == "record":
            return
        if self._sweeper is None:
            self._sweeper = asyncio.create_task(self._sweep_forever(), name="slack-inbox-sweep")
        if self.role == "process" and self._claimer is None:
            if self.doorbell is not None:
                self.doorbell.listen(asyncio.get_running_loop(), self._work.set)
            self._claimer = asyncio.create_task(self._claim_forever(), name="slack-inbox-claim")

    async def _claim_forever(self) -> None:
        """Claim what the workers recorded, oldest first, while there is room; then wait for the doorbell,
        for room, or POLL seconds."""
        while not self._stopping:
            room = IN_HAND - len(self._live)
            if room >= CLAIM_BATCH or not self._live:
                self._work.clear()  # before looking: a ring during the claim is not lost
                try:
                    taken = await self.inbox.claim(room)
                except (StoreUnavailable, TimeoutError, OSError) as exc:
                    log.debug("slack inbox claim skipped", extra={"error": type(exc).__name__})
                    await asyncio.sleep(RETRY_DELAY)
                    continue
                except Exception:  # the claimer must keep running
                    log.exception("slack inbox claim failed")
                    await asyncio.sleep(RETRY_DELAY)
                    continue
                for entry in taken:
                    self._spawn(entry, None)
                if len(taken) == room:
                    continue  # more may be waiting: look again when there is room
            try:
                await asyncio.wait_for(self._work.wait(), POLL)
            except TimeoutError:
                pass

    async def _sweep_forever(self) -> None:
        while not self._stopping:
            try:
                await self.sweep()
            except (StoreUnavailable, TimeoutError, OSError) as exc:
                log.debug("slack inbox sweep skipped", extra={"error": type(exc).__name__})
            except Exception:  # the sweeper must keep running
                log.exception("slack inbox sweep failed")
            await asyncio.sleep(SWEEP)

    async def sweep(self) -> int:
        """Renew our leases when due; take over entries of dead processes. Returns how many were taken."""
        now = time.monotonic()
        due = now - self._renewed >= RENEW_EVERY
        if due:
            self._renewed = now
        await self.inbox.renew([job.entry for job in self._live.values()] if due else [])
        room = RECLAIM - len(self._live)
        if room <= 0 or self._stopping:
            return 0
        taken = await self.inbox.reclaim(room)
        if taken:
            log.info("slack inbox: taking over entries of a stopped process", extra={"entries": len(taken)})
        for entry in taken:
            self._spawn(entry, None)
        return len(taken)

    async def stop(self, timeout: float) -> None:
        """Stop taking over entries; let the ones in progress finish (up to `timeout`). Whatever is left
        stays recorded and is taken over by another process or after the restart."""
        self._stopping = True
        if self._claimer is not None:
            if self.doorbell is not None:
                self.doorbell.stop_listening(asyncio.get_running_loop())
            self._claimer.cancel()
            await asyncio.gather(self._claimer, return_exceptions=True)
        if self._sweeper is not None:
            self._sweeper.cancel()
            await asyncio.gather(self._sweeper, return_exceptions=True)
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.inbox.close()

    @property
    def in_progress(self) -> int:
        return len(self._live)
