"""`./dev`: which extras each command installs (run needs only the runtime; test and lint their tools), and
that an install happens once per pyproject.toml change. Driven against a fake venv that records the calls,
so nothing is installed."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FAKE = '#!/bin/sh\nprintf "%s\\n" "$(basename "$0") $*" | tr "\\n" " " | sed "s/ $//" >> "$DEV_LOG"\necho >> "$DEV_LOG"\n'


@pytest.fixture
def dev(tmp_path: Path):
    """Run the project's `dev` from a copy of it and pyproject.toml, with a fake venv; returns the calls."""
    shutil.copy(ROOT / "dev", tmp_path / "dev")
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    for tool in ("python", "scim-help", "ruff", "mypy"):
        (venv / "bin" / tool).write_text(FAKE, encoding="utf-8")
        (venv / "bin" / tool).chmod(0o755)
    log = tmp_path / "calls.log"

    def run(*args: str) -> list[str]:
        log.write_text("", encoding="utf-8")
        env = {**os.environ, "SCIM_HELP_VENV": str(venv), "DEV_LOG": str(log)}
        subprocess.run(["bash", str(tmp_path / "dev"), *args], env=env, check=True, timeout=60, capture_output=True)
        return log.read_text(encoding="utf-8").splitlines()

    return run


def test_run_installs_the_runtime_only_and_serves(dev):
    calls = dev("run", "--port", "0")
    assert calls == ["python -m pip install --quiet -e .", "scim-help serve --port 0"]


def test_test_and_lint_install_their_extras(dev):
    assert dev("test", "-q")[0] == "python -m pip install --quiet -e .[test]"
    calls = dev("lint")
    assert calls[0] == "python -m pip install --quiet -e .[test,lint]"
    assert [c.split()[0] for c in calls[1:]] == ["python", "ruff", "mypy"]  # the paths are read, then both tools run


def test_test_runs_on_xdist_workers_and_passes_the_arguments_on(dev, monkeypatch):
    monkeypatch.delenv("SCIM_HELP_TEST_WORKERS", raising=False)  # the default, whatever the caller's shell says
    assert dev("test", "-q", "tests/test_engine.py")[-1] == "python -m pytest -n 4 --dist worksteal -q tests/test_engine.py"
    monkeypatch.setenv("SCIM_HELP_TEST_WORKERS", "0")
    assert dev("test", "-x")[-1] == "python -m pytest -n 0 --dist worksteal -x"


def test_an_install_happens_once_per_pyproject_change(dev, tmp_path):
    assert dev("run")[0].startswith("python -m pip install")
    assert dev("run") == ["scim-help serve"]
    assert dev("kb", "check") == ["scim-help kb check"]  # other commands need the runtime alone as well
    future = time.time() + 5
    os.utime(tmp_path / "pyproject.toml", (future, future))
    assert dev("run")[0].startswith("python -m pip install")
