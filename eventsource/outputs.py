"""Where commands write: stdout, or a regular file replaced atomically.

``export -o FILE`` and ``generate -o FILE`` write a temporary file beside FILE and
rename it over FILE only once everything is written and synced: an interrupted or
failed run leaves FILE as it was. That is right for a regular file and wrong for
anything else: renaming over a symbolic link replaces the link, over a device node
(``/dev/full``, a tape) replaces the device with a plain file. So a path that exists
and is not a regular file is refused, naming what it is; to write through a link or
into a device, write to stdout and redirect (``> PATH``), as the shell then opens
it for writing like any other program would.

Every operating-system failure (a missing or read-only directory, a full disk, a
quota) becomes :class:`~eventsource.errors.UnusableFile`, naming the file and the
system's own reason.
"""

from __future__ import annotations

import os
import stat
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import IO

from .errors import RefusedOutput, UnusableFile
from .failures import describe_os_error, is_broken_pipe

STDOUT = "standard output"


def _kind(mode: int) -> str | None:
    """What a non-regular file is, in words (None for a regular file)."""
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISFIFO(mode):
        return "a named pipe"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def check_replaceable(path: Path) -> os.stat_result | None:
    """The stat of the regular file at ``path`` (None when there is nothing there).

    Raises:
        RefusedOutput: ``path`` is a symlink, device, directory, pipe or socket.
        UnusableFile: its directory does not exist or cannot be read.
    """
    try:
        found = path.lstat()
    except FileNotFoundError:
        found = None
    except OSError as exc:
        raise UnusableFile(describe_os_error(exc, "cannot write"), path=str(path)) from exc
    if found is not None:
        kind = _kind(found.st_mode)
        if kind is not None:
            extra = ""
            if kind == "a symbolic link":
                extra = f" to {os.readlink(path)}"
            raise RefusedOutput(
                f"refusing to replace {path}: it is {kind}{extra}, and -o only replaces "
                f"regular files; write to stdout instead (> {path}) or choose another path",
                path=str(path),
            )
        return found
    directory = path.parent
    if not directory.is_dir():
        raise UnusableFile(
            f"cannot write {path}: the directory {directory} does not exist; create it "
            "first or choose another path",
            path=str(path),
        )
    return None


def _default_mode() -> int:
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


@contextmanager
def atomic_text_file(path: Path) -> Iterator[IO[str]]:
    """A UTF-8 text file that replaces ``path`` when the block ends without error.

    Raises:
        RefusedOutput: ``path`` exists and is not a regular file.
        UnusableFile: the directory is missing or not writable, the disk is full, ...
    """
    existing = check_replaceable(path)
    try:
        fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial")
    except OSError as exc:
        exc.filename = str(path)
        raise UnusableFile(describe_os_error(exc, "cannot write"), path=str(path)) from exc
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, stat.S_IMODE(existing.st_mode) if existing else _default_mode())
        os.replace(tmp, path)
    except BaseException as exc:
        with suppress(OSError):
            tmp.unlink()
        if isinstance(exc, OSError) and not isinstance(exc, UnusableFile):
            exc.filename = str(path)
            raise UnusableFile(describe_os_error(exc, "cannot write"), path=str(path)) from exc
        raise
    _sync_directory(path.parent)


def _sync_directory(directory: Path) -> None:
    # The rename is durable once the directory entry is: best effort (not every
    # file system lets a directory be opened and synced).
    with suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextmanager
def stdout_text() -> Iterator[IO[str]]:
    """Standard output; a write error other than a closed pipe names it.

    Raises:
        UnusableFile: a full disk behind a redirect, say.
    """
    try:
        yield sys.stdout
        sys.stdout.flush()
    except OSError as exc:
        if is_broken_pipe(exc) or isinstance(exc, UnusableFile):
            raise
        raise UnusableFile(describe_os_error(exc, f"cannot write to {STDOUT}")) from exc


@contextmanager
def output(path: Path | None) -> Iterator[IO[str]]:
    """Stdout (``None`` or ``-``), else :func:`atomic_text_file`."""
    if path is None or str(path) == "-":
        with stdout_text() as handle:
            yield handle
    else:
        with atomic_text_file(path) as handle:
            yield handle


__all__ = ["STDOUT", "atomic_text_file", "check_replaceable", "output", "stdout_text"]
