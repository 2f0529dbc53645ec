"""What a person meets first on the command line: `--help` in whole sentences, `classify` saying what it
expects, and `chat` at a real terminal wrapping to the window at word boundaries and saying a title once."""

from __future__ import annotations

import io
import json
import os
import pty
import re
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from bot.cli import DESCRIPTION, main
from bot.events import Choice, Reply, Turn
from bot.terminal import _show, wrap
from tests.support.terminal import read_until

ROOT = Path(__file__).resolve().parent.parent
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def _squash(text: str) -> str:
    return " ".join(text.split())


def test_help_says_what_scim_help_is_in_whole_sentences(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--help"])
    assert done.value.code == 0
    out = _squash(capsys.readouterr().out)
    assert _squash(DESCRIPTION) in out
    assert DESCRIPTION.endswith(".") and "deferred so" not in out


def test_classify_lines_without_a_text_say_what_is_expected(monkeypatch, capsys):
    lines = ["{}", '{"text": 5}', "[1]", "not json", '{"text": "new hires never show up in Cato"}']
    monkeypatch.setattr(sys, "stdin", io.StringIO("\n".join(lines) + "\n"))
    assert main(["classify"]) == 0
    out = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(out) == len(lines)  # one line out per line in, errors included
    expected = 'expected {"text": "..."}'
    assert [o["error"] for o in out[:3]] == [expected] * 3
    assert out[3]["error"].startswith("not JSON") and out[3]["error"].endswith(expected)
    assert "error" not in out[4] and out[4]["symptom"] == "additional-users-missing"


# ---- the terminal ------------------------------------------------------------------------------------------


def _fixed_question() -> Turn:
    return Turn(
        conversation_id="terminal:t",
        phase="resolving",
        replies=[
            Reply(kind="resolution", title="Licences are used up", text="**Cause found:** Licences are used up.\nAssign more."),
            Reply(
                kind="question",
                title="Did that fix it?",
                text="Did that fix it? (It can take one provisioning cycle — about 40 minutes — or a Provision on demand to show.)",
                choices=[Choice(id="fixed:yes", label="Yes, fixed"), Choice(id="fixed:no", label="No, still broken")],
            )
        ],
    )


def test_a_title_the_text_opens_with_is_said_once_and_lines_wrap_at_words():
    out = io.StringIO()
    numbered = _show(_fixed_question(), out, ansi=False, width=40)
    text = out.getvalue()
    assert numbered == ["fixed:yes", "fixed:no"]
    assert text.count("Did that fix it?") == 1 and "[Did that fix it?]" not in text
    assert text.count("Licences are used up") == 1 and "**Cause found:** Licences are used up." in text
    assert all(len(line) <= 40 for line in text.splitlines()), text
    assert "Provision on demand" in _squash(text) and "about 40 minutes" in _squash(text)


def test_wrapping_keeps_numbers_hanging_long_words_whole_and_ticket_lines_as_they_are():
    step = "  2. Open Access > Directory Services > SCIM and copy the token again"
    assert wrap(step, 30).splitlines()[1].startswith("     ")  # under the text, not the number
    url = "https://cc.catonetworks.com/api/v1/scim/a-very-long-account-path/Users"
    assert url in wrap(f"Portal: {url}", 30).splitlines()
    body = "- Affected users: jane@contoso.com, john@contoso.com, sam@contoso.com, alex@contoso.com"
    assert wrap(body, 30, keep={body}) == body
    assert wrap(body, None) == body  # not a terminal: no wrapping at all


def _screen(raw: bytes) -> str:
    return ANSI.sub("", raw.decode("utf-8", "replace")).replace("\r", "")


def _number_of(screen: str, label: str) -> str:
    m = re.search(r"\[(\d+)\] " + re.escape(label.split()[0]), screen)
    assert m, f"no choice {label!r} in:\n{screen}"
    return m.group(1)


@pytest.mark.slow
def test_chat_in_a_narrow_terminal_wraps_at_words_and_asks_did_that_fix_it_once(tmp_path):
    import fcntl
    import termios

    cols = 52
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SCIM_HELP_", "SLACK_", "Microsoft"))}
    env.update(SCIM_HELP_DATA_DIR=str(tmp_path / "data"), PYTHONPATH=str(ROOT))
    env.pop("COLUMNS", None)
    main_fd, child = pty.openpty()
    fcntl.ioctl(child, termios.TIOCSWINSZ, struct.pack("HHHH", 40, cols, 0, 0))
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot.cli", "chat"], stdin=child, stdout=child, stderr=child, env=env, cwd=tmp_path, close_fds=True
    )
    os.close(child)
    screens: list[str] = []
    try:
        screens.append(_screen(read_until(main_fd, b"you> ")))
        # New users are not working -> the e-mail field is empty -> Entra: the cause, then "Did that fix it?"
        for label in ("New users are added to CMA", "Empty or invalid", "Microsoft Entra ID"):
            os.write(main_fd, _number_of(screens[-1], label).encode() + b"\n")
            screens.append(_screen(read_until(main_fd, b"you> ")))
        os.write(main_fd, b"quit\n")
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(main_fd)
    last = screens[-1]
    assert "Cause found:" in last
    assert last.count("Did that fix it?") == 1, last
    assert _squash(last).count("Attributes are missing in the IdP") == 1, last  # the cause's title, said once
    everything = "\n".join(screens)
    too_wide = [line for line in everything.splitlines() if len(line) > cols - 1 and " " in line.strip()]
    assert too_wide == [], too_wide
    # Wrapped at word boundaries: joined back, the sentences read whole.
    assert "It can take one provisioning cycle — about 40 minutes — or a Provision on demand to show." in _squash(last)
    assert "Which identity provider do you provision from? The steps differ between them." in _squash(screens[2])


def test_chat_over_a_pipe_is_not_wrapped():
    class Pipe(io.StringIO):
        def isatty(self) -> bool:
            return False

    from bot.terminal import terminal_width

    assert terminal_width(Pipe()) is None
