"""The DVC workflows users rely on, run for real in a temporary git + DVC repo."""

from __future__ import annotations

import filecmp
import json
import shutil
import sys

import pandas as pd
import pytest

from hrpred.params import load_value
from tests.pipeline_repo import dvc, git, make_repo, ran_stages, run, set_params

pytestmark = pytest.mark.slow

ALL_STAGES = {"simulate", "clean", "featurize", "split", "train", "evaluate", "export"}


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    path = make_repo(tmp_path_factory.mktemp("pipeline") / "repo")
    proc = dvc("repro", cwd=path)
    assert ran_stages(proc) == ALL_STAGES, proc.stdout
    git("add", "-A", cwd=path)
    git("commit", "-qm", "pipeline outputs", cwd=path)
    return path


def restore(path):
    """Back to the committed baseline: params and outputs."""
    git("reset", "-q", "--hard", "HEAD", cwd=path)  # dvc autostages dvc.lock: reset the index too
    dvc("checkout", "--force", "-q", cwd=path)
    assert dvc("status", "-q", cwd=path, check=False).returncode == 0


def test_second_repro_runs_nothing(repo):
    proc = dvc("repro", cwd=repo)
    assert ran_stages(proc) == set()
    assert dvc("status", "-q", cwd=repo, check=False).returncode == 0


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ({"train": {"dropout": 0.1}}, {"train", "evaluate", "export"}),
        ({"split": {"seed": 7}}, {"split", "train", "evaluate", "export"}),
        ({"featurize": {"seq_len": 150}}, ALL_STAGES - {"simulate", "clean"}),
    ],
)
def test_param_change_reruns_exactly_downstream(repo, override, expected):
    set_params(repo, override)
    try:
        proc = dvc("repro", cwd=repo)
        assert ran_stages(proc) == expected
    finally:
        restore(repo)


def test_clean_param_does_not_rerun_simulate(repo):
    """`dvc repro clean` reruns clean and whatever upstream of it changed: not simulate.
    (Downstream reruns are test_param_change_reruns_exactly_downstream's.)"""
    set_params(repo, {"clean": {"sports": ["run", "bike"]}})
    try:
        assert ran_stages(dvc("repro", "clean", cwd=repo)) == {"clean"}
    finally:
        restore(repo)


def test_exp_run_metrics_and_params_diff(repo):
    proc = dvc("exp", "run", "-S", "train.dropout=0.25", cwd=repo)
    assert ran_stages(proc) == {"train", "evaluate", "export"}
    try:
        shown = json.loads(dvc("exp", "show", "--json", cwd=repo).stdout)
        text = json.dumps(shown)
        assert "0.25" in text and "metrics/evaluate.json" in text

        diff = json.loads(dvc("metrics", "diff", "HEAD", "--json", cwd=repo).stdout)
        mae = diff["metrics/evaluate.json"]["test.mae"]
        assert set(mae) >= {"old", "new"}
        params = json.loads(dvc("params", "diff", "HEAD", "--json", cwd=repo).stdout)
        change = params["params.yaml"]["train.dropout"]
        assert (change["old"], change["new"]) == (0.3, 0.25)
    finally:
        restore(repo)


def test_exp_run_sets_a_key_of_a_calibrated_params_file(repo):
    """params/clean.yaml keys are DVC params of stage clean: `dvc exp run -S` sets one,
    the loader reads it (clean reruns, simulate does not) and `dvc params diff` shows it."""
    key = "detector.lock_min_bpm"
    proc = dvc("exp", "run", "-S", f"params/clean.yaml:{key}=150.0", cwd=repo)
    ran = ran_stages(proc)
    try:
        assert "clean" in ran and "simulate" not in ran, ran
        params = json.loads(dvc("params", "diff", "HEAD", "--json", cwd=repo).stdout)
        change = params["params/clean.yaml"][key]
        assert (change["old"], change["new"]) == (145.0, 150.0)
        assert load_value(f"clean.{key}", float, repo / "params.yaml") == 150.0
    finally:
        restore(repo)


def test_plots_show_and_diff_render_every_plot(repo, tmp_path):
    dvc("plots", "show", "-o", str(tmp_path / "show"), cwd=repo)
    html = (tmp_path / "show" / "index.html").read_text()
    for name in ["Predicted vs true HR", "Error histogram", "MAE by elapsed time", "Traces"]:
        assert name in html, name
    assert "dvclive/train/plots/metrics" in html

    set_params(repo, {"train": {"dropout": 0.1}})
    try:
        dvc("repro", cwd=repo)
        dvc("plots", "diff", "HEAD", "-o", str(tmp_path / "diff"), cwd=repo)
        diff_html = (tmp_path / "diff" / "index.html").read_text()
        assert "Predicted vs true HR" in diff_html
        assert "workspace" in diff_html and "HEAD" in diff_html
    finally:
        restore(repo)


def test_remote_push_pull_round_trip(repo, tmp_path):
    dvc("remote", "add", "-f", "-d", "local", str(tmp_path / "remote"), cwd=repo)
    try:
        dvc("push", cwd=repo)
        before = repo / "models" / "model.pt"
        saved = tmp_path / "model.pt"
        shutil.copy(before, saved)
        shutil.rmtree(repo / ".dvc" / "cache")
        for out in ["data", "models"]:
            shutil.rmtree(repo / out)
        dvc("pull", cwd=repo)
        assert filecmp.cmp(before, saved, shallow=False)
        assert ran_stages(dvc("repro", cwd=repo)) == set()
    finally:
        dvc("remote", "remove", "local", cwd=repo)
        restore(repo)


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_real_data_switch_gives_same_clean_data(repo, fmt):
    baseline = pd.read_parquet(repo / "data" / "clean" / "workouts.parquet")
    out = f"data/raw/copy.{fmt}"
    code = f"from hrpred.io.raw import convert_raw; convert_raw('data/raw/simulated.json', {out!r}, {fmt!r})"
    run([sys.executable, "-c", code], cwd=repo)
    set_params(repo, {"data": {"raw": out}})
    try:
        assert ran_stages(dvc("repro", "clean", cwd=repo)) == {"clean"}  # not simulate
        again = pd.read_parquet(repo / "data" / "clean" / "workouts.parquet")
        # Malformed lines are not copied, so only the line numbers may differ.
        pd.testing.assert_frame_equal(baseline.drop(columns="line"), again.drop(columns="line"))
    finally:
        (repo / out).unlink()
        restore(repo)
