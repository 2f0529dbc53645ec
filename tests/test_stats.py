"""`scim-help stats`: outcomes per symptom and per cause, read from a real SQLite store after real
conversations through the web API."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest
from aiohttp.test_utils import TestClient, TestServer

from bot.cli import main
from bot.server import build_app
from bot.stats import aggregate, format_text
from tests.test_server import closed_port, converse


@pytest.fixture(autouse=True)
def own_logging():
    yield
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_scim_help_handler", False):
            root.removeHandler(handler)


@pytest.fixture
def env_settings(settings, monkeypatch):
    """The CLI reads settings from the environment: point it at the test's SQLite data dir."""
    monkeypatch.setenv("SCIM_HELP_DATA_DIR", str(settings.data_dir))
    return settings


async def _run_conversations(make_runtime, bundle, monkeypatch) -> None:
    monkeypatch.setattr("bot.runtime.load_pack", lambda path=None: bundle)
    rt = make_runtime()
    client = TestClient(TestServer(build_app(rt)))
    await client.start_server()
    try:
        await converse(client, "cannot-enable", helpful=True)  # escalated, helpful
        await converse(client, "cannot-enable", helpful=False)  # escalated, not helpful
        await converse(client, "initial-provisioning-fails", fix=True, helpful=True)  # resolved, helpful
        await converse(client, "initial-provisioning-fails", fix=True, helpful=None)  # resolved, no feedback
        # Cancelled before any cause: counts as a conversation, not in questions-to-cause.
        resp = await client.post("/api/chat", json={})
        conversation = (await resp.json())["conversation"]
        await client.post("/api/chat", json={"conversation": conversation, "choice": "users-not-working"})
        resp = await client.post("/api/chat", json={"conversation": conversation, "text": "cancel"})
        assert (await resp.json())["phase"] == "closed"
    finally:
        await client.close()
        await rt.close()


async def test_stats_json_after_real_conversations(env_settings, make_runtime, bundle, monkeypatch, capsys):
    await _run_conversations(make_runtime, bundle, monkeypatch)
    capsys.readouterr()

    # The command runs its own event loop, as it does from a shell.
    assert await asyncio.to_thread(main, ["stats", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)

    total = report["total"]
    assert total["conversations"] == 5
    assert (total["resolved"], total["escalated"], total["cancelled"]) == (2, 2, 1)
    assert total["helpful_answered"] == 3 and total["helpful_rate"] == pytest.approx(2 / 3, abs=1e-3)

    enable = report["by_symptom"]["cannot-enable"]
    assert enable == {
        "conversations": 2,
        "resolved": 0,
        "answered": 0,
        "escalated": 2,
        "cancelled": 0,
        "off_topic": 0,
        "helpful_answered": 2,
        "helpful_rate": 0.5,
        "mean_questions_to_cause": 1.0,
    }
    initial = report["by_symptom"]["initial-provisioning-fails"]
    assert (initial["conversations"], initial["resolved"], initial["helpful_rate"]) == (2, 2, 1.0)
    assert initial["mean_questions_to_cause"] >= 1
    cancelled = report["by_symptom"]["users-not-working"]
    assert cancelled["cancelled"] == 1 and cancelled["mean_questions_to_cause"] is None

    assert report["by_cause"]["account-requirements"]["escalated"] == 2
    assert sum(row["resolved"] for row in report["by_cause"].values()) == 2
    assert report["by_cause"]["(none)"]["cancelled"] == 1


async def test_stats_text_table(env_settings, make_runtime, bundle, monkeypatch, capsys):
    await _run_conversations(make_runtime, bundle, monkeypatch)
    capsys.readouterr()
    assert await asyncio.to_thread(main, ["stats"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("5 conversation(s): 2 resolved, 2 escalated, 1 cancelled")
    assert "by symptom" in out and "by cause" in out and "questions to cause" in out
    row = next(line for line in out.splitlines() if line.startswith("cannot-enable "))
    assert row.split() == ["cannot-enable", "2", "0", "2", "50%", "1.0"]


def test_stats_on_an_empty_store(env_settings, capsys):
    assert main(["stats"]) == 0
    assert "No conversations recorded yet" in capsys.readouterr().out
    assert main(["stats", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["total"]["conversations"] == 0


def test_stats_when_the_store_is_down(env_settings, monkeypatch, capsys):
    monkeypatch.setenv("SCIM_HELP_STORE", "redis")
    monkeypatch.setenv("SCIM_HELP_REDIS_URL", f"redis://:hunter2@127.0.0.1:{closed_port()}/0")
    assert main(["stats"]) == 1
    err = capsys.readouterr().err
    assert "cannot read outcomes from the redis store" in err
    assert "hunter2" not in err and "Traceback" not in err


def test_stats_with_invalid_settings(env_settings, monkeypatch, capsys):
    monkeypatch.setenv("SCIM_HELP_STORE", "postgres")
    assert main(["stats"]) == 2
    assert "SCIM_HELP_STORE" in capsys.readouterr().err


def test_aggregate_skips_unreadable_records():
    report = aggregate(
        [
            json.dumps({"symptom": "s", "cause": "c", "outcome": "resolved", "helpful": True, "questions_to_cause": 2}),
            json.dumps({"symptom": "s", "cause": None, "outcome": "escalated", "helpful": None, "questions_to_cause": None}),
            "not json",
            "[1, 2]",
        ]
    )
    assert report.skipped == 2
    row = report.by_symptom["s"].to_json()
    assert row["conversations"] == 2 and row["helpful_rate"] == 1.0 and row["mean_questions_to_cause"] == 2.0
    assert "(2 unreadable record(s) skipped)" in format_text(report)
