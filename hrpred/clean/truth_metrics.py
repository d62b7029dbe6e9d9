"""Detection quality against the simulator's ground truth (measurement only).

Reads the truth file and the clean stage's report/workouts; nothing here feeds back into
cleaning. Every workout of the kept sports (and every malformed line) gets a predicted
label: the detector's fault for workouts that reached it, the rule's fault for structural
rejects, `malformed_line` for unparseable lines, `none` for clean or benign workouts.

Precision/recall per fault count the faults a person would see (the truth's `fault_visible`:
an HR fault leaving fewer than min(25, half its span) recorded points 10 BPM or more from the
heart's is not, such as a lock reading about what the heart does or a flatline of a steady HR;
the simulator's `hrpred.simulate.faults.fault_visible`, the rule of hand-labelled real runs):
the others are left out of `per_fault` and counted, with the calls the detector made on them,
under `invisible`; `per_fault_injected` counts every injected fault.

Besides precision/recall per fault: the HR error after cleaning on each fault's own span
(truth fault_start..fault_end), the false-alarm rate on fault-free workouts (any call, and
calls that change HR values), and pauses found against the truth's `pause_step` (when the
truth has it).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

# Reject reasons that name a truth fault directly.
REASON_FAULT = {
    "unparseable": "malformed_line",
    "timestamp_gap": "timestamp_gap",
    "timestamp_nonmonotonic": "timestamp_nonmonotonic",
    "length_mismatch": "length_mismatch",
    "altitude_unrealistic": "altitude_unrealistic",
}
# Detector classes under their truth names.
DETECTOR_FAULT = {"none": "none", "benign": "none", "gps_corruption": "gps_spike"}
# Corrections that change HR values (masking leaves them and marks them invalid).
HR_CHANGING = ("offset_full", "offset_partial", "interpolated")
PAUSE_BINS_S = [0.0, 300.0, 900.0, 1e9]
OFFSET_BINS = [20.0, 30.0, 40.0, 50.0, 60.0001]
USER_BINS = [1, 3, 6, 21, 10**9]


def truth_matches(truth_path: str | Path, report_path: str | Path) -> tuple[bool, str]:
    """Whether the truth describes this input: same line count and ids on parsed lines."""
    truth = pq.read_table(truth_path, columns=["line", "workout_id"]).to_pandas()
    report = pq.read_table(report_path, columns=["line", "workout_id"]).to_pandas()
    if len(truth) != len(report):
        return False, f"{len(truth)} truth rows for {len(report)} input lines"
    merged = report.merge(truth, on="line", how="left", suffixes=("", "_truth"))
    known = merged["workout_id"].notna()
    if merged["workout_id_truth"].isna().any():
        return False, "lines missing from the truth"
    same = merged.loc[known, "workout_id"].astype("int64") == merged.loc[known, "workout_id_truth"]
    if not bool(same.all()):
        return False, f"{int((~same).sum())} workout ids differ"
    return True, ""


def predicted_label(report: pd.DataFrame) -> pd.Series:
    """Predicted truth-vocabulary label of every report row."""
    fault = report["fault"].map(lambda f: DETECTOR_FAULT.get(f, f))
    by_reason = report["reason"].map(REASON_FAULT)
    label = by_reason.where(by_reason.notna(), fault)
    # Rejected before the detector for another reason (too short, no speed...).
    return label.where(label.astype(bool), "other").fillna("other")


def _prf(truth: pd.Series, pred: pd.Series, labels: Iterable[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in sorted(labels):
        tp = int(((truth == name) & (pred == name)).sum())
        support = int((truth == name).sum())
        predicted = int((pred == name).sum())
        out[name] = {
            "precision": round(tp / predicted, 4) if predicted else None,
            "recall": round(tp / support, 4) if support else None,
            "support": support,
            "predicted": predicted,
        }
    return out


def visible_fault(truth: pd.DataFrame) -> pd.Series:
    """The truth's `fault_visible` (module doc); every row when the truth has none (older
    simulations, hand-built truths)."""
    if "fault_visible" not in truth:
        return pd.Series(True, index=truth.index)
    return truth["fault_visible"].astype(bool)


def _recall_by(hit: pd.Series, groups: pd.Series) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, h in hit.groupby(groups, observed=True):
        out[str(key)] = {"recall": round(float(h.mean()), 4), "support": int(h.size)}
    return out


def _list_rows(batch: Any, column: str, rows: np.ndarray, dtype: Any) -> list[np.ndarray]:
    """Copies of the list values of `rows` in one column (copies: views would keep the
    whole batch alive)."""
    col = batch.column(column)
    offsets = col.offsets.to_numpy()
    values = col.values.to_numpy(zero_copy_only=False)
    return [np.array(values[offsets[i] : offsets[i + 1]], dtype=dtype) for i in rows]


def _paired(
    truth_path: str | Path, workouts_path: str | Path, lines: Iterable[int]
) -> Iterable[tuple[int, np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """(line, heart_rate, heart_rate_raw, hr_valid, hr_clean) of the kept workouts among
    `lines` whose lengths match their truth. Only those workouts are held (float32), each
    dropped once its truth row has been seen."""
    held: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    wanted = np.array(sorted(set(lines)), dtype=np.int64)
    wf = pq.ParquetFile(workouts_path)
    cols = ["line", "heart_rate", "heart_rate_raw", "hr_valid"]
    for batch in wf.iter_batches(batch_size=512, columns=cols):
        line = batch.column("line").to_numpy()
        pick = np.flatnonzero(np.isin(line, wanted))
        if pick.size == 0:
            continue
        hr = _list_rows(batch, "heart_rate", pick, np.float32)
        raw = _list_rows(batch, "heart_rate_raw", pick, np.float32)
        valid = _list_rows(batch, "hr_valid", pick, bool)
        for k, i in enumerate(pick):
            held[int(line[i])] = (hr[k], raw[k], valid[k])
    tf = pq.ParquetFile(truth_path)
    for batch in tf.iter_batches(batch_size=512, columns=["line", "hr_clean"]):
        line = batch.column("line").to_numpy()
        pick = np.flatnonzero(np.isin(line, wanted))
        if pick.size == 0:
            continue
        clean = _list_rows(batch, "hr_clean", pick, np.float64)
        for k, i in enumerate(pick):
            got = held.pop(int(line[i]), None)
            if got is None or got[0].size != clean[k].size:
                continue
            yield int(line[i]), got[0], got[1], got[2], clean[k]


def _error_sums(
    truth_path: str | Path, workouts_path: str | Path, kind_of: dict[int, str]
) -> dict[str, list[float]]:
    """Per correction kind: [sum |hr - hr_clean|, sum |hr_raw - hr_clean|, samples,
    workouts] over valid samples."""
    sums: dict[str, list[float]] = {}
    for line, hr, raw, valid, clean in _paired(truth_path, workouts_path, kind_of):
        acc = sums.setdefault(kind_of[line], [0.0, 0.0, 0.0, 0.0])
        acc[0] += float(np.abs(hr[valid] - clean[valid]).sum())
        acc[1] += float(np.abs(raw[valid] - clean[valid]).sum())
        acc[2] += float(valid.sum())
        acc[3] += 1.0
    return sums


def span_errors(
    truth_path: str | Path, workouts_path: str | Path, spans: pd.DataFrame
) -> dict[str, dict[str, Any]]:
    """Per truth fault, over the kept workouts in `spans` (line, fault, fault_start,
    fault_end): the MAE of cleaned HR against hr_clean on the fault's span (valid samples
    only), the same samples' raw error, and the share of the span left valid."""
    where = {
        int(r.line): (r.fault, int(r.fault_start), int(r.fault_end)) for r in spans.itertuples()
    }
    sums: dict[str, list[float]] = {}
    for line, hr, raw, valid, clean in _paired(truth_path, workouts_path, where):
        fault, a, b = where[line]
        a, b = max(a, 0), min(b if b >= 0 else hr.size, hr.size)
        if b <= a:
            continue
        v = valid[a:b]
        acc = sums.setdefault(fault, [0.0, 0.0, 0.0, 0.0, 0.0])
        acc[0] += float(np.abs(hr[a:b][v] - clean[a:b][v]).sum())
        acc[1] += float(np.abs(raw[a:b][v] - clean[a:b][v]).sum())
        acc[2] += float(v.sum())
        acc[3] += float(b - a)
        acc[4] += 1.0
    out: dict[str, dict[str, Any]] = {}
    for fault, (err, before, valid_n, span_n, works) in sorted(sums.items()):
        out[fault] = {
            "mae_bpm": round(err / valid_n, 3) if valid_n else None,
            "mae_before_bpm": round(before / valid_n, 3) if valid_n else None,
            "span_valid_share": round(valid_n / span_n, 4) if span_n else None,
            "workouts": int(works),
        }
    return out


def false_alarms(df: pd.DataFrame) -> dict[str, Any]:
    """On fault-free workouts (truth `none`) that reached a verdict (not rejected for
    another reason): the share with any call (a fault found, a correction or a detector or
    gap reject) and the share whose HR values were changed (offsets, interpolation);
    overall, on the physiologically demanding ones (with pauses, intervals) and on those
    with each confounder (the truth's `confounder`: a slow warm-up, a tempo drift...)."""
    clean = df[(df["fault_truth"] == "none") & (df["pred"] != "other")]
    called = (clean["pred"] != "none") | (clean["correction"] != "none")
    changed = clean["correction"].isin(HR_CHANGING)
    groups: dict[str, pd.Series] = {"all": pd.Series(True, index=clean.index)}
    if "pause_step" in clean:
        groups["with_pauses"] = clean["pause_step"].map(len) > 0
    if "archetype" in clean:
        groups["intervals"] = clean["archetype"] == "intervals"
    if "confounder" in clean:  # physiology that looks like a fault (simulate/confounders.py)
        groups["confounded"] = clean["confounder"] != "none"
        for name in sorted(set(clean["confounder"]) - {"none"}):
            groups[f"confounder_{name}"] = clean["confounder"] == name
    out: dict[str, Any] = {}
    for name, sel in groups.items():
        n = int(sel.sum())
        out[name] = {
            "workouts": n,
            "flagged_rate": round(float(called[sel].mean()), 4) if n else None,
            "hr_changed_rate": round(float(changed[sel].mean()), 4) if n else None,
        }
    return out


def pause_detection(
    df: pd.DataFrame, truth_path: str | Path, workouts_path: str | Path
) -> dict[str, Any]:
    """Pauses found against the truth's: per truth pause (step and length) whether the kept
    workout lists it, recall by pause length, pauses listed that the truth does not have,
    and the workouts with pauses rejected as clock jumps (timestamp_gap)."""
    runs = df[df["fault_truth"] != "malformed_line"]
    kept = runs[runs["decision"] == "kept"]
    found: dict[int, set[int]] = {}
    wanted = set(kept["line"].astype(int))
    for batch in pq.ParquetFile(workouts_path).iter_batches(
        batch_size=2048, columns=["line", "pause_step"]
    ):
        line = batch.column("line").to_numpy()
        pick = np.flatnonzero(np.isin(line, list(wanted)))
        for k, arr in zip(pick, _list_rows(batch, "pause_step", pick, np.int64), strict=True):
            found[int(line[k])] = set(arr.tolist())
    rows = []
    extra = 0
    for r in kept.itertuples():
        truth = set(int(p) for p in r.pause_step)
        got = found.get(int(r.line), set())
        extra += len(got - truth)
        rows += [(s, int(p) in got) for p, s in zip(r.pause_step, r.pause_s, strict=True)]
    table = pd.DataFrame(rows, columns=["seconds", "found"])
    by_length = (
        _recall_by(table["found"], pd.cut(table["seconds"], PAUSE_BINS_S, right=False))
        if len(table)
        else {}
    )
    with_pauses = runs[runs["pause_step"].map(len) > 0]
    return {
        "truth_pauses": int(runs["pause_step"].map(len).sum()),
        "truth_pauses_in_kept": int(len(table)),
        "found": int(table["found"].sum()) if len(table) else 0,
        "recall_in_kept": round(float(table["found"].mean()), 4) if len(table) else None,
        "recall_by_seconds": by_length,
        "listed_not_in_truth": int(extra),
        "workouts_with_pauses": int(len(with_pauses)),
        "rejected_as_clock_jump": int(
            (
                (with_pauses["reason"] == "timestamp_gap")
                & (with_pauses["fault_truth"] != "timestamp_gap")
            ).sum()
        ),
        "pause_workouts_kept": int((with_pauses["decision"] == "kept").sum()),
    }


def _mae_entry(acc: list[float] | None) -> dict[str, Any]:
    if not acc or acc[2] == 0:
        return {"mae_bpm": None, "mae_before_bpm": None, "workouts": int(acc[3]) if acc else 0}
    return {
        "mae_bpm": round(acc[0] / acc[2], 3),
        "mae_before_bpm": round(acc[1] / acc[2], 3),
        "workouts": int(acc[3]),
    }


def detection_metrics(
    truth_path: str | Path,
    report_path: str | Path,
    workouts_path: str | Path,
    sports: Iterable[str],
) -> dict[str, Any]:
    """Per-fault precision/recall/support, full-offset recall breakdowns and the MAE of
    corrected HR against the truth's `hr_clean`."""
    sports = set(sports)
    cols = ["line", "sport", "fault", "fault_start", "fault_end", "offset_bpm", "user_id"]
    cols += ["n_user_workouts"]
    have = set(pq.ParquetFile(truth_path).schema_arrow.names)
    optional = ("archetype", "pause_step", "pause_s", "confounder", "fault_visible")
    cols += [c for c in optional if c in have]
    truth = pq.read_table(truth_path, columns=cols).to_pandas()
    report = pq.read_table(
        report_path, columns=["line", "decision", "reason", "fault", "correction", "offset_bpm"]
    ).to_pandas()
    df = truth.merge(report, on="line", suffixes=("_truth", ""), how="inner")
    universe = df["sport"].isin(sports) | (df["fault_truth"] == "malformed_line")
    df = df[universe].copy()
    df["pred"] = predicted_label(df)
    runs = truth[truth["sport"].isin(sports)].groupby("user_id").size()
    df["user_runs"] = df["user_id"].map(runs).fillna(0).astype(int)
    labels = set(df["fault_truth"]) | set(df["pred"])
    injected = _prf(df["fault_truth"], df["pred"], labels)
    seen = visible_fault(df)
    per_fault = _prf(df.loc[seen, "fault_truth"], df.loc[seen, "pred"], labels)
    hidden = df[~seen]
    invisible = {
        f: {"runs": int(len(g)), "called": {p: int(c) for p, c in g.value_counts().items()}}
        for f, g in hidden.groupby("fault_truth")["pred"]
    }

    full = df[df["fault_truth"] == "offset_full"]
    hit = full["pred"] == "offset_full"
    size_bin = pd.cut(full["offset_bpm_truth"], OFFSET_BINS, right=False)
    runs_bin = pd.cut(full["user_runs"], USER_BINS, right=False)
    users_bin = pd.cut(full["n_user_workouts"], USER_BINS, right=False)
    target = (full["offset_bpm_truth"] >= 30) & (full["user_runs"] >= 3)
    full_offset = {
        "recall_by_offset_bpm": _recall_by(hit, size_bin),
        "recall_by_user_runs": _recall_by(hit, runs_bin),
        "recall_by_user_workouts": _recall_by(hit, users_bin),
        "target_subset": {
            "definition": "offset >= 30 BPM and user has >= 3 workouts of the kept sports",
            "recall": round(float(hit[target].mean()), 4) if target.any() else None,
            "support": int(target.sum()),
        },
    }
    kept = df[df["decision"] == "kept"]
    est = kept[kept["correction"].isin(["offset_full", "offset_partial"])]
    true_offset = est["fault_truth"].isin(["offset_full", "offset_partial"])
    offset_error = (est["offset_bpm"] - est["offset_bpm_truth"]).abs()[true_offset]

    corrected = kept[kept["correction"] != "none"]
    kind_of = dict(zip(corrected["line"].astype(int), corrected["correction"], strict=True))
    sums = _error_sums(truth_path, workouts_path, kind_of)
    both = [sums.get("offset_full"), sums.get("offset_partial")]
    offsets = [sum(a[j] for a in both if a) for j in range(4)] if any(both) else None
    mae: dict[str, Any] = {"offset_corrected": _mae_entry(offsets)}
    for kind in ("offset_full", "offset_partial", "interpolated", "masked"):
        mae[kind] = _mae_entry(sums.get(kind))
    found = kept[(kept["pred"] == kept["fault_truth"]) & (kept["fault_start"] >= 0)]
    spans = found[["line", "fault_truth", "fault_start", "fault_end"]].rename(
        columns={"fault_truth": "fault"}
    )
    extra: dict[str, Any] = {}
    if "pause_step" in df:
        extra["pauses"] = pause_detection(df, truth_path, workouts_path)
    return {
        "universe": "workouts of the kept sports plus malformed lines",
        "n": int(len(df)),
        "per_fault": per_fault,
        "per_fault_definition": "faults a person would see (truth fault_visible: >= 25, or "
        "half the span, recorded HR points >= 10 BPM from the heart's); the rest: invisible",
        "invisible": invisible,
        "per_fault_injected": injected,
        "full_offset": full_offset,
        "offset_estimate_abs_error_bpm": {
            "mean": round(float(offset_error.mean()), 3) if offset_error.size else None,
            "median": round(float(offset_error.median()), 3) if offset_error.size else None,
        },
        "corrected_hr_mae_vs_hr_clean": mae,
        "hr_error_on_fault_span": {
            "definition": "kept workouts whose fault was found: |cleaned HR - hr_clean| on "
            "the truth's fault span, valid samples only; span_valid_share = share left valid",
            **span_errors(truth_path, workouts_path, spans),
        },
        "false_alarms": false_alarms(df),
        **extra,
        "confusion": {
            t: {p: int(c) for p, c in g.value_counts().sort_index().items()}
            for t, g in df.groupby("fault_truth")["pred"]
        },
    }
