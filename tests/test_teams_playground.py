"""Teams in Microsoft's own client: the Microsoft 365 Agents Playground (npm `@microsoft/m365agentsplayground`)
emulates Teams locally, without Azure, and talks to `scim-help serve` over `/api/messages` like Teams does.
tests/playground/drive.mjs clicks through it in headless Chromium (Debian's, through Playwright): the
welcome card, a typed report, a card click that moves the conversation on and updates the card, and the
hand-off card in the team's channel (with a markdown link typed as the account, which must stay text).

The Node packages are pinned in tests/playground/package-lock.json; `.ci/run` installs them with `npm ci`,
and this test does so itself when they are missing. Without node, npm or chromium it skips — except in CI
(CI set), where it fails instead.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from pathlib import Path
from typing import NoReturn

import pytest

from tests.support.procs import ServerProcess, base_env, free_port, wait_until

ROOT = Path(__file__).resolve().parent.parent
PLAYGROUND = ROOT / "tests" / "playground"
CLI = PLAYGROUND / "node_modules" / "@microsoft" / "m365agentsplayground" / "cli.js"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
# The conversation id the Playground gives its team ("My Team", General channel) when it installs the bot.
PLAYGROUND_TEAM = "team-id"
STEPS = ["welcome card", "bot hears from the escalation channel", "typed report", "card click moves the conversation on", "hand-off card"]


def _unavailable(why: str) -> NoReturn:
    if os.environ.get("CI"):
        pytest.fail(f"the Agents Playground test must run in CI: {why}")
    pytest.skip(why)


@pytest.fixture(scope="module")
def node() -> str:
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        _unavailable("node and npm are needed for the Agents Playground")
    if not Path(CHROMIUM).exists():
        _unavailable(f"no Chromium at {CHROMIUM}")
    if not CLI.exists() or not (PLAYGROUND / "node_modules" / "playwright-core").exists():
        done = subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=PLAYGROUND, capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            _unavailable(f"npm ci in tests/playground failed: {done.stderr[-2000:]}")
    return node


def test_teams_conversation_in_the_agents_playground(node: str, tmp_path: Path):
    env = base_env(tmp_path / "data", SCIM_HELP_TEAMS_ESCALATION_CHANNEL=PLAYGROUND_TEAM)
    server = ServerProcess(env, cwd=tmp_path).start()
    port = free_port()
    log = open(tmp_path / "playground.log", "wb")
    playground = subprocess.Popen(
        [node, str(CLI), "-e", f"{server.url}/api/messages", "-c", "msteams", "-p", str(port), "--disable-telemetry"],
        cwd=PLAYGROUND,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_until(lambda: b"Listening on" in (tmp_path / "playground.log").read_bytes(), 60, what="the Agents Playground to listen")
        shots = tmp_path / "screenshots"
        shots.mkdir()
        drive = subprocess.run(
            [node, "drive.mjs", f"http://localhost:{port}/", str(shots)],
            cwd=PLAYGROUND,
            capture_output=True,
            text=True,
            timeout=300,
            env={**os.environ, "CHROMIUM": CHROMIUM},
        )
        steps = [json.loads(line) for line in drive.stdout.splitlines() if line.startswith("{")]
        detail = f"steps: {steps}\nstderr: {drive.stderr[-2000:]}\nscreenshots: {shots}\nserver log:\n{server.log()[-3000:]}"
        assert [s["step"] for s in steps if s["ok"]] == STEPS, detail
        assert drive.returncode == 0, detail
        assert steps[-1]["injected"] == 0
        logged = server.log()
        assert "ticket posted to the escalation channel" in logged
        assert " ERROR " not in logged and "Traceback" not in logged, logged[-3000:]
        # No line per outgoing request (httpx, under the Teams SDK, logs each at INFO with the conversation id).
        assert '"logger": "httpx"' not in logged, logged[-3000:]
    finally:
        try:
            os.killpg(playground.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        playground.wait(10)
        log.close()
        server.cleanup()
