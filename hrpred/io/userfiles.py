"""Readers for a runner's own activity files: GPX, TCX, FIT and CSV, each optionally .gz.

`read_activity(path)` returns an `Activity` with every channel as a float array aligned
on strictly increasing timestamps (NaN where a sample lacks a value), or None when the
file has no such channel. Readers repair what can be repaired (unsorted or duplicated
timestamps, 0/255 heart-rate readings, (0, 0) GPS fixes, values outside physical ranges,
a FIT file damaged part-way) and say so in `warnings`; files that cannot give a usable
activity raise `ActivityError` with a one-line reason naming the file. Nothing else escapes:
whatever a decoder raises on a hostile file becomes an ActivityError.

Memory and time are bounded by the file's size: it is read whole, at most
MAX_ACTIVITY_BYTES once decompressed (gzip is detected by its magic bytes and decompressed
with hrpred.io.limits' bounded reader), and the plausibility limits of hrpred.io.limits
(points, duration, timestamps) are checked before any array is sized from its values
(hrpred.io.activity.finish).

Speed channels are left as recorded (NaN where a point has none): `hrpred predict` derives
speed from them with the training data's rules (`hrpred.timeseries.speed_from_recording`).
"""

from __future__ import annotations

import errno
import io
import os
import stat
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from hrpred.io.activity import Activity, ActivityError, Columns, finish, one_line
from hrpred.io.csvfile import read_csv
from hrpred.io.fitfile import read_fit
from hrpred.io.gpxtcx import read_gpx, read_tcx
from hrpred.io.limits import GZIP_MAGIC, MAX_ACTIVITY_BYTES, BoundedGzipReader, InputLimitError

READ_CHUNK = 1 << 16  # bytes read at a time (decompressed, for a gzip'ed file)

__all__ = [
    "SUPPORTED",
    "Activity",
    "ActivityError",
    "check_regular_file",
    "file_kind",
    "parse_activity",
    "parse_bytes",
    "read_activity",
    "read_bytes_of",
    "read_stream_bytes",
]

SUPPORTED = (".gpx", ".tcx", ".fit", ".csv")  # each also gzip-compressed (.gz), as Strava exports


def file_kind(path: str | Path) -> str:
    """The reader a path needs: gpx, tcx, fit or csv (by extension, `.gz` allowed)."""
    name = Path(path).name.lower().removesuffix(".gz")
    for ext in SUPPORTED:
        if name.endswith(ext):
            return ext[1:]
    suffix = "".join(Path(path).suffixes) or "(none)"
    raise ActivityError(
        f"{Path(path).name}: unsupported file type '{suffix}': "
        "use .gpx, .tcx, .fit or .csv (optionally .gz)"
    )


_NOT_REGULAR = (  # what a path is when it is not a regular file, by its mode
    (stat.S_ISDIR, "a directory, not a file"),
    (stat.S_ISFIFO, "a named pipe (FIFO), not a regular file"),
    (stat.S_ISCHR, "a character device, not a regular file"),
    (stat.S_ISBLK, "a block device, not a regular file"),
    (stat.S_ISSOCK, "a socket, not a regular file"),
)


def check_regular_file(path: Path, error: type[Exception] = ActivityError) -> os.stat_result:
    """The stat of `path` when it is a readable regular file (links followed), else `error`
    with one line naming it: not found, a dangling link, a symbolic link loop, a directory, a
    FIFO, a device, unreadable. Nothing is opened, so a FIFO never blocks."""
    name = path.name or str(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        dangling = os.path.lexists(path)
        why = "a symbolic link to a missing file" if dangling else "file not found"
        raise error(f"{path if not dangling else name}: {why}") from None
    except OSError as exc:
        why = {
            errno.ELOOP: "a symbolic link loop, not a file",
            errno.EACCES: "permission denied: cannot read it",
            errno.ENOTDIR: "file not found (a folder on its path is a file)",
            errno.ENAMETOOLONG: "file name too long",
        }.get(exc.errno or 0, f"cannot read it ({exc.strerror or type(exc).__name__})")
        raise error(f"{name}: {why}") from None
    except ValueError:  # a NUL byte in the name
        raise error(f"{name!r}: not a valid file name") from None
    for test, why in _NOT_REGULAR:
        if test(st.st_mode):
            raise error(f"{name}: {why}")
    if not stat.S_ISREG(st.st_mode):
        raise error(f"{name}: not a regular file")
    if not os.access(path, os.R_OK):
        raise error(f"{name}: permission denied: cannot read it")
    return st


def _reader(kind: str) -> Callable[[bytes, list[str]], Columns]:
    if kind == "fit":
        return read_fit
    if kind == "csv":
        return read_csv
    return read_gpx if kind == "gpx" else read_tcx


def read_file_bytes(path: Path, warns: list[str], max_bytes: int = MAX_ACTIVITY_BYTES) -> bytes:
    """The file's bytes, gunzipped when it starts with gzip's magic (whatever its name) by
    hrpred.io.limits' bounded reader, at most `max_bytes` either way; a damaged gzip stream
    keeps what came before the damage, with a warning."""
    if path.stat().st_size > max_bytes:
        raise _too_big(max_bytes, "")
    with open(path, "rb") as raw:
        return read_stream_bytes(raw, path.name, warns, max_bytes)


def _too_big(max_bytes: int, how: str) -> ActivityError:
    mb = max_bytes // (1024 * 1024)
    return ActivityError(f"more than {mb} MB{how} (hrpred.io.limits.MAX_ACTIVITY_BYTES)")


def read_stream_bytes(
    raw: BinaryIO, name: str, warns: list[str], max_bytes: int = MAX_ACTIVITY_BYTES
) -> bytes:
    """A binary stream's bytes (a file, an archive member), gunzipped when they start with
    gzip's magic, at most `max_bytes` either way (read in chunks: a member's declared size is
    never trusted); a damaged gzip stream keeps what came before the damage, with a warning."""
    head = raw.read(len(GZIP_MAGIC))
    if head != GZIP_MAGIC:
        out = bytearray(head)
        while len(out) <= max_bytes:
            chunk = raw.read(READ_CHUNK)
            if not chunk:
                return bytes(out)
            out += chunk
        raise _too_big(max_bytes, "")
    f = io.BufferedReader(BoundedGzipReader(_Prefixed(head, raw), name, max_bytes=max_bytes))
    out = bytearray()
    while True:
        try:
            chunk = f.read1(READ_CHUNK)
        except InputLimitError as exc:
            if f.raw.out_bytes > max_bytes:  # the size limit, not damage
                raise _too_big(max_bytes, " once decompressed: a gzip bomb?") from None
            if "corrupt gzip" not in str(exc) or not out:
                raise  # the ratio limit, or damage before any data
            warns.append(f"gzip data damaged or truncated: using the {len(out)} bytes before it")
            break
        if not chunk:
            break
        out += chunk
        if len(out) > max_bytes:
            raise _too_big(max_bytes, " once decompressed")
    return bytes(out)


class _Prefixed(io.RawIOBase):
    """`raw` with `head` (bytes already read from it) put back in front; `tell` counts the
    bytes read (the gzip ratio's compressed size)."""

    def __init__(self, head: bytes, raw: BinaryIO) -> None:
        self._head = head
        self._raw = raw
        self._pos = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        if self._head:
            n = min(len(buffer), len(self._head))
            buffer[:n] = self._head[:n]
            self._head = self._head[n:]
        else:
            data = self._raw.read(len(buffer))
            n = len(data)
            buffer[:n] = data
        self._pos += n
        return n

    def tell(self) -> int:
        return self._pos


def read_activity(path: str | Path) -> Activity:
    """Read a GPX, TCX, FIT or CSV activity file (optionally gzipped) into an `Activity`."""
    path = Path(path)
    kind = file_kind(path)
    check_regular_file(path)
    return parse_activity(lambda warns: read_file_bytes(path, warns), kind, path.name)


def parse_activity(read: Callable[[list[str]], bytes], kind: str, name: str) -> Activity:
    """An `Activity` of the bytes `read(warns)` returns (a file's, an archive member's), parsed
    as `kind` (gpx, tcx, fit, csv); ActivityError with one line starting with `name`."""
    return parse_bytes(*read_bytes_of(read, kind, name), kind, name)


def read_bytes_of(
    read: Callable[[list[str]], bytes], kind: str, name: str
) -> tuple[bytes, list[str]]:
    """The first half of `parse_activity`: the bytes `read(warns)` returns and its warnings
    (ActivityError with the same line `parse_activity` gives). Apart so that a member of an
    open archive is read by the process that holds it and parsed by another."""
    warns: list[str] = []
    with reader_errors(kind, name):
        data = read(warns)
        if not data:
            raise ActivityError("empty file")
    return data, warns


def parse_bytes(data: bytes, warns: list[str], kind: str, name: str) -> Activity:
    """The second half of `parse_activity`: `read_bytes_of`'s bytes and warnings parsed."""
    with reader_errors(kind, name):
        found = _reader(kind)(data, warns)
        del data
        activity = finish(found, warns, name)
    activity.sport = found.sport
    return activity


@contextmanager
def reader_errors(kind: str, name: str) -> Iterator[None]:
    """The reader boundary: whatever reading or parsing raises becomes one ActivityError line
    starting with `name` (ImportError, a broken installation, passes)."""
    try:
        yield
    except (ActivityError, InputLimitError) as exc:
        msg = one_line(exc)
        raise ActivityError(msg if msg.startswith(name) else f"{name}: {msg}") from None
    except ImportError:
        raise  # a broken installation, not a bad file
    except MemoryError:
        raise ActivityError(f"{name}: out of memory reading the {kind.upper()} file") from None
    except Exception as exc:  # noqa: BLE001 - the reader boundary: a hostile file may make a decoder raise anything
        raise ActivityError(
            f"{name}: cannot read {kind.upper()} file ({type(exc).__name__}: {one_line(exc)})"
        ) from None
