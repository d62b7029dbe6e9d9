"""Fuzzing the clean stage with hostile raw lines (issue 16): no crash, every line accounted.

Seeded mutants of valid workouts (random bytes, bit flips, truncation, wrong types,
NaN/inf/1e308, mismatched array lengths, valid JSON that is not a dict, deeply nested lists,
a corrupt first line with gzip's or Parquet's magic bytes) go through `clean_raw`, plain and
gzip'ed; over-long lines (40 MB, 50 MB) run in a subprocess that measures its peak RSS.

The default suite runs a few hundred mutants; `HRPRED_FUZZ_LONG=1` runs thousands.
"""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import orjson
import pyarrow.parquet as pq
import pytest

from hrpred.clean.config import CleanConfig
from hrpred.clean.pipeline import clean_raw
from hrpred.io.raw import write_fitrec_line
from hrpred.store import Layout

ROOT = Path(__file__).resolve().parents[1]
LONG = bool(os.environ.get("HRPRED_FUZZ_LONG"))
N_MUTANTS = 4000 if LONG else 500
SEEDS = range(5) if LONG else range(1)

WRONG_VALUES = ["x", None, {}, True, [None], ["a"], 1.5, -1, 2**70, [[1, 2]], (1, 2), [True]]
SPECIAL_NUMBERS = [b"1e308", b"-1e308", b"1e999", b"-1e999", b"nan", b"NaN", b"Infinity"]
KEYS = ("id", "userId", "sport", "gender", "timestamp", "heart_rate", "altitude", "speed")
ARRAYS = ("timestamp", "heart_rate", "altitude", "speed", "latitude", "longitude")


def workout(rng: np.random.Generator, wid: int) -> dict:
    n = int(rng.integers(60, 200))
    t = 1_400_000_000 + wid * 10_000 + np.cumsum(rng.integers(1, 10, n))
    speed = np.clip(10 + np.cumsum(rng.normal(0, 0.3, n)), 0, 25)
    return {
        "id": wid,
        "userId": int(rng.integers(1, 6)),
        "sport": "run" if rng.random() < 0.85 else "bike",
        "gender": "male",
        "timestamp": t.tolist(),
        "heart_rate": np.round(120 + 3 * speed + rng.normal(0, 2, n)).astype(int).tolist(),
        "altitude": np.round(100 + np.cumsum(rng.normal(0, 0.5, n)), 1).tolist(),
        "speed": np.round(speed, 3).tolist(),
    }


def mutant(rng: np.random.Generator, wid: int) -> bytes:
    """One hostile (or, sometimes, valid) raw line without a newline."""
    w = workout(rng, wid)
    line = write_fitrec_line(w).encode()
    kind = int(rng.integers(0, 12))
    if kind == 0:  # random bytes
        out = rng.integers(0, 256, int(rng.integers(0, 400)), dtype=np.uint8).tobytes()
    elif kind == 1:  # truncated dict
        out = line[: int(rng.integers(0, len(line)))]
    elif kind == 2:  # bit flips
        buf = bytearray(line)
        for pos in rng.integers(0, len(buf), int(rng.integers(1, 8))):
            buf[pos] ^= 1 << int(rng.integers(0, 8))
        out = bytes(buf)
    elif kind == 3:  # a block deleted or duplicated
        a, b = sorted(rng.integers(0, len(line), 2))
        out = line[:a] + line[b:] if rng.random() < 0.5 else line[:b] + line[a:]
    elif kind == 4:  # wrong type for a key, or the key missing
        key = KEYS[int(rng.integers(0, len(KEYS)))]
        if rng.random() < 0.2:
            del w[key]
        else:
            w[key] = WRONG_VALUES[int(rng.integers(0, len(WRONG_VALUES)))]
        out = repr(w).encode()
    elif kind == 5:  # NaN / inf / 1e308 inside an array
        key = ARRAYS[int(rng.integers(0, 4))]
        marker = 987654.25
        w[key][int(rng.integers(0, len(w[key])))] = marker
        special = SPECIAL_NUMBERS[int(rng.integers(0, len(SPECIAL_NUMBERS)))]
        out = write_fitrec_line(w).encode().replace(b"987654.25", special)
    elif kind == 6:  # mismatched array lengths, or empty arrays
        key = ARRAYS[int(rng.integers(0, 4))]
        w[key] = w[key][: int(rng.integers(0, len(w[key])))]
        out = write_fitrec_line(w).encode()
    elif kind == 7:  # valid JSON that is not a dict
        out = [b"[1, 2]", b"3", b'"s"', b"null", b"true", b"{}", b"[]", b"1e999"][wid % 8]
    elif kind == 8:  # deeply nested lists, alone or as a value
        depth = int(rng.choice([50, 300, 1100, 20_000]))
        nested = b"[" * depth + b"1" + b"]" * depth
        out = (
            nested
            if rng.random() < 0.5
            else line.replace(b"'speed': [", b"'speed': " + nested + b", 'x': [")
        )
    elif kind == 9:  # JSON lines (the other text format), valid
        out = orjson.dumps(w)
    else:  # valid FitRec lines
        out = line
    return out.replace(b"\n", b" ").replace(b"\r", b" ")


def check_accounting(m: dict, n_lines: int, layout: Layout) -> None:
    assert m["accounting"]["ok"], m["accounting"]
    assert m["lines_read"] == n_lines
    assert (
        m["lines_read"] == m["workouts_read"] + m["workouts_other_sports"] + m["lines_unparseable"]
    )
    assert m["workouts_read"] == m["workouts_kept"] + sum(m["rejected"].values())
    rejects = pq.read_table(layout.clean_rejects)
    assert pq.read_table(layout.clean_workouts).num_rows == m["workouts_kept"]
    assert rejects.num_rows + m["workouts_kept"] == n_lines
    assert "error" not in rejects["reason"].to_pylist()  # no line needed the safety net
    assert "0x" not in " ".join(rejects["detail"].to_pylist())  # no memory address
    report = pq.read_table(layout.clean_report, columns=["line"])["line"].to_pylist()
    assert report == list(range(1, n_lines + 1))


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("first", [b"\x1f\x8b\x08\x00\x00corrupt", b"PAR1corrupt", None])
def test_hostile_lines_are_all_accounted(tmp_path, config, seed, first):
    cfg = replace(config(CleanConfig, "clean"), workers=1, chunk_lines=64, truth=None)
    rng = np.random.default_rng(seed)
    lines = [mutant(rng, 1000 + i) for i in range(N_MUTANTS)]
    if first is not None:  # a corrupt first line that starts with magic bytes
        lines[0] = first
    data = b"".join(line + b"\n" for line in lines)
    results = []
    for name, writer in (("raw.json", Path.write_bytes), ("raw.json.gz", _write_gzip)):
        raw = tmp_path / name
        writer(raw, data)
        layout = Layout(tmp_path / f"out-{name}")
        m = clean_raw(cfg, raw, layout)
        check_accounting(m, len(lines), layout)
        if first is not None:
            assert m["lines_unparseable"] >= 1
        results.append((m, layout.clean_rejects.read_bytes()))
    # Compressed or not, the same lines give the same outputs.
    assert results[0] == results[1]


def _write_gzip(path: Path, data: bytes) -> None:
    path.write_bytes(gzip.compress(data, compresslevel=1))


BIG_LINES_SCRIPT = """
import sys, time
from dataclasses import replace
from pathlib import Path

from hrpred.clean.config import CleanConfig
from hrpred.clean.pipeline import clean_raw
from hrpred.params import load_config
from hrpred.store import Layout
from tests.procmem import peak_rss_mb

cfg = replace(load_config(CleanConfig, "clean", Path(sys.argv[3])), workers=1, chunk_lines=4,
              truth=None)
began = time.perf_counter()
m = clean_raw(cfg, Path(sys.argv[1]), Layout(Path(sys.argv[2])))
seconds = time.perf_counter() - began
rss_mb = peak_rss_mb()
print(m["accounting"]["ok"], m["lines_read"], m["lines_unparseable"], m["workouts_kept"],
      round(seconds, 1), round(rss_mb))
"""


def test_huge_lines_cost_bounded_time_and_memory(tmp_path):
    from hrpred.io.limits import MAX_LITERAL_LINE_BYTES

    rng = np.random.default_rng(1)
    good = [write_fitrec_line(workout(rng, 10 + i)).encode() for i in range(6)]
    head = b"{'id': 7, 'userId': 1, 'sport': 'run', 'gender': 'male', 'x': True, 'heart_rate': ["
    number = b"100, "

    def sized(prefix: bytes, size: int) -> bytes:
        return prefix + number * ((size - len(prefix)) // len(number)) + b"1]}"

    lines = [
        b"\x1f\x8b\x08\x00corrupt first line",
        good[0],
        sized(head, 40 << 20),  # 40 MB, needs the literal parser (`True`)
        good[1],
        sized(head.replace(b"True", b"1"), 50 << 20),  # 50 MB of JSON-able literal
        good[2],
        sized(head, 4 * MAX_LITERAL_LINE_BYTES),  # under the line limit, over the literal one
        good[3],
        sized(b"[" * 5000, 8 << 20),  # 8 MB that is not a dict, nested
        good[4],
        b"[" * 2_000_000,  # deeply nested, unterminated
        good[5],
    ]
    raw = tmp_path / "raw.json"
    with open(raw, "wb") as f:
        for line in lines:
            f.write(line + b"\n")
    (tmp_path / "big.py").write_text(BIG_LINES_SCRIPT)
    proc = subprocess.run(
        [
            sys.executable,
            str(tmp_path / "big.py"),
            str(raw),
            str(tmp_path / "out"),
            str(ROOT / "params.yaml"),
        ],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    print("huge lines: ok, lines, unparseable, kept, seconds, peak RSS MB:", proc.stdout)
    ok, n, unparseable, kept, seconds, rss_mb = proc.stdout.split()
    assert ok == "True" and int(n) == len(lines)
    assert int(unparseable) == 6  # the corrupt first line and the five huge ones
    assert int(kept) + int(unparseable) <= len(lines)
    assert float(seconds) < 60, seconds
    assert int(rss_mb) < 1024, f"peak RSS {rss_mb} MB"
    rejects = pq.read_table(Layout(tmp_path / "out").clean_rejects)
    details = dict(zip(rejects["line"].to_pylist(), rejects["detail"].to_pylist(), strict=True))
    assert "longer than the limit" in details[3] and "longer than the limit" in details[5]
    assert "too long for the literal parser" in details[7]
