"""Sensor-fault detection on real runs vs the simulator (issue 26).

Usage:
  python benchmarks/clean_faults.py --raw ../shared/real-dev/fitrec_dev.json.gz
  python benchmarks/clean_faults.py --simulate 8000 [--users 1000] [--seed 7]

--simulate 8000 with the params' users and seed is the default pipeline's world; --seed draws
another world of the same kind.

Runs the clean engine with the params.yaml `clean:` settings into a scratch directory
(`--scratch`, default a temporary one) and prints, as JSON: per athlete/user the share of runs
rejected, kept with HR masked and flagged (data/clean/users.parquet), the reject reasons, the
share of runs each detector flags, and with --simulate the detection metrics against the
simulator's truth (per-type precision/recall of the visible faults, with the invisible ones
and every injected fault counted apart; false alarms on fault-free runs, per confounder).
--examples N adds the detector's reasons of N calls per detector (real runs: for looking at
them). Real runs are only read, never written into the repository.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import pyarrow.parquet as pq  # noqa: E402

from hrpred.clean.config import FAULT_PRECEDENCE, CleanConfig  # noqa: E402
from hrpred.clean.outputs import USERS_NAME  # noqa: E402
from hrpred.clean.pipeline import clean_raw  # noqa: E402
from hrpred.clean.truth_metrics import detection_metrics  # noqa: E402
from hrpred.params import load_config, read_params  # noqa: E402
from hrpred.simulate import SimConfig, simulate_dataset  # noqa: E402
from hrpred.store import Layout  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--raw", type=Path, default=None)
    ap.add_argument("--simulate", type=int, default=0, help="workouts to simulate")
    ap.add_argument("--users", type=int, default=0, help="default: params simulate.n_users")
    ap.add_argument("--seed", type=int, default=None, help="default: params simulate.seed")
    ap.add_argument("--scratch", type=Path, default=None)
    ap.add_argument("--examples", type=int, default=0)
    args = ap.parse_args()
    if (args.raw is None) == (args.simulate == 0):
        ap.error("give --raw PATH or --simulate N")
    scratch = args.scratch or Path(tempfile.mkdtemp(prefix="clean-faults-"))
    scratch.mkdir(parents=True, exist_ok=True)
    params = read_params(ROOT / "params.yaml")
    raw, truth = args.raw, None
    if raw is None:
        sim = load_config(SimConfig, "simulate", data=params)
        sim = replace(sim, n_workouts=args.simulate, n_users=args.users or sim.n_users)
        sim = replace(sim, seed=sim.seed if args.seed is None else args.seed)
        raw, truth = scratch / "simulated.json", scratch / "truth.parquet"
        if not (raw.exists() and truth.exists()):
            simulate_dataset(sim, raw, truth)
    cfg = load_config(CleanConfig, "clean", data=params)
    layout = Layout(scratch)
    metrics = clean_raw(cfg, raw, layout, progress=False)
    users = pq.read_table(layout.clean_dir / USERS_NAME).to_pandas()
    report = pq.read_table(layout.clean_report).to_pandas()
    out = {
        "raw": str(raw),
        "workouts_read": metrics["workouts_read"],
        "workouts_kept": metrics["workouts_kept"],
        "rejected": metrics["rejected"],
        "rejected_share": round(sum(metrics["rejected"].values()) / metrics["workouts_read"], 4),
        "by_user": metrics["by_user"],
        "flagged_per_detector": metrics["flagged_per_detector"],
        "flagged_any": metrics["flagged_any"],
        "users": users.round(4).to_dict(orient="records"),
    }
    rej = report[(report["decision"] == "rejected") & (report["reason"] == "unusable")]
    out["unusable_by_fault"] = rej["fault"].value_counts().to_dict()
    if truth is not None:
        det = detection_metrics(truth, layout.clean_report, layout.clean_workouts, cfg.sports)
        out["per_fault"] = det["per_fault"]  # visible faults (truth_metrics' module doc)
        out["invisible"] = det["invisible"]
        out["per_fault_injected"] = det["per_fault_injected"]
        out["false_alarms"] = det["false_alarms"]
    if args.examples:
        found = report["faults"].fillna("").str.split(",")
        ex = {}
        for f in FAULT_PRECEDENCE:
            hit = report[found.map(lambda xs, f=f: f in xs)]
            ex[f] = [
                f"line {r.line} user {r.user_id} {r.decision}: {r.detail}"
                for r in hit.head(args.examples).itertuples()
            ]
        out["examples"] = {k: v for k, v in ex.items() if v}
    print(json.dumps(out, indent=1, default=str))


if __name__ == "__main__":
    main()
