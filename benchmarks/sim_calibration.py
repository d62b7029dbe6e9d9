"""The simulator's calibration figures measured on real runs (and, to compare, on simulated
ones): `hrpred.simulate.calibration.calibration_stats` of every kept run of a cleaned data set.

Clean the real dev set first, in a copy of the repository (its FitRec file is not ours to
commit): `python -m stages.clean` with params.yaml `data.raw: ../shared/real-dev/
fitrec_dev.json.gz`, then

    python benchmarks/sim_calibration.py COPY/data/clean/workouts.parquet [OTHER.parquet ...]

prints each file's figures as YAML-ready lines; the real dev set's go into params/simulate.yaml
`calibration` (the simulate stage reports its own beside them in metrics/simulate.json).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hrpred.simulate.calibration import calibration_stats, settled_means  # noqa: E402

COLUMNS = ["user_id", "timestamp", "speed", "heart_rate", "hr_valid", "sport"]


def run_figures(path: Path) -> dict:
    table = pq.read_table(path, columns=COLUMNS).to_pandas()
    table = table[table["sport"] == "run"]
    users, starts, hr, speed = [], [], [], []
    for r in table.itertuples(index=False):
        h = np.where(np.asarray(r.hr_valid, bool), np.asarray(r.heart_rate, float), np.nan)
        a, b = settled_means(np.asarray(r.timestamp, float), h, np.asarray(r.speed, float))
        users.append(r.user_id)
        starts.append(r.timestamp[0])
        hr.append(a)
        speed.append(b)
    return calibration_stats(
        np.asarray(users), np.asarray(starts, float), np.asarray(hr), np.asarray(speed)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workouts", nargs="+", type=Path, help="data/clean/workouts.parquet")
    args = parser.parse_args()
    for path in args.workouts:
        if not path.is_file():
            sys.exit(f"{path} not found: clean the data set first (see the module doc)")
        print(f"# {path}")
        print(json.dumps(run_figures(path), indent=1))


if __name__ == "__main__":
    main()
