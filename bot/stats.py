"""`scim-help stats [--json]`: what the conversations achieved, read from the outcome records the engine
writes at the end of every conversation episode (`store.records("outcome")`, store chosen by settings).

Per symptom and per cause: conversations, resolved, escalated, cancelled, helpful rate (share of "yes"
among the conversations whose feedback question was answered) and mean questions-to-cause (check
questions asked before a cause was named; conversations that never reached a cause are left out).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

NONE = "(none)"


@dataclass
class Row:
    conversations: int = 0
    resolved: int = 0
    answered: int = 0  # works as designed: explained, nothing to fix
    escalated: int = 0
    cancelled: int = 0
    off_topic: int = 0
    helpful_yes: int = 0
    helpful_answered: int = 0
    _questions: list[int] = field(default_factory=list)

    def add(self, rec: dict[str, Any]) -> None:
        self.conversations += 1
        outcome = rec.get("outcome")
        if outcome == "resolved":
            self.resolved += 1
        elif outcome == "answered":
            self.answered += 1
        elif outcome == "escalated":
            self.escalated += 1
        elif outcome == "cancelled":
            self.cancelled += 1
        elif outcome == "off-topic":
            self.off_topic += 1
        if rec.get("helpful") is not None:
            self.helpful_answered += 1
            self.helpful_yes += 1 if rec["helpful"] else 0
        q = rec.get("questions_to_cause")
        if isinstance(q, (int, float)) and not isinstance(q, bool):
            self._questions.append(int(q))

    @property
    def helpful_rate(self) -> float | None:
        return self.helpful_yes / self.helpful_answered if self.helpful_answered else None

    @property
    def mean_questions_to_cause(self) -> float | None:
        return sum(self._questions) / len(self._questions) if self._questions else None

    def to_json(self) -> dict[str, Any]:
        rate, mean = self.helpful_rate, self.mean_questions_to_cause
        return {
            "conversations": self.conversations,
            "resolved": self.resolved,
            "answered": self.answered,
            "escalated": self.escalated,
            "cancelled": self.cancelled,
            "off_topic": self.off_topic,
            "helpful_answered": self.helpful_answered,
            "helpful_rate": round(rate, 4) if rate is not None else None,
            "mean_questions_to_cause": round(mean, 3) if mean is not None else None,
        }


@dataclass
class Report:
    total: Row
    by_symptom: dict[str, Row]
    by_cause: dict[str, Row]
    skipped: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "total": self.total.to_json(),
            "by_symptom": {k: v.to_json() for k, v in self.by_symptom.items()},
            "by_cause": {k: v.to_json() for k, v in self.by_cause.items()},
            "skipped_records": self.skipped,
        }


def aggregate(raw_records: Iterable[str]) -> Report:
    total = Row()
    by_symptom: dict[str, Row] = {}
    by_cause: dict[str, Row] = {}
    skipped = 0
    for raw in raw_records:
        try:
            rec = json.loads(raw)
            if not isinstance(rec, dict):
                raise ValueError
        except (ValueError, TypeError):
            skipped += 1
            continue
        total.add(rec)
        by_symptom.setdefault(str(rec.get("symptom") or rec.get("topic") or NONE), Row()).add(rec)
        by_cause.setdefault(str(rec.get("cause") or NONE), Row()).add(rec)

    def ordered(rows: dict[str, Row]) -> dict[str, Row]:
        return dict(sorted(rows.items(), key=lambda kv: (kv[0] == NONE, -kv[1].conversations, kv[0])))

    return Report(total, ordered(by_symptom), ordered(by_cause), skipped)


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.0f}%"


def _mean(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}"


def format_text(report: Report) -> str:
    t = report.total
    if not t.conversations:
        return "No conversations recorded yet. Outcomes are written when a conversation ends (resolved, escalated or cancelled)."
    lines = [
        f"{t.conversations} conversation(s): {t.resolved} resolved, {t.escalated} escalated, {t.cancelled} cancelled"
        + (f", {t.answered} answered as designed" if t.answered else "")
        + (f", {t.off_topic} off-topic" if t.off_topic else "")
        + f"; helpful {_pct(t.helpful_rate)} of {t.helpful_answered} answered; "
        f"mean questions to cause {_mean(t.mean_questions_to_cause)}",
    ]
    for title, rows in (("symptom or topic", report.by_symptom), ("cause", report.by_cause)):
        width = max([len(title)] + [len(k) for k in rows]) + 2
        lines.append("")
        lines.append(
            f"{'by ' + title:<{width}}{'conversations':>14}{'resolved':>10}{'escalated':>11}{'helpful':>9}{'questions to cause':>20}"
        )
        for key, row in rows.items():
            lines.append(
                f"{key:<{width}}{row.conversations:>14}{row.resolved:>10}{row.escalated:>11}"
                f"{_pct(row.helpful_rate):>9}{_mean(row.mean_questions_to_cause):>20}"
            )
    if report.skipped:
        lines.append(f"\n({report.skipped} unreadable record(s) skipped)")
    return "\n".join(lines)


async def collect(settings: Any) -> Report:
    from bot.outcome import OUTCOME_KIND
    from bot.store import open_store

    store = open_store(settings)
    try:
        records = await store.records(OUTCOME_KIND)
    finally:
        await store.close()
    return aggregate(records.values())


def run_stats(args: argparse.Namespace) -> int:
    from bot.logs import setup_from_settings
    from bot.settings import SettingsError, load_settings
    from bot.store.base import StoreUnavailable

    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"scim-help: {exc}", file=sys.stderr)
        return 2
    setup_from_settings(settings)
    try:
        report = asyncio.run(collect(settings))
    except (StoreUnavailable, TimeoutError, OSError) as exc:
        where = settings.redis_url.split("@")[-1] if settings.store == "redis" else str(settings.sqlite_path)
        print(f"scim-help: cannot read outcomes from the {settings.store} store ({where}): {exc}", file=sys.stderr)
        return 1
    if getattr(args, "json", False):
        print(json.dumps(report.to_json(), indent=2))
    else:
        print(format_text(report))
    return 0
