"""The project's one atomic write, of files and of folders, and the cleanup after killed writers.

A file or folder ``<root>/<name>`` is written into a hidden temporary sibling and moved into place
only when complete (``os.replace`` for a file, after an fsync; ``os.rename`` for a folder), so a
reader sees the old version or the complete new one, never a part, and an exception leaves
nothing behind. Every temporary sibling is named by one scheme (:func:`temp_name`)::

    .<name>.<kind>-<host>-<pid>-<random>     kind: "tmp" (being written) or "old" (being replaced)

so a later run can tell whose it is. Temporaries get the process umask (``open`` and
``os.mkdir``: 0644 files and 0755 folders under umask 022), not the 0600/0700 of ``tempfile``.

A SIGKILL skips every cleanup. A temporary is *stale*, and :func:`clean_stale` removes it, when its
writer is gone: on this host, its process no longer exists (or it has not changed for
:data:`STALE_LIVE_S`, in case the process id was reused); on another host, where that cannot be
told, it has not changed for :data:`STALE_AFTER_S` (a folder: nothing in its tree). A live
writer's temporaries are kept. Temporary files of earlier cache versions
(``.<name>.<host>.<pid>.<random>.tmp``) are recognised too.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Callable

#: Seconds without a change after which another host's temporary is stale.
STALE_AFTER_S = 600.0
#: Seconds without a change after which this host's temporary is stale although its process id
#: is alive (a reused id).
STALE_LIVE_S = 24 * 3600.0
KINDS = ("tmp", "old")

_NAME = re.compile(r"^\.(?P<name>.+)\.(?P<kind>tmp|old)-(?P<host>[A-Za-z0-9_-]*)-(?P<pid>\d+)-[0-9a-f]+$")
_EARLIER = re.compile(r"^\.(?P<name>.+)\.(?P<host>[^.]+)\.(?P<pid>\d+)\.[0-9a-f]+\.tmp$")


def this_host() -> str:
    """This host's name as it appears in temporary names (letters, digits, ``_`` and ``-``)."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", socket.gethostname())[:40]


def temp_name(name: str, kind: str = "tmp", pid: int | None = None, host: str | None = None) -> str:
    """The name of a temporary sibling of ``name`` owned by process ``pid`` (default: this one) on
    ``host`` (default: this host); ``kind`` is "tmp" (being written) or "old" (being replaced)."""
    if kind not in KINDS:
        raise ValueError(f"kind: unknown value {kind!r}; valid values are {list(KINDS)}")
    host = this_host() if host is None else host
    return f".{name}.{kind}-{host}-{os.getpid() if pid is None else int(pid)}-{secrets.token_hex(4)}"


def temp_path(path: Path | str, kind: str = "tmp", pid: int | None = None) -> Path:
    """The temporary sibling (:func:`temp_name`) that process ``pid`` writes ``path`` through."""
    path = Path(path)
    return path.with_name(temp_name(path.name, kind, pid))


@dataclass(frozen=True)
class TempName:
    """What a temporary's name tells: the target's name, its kind, and the writer's host and pid."""

    name: str
    kind: str
    host: str
    pid: int
    this_host: bool


def parse_temp(name: str) -> TempName | None:
    """The parts of a temporary's name (module docstring), or None for any other name."""
    m = _NAME.match(name)
    if m is not None:
        return TempName(m["name"], m["kind"], m["host"], int(m["pid"]), m["host"] == this_host())
    m = _EARLIER.match(name)
    if m is not None:
        here = socket.gethostname().replace(".", "-") or "host"
        return TempName(m["name"], "tmp", m["host"], int(m["pid"]), m["host"] == here)
    return None


def is_temp(name: str) -> bool:
    """Whether ``name`` is the name of a temporary sibling (of this or an earlier version)."""
    return parse_temp(name) is not None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def last_change(path: Path) -> float:
    """The newest mtime of ``path`` and, for a folder, of everything in its tree."""
    newest = os.lstat(path).st_mtime
    if path.is_dir() and not path.is_symlink():
        for sub, dirs, files in os.walk(path):
            for n in dirs + files:
                with contextlib.suppress(OSError):
                    newest = max(newest, os.lstat(os.path.join(sub, n)).st_mtime)
    return newest


def is_stale(path: Path | str, now: float | None = None) -> bool:
    """Whether ``path`` is a temporary whose writer is gone (module docstring)."""
    path = Path(path)
    tn = parse_temp(path.name)
    if tn is None:
        return False
    try:
        age = (time.time() if now is None else now) - last_change(path)
    except FileNotFoundError:  # finished meanwhile
        return False
    if tn.this_host:
        return not _pid_alive(tn.pid) or age > STALE_LIVE_S
    return age > STALE_AFTER_S


def clean_stale(root: Path | str) -> list[Path]:
    """Remove the stale temporary files and folders directly under ``root``; returns them."""
    root = Path(root)
    if not root.is_dir():
        return []
    now, gone = time.time(), []
    for p in root.iterdir():
        try:
            if not is_stale(p, now):
                continue
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            else:
                p.unlink()
        except OSError:  # vanished meanwhile (its writer finished), or not ours to remove
            continue
        gone.append(p)
    return gone


def atomic_write(path: Path | str, write: Callable[[BinaryIO], None]) -> Path:
    """Write the file ``path`` through ``write(fh)`` into a temporary sibling, fsync, then
    ``os.replace`` it into place. The temporary is removed when ``write`` raises."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path)
    try:
        with open(tmp, "wb") as fh:  # mode 0666 & ~umask
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path


def _no_replace(target: Path) -> None:
    if target.exists():
        raise FileExistsError(f"{target} already exists")


def atomic_folder(target: Path | str, fill: Callable[[Path], None], *, replace: bool = False,
                  check: Callable[[Path], None] | None = None) -> Path:
    """Build the folder ``target`` with ``fill(tmp)`` in a temporary sibling, then rename it into place.

    ``check(target)`` runs before ``fill`` and again just before the rename (another writer may
    have created ``target`` meanwhile) and raises to refuse; by default an existing ``target`` is
    refused (``FileExistsError``) unless ``replace``. An existing folder that is replaced is first
    moved aside to an "old" temporary, then deleted. Stale temporaries of killed runs in the same
    root are removed first. On any exception the temporary folder is removed. Returns ``target``.
    """
    target = Path(target)
    check = check or (lambda t: None if replace else _no_replace(t))
    check(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    clean_stale(target.parent)
    tmp = temp_path(target)
    os.mkdir(tmp)  # mode 0777 & ~umask
    try:
        fill(tmp)
        old = None
        if target.exists():
            check(target)
            old = temp_path(target, "old")
            os.replace(target, old)
        os.rename(tmp, target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target
