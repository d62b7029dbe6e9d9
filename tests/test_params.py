"""The params loader (hrpred.params): types checked, unknown and missing keys named."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pytest

from hrpred.params import (
    SHARED_KEYS,
    ParamError,
    from_mapping,
    has_key,
    load_config,
    load_value,
    read_params,
    read_yaml,
)

ROOT = Path(__file__).resolve().parents[1]


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


# ------------------------------------------------ params.yaml + params/<section>.yaml


@dataclass(frozen=True)
class Band:
    lo: float
    hi: float

    def __post_init__(self) -> None:
        if self.lo > self.hi:
            raise ParamError("params.yaml: stage.band needs lo <= hi")


@dataclass(frozen=True)
class Stage:
    seed: int
    rate: float
    band: Band
    inner: Inner
    mix: dict[str, float]


MAIN = "data:\n  raw: x.json\nstage:\n  seed: 3\n  band:\n    lo: 1.0\n"
PART = "rate: 0.5\nband:\n  hi: 2.0\ninner:\n  rate: 0.1\nmix:\n  run: 1\n"


@pytest.fixture
def write_files(tmp_path, monkeypatch):
    """`write_files(main, part)`: params.yaml and params/stage.yaml in a fresh working dir."""
    monkeypatch.chdir(tmp_path)

    def write(main: str, part: str) -> Path:
        Path("params").mkdir(exist_ok=True)
        Path("params/stage.yaml").write_text(part)
        Path("params.yaml").write_text(main)
        return Path("params.yaml")

    return write


def test_a_section_is_assembled_from_its_two_files(write_files) -> None:
    path = write_files(MAIN, PART)
    want = Stage(3, 0.5, Band(1.0, 2.0), Inner(0.1), {"run": 1.0})
    assert load_config(Stage, "stage", path) == want
    assert load_value("stage.band.hi", float, path) == 2.0
    params = read_params(path)
    assert params["stage"]["band"] == {"lo": 1.0, "hi": 2.0} and params["data"]["raw"] == "x.json"


@pytest.mark.parametrize(
    ("main", "part", "message"),
    [  # each error names the file that holds the key (or should)
        (MAIN, PART.replace("0.5", "fast"), "params/stage.yaml: stage.rate must be a number"),
        (MAIN.replace("3", "3.5"), PART, "params.yaml: stage.seed must be an integer"),
        (MAIN, PART + "typo: 1\n", "params/stage.yaml: unknown key 'stage.typo'"),
        (MAIN, PART.replace("  run: 1", "  run: x"), "params/stage.yaml: stage.mix.run must be"),
        (MAIN, PART.replace("2.0", "0.5"), "params/stage.yaml: stage.band needs lo <= hi"),
        (MAIN.replace("1.0", "3.0"), PART, "params.yaml and params/stage.yaml: stage.band needs"),
        (MAIN, PART.replace("  rate: 0.1", "  rote: 0.1"), "params/stage.yaml: unknown key "
         "'stage.inner.rote'"),
        (MAIN, PART.replace("  rate: 0.1\n", "  {}\n").replace("inner:\n", "inner:"),
         "params/stage.yaml: missing key 'stage.inner.rate': add it to params/stage.yaml"),
        (MAIN, PART.replace("rate: 0.5\n", ""), "params.yaml or params/stage.yaml: missing key "
         "'stage.rate': add it to params.yaml or params/stage.yaml"),
        (MAIN, PART + "seed: 4\n", "params/stage.yaml: stage.seed is also set in params.yaml: "
         "keep it in one file"),
    ],
)  # fmt: skip
def test_errors_name_the_right_file(write_files, main: str, part: str, message: str) -> None:
    path = write_files(main, part)
    with pytest.raises(ParamError, match=message) as e:
        load_config(Stage, "stage", path)
    assert "\n" not in str(e.value)


def test_a_part_file_must_be_a_mapping(write_files) -> None:
    path = write_files(MAIN, "- 1\n")
    with pytest.raises(ParamError, match="params/stage.yaml must be a mapping"):
        read_params(path)


def test_shared_keys_have_one_home(params, config, tmp_path) -> None:
    from hrpred.clean.config import CleanConfig
    from hrpred.simulate.config import SimConfig

    assert SHARED_KEYS, "nothing shared: drop SHARED_KEYS and this test"
    clean, sim = config(CleanConfig, "clean"), config(SimConfig, "simulate")
    for key, home in SHARED_KEYS.items():
        assert home.startswith("simulate.") and key.startswith("clean.detector.")
        name = key.rsplit(".", 1)[1]
        assert getattr(clean.detector, name) == getattr(sim, home.split(".", 1)[1])
        assert not has_key(params.sources.tree, key.split(".")), f"{key} is {home}: not set twice"
    data = {**params, "clean": {**params["clean"], "detector": {
        **params["clean"]["detector"], "grade_cost_up": 3.0}}}  # fmt: skip
    with pytest.raises(ParamError, match="grade_cost_up is simulate.grade_cost_up"):
        load_config(CleanConfig, "clean", data=data)


def test_params_yaml_stays_a_knob_file() -> None:
    """params.yaml holds the knobs (<= 120 leaf keys, a list is one); the calibrated values
    live in params/<section>.yaml, each merged into a section of params.yaml."""

    def leaves(v: object) -> int:
        return sum(leaves(x) for x in v.values()) if isinstance(v, dict) else 1

    main = read_yaml(ROOT / "params.yaml")
    assert leaves(main) <= 120
    for part in sorted((ROOT / "params").glob("*.yaml")):
        assert part.stem in main, f"{part.name} extends no section of params.yaml"
