"""Every stage runs with exactly the config built from the committed params files.

Defaults live in params.yaml only: no stage config dataclass (nor any nested one) has a
default, so code, tests and benchmarks cannot drift from the file (as `train.num_threads` once
did: 0 in code, 1 in params.yaml). Stage scripts stay thin.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib
import typing
from pathlib import Path
from typing import Any

import pytest
import yaml

from hrpred.clean.config import CleanConfig
from hrpred.evaluate.config import EvalConfig
from hrpred.export.exporter import ExportConfig
from hrpred.features.config import FeaturizeConfig
from hrpred.params import SHARED_KEYS, has_key
from hrpred.personal.config import LearnedConfig, PersonalConfig
from hrpred.simulate.config import SimConfig
from hrpred.split.config import SplitConfig
from hrpred.store import Layout
from hrpred.timeseries import SpeedConfig
from hrpred.train.config import TrainConfig

ROOT = Path(__file__).resolve().parents[1]

# stage -> the configs (class, params section) its library function must receive
STAGE_CONFIGS: dict[str, list[tuple[type, str]]] = {
    "simulate": [(SimConfig, "simulate")],
    "clean": [(CleanConfig, "clean")],
    "featurize": [(FeaturizeConfig, "featurize")],
    "split": [(SplitConfig, "split")],
    "train": [(TrainConfig, "train"), (LearnedConfig, "personal.learned")],
    "evaluate": [(EvalConfig, "evaluate"), (PersonalConfig, "personal")],
    "export": [
        (ExportConfig, "export"),
        (SpeedConfig, "clean.speed"),
        (PersonalConfig, "personal"),
    ],
}
# stage -> the plain values (params key) its library function must receive besides the configs
STAGE_VALUES: dict[str, list[str]] = {
    "evaluate": ["clean.truth"],
    "export": ["data.raw", "split.max_history"],
}


def nested_dataclasses(cls: type, seen: set[type] | None = None) -> set[type]:
    """`cls` and every dataclass type reachable through its field annotations."""
    seen = set() if seen is None else seen
    if cls in seen:
        return seen
    seen.add(cls)
    for kind in typing.get_type_hints(cls).values():
        for t in (kind, *typing.get_args(kind)):
            if dataclasses.is_dataclass(t) and isinstance(t, type):
                nested_dataclasses(t, seen)
    return seen


@pytest.mark.parametrize("stage", sorted(STAGE_CONFIGS))
def test_stage_runs_with_the_params_yaml_config(stage, config, params, monkeypatch) -> None:
    module = importlib.import_module(f"stages.{stage}")
    calls: list[tuple[Any, ...]] = []

    def record(*args: Any, **kwargs: Any) -> dict:
        calls.append(args + tuple(kwargs.values()))
        return {}

    runners = [n for n in vars(module) if n.startswith("run_")]
    assert runners, f"stages/{stage}.py calls no run_<stage> library function"
    for name in runners:
        monkeypatch.setattr(module, name, record)
    if hasattr(module, "summary_line"):
        monkeypatch.setattr(module, "summary_line", lambda *a, **k: "")
    monkeypatch.chdir(ROOT)
    module.main()

    assert len(calls) == 1, f"stages/{stage}.py must call one library function, got {calls}"
    passed = [a for a in calls[0] if dataclasses.is_dataclass(a)]
    expected = [config(cls, section) for cls, section in STAGE_CONFIGS[stage]]
    assert [type(a) for a in passed if type(a) in {type(e) for e in expected}] == [
        type(e) for e in expected
    ]
    for e in expected:
        assert e in passed, f"stage {stage} ran with a config other than params.yaml's"
    plain = [a for a in calls[0] if not dataclasses.is_dataclass(a) and not isinstance(a, Layout)]
    for key in STAGE_VALUES.get(stage, []):
        value = params
        for part in key.split("."):
            value = value[part]
        assert any(type(a) is type(value) and a == value for a in plain), (stage, key, plain)


@pytest.mark.parametrize("cls", sorted({c for cs in STAGE_CONFIGS.values() for c, _ in cs},
                                       key=lambda c: c.__name__))  # fmt: skip
def test_configs_have_no_defaults_in_code(cls) -> None:
    for dc in nested_dataclasses(cls):
        with_default = [
            f.name
            for f in dataclasses.fields(dc)
            if f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
        ]
        assert not with_default, (
            f"{dc.__name__} has defaults {with_default}: put them in params.yaml"
        )


def test_every_params_yaml_section_is_read_by_a_stage(params) -> None:
    sections = {s.split(".")[0] for cs in STAGE_CONFIGS.values() for _, s in cs} | {"data"}
    assert set(params) == sections


@pytest.mark.parametrize("stage", sorted(STAGE_CONFIGS))
def test_stage_scripts_are_thin(stage) -> None:
    path = ROOT / "stages" / f"{stage}.py"
    text = path.read_text()
    assert len(text.splitlines()) <= 80
    loops = (ast.For, ast.While, ast.ListComp, ast.DictComp, ast.SetComp, ast.GeneratorExp)
    assert not [n for n in ast.walk(ast.parse(text)) if isinstance(n, loops)]
    assert "SystemExit" not in text, "stages raise HrpredError via hrpred.errors.stage_main"


def declared_params(stage: str) -> dict[str, list[str] | None]:
    """A stage's dvc.yaml params: file -> keys (None: the whole file)."""
    out: dict[str, list[str] | None] = {}
    for entry in yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"][stage]["params"]:
        if isinstance(entry, str):
            out.setdefault("params.yaml", []).append(entry)  # type: ignore[union-attr]
        else:
            out.update(entry)
    return out


def covers(keys: list[str] | None, key: str) -> bool:
    return keys is None or any(key == k or key.startswith(f"{k}.") for k in keys)


@pytest.mark.parametrize("stage", sorted(STAGE_CONFIGS))
def test_stage_declares_every_params_file_it_reads(stage, params) -> None:
    """dvc.yaml lists, per stage, the params.yaml sections and the params/<section>.yaml keys
    its configs are built from (shared keys at their home), so `dvc repro`, `dvc params diff`
    and `dvc exp run -S params/<file>:key=value` see every value the stage reads."""
    declared, sources = declared_params(stage), params.sources
    sections = [s for _, s in STAGE_CONFIGS[stage]] + STAGE_VALUES.get(stage, [])
    for section in sections:
        top, *below = section.split(".")
        if has_key(sources.tree, section.split(".")):
            assert covers(declared.get("params.yaml", []), section), (stage, section)
        if top in sources.parts:
            file, tree = sources.parts[top]
            if has_key(tree, below):
                rel = str(file.relative_to(ROOT))
                assert rel in declared and covers(declared[rel], ".".join(below)), (stage, rel)
        for key, home in SHARED_KEYS.items():
            if key.startswith(f"{section}."):
                htop, hkey = home.split(".", 1)
                rel = str(sources.parts[htop][0].relative_to(ROOT))
                assert rel in declared and covers(declared[rel], hkey), (stage, home)
