"""Small synthetic `data/clean/workouts.parquet` tables in the clean contract's schema.

Used by the featurize/split tests (the clean stage is built separately), and raw runs with
the physiology the clean stage must leave alone (`physio_run`) for its own tests.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

SCHEMA = pa.schema(
    [
        ("workout_id", pa.int64()), ("user_id", pa.int64()), ("line", pa.int64()),
        ("sport", pa.string()), ("gender", pa.string()),
        ("timestamp", pa.list_(pa.int64())), ("speed", pa.list_(pa.float64())),
        ("speed_source", pa.string()), ("altitude", pa.list_(pa.float64())),
        ("latitude", pa.list_(pa.float64())), ("longitude", pa.list_(pa.float64())),
        ("heart_rate", pa.list_(pa.float64())), ("heart_rate_raw", pa.list_(pa.float64())),
        ("hr_valid", pa.list_(pa.bool_())), ("fault", pa.string()), ("correction", pa.string()),
        ("offset_bpm", pa.float64()), ("offset_start", pa.int64()), ("offset_end", pa.int64()),
        ("confidence", pa.float64()), ("pause_step", pa.list_(pa.int64())),
        ("pause_s", pa.list_(pa.float64())),
    ]
)  # fmt: skip


def make_clean_rows(
    n_users: int = 12, seed: int = 0, lengths: tuple[int, int] = (40, 260)
) -> list[dict]:
    """Users with 1..15 workouts each, random lengths, a few masked HR steps."""
    rng = np.random.default_rng(seed)
    rows = []
    wid = 1000
    for u in range(n_users):
        uid = 7 + 13 * u
        gender = ("male", "female", "unknown")[u % 3]
        t0 = 1_400_000_000 + int(rng.integers(0, 10**6))
        for _ in range(int(rng.integers(1, 16))):
            n = int(rng.integers(*lengths))
            ts = t0 + np.cumsum(rng.integers(1, 12, n))
            speed = np.clip(9 + np.cumsum(rng.normal(0, 0.4, n)), 0, 25)
            alt = 100 + np.cumsum(rng.normal(0, 1.0, n))
            hr = 120 + 3 * speed + rng.normal(0, 2, n)
            valid = rng.random(n) > 0.05
            rows.append(
                {
                    "workout_id": wid, "user_id": uid, "line": len(rows) + 1, "sport": "run",
                    "gender": gender, "timestamp": ts.tolist(), "speed": speed.tolist(),
                    "speed_source": "native", "altitude": alt.tolist(),
                    "latitude": [], "longitude": [], "heart_rate": hr.tolist(),
                    "heart_rate_raw": hr.tolist(), "hr_valid": valid.tolist(), "fault": "none",
                    "correction": "none", "offset_bpm": 0.0, "offset_start": -1,
                    "offset_end": -1, "confidence": 1.0, "pause_step": [], "pause_s": [],
                }
            )  # fmt: skip
            wid += int(rng.integers(1, 5))
            t0 = int(ts[-1]) + int(rng.integers(3600, 5 * 86400))
    return rows


def write_clean(path: Path, rows: list[dict], row_group_size: int = 16) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=SCHEMA), path, row_group_size=row_group_size)
    return path


# ------------------------------------------------------------------ raw runs for the detector

REST_BPM = 60.0
MAX_BPM = 190.0


def physio_run(
    rng: np.random.Generator,
    n: int = 450,
    pace_kmh: float | None = None,
    walks: tuple[tuple[int, int], ...] = (),
    pauses: tuple[tuple[int, float], ...] = (),
    noise_bpm: float = 2.5,
    level_bpm: float = 0.0,
) -> dict[str, np.ndarray]:
    """One run whose HR follows the pace like a heart, with nothing wrong in it.

    Steps of 6-11 s; pace `pace_kmh` (default 9.5-12.5) wandering a little; `walks`
    (start, end) steps at 5.5 km/h; `pauses` (step, seconds): the clock jumps before that
    step, the position stays, HR relaxes towards standing. HR: first-order kinetics (40 s up,
    60 s down) towards a target linear in the speed, from rest + 25 at the start, plus
    sensor noise. Returns ts, hr (rounded, as recorded), hr_true, speed, alt, lat, lon and
    the cadence (steps/min) an optical lock would read.
    """
    dt = rng.integers(6, 12, n).astype(float)
    dt[0] = 0.0
    pace = rng.uniform(9.5, 12.5) if pace_kmh is None else pace_kmh
    speed = pace * (1.0 + 0.03 * np.sin(np.cumsum(dt) / 300.0)) + rng.normal(0, 0.2, n)
    for a, b in walks:
        speed[a:b] = 5.5 + rng.normal(0, 0.2, b - a)
    speed = np.maximum(speed, 0.0)
    target = REST_BPM + level_bpm + (MAX_BPM - REST_BPM) * np.clip(speed / 16.0, 0.05, 1.0)
    paused = dict(pauses)
    hr_true = np.empty(n)
    h = REST_BPM + 25.0
    for i in range(n):
        if i in paused:  # standing while the clock runs on
            h = REST_BPM + 15.0 + (h - REST_BPM - 15.0) * np.exp(-paused[i] / 60.0)
        if i:
            tau = 40.0 if target[i] > h else 60.0
            h = target[i] + (h - target[i]) * np.exp(-dt[i] / tau)
        hr_true[i] = h
    t = np.cumsum(dt)
    clock = t + np.cumsum([paused.get(i, 0.0) for i in range(n)])
    step_m = speed / 3.6 * dt
    lat = 45.0 + np.degrees(np.cumsum(step_m) / 6_371_000.0)
    return {
        "ts": (1_400_000_000 + clock).astype(np.int64),
        "hr": np.round(hr_true + rng.normal(0, noise_bpm, n)),
        "hr_true": hr_true,
        "speed": speed,
        "alt": 100.0 + 3.0 * np.sin(t / 400.0),
        "lat": lat,
        "lon": np.full(n, 7.0),
        "cadence": np.clip(172.0 + 2.5 * (speed - 11.0), 150.0, 190.0),
    }


def fitrec_dict(run: dict[str, np.ndarray], wid: int, user: int = 1) -> dict:
    """A `physio_run` as a FitRec workout dict (native speed and GPS)."""
    return {
        "id": wid,
        "userId": user,
        "sport": "run",
        "gender": "male",
        "timestamp": (run["ts"] + wid * 100_000).tolist(),
        "heart_rate": run["hr"].astype(int).tolist(),
        "altitude": np.round(run["alt"], 1).tolist(),
        "speed": np.round(run["speed"], 3).tolist(),
        "latitude": run["lat"].tolist(),
        "longitude": run["lon"].tolist(),
    }
