"""The dispatcher's small state files: where they live, how they are written and read.

The journal of outcomes the database did not take, the ledger of received messages
between commit and delete, and the inbox spools of SMPP, GoIP and Yeastar are state
that must survive a reboot: they live in ``[dispatcher] state_dir`` (default
``/var/lib/smss``), never beside the lock file in ``/run``.  Each file is created
0600 whatever the umask (it holds message texts); an append is fsynced; a file
replaced or created is followed by an fsync of its directory, so the new name
survives a power cut too.  A line a crash tore (or any line that cannot be read) is
skipped with a warning and kept in ``FILE.unreadable`` for a person to look at, so
one bad line never stops the dispatcher.

Older versions kept the journal and the ledger next to the lock file; ``legacy``
names that place so a file left there is applied once after an upgrade.
"""

from __future__ import annotations

import logging
import os
from typing import Callable, List, Sequence, TypeVar

log = logging.getLogger(__name__)

DEFAULT_STATE_DIR = "/var/lib/smss"
FILE_MODE = 0o600
DIR_MODE = 0o750

T = TypeVar("T")


def state_path(config, name: str) -> str:
    """``name`` in the configured state directory."""
    return os.path.join(config.get("dispatcher", "state_dir"), name)


def legacy(old: str, new: str) -> str:
    """``old`` unless it is the same file as ``new`` (then there is nothing to adopt)."""
    return "" if not old or os.path.abspath(old) == os.path.abspath(new) else old


def fsync_dir(path: str) -> None:
    """Make the directory entry of ``path`` (a creation, rename or removal) durable."""
    folder = os.path.dirname(os.path.abspath(path))
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems cannot sync a directory; the data itself is synced
    finally:
        os.close(fd)


def _make_dir(path: str) -> None:
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        os.makedirs(folder, mode=DIR_MODE, exist_ok=True)


def open_private(path: str, flags: int) -> int:
    """``os.open`` of a state file, created 0600 (and made 0600 if it was wider)."""
    _make_dir(path)
    fd = os.open(path, flags | os.O_CREAT | os.O_CLOEXEC, FILE_MODE)
    try:
        if os.fstat(fd).st_mode & 0o077:
            os.fchmod(fd, FILE_MODE)
    except OSError:
        os.close(fd)
        raise
    return fd


def append_line(path: str, line: str) -> None:
    """Append one line and fsync it (and the directory when the file is new)."""
    append_lines(path, [line])


def append_lines(path: str, lines: Sequence[str]) -> None:
    """Append lines with one write and one fsync (and the directory's when the file is
    new)."""
    existed = os.path.exists(path)
    fd = open_private(path, os.O_WRONLY | os.O_APPEND)
    try:
        data = "".join(line.rstrip("\n") + "\n" for line in lines).encode("utf-8")
        while data:
            data = data[os.write(fd, data):]
        os.fsync(fd)
    finally:
        os.close(fd)
    if not existed:
        fsync_dir(path)


def replace(path: str, lines: Sequence[str], temporary_suffix: str = ".tmp") -> None:
    """Put a file with these lines in place atomically: written, fsynced, renamed,
    directory fsynced."""
    temporary = path + temporary_suffix
    fd = open_private(temporary, os.O_WRONLY | os.O_TRUNC)
    try:
        data = "".join(line.rstrip("\n") + "\n" for line in lines).encode("utf-8")
        while data:
            data = data[os.write(fd, data):]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temporary, path)
    fsync_dir(path)


def remove(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        return
    fsync_dir(path)


def read_lines(path: str, parse: Callable[[str], T]) -> List[T]:
    """Each non-empty line of ``path`` through ``parse``; a line ``parse`` refuses
    (ValueError, KeyError, TypeError) is logged, copied to ``path.unreadable`` and
    skipped.  A missing file reads as no lines."""
    items: List[T] = []
    try:
        handle = open(path, "rb")
    except FileNotFoundError:
        return items
    with handle:
        for number, raw in enumerate(handle, 1):
            text = raw.decode("utf-8", "replace")
            if not text.strip():
                continue
            try:
                items.append(parse(text))
            except (ValueError, KeyError, TypeError) as exc:
                log.warning("%s line %d cannot be read (%s); skipped, kept in %s.unreadable",
                            path, number, exc, path)
                try:
                    append_line(path + ".unreadable", text)
                except OSError as error:
                    log.error("cannot keep the unreadable line aside: %s", error)
    return items
