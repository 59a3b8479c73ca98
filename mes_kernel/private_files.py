"""Files that hold secrets (the SQLite database with its password and token hashes, the signing
key, the first admin's password, archive dumps): created readable by the kernel's account only.

Mode 0600 for files and 0700 for the folders the kernel creates for them, set when the file is
created (``os.open`` with the mode), never by a ``chmod`` after the bytes are written, so there is
no moment when another account could open it. A file found with looser bits (written by an
earlier version) is tightened. Folders that exist already are left as they are: the kernel does
not own ``.`` or ``/var/backups``.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

FILE_MODE = 0o600
DIR_MODE = 0o700
# SQLite creates these beside the database (with the database file's own permission bits).
SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")


def private_dir(path: Path) -> Path:
    """``path`` and its missing parents, the ones created here with mode 0700."""
    missing = []
    for folder in (path, *path.parents):
        if folder.exists():
            break
        missing.append(folder)
    for folder in reversed(missing):
        with contextlib.suppress(FileExistsError):  # another worker made it a moment ago
            folder.mkdir(mode=DIR_MODE)
            os.chmod(folder, DIR_MODE)  # mkdir's mode passes through the umask
    return path


def tighten(path: Path) -> None:
    """Take group and other permissions off an existing file (no-op when it is absent)."""
    with contextlib.suppress(FileNotFoundError):
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            os.chmod(path, mode & 0o700)


def private_file(path: Path) -> Path:
    """Create ``path`` empty with mode 0600 when it does not exist; tighten it when it does."""
    private_dir(path.parent)
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE))
    except FileExistsError:
        tighten(path)
    return path


def write_private(path: Path, content: str) -> None:
    """Write ``content`` into ``path`` (replacing it), the file 0600 from its first byte."""
    private_dir(path.parent)
    tighten(path)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(content)


def sqlite_file(database_url: str) -> Path | None:
    """The file of a ``sqlite`` URL; None for other databases and in-memory ones."""
    from sqlalchemy.engine import make_url

    url = make_url(database_url)
    if not url.drivername.startswith("sqlite"):
        return None
    database = url.database or ""
    if not database or database == ":memory:" or database.startswith("file:") or "mode=memory" in database:
        return None
    return Path(database)


def secure_sqlite(database_url: str) -> None:
    """Make the SQLite database file (and its ``-wal``/``-shm``/``-journal``) private before
    anything opens it: SQLite would create it with the umask's 0644, and gives its side files the
    database file's own bits."""
    path = sqlite_file(database_url)
    if path is None:
        return
    private_file(path)
    for suffix in SQLITE_SIDE_FILES:
        tighten(path.with_name(path.name + suffix))
