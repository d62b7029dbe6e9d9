"""Raw readers: four formats read to identical workouts; bad input is reported, never fatal."""

from __future__ import annotations

import ast
import gzip
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hrpred.errors import HrpredError
from hrpred.io.raw import (
    RawItem,
    RawNotFoundError,
    iter_raw,
    parse_line,
    write_fitrec,
    write_fitrec_line,
    write_jsonl,
    write_parquet,
)


def _workout(i: int, speed: bool = True) -> dict:
    w = {
        "longitude": [24.649770408868790 + i * 1e-4, 24.65, 24.6512345678901],
        "altitude": [41.6, 40.6, -3.0],
        "latitude": [60.17334900000001, 60.1734, 60.17351],
        "sport": "run" if i % 2 == 0 else "bike (transport)",
        "id": 396826535 + i,
        "heart_rate": [100, 111, 120 + i],
        "gender": "male" if i % 3 else "female",
        "timestamp": [1408898746, 1408898754, 1408898762],
        "url": f"https://www.endomondo.com/users/10921915/workouts/{396826535 + i}",
        "userId": 10921915,
    }
    if speed:
        w["speed"] = [6.8652, 16.4736, 1e-05]
    return w


WORKOUTS = [_workout(i, speed=i % 4 != 1) for i in range(7)]


def _read(path: Path) -> list[RawItem]:
    return list(iter_raw(path))


def _good(items: list[RawItem]) -> list[dict]:
    assert all(it.error is None for it in items), [it.error for it in items if it.error]
    return [it.workout for it in items]


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    paths = {
        "fitrec": tmp_path / "w.json",
        "fitrec_gz": tmp_path / "w.json.gz",
        "jsonl": tmp_path / "w.jsonl",
        "jsonl_gz": tmp_path / "w.jsonl.gz",
        "parquet": tmp_path / "w.parquet",
    }
    write_fitrec(WORKOUTS, paths["fitrec"])
    write_fitrec(WORKOUTS, paths["fitrec_gz"])
    write_jsonl(WORKOUTS, paths["jsonl"])
    write_jsonl(WORKOUTS, paths["jsonl_gz"])
    write_parquet(WORKOUTS, paths["parquet"])
    return paths


def test_all_formats_read_to_identical_workouts(files: dict[str, Path]) -> None:
    expected = WORKOUTS
    for name, path in files.items():
        got = _good(_read(path))
        assert got == expected, name
        assert [it.line for it in _read(path)] == list(range(1, len(expected) + 1))
    # Speed stays optional: absent in the source -> absent after every reader.
    assert "speed" not in _good(_read(files["parquet"]))[1]


def test_fitrec_lines_are_python_literals_like_the_real_file(files: dict[str, Path]) -> None:
    lines = files["fitrec"].read_text().splitlines()
    for line, w in zip(lines, WORKOUTS, strict=True):
        assert line.startswith("{'longitude': [")
        assert '"' not in line  # single quotes only, as in the real file
        with pytest.raises(json.JSONDecodeError):
            json.loads(line)
        assert ast.literal_eval(line) == w


def test_parquet_uses_the_export_schema(files: dict[str, Path]) -> None:
    names = pq.read_schema(files["parquet"]).names
    for col in ("workout_id", "user_id", "sport", "gender", "heart_rate", "speed", "altitude"):
        assert col in names
    assert "id" not in names and "userId" not in names


def test_fast_path_matches_literal_eval_on_tricky_lines() -> None:
    lines = [
        # needs the ast fallback: escaped quote, double-quoted string, Python constants
        "{'a': 'it\\'s', 'b': [1, 2.5]}",
        "{'a': \"O'Brien\", 'b': [1]}",
        "{'a': None, 'b': True, 'c': (1, 2)}",
        "{'a': [1e-05, -0.0, 1e+16, 12345678901234567890]}",
        "  {'a': [ 1 ,2 ] }  ",
        '{"a": [1, 2], "b": "json line"}',
    ]
    for line in lines:
        assert parse_line(line.encode()) == ast.literal_eval(line.strip())


_text = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\n\r"), max_size=12)
_numbers = st.lists(
    st.one_of(
        # orjson's documented range; beyond it the fast path reads a float (see parse_line)
        st.integers(-(2**63), 2**64 - 1),
        st.floats(allow_nan=False, allow_infinity=False),
    ),
    max_size=8,
)


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(
        st.text(max_size=8),
        st.one_of(_text, _numbers, st.integers(-(2**63), 2**64 - 1)),
        max_size=6,
    )
)
def test_writer_and_parser_agree_with_python(d: dict) -> None:
    line = write_fitrec_line(d)
    assert ast.literal_eval(line) == d
    assert parse_line(line.encode()) == d


def test_bad_lines_are_reported_with_their_line_and_the_rest_is_read(tmp_path: Path) -> None:
    good = write_fitrec_line(WORKOUTS[0])
    missing = dict(WORKOUTS[0])
    del missing["heart_rate"], missing["gender"]
    cases = [
        (good[: len(good) // 2], "truncated"),
        ("[1, 2, 3]", "not a dict (got list)"),
        (write_fitrec_line(missing), "missing keys ['gender', 'heart_rate']"),
        (write_fitrec_line({**WORKOUTS[0], "id": "123"}), "'id' must be an integer"),
        (write_fitrec_line({**WORKOUTS[0], "id": 1.5}), "'id' must be an integer"),
        (write_fitrec_line({**WORKOUTS[0], "id": 2**63}), "'id' is outside the 64-bit"),
        (write_fitrec_line({**WORKOUTS[0], "id": -(2**80)}), "'id' must be an integer"),
        (write_fitrec_line({**WORKOUTS[0], "heart_rate": [1, "x"]}), "found str"),
        (write_fitrec_line({**WORKOUTS[0], "heart_rate": [1, None]}), "found NoneType"),
        (write_fitrec_line({**WORKOUTS[0], "speed": [True, 2.0]}), "found bool"),
        (write_fitrec_line({**WORKOUTS[0], "altitude": 5.0}), "'altitude' must be a list"),
        (write_fitrec_line({**WORKOUTS[0], "sport": 3}), "'sport' must be a string"),
        ("", "empty line"),
        ("{'id': 1, 'heart_rate': [1, 2]", "malformed or truncated"),
    ]
    raw = b"\n".join([good.encode()] + [c.encode() for c, _ in cases] + [good.encode()])
    garbage = bytes([0xFF, 0xFE, 0x00, 0x80]) + bytes(range(14, 200))
    path = tmp_path / "bad.json"
    path.write_bytes(raw + b"\n" + garbage + b"\n" + good.encode() + b"\n")

    items = _read(path)
    n_lines = len(cases) + 4
    assert [it.line for it in items] == list(range(1, n_lines + 1))  # nothing dropped
    assert [it.workout is not None for it in items] == (
        [True] + [False] * len(cases) + [True, False, True]
    )
    for item, (_, reason) in zip(items[1:], cases, strict=False):
        assert item.workout is None
        assert item.error.startswith(f"line {item.line}: "), item.error
        assert reason in item.error, item.error
    assert "not UTF-8" in items[-2].error and items[-2].error.startswith(f"line {n_lines - 1}:")
    assert all((it.workout is None) != (it.error is None) for it in items)


def test_empty_file_yields_nothing(tmp_path: Path) -> None:
    path = tmp_path / "empty.json"
    path.write_bytes(b"")
    assert _read(path) == []
    gz = tmp_path / "empty.json.gz"
    with gzip.open(gz, "wb"):
        pass
    assert _read(gz) == []


def test_missing_file_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(RawNotFoundError) as err:
        _read(tmp_path / "nope.json")
    # One error type for the stage wrapper, still a FileNotFoundError for other callers.
    assert isinstance(err.value, HrpredError) and isinstance(err.value, FileNotFoundError)
    message = str(err.value)
    assert "nope.json" in message and "stages.simulate" in message and "data.raw" in message
    assert "\n" not in message


def test_truncated_gzip_keeps_good_lines_and_reports_the_break(tmp_path: Path) -> None:
    src = tmp_path / "w.json.gz"
    write_fitrec(WORKOUTS * 30, src)
    cut = tmp_path / "cut.json.gz"
    data = src.read_bytes()
    cut.write_bytes(data[: len(data) * 2 // 3])
    items = _read(cut)
    assert items[-1].workout is None and "truncated or corrupt" in items[-1].error
    assert items[-1].error.startswith(f"line {items[-1].line}: ")
    good = [it.workout for it in items[:-1] if it.workout is not None]
    assert 0 < len(good) < len(WORKOUTS) * 30
    assert good == (WORKOUTS * 30)[: len(good)]


def test_parquet_rows_with_nulls_or_wrong_types_are_reported(tmp_path: Path) -> None:
    path = tmp_path / "w.parquet"
    rows = [
        {"workout_id": 1, "user_id": 2, "sport": "run", "gender": "male",
         "heart_rate": [100.0], "altitude": [1.0], "timestamp": [5]},
        {"workout_id": 3, "user_id": 4, "sport": "run", "gender": "male",
         "heart_rate": None, "altitude": [1.0], "timestamp": [5]},
        {"workout_id": 5, "user_id": 6, "sport": "run", "gender": "male",
         "heart_rate": [100.0, None], "altitude": [1.0], "timestamp": [5]},
    ]  # fmt: skip
    pq.write_table(pa.Table.from_pylist(rows), path)
    items = _read(path)
    assert items[0].workout == {
        "id": 1, "userId": 2, "sport": "run", "gender": "male",
        "heart_rate": [100.0], "altitude": [1.0], "timestamp": [5],
    }  # fmt: skip
    assert items[1].error == "row 2: missing keys ['heart_rate']"
    assert items[2].error.startswith("row 3: 'heart_rate' must be a list of numbers")


def test_extension_does_not_decide_the_format(tmp_path: Path, files: dict[str, Path]) -> None:
    # A gzip'ed file or a Parquet file under a plain name is still read correctly.
    for name in ("fitrec_gz", "parquet"):
        renamed = tmp_path / f"{name}.data"
        renamed.write_bytes(files[name].read_bytes())
        assert _good(_read(renamed)) == WORKOUTS


# ---------------------------------------------------------------------- hardening (issue 16)


@pytest.mark.parametrize(
    "first",
    [
        b"\x1f\x8b\x08\x00corrupt line that starts like gzip",
        b"\x1f\x8b",
        b"PAR1 corrupt line that starts like Parquet",
    ],
)
def test_a_corrupt_first_line_with_magic_bytes_is_one_bad_line(tmp_path: Path, first) -> None:
    # The format is read from the file, not from line 1: the other lines are all read.
    path = tmp_path / "w.json"
    good = tmp_path / "good.json"
    write_fitrec(WORKOUTS * 3, good)
    path.write_bytes(first + b"\n" + good.read_bytes())
    items = _read(path)
    assert len(items) == 1 + len(WORKOUTS) * 3
    assert items[0].workout is None and items[0].error.startswith("line 1: ")
    assert [it.workout for it in items[1:]] == WORKOUTS * 3
    assert [it.line for it in items] == list(range(1, len(items) + 1))


def test_concatenated_gzip_members_are_one_gzip_file(tmp_path: Path) -> None:
    a, b = tmp_path / "a.json.gz", tmp_path / "b.json.gz"
    write_fitrec(WORKOUTS[:3], a)
    write_fitrec(WORKOUTS[3:], b)
    both = tmp_path / "both.json.gz"
    both.write_bytes(a.read_bytes() + b.read_bytes())
    assert _good(_read(both)) == WORKOUTS


def test_the_literal_fallback_refuses_long_lines(tmp_path: Path) -> None:
    # `True` is not JSON, so this line needs ast.literal_eval; 2 MB is past its limit.
    from hrpred.io.limits import MAX_LITERAL_LINE_BYTES

    w = {**WORKOUTS[0], "heart_rate": [100] * (MAX_LITERAL_LINE_BYTES // 5 + 10), "x": True}
    path = tmp_path / "w.json"
    path.write_text(repr(w) + "\n" + write_fitrec_line(WORKOUTS[0]) + "\n")
    items = _read(path)
    assert items[0].workout is None
    assert "too long for the literal parser" in items[0].error
    assert items[1].workout == WORKOUTS[0]
    small = {**WORKOUTS[0], "x": True}  # below the limit the fallback still reads it
    assert parse_line(repr(small).encode()) == small


def test_a_line_past_the_line_limit_is_skipped_unparsed(tmp_path: Path, monkeypatch) -> None:
    import hrpred.io.raw as raw

    monkeypatch.setattr(raw, "MAX_RAW_LINE_BYTES", 1000)
    lines = [write_fitrec_line(w).encode() for w in WORKOUTS[:2]]
    long_line = b"{'id': [" + b"1, " * 2000 + b"]}"
    for name, opener in (("w.json", open), ("w.json.gz", gzip.open)):
        path = tmp_path / name
        with opener(path, "wb") as f:
            f.write(lines[0] + b"\n" + long_line + b"\n" + lines[1] + b"\n" + long_line)
        items = _read(path)
        assert [it.line for it in items] == [1, 2, 3, 4]
        assert [it.workout for it in items[::2]] == WORKOUTS[:2]
        for it in items[1::2]:
            assert it.workout is None and f"{len(long_line)} bytes, longer than" in it.error


def test_a_gzip_bomb_is_refused_with_one_line(tmp_path: Path, monkeypatch) -> None:
    import hrpred.io.raw as raw
    from hrpred.io.limits import InputLimitError

    monkeypatch.setattr(raw, "MAX_RAW_DECOMPRESSED_BYTES", 1 << 20)
    path = tmp_path / "bomb.json.gz"
    with gzip.open(path, "wb") as f:
        f.write(b" " * (4 << 20))  # 4 MB of spaces, a few KB compressed
    with pytest.raises(InputLimitError, match="MB once decompressed") as err:
        _read(path)
    assert "\n" not in str(err.value)


def test_errors_never_contain_a_memory_address() -> None:
    # ast's message names the node object with its address, which changes between runs.
    from hrpred.io.raw import item_from_line

    error = item_from_line(1, b"{'id': foo}").error
    assert "malformed" in error and "0x" not in error
