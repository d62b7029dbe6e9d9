"""A throw-away copy of this repository as a git + DVC repo, with tiny params.

Used by the pipeline tests: real `dvc` commands run in it, as a user would.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]

# Small enough that `dvc repro` of the whole pipeline takes well under a minute.
TINY_PARAMS = {
    "simulate": {"n_users": 16, "n_workouts": 120},
    "featurize": {"seq_len": 200},
    "train": {
        "hidden": 16,
        "layers": 2,
        "batch_size": 16,
        "max_epochs": 2,
        "patience": 2,
        "lr_patience": 1,
    },
    "evaluate": {"animations": False},
}


def env() -> dict[str, str]:
    """Environment where `python` and `dvc` are this interpreter's."""
    e = dict(os.environ)
    e["PATH"] = str(Path(sys.executable).parent) + os.pathsep + e.get("PATH", "")
    e["PYTHONHASHSEED"] = "0"
    e.pop("DVCLIVE_TEST", None)
    return e


def run(args: list[str], cwd: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(args, cwd=cwd, env=env(), capture_output=True, text=True, timeout=900)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(args)} failed ({proc.returncode})\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
        )
    return proc


def dvc(*args: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    return run([sys.executable, "-m", "dvc", *args], cwd=cwd, check=check)


def git(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return run(["git", "-c", "user.name=t", "-c", "user.email=t@t.invalid", *args], cwd=cwd)


def ran_stages(proc: subprocess.CompletedProcess[str]) -> set[str]:
    """Stages `dvc repro`/`dvc exp run` actually executed (not restored from cache)."""
    return set(re.findall(r"Running stage '([^']+)'", proc.stdout + proc.stderr))


def deep_update(base: dict, override: dict) -> dict:
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            deep_update(base[key], value)
        else:
            base[key] = value
    return base


def set_params(repo: Path, override: dict) -> None:
    """Apply `override` (sections of params.yaml's merged view) to the file that holds each
    key: params/<section>.yaml for its own top-level keys, params.yaml for the rest."""
    main: dict = {}
    for section, values in override.items():
        part = repo / "params" / f"{section}.yaml"
        own = yaml.safe_load(part.read_text()) if part.is_file() else None
        if isinstance(values, dict) and isinstance(own, dict):
            mine = {k: v for k, v in values.items() if k in own}
            if mine:
                part.write_text(yaml.safe_dump(deep_update(own, mine), sort_keys=False))
            values = {k: v for k, v in values.items() if k not in own}
        main[section] = values
    path = repo / "params.yaml"
    params = yaml.safe_load(path.read_text())
    path.write_text(yaml.safe_dump(deep_update(params, main), sort_keys=False))


def project_files() -> list[str]:
    """Tracked files plus untracked, non-ignored ones (what a clean clone would hold)."""
    out = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [f for f in out.split("\0") if f and (ROOT / f).is_file()]


def make_repo(dest: Path, override: dict | None = None) -> Path:
    """Copy the project into `dest`, apply tiny params, `git init` and commit."""
    dest.mkdir(parents=True, exist_ok=True)
    for rel in project_files():
        if rel.startswith(("data/", "models/", "dvclive/", "plots/", "metrics/", "dvc.lock")):
            continue  # outputs: the copy produces its own
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, target)
    set_params(dest, deep_update(yaml.safe_load(yaml.safe_dump(TINY_PARAMS)), override or {}))
    run(["git", "init", "-q", "-b", "main"], cwd=dest)
    git("add", "-A", cwd=dest)
    git("commit", "-qm", "baseline", cwd=dest)
    return dest
