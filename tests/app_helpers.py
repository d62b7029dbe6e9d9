"""Shared by the demo-app tests: a tiny random model bundle and a GPX fixture writer."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

TINY_FEATURES = [
    "speed",
    "altitude",
    "gender",
    "speed_lag_2",
    "speed_derivative",
    "altitude_derivative",
    "rolling_speed_10",
    "cumulative_elevation_gain",
]


def make_tiny_bundle(out_dir: Path, seed: int = 0, step_s: float = 5.0) -> Path:
    """A bundle holding an untrained 1-layer LSTM (random weights, fixed seed)."""
    import torch

    from hrpred.features.registry import BINARY_FEATURES
    from hrpred.model import build_model, cpu_state_dict
    from tests.predict_fixtures import write_test_bundle

    torch.manual_seed(seed)
    arch = {"input_size": len(TINY_FEATURES), "hidden": 8, "layers": 1, "dropout": 0.0}
    arch["bidirectional"] = False
    model = build_model(arch, target_mean=140.0, target_std=15.0)
    # a larger head makes the random model's output vary visibly along the workout
    with torch.no_grad():
        model.head.weight.mul_(8.0)
    scale = {"speed": (10.0, 3.0), "altitude": (300.0, 150.0)}
    scaler = {
        f: {"mean": scale.get(f, (0.0, 1.0))[0], "std": scale.get(f, (0.0, 1.0))[1]}
        for f in TINY_FEATURES
        if f not in BINARY_FEATURES
    }
    ckpt = {
        "features": TINY_FEATURES,
        "config": arch,
        "scaler": scaler,
        "target_mean": 140.0,
        "target_std": 15.0,
        "seq_len": 500,
    }
    sampling = {"median_step_s": step_s, "mean_step_s": step_s}
    return write_test_bundle(out_dir, ckpt, cpu_state_dict(model), sampling, {"source": "test"})


def write_gpx_fixture(path: Path, minutes: float = 20.0, step_s: float = 2.0) -> Path:
    """A run around a 1 km loop with two hills, speed changes and a recorded HR channel."""
    n = int(minutes * 60 / step_s)
    t = np.arange(n) * step_s
    speed_kmh = 9.0 + 2.5 * (np.sin(2 * math.pi * t / 600.0) > 0)
    dist = np.concatenate([[0.0], np.cumsum(speed_kmh[1:] / 3.6 * step_s)])
    ele = 200.0 + 25.0 * np.sin(2 * math.pi * dist / 1600.0)
    hr = np.round(120 + 3.0 * (speed_kmh - 9) + 10 * np.sin(2 * math.pi * t / 900.0))
    radius = 1000.0 / (2 * math.pi)
    lat = 47.0 + np.degrees(radius * np.sin(dist / radius) / 6_371_000.0)
    lon = 8.0 + np.degrees(
        radius * (1 - np.cos(dist / radius)) / (6_371_000.0 * math.cos(math.radians(47.0)))
    )
    start = 1_600_000_000
    rows = []
    for i in range(n):
        stamp = datetime.fromtimestamp(start + t[i], tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        rows.append(
            f'<trkpt lat="{lat[i]:.7f}" lon="{lon[i]:.7f}"><ele>{ele[i]:.1f}</ele>'
            f"<time>{stamp}</time><extensions><gpxtpx:TrackPointExtension>"
            f"<gpxtpx:hr>{int(hr[i])}</gpxtpx:hr></gpxtpx:TrackPointExtension></extensions>"
            "</trkpt>"
        )
    text = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<gpx version="1.1" creator="hrpred tests" xmlns="http://www.topografix.com/GPX/1/1" '
        'xmlns:gpxtpx="http://www.garmin.com/xmlschemas/TrackPointExtension/v1">\n'
        "<trk><name>fixture</name><trkseg>\n" + "\n".join(rows) + "\n</trkseg></trk></gpx>\n"
    )
    path.write_text(text, encoding="utf-8")
    return path
