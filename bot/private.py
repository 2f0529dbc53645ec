"""Files only this user can read: the data directory is 0700, the database and key files in it 0600,
whatever the umask (conversations hold ticket details; the key signs web chat ids).

SQLite creates a database's `-wal` and `-shm` files with the database file's own permissions, so a
database created here 0600 keeps its journal private too; files left by an older version are tightened
when they are opened.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

DIR_MODE = 0o700
FILE_MODE = 0o600


def private_dir(path: Path) -> None:
    """Create `path` (and its parents) if needed and make it 0700 when this user owns it."""
    path.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
    _tighten(path, DIR_MODE)


def private_file(path: Path) -> None:
    """Create `path` empty 0600 if it does not exist; make an existing one 0600 when this user owns it."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except FileExistsError:
        _tighten(path, FILE_MODE)
    else:
        os.close(fd)
        _tighten(path, FILE_MODE)  # O_CREAT's mode is filtered by the umask; an explicit chmod is not


def private_sqlite(db: Path) -> None:
    """The database file and, when they exist, its -wal/-shm/-journal files: 0600."""
    private_file(db)
    for suffix in ("-wal", "-shm", "-journal"):
        sibling = db.with_name(db.name + suffix)
        if sibling.exists():
            _tighten(sibling, FILE_MODE)


def _tighten(path: Path, mode: int) -> None:
    st = path.stat()
    if stat.S_IMODE(st.st_mode) != mode and st.st_uid == os.geteuid():
        os.chmod(path, mode)
