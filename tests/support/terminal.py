"""Reading a program's pseudo-terminal in tests: wait until it prints something, with a deadline."""

from __future__ import annotations

import os
import select
import time


def read_until(fd: int, needle: bytes, timeout: float = 60.0) -> bytes:
    """Everything the program wrote on `fd` up to and including `needle` (fails after `timeout` s)."""
    out = b""
    deadline = time.monotonic() + timeout
    while needle not in out:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"timed out waiting for {needle!r}; got {out[-800:]!r}")
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
    return out
