"""Detection metrics on a hand-built truth/report pair with known answers."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from hrpred.clean.outputs import REPORT_SCHEMA, WORKOUTS_SCHEMA
from hrpred.clean.truth_metrics import detection_metrics, predicted_label


def _report_rows():
    # line, truth fault, truth offset, report decision/reason/fault/correction/offset
    return [
        (1, "none", 0.0, "kept", "", "none", "none", 0.0),
        (2, "none", 0.0, "kept", "", "benign", "none", 0.0),
        (3, "offset_full", 35.0, "kept", "", "offset_full", "offset_full", 33.0),
        (4, "offset_full", 22.0, "kept", "", "none", "none", 0.0),  # missed small offset
        (5, "none", 0.0, "kept", "", "offset_full", "offset_full", 20.0),  # false alarm
        (6, "malformed_line", 0.0, "rejected", "unparseable", "", "none", 0.0),
        (7, "timestamp_gap", 0.0, "rejected", "timestamp_gap", "", "none", 0.0),
        (8, "gps_spike", 0.0, "kept", "", "gps_corruption", "none", 0.0),
        (9, "dropout", 0.0, "rejected", "unusable", "dropout", "none", 0.0),
        (10, "none", 0.0, "rejected", "sport", "", "none", 0.0),  # a bike: not counted
        (11, "none", 0.0, "rejected", "too_short", "", "none", 0.0),
    ]


@pytest.fixture()
def files(tmp_path):
    rows = _report_rows()
    n = 4
    clean = [np.full(n, 150.0) for _ in rows]
    truth = pa.table(
        {
            "line": [r[0] for r in rows],
            "workout_id": [100 + r[0] for r in rows],
            "user_id": [1, 1, 1, 2, 1, 1, 1, 1, 1, 1, 1],
            "sport": ["run"] * 9 + ["bike", "run"],
            "fault": [r[1] for r in rows],
            "fault_start": [-1] * len(rows),
            "fault_end": [-1] * len(rows),
            "offset_bpm": [r[2] for r in rows],
            "n_user_workouts": [10, 10, 10, 1, 10, 10, 10, 10, 10, 10, 10],
            "hr_clean": [c.tolist() for c in clean],
        }
    )
    report = pa.Table.from_pylist(
        [
            {
                "line": r[0],
                "workout_id": 100 + r[0],
                "user_id": 1,
                "sport": "run",
                "decision": r[3],
                "reason": r[4],
                "fault": r[5],
                "faults": "",
                "flags": "",
                "correction": r[6],
                "offset_bpm": r[7],
                "offset_start": -1,
                "offset_end": -1,
                "confidence": 1.0,
                "deficit_bpm": 0.0,
                "level_k": 1,
                "segment_score": 0.0,
                "speed_source": "gps",
                "n_invalid": 0,
                "detail": "",
            }
            for r in rows
        ],
        schema=REPORT_SCHEMA,
    )
    # Corrected workouts: line 3 corrected to 150 +- 2 (MAE 2), line 5 raised by 20 (MAE 20).
    kept = [r for r in rows if r[3] == "kept"]
    hr = {3: np.array([148.0, 152.0, 148.0, 152.0]), 5: np.full(n, 170.0)}
    workouts = pa.Table.from_pylist(
        [
            {
                "workout_id": 100 + r[0],
                "user_id": 1,
                "line": r[0],
                "sport": "run",
                "gender": "male",
                "timestamp": list(range(n)),
                "speed": [10.0] * n,
                "speed_source": "gps",
                "altitude": [0.0] * n,
                "latitude": [],
                "longitude": [],
                "heart_rate": hr.get(r[0], np.full(n, 150.0)).tolist(),
                "heart_rate_raw": (hr.get(r[0], np.full(n, 150.0)) - r[7]).tolist(),
                "hr_valid": [True] * n,
                "fault": r[5],
                "correction": r[6],
                "offset_bpm": r[7],
                "offset_start": -1,
                "offset_end": -1,
                "confidence": 1.0,
            }
            for r in kept
        ],
        schema=WORKOUTS_SCHEMA,
    )
    paths = tmp_path / "truth.parquet", tmp_path / "report.parquet", tmp_path / "w.parquet"
    for table, path in zip((truth, report, workouts), paths, strict=True):
        pq.write_table(table, path)
    return paths


def test_predicted_labels():
    import pandas as pd

    report = pd.DataFrame(
        {
            "fault": ["benign", "gps_corruption", "", "dropout", ""],
            "reason": ["", "", "unparseable", "unusable", "too_short"],
        }
    )
    assert predicted_label(report).tolist() == [
        "none",
        "gps_spike",
        "malformed_line",
        "dropout",
        "other",
    ]


def test_detection_metrics_known_answers(files):
    d = detection_metrics(*files, sports=["run"])
    assert d["n"] == 10  # the bike line is outside the universe
    pf = d["per_fault"]
    assert pf["offset_full"] == {"precision": 0.5, "recall": 0.5, "support": 2, "predicted": 2}
    assert pf["none"]["support"] == 4 and pf["none"]["recall"] == 0.5  # line 5 and line 11
    assert pf["none"]["precision"] == pytest.approx(2 / 3, abs=1e-4)  # line 4 predicted none
    for f in ("malformed_line", "timestamp_gap", "gps_spike", "dropout"):
        assert pf[f]["precision"] == 1.0 and pf[f]["recall"] == 1.0
    assert pf["other"]["predicted"] == 1 and pf["other"]["support"] == 0
    full = d["full_offset"]
    assert full["recall_by_offset_bpm"]["[20.0, 30.0)"] == {"recall": 0.0, "support": 1}
    assert full["recall_by_offset_bpm"]["[30.0, 40.0)"] == {"recall": 1.0, "support": 1}
    # User 2 has one run (line 4); user 1 has nine runs.
    assert full["recall_by_user_runs"]["[1, 3)"] == {"recall": 0.0, "support": 1}
    assert full["target_subset"] == {
        "definition": full["target_subset"]["definition"],
        "recall": 1.0,
        "support": 1,
    }
    assert d["offset_estimate_abs_error_bpm"]["mean"] == pytest.approx(2.0)
    mae = d["corrected_hr_mae_vs_hr_clean"]
    assert mae["offset_full"]["workouts"] == 2
    assert mae["offset_full"]["mae_bpm"] == pytest.approx((2.0 + 20.0) / 2)
    assert mae["offset_full"]["mae_before_bpm"] == pytest.approx((33.0 + 0.0) / 2, abs=0.01)


def test_false_alarms_span_errors_and_pauses(tmp_path):
    """Four runs: a clean one with a pause, a clean intervals run given a false offset, a
    cadence lock masked on its span, a clean run with a pause rejected as a clock jump."""
    n = 4
    truth = pa.table(
        {
            "line": [1, 2, 3, 4],
            "workout_id": [101, 102, 103, 104],
            "user_id": [1, 1, 1, 1],
            "sport": ["run"] * 4,
            "archetype": ["easy", "intervals", "easy", "easy"],
            "fault": ["none", "none", "cadence_lock", "none"],
            "fault_start": [-1, -1, 1, -1],
            "fault_end": [-1, -1, 3, -1],
            "offset_bpm": [0.0] * 4,
            "n_user_workouts": [4] * 4,
            "hr_clean": [[150.0] * n] * 4,
            "pause_step": [[2], [], [], [2]],
            "pause_s": [[300.0], [], [], [600.0]],
        }
    )
    report = pa.Table.from_pylist(
        [
            {"line": 1, "decision": "kept", "reason": "", "fault": "none", "correction": "none"},
            {"line": 2, "decision": "kept", "reason": "", "fault": "offset_full",
             "correction": "offset_full", "offset_bpm": 20.0},
            {"line": 3, "decision": "kept", "reason": "", "fault": "cadence_lock",
             "correction": "masked"},
            {"line": 4, "decision": "rejected", "reason": "timestamp_gap", "fault": "none",
             "correction": "none"},
        ],
        schema=REPORT_SCHEMA,
    )  # fmt: skip
    hr = {1: [150.0] * n, 2: [170.0] * n, 3: [150.0, 181.0, 181.0, 150.0]}
    valid = {1: [True] * n, 2: [True] * n, 3: [True, False, False, True]}
    workouts = pa.Table.from_pylist(
        [
            {"line": k, "workout_id": 100 + k, "timestamp": list(range(n)),
             "heart_rate": hr[k], "heart_rate_raw": hr[k], "hr_valid": valid[k],
             "pause_step": [2] if k == 1 else []}
            for k in (1, 2, 3)
        ],
        schema=WORKOUTS_SCHEMA,
    )  # fmt: skip
    paths = tmp_path / "truth.parquet", tmp_path / "report.parquet", tmp_path / "w.parquet"
    for table, path in zip((truth, report, workouts), paths, strict=True):
        pq.write_table(table, path)
    d = detection_metrics(*paths, sports=["run"])
    fa = d["false_alarms"]
    assert fa["all"] == {"workouts": 3, "flagged_rate": 0.6667, "hr_changed_rate": 0.3333}
    assert fa["with_pauses"] == {"workouts": 2, "flagged_rate": 0.5, "hr_changed_rate": 0.0}
    assert fa["intervals"] == {"workouts": 1, "flagged_rate": 1.0, "hr_changed_rate": 1.0}
    lock = d["hr_error_on_fault_span"]["cadence_lock"]
    assert lock == {"mae_bpm": None, "mae_before_bpm": None, "span_valid_share": 0.0,
                    "workouts": 1}  # fmt: skip
    p = d["pauses"]
    assert (p["truth_pauses"], p["truth_pauses_in_kept"], p["found"]) == (2, 1, 1)
    assert p["recall_in_kept"] == 1.0 and p["listed_not_in_truth"] == 0
    assert p["rejected_as_clock_jump"] == 1 and p["pause_workouts_kept"] == 1
    assert p["recall_by_seconds"]["[300.0, 900.0)"] == {"recall": 1.0, "support": 1}


def test_invisible_faults_leave_per_fault_and_are_counted(tmp_path):
    """Runs whose truth says their fault is not visible (`fault_visible` false) are out of
    `per_fault`, in `invisible` with the detector's call, and in `per_fault_injected`."""
    rows = [  # line, fault, visible, detector's call
        (1, "cadence_follow", True, "cadence_follow"),
        (2, "cadence_follow", False, "none"),
        (3, "spike", True, "spike"),
        (4, "spike", False, "none"),
        (5, "gps_spike", True, "gps_corruption"),
        (6, "none", True, "none"),
    ]
    k = len(rows)
    truth = pa.table(
        {
            "line": [r[0] for r in rows],
            "workout_id": [100 + r[0] for r in rows],
            "user_id": [1] * k,
            "sport": ["run"] * k,
            "fault": [r[1] for r in rows],
            "fault_start": [5] * k,
            "fault_end": [7] * k,
            "offset_bpm": [0.0] * k,
            "fault_visible": [r[2] for r in rows],
            "n_user_workouts": [k] * k,
            "hr_clean": [[150.0] * 60] * k,
        }
    )
    report = pa.Table.from_pylist(
        [{"line": r[0], "decision": "kept", "reason": "", "fault": r[3], "correction": "none"}
         for r in rows],
        schema=REPORT_SCHEMA,
    )  # fmt: skip
    workouts = pa.Table.from_pylist([], schema=WORKOUTS_SCHEMA)
    paths = tmp_path / "truth.parquet", tmp_path / "report.parquet", tmp_path / "w.parquet"
    for table, path in zip((truth, report, workouts), paths, strict=True):
        pq.write_table(table, path)
    d = detection_metrics(*paths, sports=["run"])
    pf, inj = d["per_fault"], d["per_fault_injected"]
    assert pf["cadence_follow"] == {"precision": 1.0, "recall": 1.0, "support": 1, "predicted": 1}
    assert inj["cadence_follow"] == {"precision": 1.0, "recall": 0.5, "support": 2, "predicted": 1}
    assert pf["spike"]["support"] == 1 and pf["spike"]["recall"] == 1.0
    assert pf["gps_spike"]["recall"] == 1.0 and pf["none"]["support"] == 1
    assert pf["none"]["precision"] == 1.0
    assert inj["none"]["precision"] == pytest.approx(1 / 3, abs=1e-4)
    assert d["invisible"] == {
        "cadence_follow": {"runs": 1, "called": {"none": 1}},
        "spike": {"runs": 1, "called": {"none": 1}},
    }
