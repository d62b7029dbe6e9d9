"""A runner's whole history as their platform exports it: a Strava or Garmin export, or a folder.

`open_export(path)` lists the runs of
- a Strava bulk export (a zip, or the folder it unzips to): `activities.csv` lists every
  activity (its columns repeat, e.g. two `Distance`: the first of each name is read) with its
  `Activity Type` and `Filename` (`activities/<id>.fit.gz|.gpx.gz|.tcx.gz`); activities whose
  type is not a run are left out by that column, manual entries have no file;
- a Garmin Connect export (a zip or its folder): FIT files in zips nested under
  `DI_CONNECT/DI-Connect-Uploaded-Files/`, most of them a watch's monitoring, sleep or settings
  files, told from activities by the FIT `file_id` type (read from a member's first bytes); the
  sport of an activity is its FIT session's (`hrpred.io.sport`, checked when it is read);
- any other archive or export folder: its .fit/.gpx/.tcx files (each optionally .gz);
- a plain folder of activity files (no `activities.csv`, no `DI_CONNECT`): its files, as
  `--history` always read them.

Nothing is extracted: `Export.sources` are `RunSource`s that read their member when asked
(`hrpred.serve.profile.build_profile` reads them one at a time), and a nested archive is
spooled to an anonymous temporary file. An export is untrusted input (`hrpred.io.limits`):
the archive's directory is sized from its end record before it is parsed (entry count and
directory bytes capped), each member is read in chunks up to MAX_ACTIVITY_BYTES decompressed
and again gunzipped (a zip or gzip bomb stops there), nested archives are bounded in size,
ratio and depth, and members with a path outside the archive (absolute, `..`), symbolic links
and encrypted members are refused. Each refused member is one line in `Export.problems`; the
rest are read. `Export.notes` sums up what was left out on purpose (non-runs, non-activity FIT
files, manual entries) in a line each.
"""

from __future__ import annotations

import csv
import io
import os
import stat
import struct
import tempfile
import zipfile
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from hrpred.errors import HrpredError
from hrpred.io.activity import Activity, decode_text
from hrpred.io.fitfile import fit_file_type
from hrpred.io.limits import (
    FIT_PEEK_BYTES,
    MAX_ARCHIVE_DEPTH,
    MAX_CENTRAL_DIRECTORY_BYTES,
    MAX_EXPORT_MEMBERS,
    MAX_GZIP_RATIO,
    MAX_INDEX_BYTES,
    MAX_NESTED_ARCHIVE_BYTES,
)
from hrpred.io.sport import normalize_sport, not_running
from hrpred.io.userfiles import (
    SUPPORTED,
    file_kind,
    parse_bytes,
    read_bytes_of,
    read_stream_bytes,
)

ARCHIVE_KINDS = ("fit", "gpx", "tcx")  # activity files inside an export (its CSVs are tables)
STRAVA_INDEX = "activities.csv"
GARMIN_DIR = "DI_CONNECT"
ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # a zip's first member, or an empty zip
_EOCD, _EOCD64_LOCATOR = b"PK\x05\x06", b"PK\x06\x07"
_COPY_CHUNK = 1 << 20
MAX_MISSING_SHOWN = 20  # listed runs without a file named one per line; the rest counted
_RATIO_FLOOR = 64 * 1024 * 1024  # a nested archive's ratio is checked past this many bytes
_COMPRESSIONS = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA)


class ExportError(HrpredError):
    """An export that cannot be read at all (one line); a bad member is a problem instead."""


@dataclass(frozen=True)
class RunSource:
    """One activity of an export, read when asked: `name` is the export's name and the
    member's path (`export.zip/activities/1.fit.gz`), what messages and the profile show."""

    name: str
    kind: str  # gpx, tcx, fit (csv in a plain folder)
    read_bytes: Callable[[list[str]], bytes]
    listed_sport: str | None = None  # the export's table's sport, when the file says none

    def read(self) -> Activity:
        """The member's activity (ActivityError with one line naming it)."""
        return self.parse(*self.fetch())

    def fetch(self) -> tuple[bytes, list[str]]:
        """The member's bytes (gunzipped) and the warnings reading them gave: the half of
        `read` that touches the archive (ActivityError with one line naming it)."""
        return read_bytes_of(self.read_bytes, self.kind, self.name)

    def parse(self, data: bytes, warns: list[str]) -> Activity:
        """The activity of `fetch`'s bytes: the half of `read` any process can do."""
        activity = parse_bytes(data, list(warns), self.kind, self.name)
        if activity.sport is None:
            activity.sport = self.listed_sport
        return activity


@dataclass
class Export:
    """The runs an export holds (`sources`, sorted by name), one line per refused member
    (`problems`) and per kind of member left out on purpose (`notes`). Close it (or use it
    as a context manager) to release the archives and temporary files."""

    path: Path
    sources: list[RunSource] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    stack: ExitStack = field(default_factory=ExitStack)
    plain: bool = False  # a plain folder of activity files (sources named by their paths)

    def close(self) -> None:
        self.stack.close()

    def __enter__(self) -> Export:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def is_archive(path: Path) -> bool:
    """Whether `path` is a zip archive (by its first bytes; False for anything unreadable)."""
    try:
        with open(path, "rb") as f:
            return f.read(4) in ZIP_MAGIC
    except OSError:
        return False


def is_export(path: str | Path) -> bool:
    """Whether `path` is an export (a zip archive or a folder) rather than one activity file."""
    p = Path(path)
    try:
        return p.is_dir() or (p.is_file() and is_archive(p))
    except (OSError, ValueError):  # unreadable: read (and refused) as one activity file
        return False


def _activity_kind(member: str, kinds: tuple[str, ...] = ARCHIVE_KINDS) -> str | None:
    name = member.lower().removesuffix(".gz")
    if not name.endswith(tuple(f".{k}" for k in kinds)):
        return None
    return file_kind(member)


# --------------------------------------------------------------------------- the Strava table


@dataclass
class _Index:
    """Strava's activities.csv: the sport of each listed file, and what was left out."""

    sports: dict[str, str | None]  # member path (as listed) -> normalised sport
    non_runs: Counter[str] = field(default_factory=Counter)
    manual: int = 0


def read_index(data: bytes, name: str) -> _Index:
    """The runs of a Strava activities.csv (its first column of each name; ExportError
    without `Filename` and `Activity Type` columns)."""
    text, _ = decode_text(data)
    rows = csv.reader(io.StringIO(text))
    header = next(rows, [])
    col: dict[str, int] = {}
    for i, h in enumerate(header):
        col.setdefault(h.strip().lower(), i)  # repeated names: the first is kept
    if "filename" not in col or "activity type" not in col:
        raise ExportError(f"{name}: no 'Filename' and 'Activity Type' columns: not Strava's table")
    index = _Index({})
    for row in rows:
        if not row:
            continue
        get = {k: (row[i].strip() if i < len(row) else "") for k, i in col.items()}
        sport = normalize_sport(get["activity type"])
        if not get["filename"]:
            index.manual += 1
        elif not_running(sport) is not None:
            index.non_runs[sport or "?"] += 1
        else:
            index.sports[get["filename"].replace("\\", "/").removeprefix("./")] = sport
    return index


def _index_notes(index: _Index, where: str) -> list[str]:
    notes = []
    if index.non_runs:
        kinds = ", ".join(f"{k}: {n}" for k, n in index.non_runs.most_common())
        notes.append(f"{where}: left out {index.non_runs.total()} non-run activities ({kinds})")
    if index.manual:
        notes.append(f"{where}: left out {index.manual} manual entries (no recording)")
    return notes


# --------------------------------------------------------------------------- zip archives


def check_directory(f: BinaryIO, name: str) -> None:
    """ExportError unless the archive's end record declares at most MAX_EXPORT_MEMBERS
    entries and MAX_CENTRAL_DIRECTORY_BYTES of directory: read from the last bytes before
    `zipfile` builds anything from the directory."""
    size = f.seek(0, os.SEEK_END)
    tail_len = min(size, 22 + 0xFFFF)
    f.seek(size - tail_len)
    tail = f.read(tail_len)
    at = tail.rfind(_EOCD)
    if at < 0 or at + 22 > len(tail):
        raise ExportError(f"{name}: not a zip archive, or cut short (no end record)")
    entries, cd_bytes = struct.unpack("<HI", tail[at + 10 : at + 16])
    if (entries == 0xFFFF or cd_bytes == 0xFFFFFFFF) and tail[at - 20 : at - 16] == _EOCD64_LOCATOR:
        (offset,) = struct.unpack("<Q", tail[at - 12 : at - 4])
        f.seek(offset)
        record = f.read(56)
        if len(record) < 56:
            raise ExportError(f"{name}: damaged zip64 end record")
        entries, cd_bytes = struct.unpack("<QQ", record[32:48])
    if entries > MAX_EXPORT_MEMBERS:
        raise ExportError(
            f"{name}: {entries:,} entries, more than {MAX_EXPORT_MEMBERS:,} "
            "(hrpred.io.limits.MAX_EXPORT_MEMBERS): not an export"
        )
    if cd_bytes > MAX_CENTRAL_DIRECTORY_BYTES:
        raise ExportError(
            f"{name}: a {cd_bytes / 2**20:,.0f} MB directory, more than "
            f"{MAX_CENTRAL_DIRECTORY_BYTES // 2**20} MB (hrpred.io.limits): not an export"
        )
    f.seek(0)


def unsafe(info: zipfile.ZipInfo) -> str | None:
    """Why a member is refused (a path outside the archive, a link, encrypted, an unknown
    compression), None when it may be read."""
    parts = info.filename.replace("\\", "/").split("/")
    if info.filename.startswith(("/", "\\")) or ".." in parts or ":" in parts[0]:
        return "a path outside the archive: refused"
    if "\x00" in info.filename:
        return "a name with a NUL byte: refused"
    if stat.S_ISLNK(info.external_attr >> 16):
        return "a symbolic link: refused"
    if info.flag_bits & 0x1:
        return "encrypted: cannot be read"
    if info.compress_type not in _COMPRESSIONS:
        return f"compressed with method {info.compress_type}, which this reader does not support"
    return None


def _member_reader(zf: zipfile.ZipFile, info: zipfile.ZipInfo, name: str) -> Any:
    def read(warns: list[str]) -> bytes:
        with zf.open(info) as raw:
            return read_stream_bytes(raw, name, warns)

    return read


def _spool(zf: zipfile.ZipFile, info: zipfile.ZipInfo, name: str, stack: ExitStack) -> BinaryIO:
    """A nested archive copied to an anonymous temporary file (ExportError past
    MAX_NESTED_ARCHIVE_BYTES or a bomb's ratio)."""
    tmp = stack.enter_context(tempfile.TemporaryFile())
    written = 0
    with zf.open(info) as src:
        while chunk := src.read(_COPY_CHUNK):
            written += len(chunk)
            if written > MAX_NESTED_ARCHIVE_BYTES:
                raise ExportError(f"{name}: more than {MAX_NESTED_ARCHIVE_BYTES // 2**30} GB")
            if written > _RATIO_FLOOR and written > MAX_GZIP_RATIO * max(info.compress_size, 1):
                raise ExportError(f"{name}: decompresses more than {MAX_GZIP_RATIO:.0f}x (a bomb?)")
            tmp.write(chunk)
    tmp.seek(0)
    return tmp


class _Lister:
    """Walks an export and fills an Export."""

    def __init__(self, export: Export) -> None:
        self.export = export
        self.not_activities: Counter[str] = Counter()

    def problem(self, name: str, why: str) -> None:
        self.export.problems.append(f"{name}: {why}")

    def archive(self, f: BinaryIO, shown: str, depth: int) -> None:
        """The runs of one zip archive (`shown`: its name in messages)."""
        check_directory(f, shown)
        try:
            zf = self.export.stack.enter_context(zipfile.ZipFile(f))
        except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
            raise ExportError(f"{shown}: not a readable zip archive ({exc})") from None
        infos = [i for i in zf.infolist() if not i.is_dir()]
        index = self._strava_index(zf, infos, shown)
        for info in infos:
            self.member(zf, info, shown, depth, index)
        if index is not None:
            self.export.notes += _index_notes(index, f"{shown}/{STRAVA_INDEX}")
            self.missing(index, {i.filename for i in infos}, shown)

    def missing(self, index: _Index, present: set[str], shown: str) -> None:
        """One line per run the table lists without its file (at most MAX_MISSING_SHOWN)."""
        gone = sorted(f for f in index.sports if f not in present)
        for f in gone[:MAX_MISSING_SHOWN]:
            self.problem(f"{shown}/{f}", f"listed in {STRAVA_INDEX} but not in the export")
        if len(gone) > MAX_MISSING_SHOWN:
            self.problem(shown, f"{len(gone) - MAX_MISSING_SHOWN} more listed runs not in it")

    def _strava_index(
        self, zf: zipfile.ZipFile, infos: list[zipfile.ZipInfo], shown: str
    ) -> _Index | None:
        info = next((i for i in infos if i.filename.lower() == STRAVA_INDEX), None)
        if info is None or unsafe(info) is not None:
            return None
        with zf.open(info) as raw:
            data = raw.read(MAX_INDEX_BYTES + 1)
        if len(data) > MAX_INDEX_BYTES:
            raise ExportError(f"{shown}/{STRAVA_INDEX}: more than {MAX_INDEX_BYTES // 2**20} MB")
        return read_index(data, f"{shown}/{STRAVA_INDEX}")

    def member(
        self,
        zf: zipfile.ZipFile,
        info: zipfile.ZipInfo,
        shown: str,
        depth: int,
        index: _Index | None,
    ) -> None:
        name = f"{shown}/{info.filename}"
        why = unsafe(info)
        if why is not None:
            self.problem(name, why)
            return
        if info.filename.lower().endswith(".zip"):
            if depth >= MAX_ARCHIVE_DEPTH:
                self.problem(name, "an archive nested too deep: refused")
                return
            try:
                self.archive(_spool(zf, info, name, self.export.stack), name, depth + 1)
            except (ExportError, zipfile.BadZipFile, OSError, EOFError) as exc:
                self.problem(name, str(exc).removeprefix(f"{name}: "))
            return
        kind = _activity_kind(info.filename)
        if kind is None:
            return  # the export's tables, photos, JSON: not activities
        sport = None
        if index is not None:
            if info.filename not in index.sports:
                return  # a non-run (counted by the table) or a file the table does not list
            sport = index.sports[info.filename]
        elif kind == "fit" and not info.filename.lower().endswith(".gz"):
            if not self._is_activity(zf, info):
                return
        read = _member_reader(zf, info, name)
        self.export.sources.append(RunSource(name, kind, read, sport))

    def _is_activity(self, zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> bool:
        try:
            with zf.open(info) as raw:
                head = raw.read(FIT_PEEK_BYTES)
        except (zipfile.BadZipFile, OSError, EOFError, ValueError):
            return True  # read (and refused with its reason) as an activity
        kind = fit_file_type(head)
        if kind is not None and kind != "activity":
            self.not_activities[kind] += 1
            return False
        return True

    def note_fit_types(self, where: str) -> None:
        if self.not_activities:
            kinds = ", ".join(f"{k}: {n}" for k, n in self.not_activities.most_common())
            n = self.not_activities.total()
            self.export.notes.append(
                f"{where}: left out {n} FIT files that are not activities ({kinds})"
            )


# --------------------------------------------------------------------------- folders


def _walk(folder: Path) -> Iterator[Path]:
    """Every file under `folder` (links to folders not followed), at most
    MAX_EXPORT_MEMBERS (ExportError past it)."""
    count = 0
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        for f in sorted(files):
            count += 1
            if count > MAX_EXPORT_MEMBERS:
                raise ExportError(
                    f"{folder}: more than {MAX_EXPORT_MEMBERS:,} files "
                    "(hrpred.io.limits.MAX_EXPORT_MEMBERS): not an export"
                )
            yield Path(root) / f


def _file_reader(path: Path) -> Any:
    def read(warns: list[str]) -> bytes:
        from hrpred.io.userfiles import check_regular_file, read_file_bytes

        check_regular_file(path)
        return read_file_bytes(path, warns)

    return read


def _folder(lister: _Lister, folder: Path) -> None:
    export = lister.export
    index_path = folder / STRAVA_INDEX
    exported = index_path.is_file() or (folder / GARMIN_DIR).is_dir()
    if not exported:  # a plain folder of activity files: its own files, links followed
        export.plain = True
        for p in sorted(folder.iterdir()):
            kind = _activity_kind(p.name, tuple(e[1:] for e in SUPPORTED))
            if kind is not None and not p.is_dir():
                export.sources.append(RunSource(str(p), kind, _file_reader(p)))
        return
    index = None
    if index_path.is_file():
        if index_path.stat().st_size > MAX_INDEX_BYTES:
            raise ExportError(f"{index_path}: more than {MAX_INDEX_BYTES // 2**20} MB")
        index = read_index(index_path.read_bytes(), str(index_path))
    present: set[str] = set()
    for p in _walk(folder):
        rel = p.relative_to(folder).as_posix()
        if p.is_symlink():
            lister.problem(str(p), "a symbolic link in an export: refused")
        elif p.name.lower().endswith(".zip"):
            try:
                with open(p, "rb") as f:
                    lister.archive(export.stack.enter_context(f), str(p), 1)
            except (ExportError, zipfile.BadZipFile, OSError) as exc:
                lister.problem(str(p), str(exc).removeprefix(f"{p}: "))
        elif (kind := _activity_kind(p.name)) is not None:
            if index is not None and rel not in index.sports:
                continue
            sport = index.sports[rel] if index is not None else None
            export.sources.append(RunSource(str(p), kind, _file_reader(p), sport))
            present.add(rel)
    if index is not None:
        export.notes += _index_notes(index, str(index_path))
        lister.missing(index, present, str(folder))


def open_export(path: str | Path) -> Export:
    """The runs of an export zip or folder (see the module doc; ExportError when it cannot be
    read at all). The caller closes it."""
    path = Path(path)
    export = Export(path)
    lister = _Lister(export)
    try:
        if path.is_dir():
            _folder(lister, path)
        else:
            f = export.stack.enter_context(open(path, "rb"))
            lister.archive(f, path.name, 0)
    except OSError as exc:
        export.close()
        raise ExportError(f"{path.name}: cannot read it ({exc.strerror or exc})") from None
    except BaseException:
        export.close()
        raise
    lister.note_fit_types(path.name)
    export.sources.sort(key=lambda s: s.name)
    return export


__all__ = ["Export", "ExportError", "RunSource", "is_export", "open_export"]
