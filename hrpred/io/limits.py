"""Plausibility and resource limits for every input we read, checked before any allocation.

Memory and time must be bounded by an input's size, never by values inside it (a corrupted
timestamp spanning years, a point count field, a gzip ratio). Readers check these limits and
raise a one-line error naming the file and the limit.
"""

from __future__ import annotations

import gzip
import io
import zlib
from typing import BinaryIO

from hrpred.errors import HrpredError

MAX_DURATION_S = 24 * 3600.0  # longest recording accepted (s)
MIN_TIMESTAMP_S = 946_684_800.0  # 2000-01-01T00:00:00Z: earlier timestamps are corrupt
FUTURE_SLACK_S = 2 * 86400.0  # timestamps later than now + this are corrupt
MAX_POINTS = 200_000  # samples in one recording (a day at 1 Hz is 86,400)
MAX_DECOMPRESSED_BYTES = 512 * 1024 * 1024  # a user file or raw line stream after gunzip
MAX_GZIP_RATIO = 200.0  # decompressed / compressed bytes (text GPS tracks reach ~10-30)
GZIP_RATIO_FLOOR_BYTES = 64 * 1024 * 1024  # the ratio is only enforced past this many bytes
GZIP_MAGIC = b"\x1f\x8b"

# Raw workout files (the clean stage, hrpred.io.raw): limits per line, so one bad line costs
# bounded memory and time and is counted as unparseable with the reason.
MAX_RAW_DECOMPRESSED_BYTES = 64 * 1024**3  # a gzip'ed raw file after gunzip (real: ~5 GB)
MAX_RAW_LINE_BYTES = 16 * 1024 * 1024  # one raw line (a real FitRec line is < 100 KB)
MAX_LITERAL_LINE_BYTES = 1024 * 1024  # a line given to ast.literal_eval (the slow fallback)


class InputLimitError(HrpredError):
    """An input exceeds a resource or plausibility limit (the message names both)."""


class BoundedGzipReader(io.RawIOBase):
    """A gzip stream that stops with InputLimitError past `max_bytes` decompressed bytes, or
    past `max_ratio` x the compressed bytes read so far (once `ratio_floor` bytes are out)."""

    def __init__(
        self,
        raw: BinaryIO,
        name: str,
        max_bytes: int = MAX_DECOMPRESSED_BYTES,
        max_ratio: float = MAX_GZIP_RATIO,
        ratio_floor: int = GZIP_RATIO_FLOOR_BYTES,
    ) -> None:
        self._raw = raw
        self._gz = gzip.GzipFile(fileobj=raw, mode="rb")
        self.name = name
        self.max_bytes = max_bytes
        self.max_ratio = max_ratio
        self.ratio_floor = ratio_floor
        self.out_bytes = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        want = min(len(buffer), 1 << 20)
        try:
            data = self._gz.read1(want)  # what is decoded so far: a later break keeps it
        except (OSError, EOFError, zlib.error) as exc:
            raise InputLimitError(f"{self.name}: corrupt gzip data ({exc})") from None
        n = len(data)
        buffer[:n] = data
        self.out_bytes += n
        if self.out_bytes > self.max_bytes:
            raise InputLimitError(
                f"{self.name}: more than {self.max_bytes // (1024 * 1024)} MB once decompressed "
                "(limit of hrpred.io.limits.MAX_DECOMPRESSED_BYTES)"
            )
        compressed = max(self._raw.tell(), 1)
        if self.out_bytes > self.ratio_floor and self.out_bytes / compressed > self.max_ratio:
            raise InputLimitError(
                f"{self.name}: decompresses more than {self.max_ratio:.0f}x (a gzip bomb?)"
            )
        return n

    def close(self) -> None:
        try:
            self._gz.close()
        finally:
            self._raw.close()
            super().close()


# User activity files (hrpred predict, the app): checked by hrpred.io.activity before any
# array is sized from their values.
MAX_ACTIVITY_BYTES = 64 * 1024 * 1024  # one activity file once decompressed (24 h GPX ~ 30 MB)
MAX_BACKWARD_FRACTION = 0.05  # steps back in time above this share: rejected, below: sorted
SPEED_RANGE_KMH = (0.0, 200.0)  # recorded speeds outside: masked (a sensor glitch)
ALTITUDE_RANGE_M = (-500.0, 9000.0)  # recorded altitudes outside: masked
DISTANCE_RANGE_M = (0.0, 5_000_000.0)  # cumulative distance outside: masked

# Exports (a Strava or Garmin account export, hrpred.io.exports): read member by member, each
# activity member within MAX_ACTIVITY_BYTES once decompressed (and gunzipped).
MAX_EXPORT_MEMBERS = 200_000  # entries in one archive (a 10-year Garmin export: ~50,000)
MAX_CENTRAL_DIRECTORY_BYTES = 64 * 1024 * 1024  # an archive's directory, read before any member
MAX_NESTED_ARCHIVE_BYTES = 8 * 1024**3  # an archive inside the export, spooled to a temp file
MAX_ARCHIVE_DEPTH = 1  # archives inside the export: Garmin's nest one level deep
MAX_INDEX_BYTES = 64 * 1024 * 1024  # Strava's activities.csv (10,000 activities: ~10 MB)
FIT_PEEK_BYTES = 4096  # read of a FIT member to find its file_id type (the first message)
