"""Fixtures for the user-file, predict, export and CLI tests, all generated here.

- `make_bundle`: a bundle with a tiny randomly initialised LSTM and fake metrics.
- `simulated_workout`: a deterministic run (speed, altitude, positions, HR) on a grid.
- `write_gpx`, `write_tcx`, `write_csv`, `write_fit`: the workout in each real format
  (the FIT file is encoded with the `fit_tool` package from PyPI).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

FEATURES = [
    "speed",
    "altitude",
    "gender",
    "speed_lag_2",
    "speed_lag_5",
    "altitude_lag_30",
    "speed_derivative",
    "altitude_derivative",
    "rolling_speed_10",
    "rolling_speed_30",
    "cumulative_elevation_gain",
    "speed_ema_60s",
    "elapsed_time",
    "grade",
]

FAKE_METRICS = {
    "test": {
        "mae": 7.3456,
        "rmse": 9.8765,
        "mae_after_2min": 6.5432,
        "workout_mae_mean": 7.1111,
        "workout_mae_median": 6.2222,
        "bias": -0.4321,
        "n_workouts": 123,
        "n_steps": 45678,
    },
    "val": {"mae": 7.0101, "rmse": 9.2020, "bias": 0.3131, "n_workouts": 120, "n_steps": 44000},
    "baselines": {
        "constant": {"test": {"mae": 12.3456, "rmse": 15.4321}},
        "ridge": {"test": {"mae": 10.9876, "rmse": 13.5791}},
        "physio": {"test": {"mae": 9.1357, "rmse": 11.2468}},
    },
    "categories": {
        "input_only": {
            "easy": {"mae": 6.1919, "rmse": 8.0808, "n_workouts": 40},
            "intervals": {"mae": 9.5151, "rmse": 12.4242, "n_workouts": 12},
        }
    },
    "noise_floor": {
        "available": 1,
        "target_vs_physio_mae": 2.5111,
        "model_mae_same_steps": 7.3333,
        "model_vs_physio_mae": 6.1234,
    },
}

EARTH_RADIUS_M = 6_371_000.0
START = 1_600_000_000  # Unix s
PARAMS = Path(__file__).resolve().parents[1] / "params.yaml"


def speed_rules():  # -> hrpred.timeseries.SpeedConfig
    """The speed rules of the committed params.yaml (clean.speed), as export bundles them."""
    from hrpred.params import load_config
    from hrpred.timeseries import SpeedConfig

    return load_config(SpeedConfig, "clean.speed", PARAMS)


def personal_rules():  # -> hrpred.personal.config.PersonalConfig
    """params personal of the committed params.yaml, as export bundles it."""
    from hrpred.params import load_config
    from hrpred.personal.config import PersonalConfig

    return load_config(PersonalConfig, "personal", PARAMS)


def history_runs() -> int:
    """params split.max_history of the committed params.yaml, as export bundles it."""
    from hrpred.params import load_value

    return load_value("split.max_history", int, PARAMS)


def write_test_bundle(
    out_dir: Path,
    ckpt: dict,
    state_dict: dict,
    sampling: dict,
    data: dict,
    metrics: dict | None = None,
    onnx: bool = False,
) -> Path:
    """build_config + write_bundle as export does, with the committed params' speed and
    personalisation rules and history size."""
    from hrpred.export.writer import build_config, write_bundle
    from hrpred.features.registry import BINARY_FEATURES

    config = build_config(
        ckpt, metrics or {}, sampling, "median", data, BINARY_FEATURES,
        speed=speed_rules(), personal=personal_rules(), history_runs=history_runs(),
    )  # fmt: skip
    write_bundle(Path(out_dir), state_dict, config, onnx=onnx)
    return Path(out_dir)


def make_bundle(
    out_dir: Path,
    *,
    step_s: float = 8.0,
    features: list[str] | None = None,
    onnx: bool = False,
    metrics: dict | None = None,
    seed: int = 0,
    seq_len: int = 500,
) -> Path:
    """A complete bundle with a random 2-layer LSTM (16 units) and fake metrics."""
    import torch

    from hrpred.features.registry import BINARY_FEATURES
    from hrpred.model import build_model, cpu_state_dict

    names = list(features or FEATURES)
    torch.manual_seed(seed)
    arch = {"input_size": len(names), "hidden": 16, "layers": 2, "dropout": 0.1}
    arch["bidirectional"] = False
    model = build_model(arch, target_mean=145.0, target_std=14.0)
    with torch.no_grad():  # a larger head makes the random output vary visibly
        model.head.weight.mul_(6.0)
    typical = {
        "speed": (10.0, 2.5),
        "altitude": (300.0, 120.0),
        "elapsed_time": (1800.0, 1000.0),
        "cumulative_elevation_gain": (60.0, 50.0),
    }
    scaler = {
        n: {"mean": typical.get(n, (0.0, 1.0))[0], "std": typical.get(n, (0.0, 1.0))[1]}
        for n in names
        if n not in BINARY_FEATURES
    }
    ckpt = {
        "features": names,
        "config": arch,
        "scaler": scaler,
        "target_mean": 145.0,
        "target_std": 14.0,
        "seq_len": seq_len,
        "best_epoch": 4,
        "val": {"mae": 7.0101},
        "n_params": int(sum(p.numel() for p in model.parameters())),
        "train_params": {"lr": 0.0005, "hidden": 16, "layers": 2, "seed": 42},
    }
    sampling = {
        "median_step_s": step_s,
        "mean_step_s": step_s + 0.4,
        "p10_step_s": step_s - 2,
        "p90_step_s": step_s + 2,
        "n_steps": 1000,
    }
    data = {
        "source": "tests",
        "protocol": "user-disjoint (no user in more than one split)",
        "splits": {"train": {"workouts": 70, "users": 7}, "val": {"workouts": 15, "users": 2}},
    }
    metrics = metrics if metrics is not None else FAKE_METRICS
    return write_test_bundle(out_dir, ckpt, cpu_state_dict(model), sampling, data, metrics, onnx)


@dataclass
class Workout:
    timestamp: np.ndarray  # int64 Unix s
    speed_kmh: np.ndarray
    altitude_m: np.ndarray
    latitude: np.ndarray
    longitude: np.ndarray
    heart_rate: np.ndarray
    distance_m: np.ndarray


def simulated_workout(n: int = 300, step_s: float = 8.0, seed: int = 0) -> Workout:
    """A run with speed changes, hills and an HR that follows speed, on a uniform grid."""
    rng = np.random.default_rng(seed)
    t = START + np.round(np.arange(n) * step_s).astype(np.int64)
    rel = (t - t[0]).astype(np.float64)
    speed = 10.0 + 2.0 * np.sin(2 * math.pi * rel / 900.0) + rng.normal(0, 0.3, n)
    speed = np.clip(speed, 3.0, 20.0)
    dist = np.concatenate([[0.0], np.cumsum(speed[1:] / 3.6 * np.diff(rel))])
    alt = 250.0 + 30.0 * np.sin(2 * math.pi * dist / 2000.0)
    radius = 2000.0 / (2 * math.pi)
    lat = 46.5 + np.degrees(radius * np.sin(dist / radius) / EARTH_RADIUS_M)
    lon = 7.0 + np.degrees(
        radius * (1 - np.cos(dist / radius)) / (EARTH_RADIUS_M * math.cos(math.radians(46.5)))
    )
    hr = np.round(100 + 5.0 * speed + rng.normal(0, 1.5, n))
    return Workout(t, speed, alt, lat, lon, hr, dist)


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(float(ts), tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def write_gpx(
    path: Path, w: Workout, *, speed: bool = False, hr: bool = True, ele: bool = True
) -> Path:
    """GPX 1.1 with Garmin TrackPointExtension (v2 when speed is written, in m/s)."""
    ns = "v2" if speed else "v1"
    rows = []
    for i in range(len(w.timestamp)):
        ext = ""
        if hr:
            ext += f"<gpxtpx:hr>{int(w.heart_rate[i])}</gpxtpx:hr>"
        if speed:
            ext += f"<gpxtpx:speed>{float(w.speed_kmh[i] / 3.6)!r}</gpxtpx:speed>"
        ext_xml = (
            f"<extensions><gpxtpx:TrackPointExtension>{ext}</gpxtpx:TrackPointExtension>"
            "</extensions>"
            if ext
            else ""
        )
        ele_xml = f"<ele>{float(w.altitude_m[i])!r}</ele>" if ele else ""
        rows.append(
            f'<trkpt lat="{w.latitude[i]:.8f}" lon="{w.longitude[i]:.8f}">{ele_xml}'
            f"<time>{_iso(w.timestamp[i])}</time>{ext_xml}</trkpt>"
        )
    text = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<gpx version="1.1" creator="hrpred tests" xmlns="http://www.topografix.com/GPX/1/1" '
        f'xmlns:gpxtpx="http://www.garmin.com/xmlschemas/TrackPointExtension/{ns}">\n'
        "<trk><name>test run</name><type>running</type><trkseg>\n"
        + "\n".join(rows)
        + "\n</trkseg></trk></gpx>\n"
    )
    path.write_text(text, encoding="utf-8")
    return path


def write_tcx(path: Path, w: Workout, *, speed: bool = True) -> Path:
    """TCX with positions, altitude, distance, HR and (optionally) TPX speed in m/s."""
    rows = []
    for i in range(len(w.timestamp)):
        ext = (
            f"<Extensions><ns3:TPX><ns3:Speed>{float(w.speed_kmh[i] / 3.6)!r}</ns3:Speed></ns3:TPX>"
            "</Extensions>"
            if speed
            else ""
        )
        rows.append(
            f"<Trackpoint><Time>{_iso(w.timestamp[i])}</Time>"
            f"<Position><LatitudeDegrees>{w.latitude[i]:.8f}</LatitudeDegrees>"
            f"<LongitudeDegrees>{w.longitude[i]:.8f}</LongitudeDegrees></Position>"
            f"<AltitudeMeters>{float(w.altitude_m[i])!r}</AltitudeMeters>"
            f"<DistanceMeters>{float(w.distance_m[i])!r}</DistanceMeters>"
            f"<HeartRateBpm><Value>{int(w.heart_rate[i])}</Value></HeartRateBpm>{ext}"
            "</Trackpoint>"
        )
    text = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<TrainingCenterDatabase xmlns="http://www.garmin.com/xmlschemas/TrainingCenterDatabase/v2" '
        'xmlns:ns3="http://www.garmin.com/xmlschemas/ActivityExtension/v2">\n'
        f'<Activities><Activity Sport="Running"><Id>{_iso(w.timestamp[0])}</Id>'
        f'<Lap StartTime="{_iso(w.timestamp[0])}"><Track>\n'
        + "\n".join(rows)
        + "\n</Track></Lap></Activity></Activities></TrainingCenterDatabase>\n"
    )
    path.write_text(text, encoding="utf-8")
    return path


def write_csv(
    path: Path,
    w: Workout,
    *,
    columns: tuple[str, ...] = ("timestamp", "speed (km/h)", "altitude", "heart_rate"),
) -> Path:
    """CSV with the named columns; values at full precision (repr round-trips)."""
    values = {
        "timestamp": [str(int(x)) for x in w.timestamp],
        "time": [_iso(x) for x in w.timestamp],
        "elapsed_s": [str(int(x - w.timestamp[0])) for x in w.timestamp],
        "speed (km/h)": [repr(float(x)) for x in w.speed_kmh],
        "speed_kmh": [repr(float(x)) for x in w.speed_kmh],
        "enhanced_speed": [repr(float(x / 3.6)) for x in w.speed_kmh],
        "speed": [repr(float(x / 3.6)) for x in w.speed_kmh],
        "distance": [repr(float(x)) for x in w.distance_m],
        "altitude": [repr(float(x)) for x in w.altitude_m],
        "elevation": [repr(float(x)) for x in w.altitude_m],
        "heart_rate": [str(int(x)) for x in w.heart_rate],
        "hr": [str(int(x)) for x in w.heart_rate],
        "lat": [f"{x:.8f}" for x in w.latitude],
        "lon": [f"{x:.8f}" for x in w.longitude],
    }
    lines = [",".join(columns)]
    for i in range(len(w.timestamp)):
        lines.append(",".join(values[c][i] for c in columns))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_fit(
    path: Path, w: Workout, *, gzip_it: bool = False, phone: bool = False, sport: str = ""
) -> Path:
    """An activity FIT file (file_id + timer events + one record per sample) via fit_tool.

    `phone`: as a phone app writes it: plain speed/altitude fields instead of the enhanced
    ones, no heart rate, and a manufacturer other than a watch's. `sport` (a fit_tool `Sport`
    name, e.g. "CYCLING"): a sport message before the records and a session message after
    them, as a watch writes them."""
    import gzip

    from fit_tool.fit_file_builder import FitFileBuilder
    from fit_tool.profile.messages.event_message import EventMessage
    from fit_tool.profile.messages.file_id_message import FileIdMessage
    from fit_tool.profile.messages.record_message import RecordMessage
    from fit_tool.profile.profile_type import Event, EventType, FileType, Manufacturer

    builder = FitFileBuilder(auto_define=True, min_string_size=50)
    start_ms = int(w.timestamp[0]) * 1000
    msg = FileIdMessage()
    msg.type = FileType.ACTIVITY
    msg.manufacturer = (Manufacturer.STRAVA if phone else Manufacturer.DEVELOPMENT).value
    msg.product = 0
    msg.time_created = start_ms
    msg.serial_number = 0x12345678
    builder.add(msg)
    ev = EventMessage()
    ev.event = Event.TIMER
    ev.event_type = EventType.START
    ev.timestamp = start_ms
    builder.add(ev)
    records = []
    for i in range(len(w.timestamp)):
        r = RecordMessage()
        r.timestamp = int(w.timestamp[i]) * 1000
        r.position_lat = float(w.latitude[i])
        r.position_long = float(w.longitude[i])
        r.distance = float(w.distance_m[i])
        if phone:
            r.speed = float(w.speed_kmh[i] / 3.6)
            r.altitude = float(w.altitude_m[i])
        else:
            r.enhanced_speed = float(w.speed_kmh[i] / 3.6)
            r.enhanced_altitude = float(w.altitude_m[i])
            r.heart_rate = int(w.heart_rate[i])
        records.append(r)
    if sport:
        from fit_tool.profile.messages.sport_message import SportMessage
        from fit_tool.profile.profile_type import Sport

        msg = SportMessage()
        msg.sport = Sport[sport]
        builder.add(msg)
    builder.add_all(records)
    if sport:
        from fit_tool.profile.messages.session_message import SessionMessage

        msg = SessionMessage()
        msg.timestamp = int(w.timestamp[-1]) * 1000
        msg.start_time = start_ms
        msg.sport = Sport[sport]
        builder.add(msg)
    ev = EventMessage()
    ev.event = Event.TIMER
    ev.event_type = EventType.STOP_ALL
    ev.timestamp = int(w.timestamp[-1]) * 1000
    builder.add(ev)
    data = builder.build().to_bytes()
    path.write_bytes(gzip.compress(data, mtime=0) if gzip_it else data)
    return path


# --------------------------------------------------------------------------- history bundle

DAY_S = 86400


def runner_workout(seed: int, level: float, day: int, n: int = 150) -> Workout:
    """`simulated_workout` of a runner whose HR sits `level` BPM above the population's,
    started `day` days after START (so their runs have an order in time)."""
    from dataclasses import replace

    w = simulated_workout(n=n, step_s=8.0, seed=seed)
    return replace(w, timestamp=w.timestamp + day * DAY_S, heart_rate=w.heart_rate + level)


def _activity(w: Workout):  # -> hrpred.io.activity.Activity
    from hrpred.io.activity import Activity

    return Activity(
        timestamp=w.timestamp.astype(np.float64), speed=w.speed_kmh, altitude=w.altitude_m,
        latitude=w.latitude, longitude=w.longitude, heart_rate=w.heart_rate,
        distance=w.distance_m, source="sim",
    )  # fmt: skip


def make_history_bundle(root: Path, *, users: int = 40, runs: int = 4, seed: int = 0) -> Path:
    """A bundle of a tiny TRAINED history model (`HistoryHRModel`, physio design).

    Each simulated runner has a personal HR level (-25..25 BPM) and `runs` runs on
    consecutive days; their features come from predict's own path (resample to an 8 s grid,
    registry features), so a profile built from files feeds the model what it trained on.
    Returns the bundle directory (root/bundle)."""
    from dataclasses import replace

    import pandas as pd

    from hrpred import store
    from hrpred.bundle.runtime import load_bundle
    from hrpred.features.registry import BINARY_FEATURES
    from hrpred.model import load_checkpoint
    from hrpred.params import load_config
    from hrpred.personal.config import LearnedConfig
    from hrpred.serve.inputs import grid_features, on_grid, resample_activity
    from hrpred.split.history import build_history
    from hrpred.train.config import TrainConfig, TrainPaths
    from hrpred.train.data import load_train_data
    from hrpred.train.history_data import load_history_data
    from hrpred.train.loop import fit

    rng = np.random.default_rng(seed)
    levels = rng.uniform(-25, 25, size=users)
    rows = []
    for u in range(users):
        for r in range(runs):
            w = runner_workout(int(rng.integers(1 << 30)), float(levels[u]), 10 * u + r)
            grid = resample_activity(_activity(w), 8.0, speed_rules())
            feats = grid_features(FEATURES, grid, None)
            hr = on_grid(w.timestamp.astype(np.float64), w.heart_rate, grid.timestamp)
            rows.append((u, int(w.timestamp[0]), feats, hr, grid.timestamp - grid.timestamp[0]))
    n, t = len(rows), min(len(r[2]) for r in rows)
    ids = 1000 + np.arange(n)
    arrays = {
        "features": np.stack([r[2][:t] for r in rows]).astype(np.float32),
        "target": np.stack([r[3][:t] for r in rows]).astype(np.float32),
        "elapsed": np.stack([r[4][:t] for r in rows]).astype(np.float32),
    }
    arrays["mask"] = np.isfinite(arrays["target"])
    user = np.array([r[0] for r in rows])
    index = pd.DataFrame(
        {"workout_id": ids, "user_id": user, "start_time": [r[1] for r in rows],
         "length": t, "offset": 0, "workout_steps": t}
    )  # fmt: skip
    writer = store.FeaturesWriter(root / "data" / "features", n, t, FEATURES)
    writer.write(arrays, index)
    writer.close({"workouts": n, "rows": n, "seq_len": t})
    split = np.array(["train", "train", "train", "val", "test"])[user % 5]
    assignment = pd.DataFrame({"row": np.arange(n), "workout_id": ids, "user_id": user,
                               "split": split})  # fmt: skip
    tr = split == "train"
    scaler = {}
    for j, name in enumerate(FEATURES):
        if name not in BINARY_FEATURES:
            v = arrays["features"][tr][..., j]
            scaler[name] = {"mean": float(np.nanmean(v)), "std": float(np.nanstd(v)) or 1.0}
    store.write_split(root / "data" / "split", assignment, scaler)
    hist = build_history(assignment, index.assign(row=np.arange(n)), 50)
    store.write_history(root / "data" / "split", hist)
    tiny = {"hidden": 16, "layers": 1, "batch_size": 8, "eval_batch_size": 64, "lr": 3e-3,
            "patience": 30, "lr_patience": 10, "max_epochs": 30, "device": "cpu",
            "num_threads": 1, "val_threads": 0}  # fmt: skip
    cfg = replace(load_config(TrainConfig, "train", PARAMS), **tiny)
    learned = replace(load_config(LearnedConfig, "personal.learned", PARAMS), design="physio")
    fdir, sdir = root / "data" / "features", root / "data" / "split"
    data = load_train_data(fdir, sdir)
    paths = TrainPaths(root / "model.pt", root / "ckpt.pt", None)
    fit(cfg, data, paths, history=load_history_data(data, fdir, sdir, learned))
    _, ckpt = load_checkpoint(paths.model)
    sampling = {"median_step_s": 8.0, "mean_step_s": 8.0}
    write_test_bundle(root / "bundle", ckpt, ckpt["state_dict"], sampling, {"source": "tests"})
    load_bundle(root / "bundle")  # loads as a history bundle
    return root / "bundle"
