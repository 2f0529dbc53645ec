"""The server's secret key: it signs web chat conversation ids and keys the hashes that stand for them.

From SCIM_HELP_SECRET_KEY when set (replicas that do not share a data dir must share this); otherwise a
random key created once in SCIM_HELP_DATA_DIR/secret.key (0600, the directory 0700) and read from there
by every later start and every worker. Changing the key makes every web chat conversation id invalid:
those admins start a new conversation.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

from bot.private import FILE_MODE, private_dir, private_file
from bot.settings import Settings

KEY_FILE = "secret.key"


class Keyed:
    """HMAC-SHA256 under the server key, one `purpose` string per use so no two uses share a value."""

    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("the secret key must be at least 16 bytes")
        self._key = key

    def digest(self, purpose: str, *parts: bytes | str) -> bytes:
        mac = hmac.new(self._key, purpose.encode(), hashlib.sha256)
        for part in parts:
            data = part.encode("utf-8", "surrogatepass") if isinstance(part, str) else part
            mac.update(len(data).to_bytes(4, "big"))
            mac.update(data)
        return mac.digest()


def load_key(settings: Settings) -> Keyed:
    if settings.secret_key is not None and settings.secret_key.get_secret_value():
        return Keyed(settings.secret_key.get_secret_value().encode())
    return Keyed(_data_dir_key(settings.data_dir))


def _data_dir_key(data_dir: Path) -> bytes:
    private_dir(data_dir)
    path = data_dir / KEY_FILE
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        text = ""
    if len(text) >= 32:
        private_file(path)  # tighten one left readable
        return text.encode()
    # Created with O_EXCL: of two workers starting at once, one writes and the other reads its key.
    candidate = secrets.token_hex(32)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except FileExistsError:
        return _wait_for_key(path)
    with os.fdopen(fd, "w") as f:
        f.write(candidate + "\n")
    private_file(path)
    return candidate.encode()


def _wait_for_key(path: Path) -> bytes:
    import time

    for _ in range(100):
        text = path.read_text().strip()
        if len(text) >= 32:
            return text.encode()
        time.sleep(0.01)
    raise RuntimeError(f"{path} exists but holds no key; remove it or set SCIM_HELP_SECRET_KEY")
