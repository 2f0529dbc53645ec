"""`scim-help chat` at a real (pseudo-)terminal: a multi-line paste is one message, not one turn per line."""

from __future__ import annotations

import asyncio
import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest

from bot.state import State
from bot.store.sqlite import SQLiteStore
from tests.support.terminal import read_until

ROOT = Path(__file__).resolve().parent.parent


def _chat(tmp_path: Path, conversation: str, pastes: list[bytes]) -> State:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SCIM_HELP_", "SLACK_", "Microsoft"))}
    env["SCIM_HELP_DATA_DIR"] = str(tmp_path / "data")
    env["PYTHONPATH"] = str(ROOT)
    main, child = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot.cli", "chat", "--conversation", conversation],
        stdin=child, stdout=child, stderr=child, env=env, cwd=tmp_path, close_fds=True,
    )
    os.close(child)
    try:
        read_until(main, b"you> ")
        for paste in pastes:
            os.write(main, paste)  # one burst, as a terminal delivers a paste
            read_until(main, b"you> ")
        os.write(main, b"quit\n")
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(main)

    async def load() -> State:
        store = SQLiteStore(tmp_path / "data" / "scim-help.sqlite3")
        try:
            raw = await store.load(conversation)
        finally:
            await store.close()
        assert raw is not None
        return State.model_validate_json(raw)

    return asyncio.run(load())


@pytest.mark.parametrize(
    "paste",
    [
        b"Provisioning log for jane@contoso.com:\nStatus: Skipped\nSkip reason = NotEffectivelyEntitled\n",
        b"\x1b[200~Provisioning log for jane@contoso.com:\nStatus: Skipped\nSkip reason = NotEffectivelyEntitled\x1b[201~\n",
    ],
    ids=["burst", "bracketed"],
)
def test_a_multi_line_paste_is_one_message(tmp_path, paste):
    state = _chat(tmp_path, "terminal:paste", [paste])
    admin = [line.text for line in state.transcript if line.who == "admin"]
    assert len(admin) == 1, admin
    assert "NotEffectivelyEntitled" in admin[0] and "Provisioning log" in admin[0]
    assert state.turns == 2  # the greeting, then the paste


def test_lines_typed_one_by_one_stay_separate_messages(tmp_path):
    state = _chat(tmp_path, "terminal:typed", [b"users-not-working please\n", b"help\n"])
    admin = [line.text for line in state.transcript if line.who == "admin"]
    assert len(admin) == 2
