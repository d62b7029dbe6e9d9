"""The params loader (hrpred.params): types checked, unknown and missing keys named."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import pytest

from hrpred.params import ParamError, from_mapping, load_config, load_value, read_params


@dataclass(frozen=True)
class Inner:
    rate: float


@dataclass(frozen=True)
class Demo:
    n: int
    lr: float
    flag: bool
    mode: Literal["a", "b"]
    span: tuple[float, float]
    names: tuple[str, ...]
    mix: dict[str, float]
    truth: str | None
    inner: Inner

    def __post_init__(self) -> None:
        if self.n < 1:
            raise ParamError("demo.n must be >= 1")


GOOD = {
    "n": 3,
    "lr": 5.0e-4,
    "flag": True,
    "mode": "a",
    "span": [1, 2.5],
    "names": ["speed", "altitude"],
    "mix": {"run": 1},
    "truth": None,
    "inner": {"rate": 0.5},
}


def build(**changes: object) -> Demo:
    return from_mapping(Demo, {**GOOD, **changes}, "demo")


def test_builds_every_supported_annotation() -> None:
    cfg = build()
    assert cfg == Demo(3, 5e-4, True, "a", (1.0, 2.5), ("speed", "altitude"), {"run": 1.0},
                       None, Inner(0.5))  # fmt: skip
    assert isinstance(cfg.span[0], float) and isinstance(cfg.mix["run"], float)


def test_float_accepts_what_dvc_exp_run_writes() -> None:
    # `dvc exp run -S demo.lr=1e-5` writes `1e-05`, which PyYAML loads as a string.
    assert build(lr="1e-05").lr == pytest.approx(1e-5)
    assert build(inner={"rate": "2e-3"}).inner.rate == pytest.approx(2e-3)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"n": 2.5}, "demo.n must be an integer, got 2.5"),
        ({"n": True}, "demo.n must be an integer"),
        ({"lr": "fast"}, "demo.lr must be a number"),
        ({"flag": 1}, "demo.flag must be true or false"),
        ({"mode": "c"}, "demo.mode must be one of 'a', 'b'"),
        ({"span": [1.0]}, "demo.span must have 2 items"),
        ({"names": "speed"}, "demo.names must be a list"),
        ({"mix": [1]}, "demo.mix must be a mapping"),
        ({"inner": {"rate": 1, "extra": 2}}, "unknown key 'demo.inner.extra'"),
        ({"inner": {}}, "missing key 'demo.inner.rate'"),
        ({"typo": 1}, "unknown key 'demo.typo'"),
        ({"n": 0}, "demo.n must be >= 1"),
    ],
)
def test_bad_values_get_one_line_errors(changes: dict, message: str) -> None:
    with pytest.raises(ParamError, match=message.replace("(", r"\(").replace(")", r"\)")) as e:
        build(**changes)
    assert "\n" not in str(e.value)


def test_missing_key_names_it_and_the_file() -> None:
    data = {k: v for k, v in GOOD.items() if k != "lr"}
    with pytest.raises(ParamError, match="params.yaml: missing key 'demo.lr'"):
        from_mapping(Demo, data, "demo")


def test_none_words_for_optional_strings() -> None:
    assert build(truth="null").truth is None
    assert build(truth="data/raw/x.parquet").truth == "data/raw/x.parquet"


def test_load_config_and_value_from_a_file(tmp_path) -> None:
    path = tmp_path / "params.yaml"
    path.write_text(
        "data:\n  raw: data/raw/x.json\nstage:\n  demo:\n"
        + "".join(f"    {k}: {v!r}\n" for k, v in {**GOOD, "inner": None}.items() if v)
        + "    truth: null\n    flag: true\n    inner:\n      rate: 1e-05\n"
    )
    cfg = load_config(Demo, "stage.demo", path)
    assert cfg.inner.rate == pytest.approx(1e-5)
    assert load_value("data.raw", str, path) == "data/raw/x.json"
    with pytest.raises(ParamError, match="missing key 'data.nope'"):
        load_value("data.nope", str, path)


def test_missing_or_broken_file(tmp_path) -> None:
    with pytest.raises(ParamError, match="not found"):
        read_params(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [1,\n")
    with pytest.raises(ParamError, match="not valid YAML"):
        read_params(bad)
