"""`scim-help replay` and `scim-help chat` as other tools and people use them: real subprocesses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence
from typing import Any

import pytest

# Every test here starts `scim-help` as a subprocess (a few seconds each).
pytestmark = pytest.mark.slow

REPLY_KEYS = {"replies", "phase", "symptom", "probing", "cause", "asking", "ticket"}
PHASES = {"triage", "clarifying", "checking", "resolving", "escalating", "closed", "off-topic"}
TICKET_KEYS = {"account", "idp", "upns", "groups", "symptom", "cause", "steps", "body"}


def _env(tmp_path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SCIM_HELP_", "SLACK_", "Microsoft"))}
    env["SCIM_HELP_DATA_DIR"] = str(tmp_path / "data")
    return env


def replay(lines: Sequence[dict[str, Any] | str], tmp_path, *args: str) -> list[dict[str, Any]]:
    stdin = "".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines)
    proc = subprocess.run(
        [sys.executable, "-m", "bot.cli", "replay", *args],
        input=stdin, capture_output=True, text=True, timeout=120, env=_env(tmp_path), cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    out = [json.loads(line) for line in proc.stdout.splitlines()]
    for item in out:
        assert REPLY_KEYS <= set(item)
        assert item["phase"] in PHASES
        for r in item["replies"]:
            assert set(r) == {"text", "choices"}
            for c in r["choices"]:
                assert set(c) == {"id", "label"}
    return out


def test_replay_one_line_out_per_line_in_through_to_the_ticket(tmp_path):
    turns = [
        {"choice": "cannot-enable"},
        {"choice": "enable-error:yes"},
        {"text": "Contoso Ltd, account 4711"},
        {"text": "Okta"},
        {"text": "jane.doe@contoso.com, john@contoso.com"},
        {"text": "Cato-Users, Sales"},
        {"choice": "helpful:yes"},
    ]
    out = replay(turns, tmp_path)
    assert len(out) == len(turns)
    assert out[0]["phase"] == "checking" and out[0]["symptom"] == "cannot-enable"
    assert out[0]["probing"] == "account-requirements"
    assert out[1]["cause"] == "account-requirements" and out[1]["phase"] == "escalating"
    assert out[1]["asking"] == "account"
    assert out[2]["asking"] == "idp"
    assert out[3]["asking"] == "upns"
    assert out[4]["asking"] == "groups"
    final = out[5]
    assert final["phase"] == "closed" and final["asking"] is None
    t = final["ticket"]
    assert set(t) == TICKET_KEYS
    assert t["account"] == "Contoso Ltd (4711)"  # name and number, normalised
    assert t["idp"] == "okta"
    assert t["upns"] == ["jane.doe@contoso.com", "john@contoso.com"]
    assert t["groups"] == ["Cato-Users", "Sales"]
    assert t["symptom"] == "cannot-enable" and t["cause"] == "account-requirements"
    assert t["steps"] and set(t["steps"][0]) == {"check", "answer"}
    assert "Account ID Configuration - Email" in t["body"]
    assert out[6]["phase"] == "closed" and out[6]["ticket"] is None


def test_replay_while_clarifying_choice_ids_are_symptom_ids(tmp_path):
    out = replay([{"choice": "cmd:restart"}], tmp_path)
    ids = [c["id"] for r in out[0]["replies"] for c in r["choices"]]
    assert ids == [
        "cannot-enable", "initial-provisioning-fails", "users-not-working", "additional-users-missing", "updates-not-reflected",
    ]


def test_replay_bad_lines_still_get_exactly_one_line(tmp_path):
    out = replay(["this is not json", '["a list"]', {"text": 5}, {"nothing": True}, {"choice": "users-not-working"}], tmp_path)
    assert len(out) == 5
    for item in out[:4]:
        assert "error" in item and item["replies"]
    assert out[4]["phase"] == "checking" and out[4]["symptom"] == "users-not-working"


def test_replay_off_topic(tmp_path):
    out = replay([{"text": "can someone reset my password for the wifi?"}], tmp_path)
    assert out[0]["phase"] == "off-topic" and out[0]["symptom"] is None


def test_replay_persists_and_resumes_with_a_named_conversation(tmp_path):
    first = replay([{"choice": "users-not-working"}], tmp_path, "--conversation", "resume-me")
    assert first[0]["probing"] == "missing-attributes"
    second = replay([{"choice": "email-field:empty"}], tmp_path, "--conversation", "resume-me")
    assert second[0]["cause"] == "missing-attributes"


def test_chat_works_over_a_pipe_with_numbered_choices(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "bot.cli", "chat"],
        input="1\nyep\n", capture_output=True, text=True, timeout=120, env=_env(tmp_path), cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    # The greeting numbers the symptoms; "1" picks the first, "yep" answers its check in free text.
    assert "[1] SCIM provisioning cannot be enabled" in out
    assert "Error shown when enabling SCIM" in out
    assert "Where to look: Access › Directory Services › SCIM" in out
    assert "Cause found:** The account does not meet the requirements" in out
