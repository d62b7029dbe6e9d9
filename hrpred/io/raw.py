"""Streaming readers (and small writers) for raw FitRec-style workouts.

Contract (docs/architecture.md, "Raw workout"): `iter_raw(path)` yields one `RawItem`
per input line or Parquet row, in file order, with exactly one of `workout` / `error` set.
Readers check structure and types only (keys present, lists of numbers, integer ids);
judging content (lengths, ranges) is the clean stage's job.

Formats, detected from the file's content (the extension is only a hint): FitRec
Python-literal lines (the real file), JSON lines, either gzip-compressed, and Parquet with one
row per workout and list columns. A file is gzip only when its start decompresses as a gzip
stream and Parquet only when it starts and ends with `PAR1`, so a corrupt first line that
happens to start with those bytes is one unparseable line like any other.

Limits (hrpred.io.limits): a gzip'ed file is decompressed in a stream with a cap on its size
and ratio (past it the file is refused with a one-line error); a line longer than
MAX_RAW_LINE_BYTES is skipped unparsed and one that needs the slow literal parser above
MAX_LITERAL_LINE_BYTES is refused, each counted as unparseable with the reason. Nesting depth
is bounded by the parsers (orjson: 1024 levels, Python's tokenizer: 200).

Speed: a FitRec line is a Python dict literal with single-quoted strings. When a line has
no double quote and no backslash, every single quote is a string delimiter, so swapping
them gives JSON with the same value, which orjson parses about 50x faster than
`ast.literal_eval`. Any line the fast path rejects is retried with `ast.literal_eval`
(never `eval`), so the result is always what Python would read.
"""

from __future__ import annotations

import ast
import gzip
import io
import re
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from hrpred.errors import HrpredError
from hrpred.io.limits import (
    GZIP_MAGIC,
    MAX_LITERAL_LINE_BYTES,
    MAX_RAW_DECOMPRESSED_BYTES,
    MAX_RAW_LINE_BYTES,
    BoundedGzipReader,
    InputLimitError,
)

# Keys every workout must have, with the type check that applies to each.
REQUIRED_KEYS: tuple[str, ...] = (
    "id",
    "userId",
    "sport",
    "gender",
    "timestamp",
    "heart_rate",
    "altitude",
)
OPTIONAL_LIST_KEYS: tuple[str, ...] = ("speed", "latitude", "longitude")
LIST_KEYS: tuple[str, ...] = ("timestamp", "heart_rate", "altitude", *OPTIONAL_LIST_KEYS)
INT_KEYS: tuple[str, ...] = ("id", "userId")
STR_KEYS: tuple[str, ...] = ("sport", "gender")

# Parquet column -> workout key (the Hugging Face export schema).
PARQUET_RENAME: dict[str, str] = {"workout_id": "id", "user_id": "userId"}
# Key order of a line in the real file; the writer follows it.
FITREC_KEY_ORDER: tuple[str, ...] = (
    "longitude",
    "altitude",
    "latitude",
    "sport",
    "id",
    "heart_rate",
    "gender",
    "timestamp",
    "url",
    "userId",
    "speed",
)

_NUMBER_TYPES = frozenset((int, float))
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_PARQUET_MAGIC = b"PAR1"
_GZIP_PROBE_BYTES = 1 << 16  # compressed bytes decoded to recognise a gzip file
_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")
_PARQUET_BATCH_ROWS = 256
_MISSING_HINT = (
    "run `python -m stages.simulate` to create the default data, or set `data.raw` in "
    "params.yaml to the path of the FitRec file"
)


@dataclass(frozen=True, slots=True)
class RawItem:
    """One input line/row: either a structurally valid workout or an error message."""

    line: int
    workout: dict[str, Any] | None
    error: str | None


class RawFormatError(HrpredError, ValueError):
    """The file cannot be read as any supported raw format (one-line message)."""


class RawNotFoundError(HrpredError, FileNotFoundError):
    """The raw file does not exist (the message says how to create or choose one)."""


def require_raw_file(path: str | Path) -> Path:
    """`path` as a Path, or RawNotFoundError (one line, with what to do) when it is missing."""
    path = Path(path)
    if not path.is_file():
        raise RawNotFoundError(f"raw file {path} not found: {_MISSING_HINT}")
    return path


# ---------------------------------------------------------------------------- parsing


def parse_line(line: bytes) -> dict[str, Any] | list[Any] | Any:
    """Parse one FitRec literal or JSON line (bytes, no newline) into a Python value.

    Raises ValueError with a short reason when the line is not a valid literal.
    The fast path returns what `ast.literal_eval` would, except for integers outside
    [-2**63, 2**64): orjson reads those as floats (no workout field can hold them).
    """
    if b'"' not in line and b"\\" not in line:
        candidate = line.replace(b"'", b'"')
    else:
        candidate = line
    try:
        return orjson.loads(candidate)
    except orjson.JSONDecodeError:
        pass
    # Fallback: anything Python can read as a literal (True/None, tuples, escaped quotes).
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"not UTF-8 text (binary data?) at byte {exc.start}") from None
    if len(line) > MAX_LITERAL_LINE_BYTES:
        # ast costs ~200 bytes of memory per byte of input: refuse before parsing.
        raise ValueError(
            f"not JSON and {len(line)} bytes, too long for the literal parser "
            f"(limit {MAX_LITERAL_LINE_BYTES} bytes)"
        )
    try:
        return ast.literal_eval(text.strip())
    except (SyntaxError, ValueError, TypeError, MemoryError, RecursionError) as exc:
        reason = exc.msg if isinstance(exc, SyntaxError) else str(exc)
        reason = reason.splitlines()[0] if reason else type(exc).__name__
        raise ValueError(
            f"malformed or truncated line ({without_addresses(reason)[:80]})"
        ) from None


def without_addresses(text: str) -> str:
    """`text` without memory addresses (`<ast.Name object at 0x7f..>` -> `<ast.Name object>`),
    so that messages written to outputs are the same in every run."""
    return _ADDRESS.sub("", text)


def validate_workout(value: Any) -> str | None:
    """Return None when `value` has the raw-workout structure, else the reason."""
    if not isinstance(value, dict):
        return f"not a dict (got {type(value).__name__})"
    missing = [k for k in REQUIRED_KEYS if k not in value]
    if missing:
        return f"missing keys {missing}"
    for key in INT_KEYS:
        if type(value[key]) is not int:
            return f"'{key}' must be an integer, got {type(value[key]).__name__}"
        if not _INT64_MIN <= value[key] <= _INT64_MAX:
            return f"'{key}' is outside the 64-bit integer range"
    for key in STR_KEYS:
        if not isinstance(value[key], str):
            return f"'{key}' must be a string, got {type(value[key]).__name__}"
    if "url" in value and value["url"] is not None and not isinstance(value["url"], str):
        return f"'url' must be a string, got {type(value['url']).__name__}"
    for key in LIST_KEYS:
        if key not in value:
            continue
        items = value[key]
        if not isinstance(items, list):
            return f"'{key}' must be a list of numbers, got {type(items).__name__}"
        # type() (not isinstance) so that bools and None are rejected.
        kinds = set(map(type, items))
        if not kinds <= _NUMBER_TYPES:
            bad = sorted(k.__name__ for k in kinds - _NUMBER_TYPES)
            return f"'{key}' must be a list of numbers, found {', '.join(bad)}"
    return None


def item_from_line(number: int, line: bytes) -> RawItem:
    """The RawItem for one raw line (1-based `number`): parsed and checked, or an error."""
    line = line.rstrip(b"\r\n")
    if not line.strip():
        return RawItem(number, None, f"line {number}: empty line")
    try:
        value = parse_line(line)
    except ValueError as exc:
        return RawItem(number, None, f"line {number}: {exc}")
    reason = validate_workout(value)
    if reason is not None:
        return RawItem(number, None, f"line {number}: {reason}")
    return RawItem(number, value, None)


# ---------------------------------------------------------------------------- readers


def sniff_format(path: str | Path) -> str:
    """Return 'parquet', 'gzip' or 'lines' from the file's content.

    Parquet: `PAR1` at both ends. Gzip: the first bytes decode as a gzip stream (header and
    deflate data), and whatever follows a first member is another member. Else lines.
    """
    path = Path(path)
    with open(path, "rb") as f:
        head = f.read(_GZIP_PROBE_BYTES)
        size = f.seek(0, io.SEEK_END)
        tail = b""
        if size >= 8:
            f.seek(size - 4)
            tail = f.read(4)
    if head[:4] == _PARQUET_MAGIC and tail == _PARQUET_MAGIC:
        return "parquet"
    if head[:2] == GZIP_MAGIC and _decodes_as_gzip(head):
        return "gzip"
    return "lines"


def _decodes_as_gzip(head: bytes) -> bool:
    d = zlib.decompressobj(wbits=31)
    try:
        d.decompress(head, 1 << 20)  # at most 1 MB out: enough to find an error
    except zlib.error:
        return False
    return not (d.eof and d.unused_data and not d.unused_data.startswith(GZIP_MAGIC))


def iter_line_entries(f: BinaryIO) -> Iterator[tuple[int, bytes] | RawItem]:
    """The numbered lines of a line stream, unparsed: `(number, line)`, or an error RawItem
    for a line longer than MAX_RAW_LINE_BYTES (skipped in 1 MB reads, never held whole)."""
    number = 0
    readline = f.readline
    while True:
        line = readline(MAX_RAW_LINE_BYTES + 1)
        if not line:
            return
        number += 1
        if len(line) <= MAX_RAW_LINE_BYTES or line.endswith(b"\n"):
            yield number, line
            continue
        size = len(line)
        while line and not line.endswith(b"\n"):
            line = readline(1 << 20)
            size += len(line)
        size -= line.endswith(b"\n")
        yield RawItem(
            number,
            None,
            f"line {number}: {size} bytes, longer than the limit of {MAX_RAW_LINE_BYTES} bytes "
            "(hrpred.io.limits.MAX_RAW_LINE_BYTES); not parsed",
        )


def iter_raw_lines(path: Path, fmt: str) -> Iterator[tuple[int, bytes] | RawItem]:
    """The unparsed entries (see `iter_line_entries`) of a 'lines' or 'gzip' file.

    A gzip file is decompressed in a stream capped at MAX_RAW_DECOMPRESSED_BYTES and at
    hrpred.io.limits.MAX_GZIP_RATIO (InputLimitError, one line, past either); a truncated
    or corrupt gzip stream ends with one error RawItem after the lines read before it.
    """
    if fmt == "lines":
        with open(path, "rb", buffering=1 << 20) as f:
            yield from iter_line_entries(f)
        return
    raw = open(path, "rb")  # closed with the reader below
    gz = BoundedGzipReader(raw, path.name, max_bytes=MAX_RAW_DECOMPRESSED_BYTES)
    number = 0
    with io.BufferedReader(gz, buffer_size=1 << 20) as f:
        try:
            for entry in iter_line_entries(f):
                number = entry.line if isinstance(entry, RawItem) else entry[0]
                yield entry
        except InputLimitError as exc:
            if "corrupt gzip data" not in str(exc):  # a size or ratio limit: refuse the file
                raise
            n = number + 1
            yield RawItem(n, None, f"line {n}: gzip stream is truncated or corrupt ({exc})")


def _iter_parquet(path: Path) -> Iterator[RawItem]:
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except Exception as exc:  # noqa: BLE001 - pyarrow raises many types
        raise RawFormatError(f"{path}: not a readable Parquet file ({exc})") from None
    meta = pf.metadata
    size = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
    if size > MAX_RAW_DECOMPRESSED_BYTES:
        raise InputLimitError(
            f"{path}: {size} bytes once decompressed, more than the limit of "
            f"{MAX_RAW_DECOMPRESSED_BYTES} (hrpred.io.limits.MAX_RAW_DECOMPRESSED_BYTES)"
        )
    number = 0
    for batch in pf.iter_batches(batch_size=_PARQUET_BATCH_ROWS):
        for row in batch.to_pylist():
            number += 1
            workout = {PARQUET_RENAME.get(k, k): v for k, v in row.items() if v is not None}
            reason = validate_workout(workout)
            if reason is not None:
                yield RawItem(number, None, f"row {number}: {reason}")
            else:
                yield RawItem(number, workout, None)


def iter_raw(path: str | Path) -> Iterator[RawItem]:
    """Stream the workouts of a raw file, one `RawItem` per line/row, in file order.

    Raises RawNotFoundError (one line, with what to do) when the file is missing,
    RawFormatError when a Parquet file cannot be opened and InputLimitError when a
    compressed file is past the decompression limits. Bad lines never raise.
    """
    path = require_raw_file(path)
    fmt = sniff_format(path)
    if fmt == "parquet":
        yield from _iter_parquet(path)
        return
    for entry in iter_raw_lines(path, fmt):
        yield entry if isinstance(entry, RawItem) else item_from_line(*entry)


# ---------------------------------------------------------------------------- writers


def _literal_value(value: Any) -> str:
    if isinstance(value, str):
        return repr(value)
    if hasattr(value, "tolist"):  # numpy arrays and scalars
        value = value.tolist()
    if isinstance(value, list) and set(map(type, value)) <= _NUMBER_TYPES:
        # orjson writes numbers in a form Python reads back exactly, much faster than repr.
        try:
            return orjson.dumps(value).decode().replace(",", ", ")
        except TypeError:  # integers beyond 64 bits
            pass
    return repr(value)


def write_fitrec_line(workout: dict[str, Any]) -> str:
    """One workout as a FitRec line: a Python dict literal with single quotes, no newline.

    Keys follow the real file's order (`FITREC_KEY_ORDER`), then any others.
    """
    keys = [k for k in FITREC_KEY_ORDER if k in workout]
    keys += [k for k in workout if k not in FITREC_KEY_ORDER]
    return "{" + ", ".join(f"{k!r}: {_literal_value(workout[k])}" for k in keys) + "}"


def write_fitrec(workouts: Iterable[dict[str, Any]], path: str | Path) -> int:
    """Write workouts as FitRec literal lines (gzip'ed when the name ends in .gz)."""
    return _write_lines((write_fitrec_line(w).encode() for w in workouts), path)


def write_jsonl(workouts: Iterable[dict[str, Any]], path: str | Path) -> int:
    """Write workouts as JSON lines (gzip'ed when the name ends in .gz)."""
    opt = orjson.OPT_SERIALIZE_NUMPY
    return _write_lines((orjson.dumps(w, option=opt) for w in workouts), path)


def _write_lines(lines: Iterable[bytes], path: str | Path) -> int:
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    count = 0
    with opener(path, "wb") as f:
        for line in lines:
            f.write(line + b"\n")
            count += 1
    return count


def write_parquet(
    workouts: Iterable[dict[str, Any]], path: str | Path, batch_rows: int = 256
) -> int:
    """Write workouts as Parquet, one row per workout (HF export schema), streaming."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema(
        [
            ("workout_id", pa.int64()),
            ("user_id", pa.int64()),
            ("sport", pa.string()),
            ("gender", pa.string()),
            ("heart_rate", pa.list_(pa.float64())),
            ("speed", pa.list_(pa.float64())),
            ("altitude", pa.list_(pa.float64())),
            ("timestamp", pa.list_(pa.int64())),
            ("latitude", pa.list_(pa.float64())),
            ("longitude", pa.list_(pa.float64())),
            ("url", pa.string()),
        ]
    )
    inverse = {v: k for k, v in PARQUET_RENAME.items()}
    count = 0
    with pq.ParquetWriter(path, schema) as writer:
        rows: list[dict[str, Any]] = []
        for w in workouts:
            row = {inverse.get(k, k): w.get(k) for k in ("id", "userId")}
            row.update({name: w.get(name) for name in schema.names if name not in row})
            rows.append(_plain(row))
            if len(rows) >= batch_rows:
                writer.write_table(pa.Table.from_pylist(rows, schema=schema))
                count += len(rows)
                rows = []
        if rows:
            writer.write_table(pa.Table.from_pylist(rows, schema=schema))
            count += len(rows)
    return count


def _plain(row: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.tolist() if hasattr(v, "tolist") else v) for k, v in row.items()}


def convert_raw(src: str | Path, dst: str | Path, fmt: str) -> tuple[int, int]:
    """Copy the valid workouts of `src` to `dst` as 'fitrec', 'jsonl' or 'parquet'.

    Returns (written, skipped); `.gz` in dst compresses the line formats.
    """
    skipped = 0

    def good() -> Iterator[dict[str, Any]]:
        nonlocal skipped
        for item in iter_raw(src):
            if item.workout is None:
                skipped += 1
            else:
                yield item.workout

    writers = {"fitrec": write_fitrec, "jsonl": write_jsonl, "parquet": write_parquet}
    if fmt not in writers:
        raise ValueError(f"unknown format {fmt!r}: use one of {sorted(writers)}")
    written = writers[fmt](good(), dst)
    return written, skipped
