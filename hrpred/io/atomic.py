"""Atomic output files: a file the user already has is replaced whole or not at all.

`write_atomic` writes to a temporary file in the target's own directory (same file system),
flushes it to disk and renames it over the target (`os.replace`, atomic on POSIX). A failed
write (disk full, a file-size limit, an exception while formatting) removes the temporary
file and leaves any previous target untouched. `hrpred predict --out` and `hrpred profile -o`
both write through it.
"""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TextIO


def write_atomic(out: Path, write: Callable[[TextIO], None], newline: str | None = None) -> None:
    """Call `write` on a text handle of a temporary file beside `out`, then rename it to `out`
    (`newline` as `open`'s; "" writes line ends as given, e.g. for CSV). The file gets the
    previous file's permissions, or a new file's (0666 less the umask). A link to a file
    replaces the file it points to (the link stays); an existing target that is not a regular
    file (/dev/stdout, /dev/null, a pipe) is written to directly: it holds nothing to keep,
    and renaming over it would replace a device."""
    out = Path(out)
    try:
        st = os.stat(out)
    except (OSError, ValueError):  # new, a dangling link or a link loop: renamed over
        st = None
    if st is not None and not stat.S_ISREG(st.st_mode):
        with open(out, "w", encoding="utf-8", newline=newline) as handle:
            write(handle)
        return
    if st is not None and out.is_symlink():
        out = Path(os.path.realpath(out))
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    try:
        os.fchmod(fd, _mode(out))
        with os.fdopen(fd, "w", encoding="utf-8", newline=newline) as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _mode(out: Path) -> int:
    """Permissions for `out`: those of the file it replaces, else a new file's."""
    try:
        return stat.S_IMODE(os.stat(out).st_mode)
    except OSError:
        umask = os.umask(0o022)
        os.umask(umask)
        return 0o666 & ~umask


def check_output_path(out: Path, flag: str) -> str | None:
    """Why `out` cannot be written (one line starting with `flag` and the path), None when its
    directory exists and is writable and it is not itself a directory: checked before any
    input is read, so a typo costs no time."""
    out = Path(out)
    parent = out.parent
    if out.is_dir():
        return f"{flag} {out} is a directory"
    if not parent.is_dir():
        return f"{flag} {out}: no such directory {parent}"
    if not os.access(parent, os.W_OK | os.X_OK):
        return f"{flag} {out}: cannot write in {parent} (permission denied)"
    return None
