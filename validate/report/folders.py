"""Report folders written atomically, with ordinary permissions, never replaced by surprise.

A folder ``<root>/<name>`` is filled inside a hidden temporary sibling
``<root>/.<name>.tmp-<host>-<pid>-<random>`` and renamed into place only when complete, so an
exception leaves no half-written report. The temporary folder is made with ``os.mkdir``, so it
gets the process umask (0755 under umask 022), not the 0700 of ``tempfile.mkdtemp``.

A temporary folder left behind by a killed run (SIGKILL skips every ``finally``) is removed by
the next write into the same root when it is stale: its owner process is gone (same host), or,
when that cannot be told (another host), it has not changed for :data:`STALE_AFTER_S` seconds.
A concurrent run's temporary folder is left alone.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import socket
import time
from pathlib import Path
from typing import Callable

#: Age (seconds since the last change) after which a temporary folder of another host is stale.
STALE_AFTER_S = 600.0

_TMP = re.compile(r"^\.(?P<name>.+)\.(?P<kind>tmp|old)-(?P<host>[A-Za-z0-9_-]*)-(?P<pid>\d+)-[0-9a-f]+$")


class FolderExistsError(FileExistsError, ValueError):
    """A report folder exists and was not to be replaced (also a ValueError: bad ``--out`` /
    ``--name`` input, which the CLI reports with exit code 2)."""


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "_", socket.gethostname())[:40]


def temp_name(name: str, kind: str = "tmp", pid: int | None = None, host: str | None = None) -> str:
    """The name of a temporary sibling of folder ``name`` owned by process ``pid`` (default this
    one) on ``host`` (default this one); ``kind`` is "tmp" (being filled) or "old" (being replaced)."""
    host = _host() if host is None else host
    return f".{name}.{kind}-{host}-{os.getpid() if pid is None else pid}-{secrets.token_hex(4)}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _last_change(path: Path) -> float:
    """The newest mtime in ``path``'s tree (a run filling its folder keeps touching it)."""
    newest = path.stat().st_mtime
    for sub, dirs, files in os.walk(path):
        for n in dirs + files:
            try:
                newest = max(newest, os.lstat(os.path.join(sub, n)).st_mtime)
            except OSError:
                pass
    return newest


def is_stale(path: Path, now: float | None = None) -> bool:
    """Whether ``path`` is a temporary report folder whose writer is gone (module docstring)."""
    m = _TMP.match(path.name)
    if m is None or not path.is_dir():
        return False
    if m["host"] == _host():
        return not _pid_alive(int(m["pid"]))
    now = time.time() if now is None else now
    return now - _last_change(path) > STALE_AFTER_S


def clean_stale(root: Path | str) -> list[Path]:
    """Remove the stale temporary report folders directly under ``root``; returns them."""
    root = Path(root)
    if not root.is_dir():
        return []
    gone = []
    for p in root.iterdir():
        try:
            if is_stale(p):
                shutil.rmtree(p, ignore_errors=True)
                gone.append(p)
        except OSError:  # vanished meanwhile (its owner finished)
            pass
    return gone


def check_target(target: Path | str, overwrite: bool = False) -> Path:
    """Raise :class:`FolderExistsError` (a ``FileExistsError`` and a ``ValueError``) naming
    ``target`` when it exists and ``overwrite`` is false.

    Also rejects a target whose path exists as a file, or whose parent is a file, with the same
    error type. Cheap and side-effect free: a CLI calls it before a long run.
    """
    target = Path(target)
    for parent in target.parents:
        if parent.exists() and not parent.is_dir():
            raise FolderExistsError(f"report folder {target}: {parent} exists and is not a folder")
    if target.exists() and not target.is_dir():
        raise FolderExistsError(f"report folder {target}: exists and is not a folder")
    if target.exists() and not overwrite:
        raise FolderExistsError(f"report folder {target} already exists; choose another name or pass "
                                "overwrite=True (dmft validate --overwrite) to replace it")
    return target


def atomic_dir(target: Path | str, fill: Callable[[Path], None], *, overwrite: bool = False) -> Path:
    """Build the folder ``target`` with ``fill(tmp)`` in a temporary sibling, then move it into place.

    An existing ``target`` is replaced only when ``overwrite`` is true (otherwise
    :class:`FolderExistsError` naming it, raised both before ``fill`` runs and, should another writer
    have created it meanwhile, at the rename). Stale temporary folders of killed runs in the same
    root are removed first. Returns ``target``.
    """
    target = check_target(target, overwrite)
    target.parent.mkdir(parents=True, exist_ok=True)
    clean_stale(target.parent)
    tmp = target.parent / temp_name(target.name, "tmp")
    os.mkdir(tmp)  # mode 0777 & ~umask
    try:
        fill(tmp)
        old = None
        if target.exists():
            check_target(target, overwrite)
            old = target.parent / temp_name(target.name, "old")
            os.replace(target, old)
        os.rename(tmp, target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target
