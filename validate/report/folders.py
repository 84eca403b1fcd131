"""Report folders written atomically, with ordinary permissions, never replaced by surprise.

The mechanism is simulate's one atomic write (``simulate.atomic_folder``): a folder
``<root>/<name>`` is filled inside a hidden temporary sibling ``<root>/.<name>.tmp-<host>-<pid>-<random>``
and renamed into place only when complete, so an exception leaves no half-written report; the
temporary folder gets the process umask (0755 under umask 022), not the 0700 of
``tempfile.mkdtemp``; a temporary folder left behind by a killed run (SIGKILL skips every
``finally``) is removed by the next write into the same root when its writer is gone
(``simulate.clean_stale``), and a concurrent run's is left alone. What this module adds is the
report's policy: an existing report folder is replaced only when asked (:func:`check_target`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from simulate import STALE_AFTER_S, atomic_folder, clean_stale, temp_name

__all__ = ["STALE_AFTER_S", "FolderExistsError", "atomic_dir", "check_target", "clean_stale", "temp_name"]


class FolderExistsError(FileExistsError, ValueError):
    """A report folder exists and was not to be replaced (also a ValueError: bad ``--out`` /
    ``--name`` input, which the CLI reports with exit code 2)."""


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
    """Build the report folder ``target`` with ``fill(tmp)`` in a temporary sibling, then move it
    into place (``simulate.atomic_folder``).

    An existing ``target`` is replaced only when ``overwrite`` is true (otherwise
    :class:`FolderExistsError` naming it, raised both before ``fill`` runs and, should another writer
    have created it meanwhile, at the rename). Stale temporary folders of killed runs in the same
    root are removed first. Returns ``target``.
    """
    return atomic_folder(target, fill, replace=overwrite, check=lambda t: check_target(t, overwrite))
