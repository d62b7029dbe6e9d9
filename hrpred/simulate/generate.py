"""Simulate one chunk of workouts: kinematics, physiology, sensors, faults, lines.

A chunk's random numbers come from (seed, 1, chunk index) only, and its pauses' from
(seed, 3, chunk index), so the file is the same whatever the number of worker processes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from hrpred.simulate.calibration import settled_means
from hrpred.simulate.config import SimConfig
from hrpred.simulate.confounders import add_confounders
from hrpred.simulate.faults import apply_fault, bad_points, corrupt_line, fault_visible
from hrpred.simulate.physiology import (
    DEFAULT_SPORT,
    SPORTS,
    cadence,
    cardiac_drift,
    effort_fraction,
    paused_kinetics,
    smooth_noise,
)
from hrpred.simulate.plan import Plan
from hrpred.simulate.workouts import (
    add_stops,
    altitude_and_grade,
    gps_track,
    relative_pace,
    sample_steps,
    terrain_params,
)
from hrpred.simulate.writer import fitrec_line_bytes
from hrpred.timeseries import step_distances_km

# Per-workout realism statistics columns (fault-free runs), summed over chunks later.
STAT_COLUMNS = (
    "n", "hr_sum", "hr_sumsq", "speed_sum", "speed_sumsq", "duration_min", "corr",
    "hr_settled", "speed_settled", "user", "start",
)  # fmt: skip


@dataclass
class ChunkResult:
    """What one chunk hands to the writer."""

    index: int
    lines: bytes  # newline-terminated FitRec lines
    truth: dict[str, Any]  # truth columns; hr_physio / hr_clean are [B, n], pause_* lists
    stats: np.ndarray  # [k, len(STAT_COLUMNS)] for the chunk's fault-free runs


def chunk_bounds(cfg: SimConfig, index: int) -> tuple[int, int]:
    start = index * cfg.chunk_size
    return start, min(start + cfg.chunk_size, cfg.n_workouts)


def n_chunks(cfg: SimConfig) -> int:
    return -(-cfg.n_workouts // cfg.chunk_size)


def draw_pauses(
    rng: np.random.Generator, counts: np.ndarray, n: int, cfg: SimConfig
) -> list[list[tuple[int, float]]]:
    """(step, seconds) of each workout's pauses, by step: `counts[b]` distinct steps in the
    middle 90% of the workout (the first sample after the pause) and whole-second lengths,
    log-uniform in [pause_min_s, pause_max_s]."""
    lo, hi = max(n // 20, 1), n - n // 20
    low, high = np.log(cfg.pauses.pause_min_s), np.log(cfg.pauses.pause_max_s)
    out: list[list[tuple[int, float]]] = []
    for k in counts:
        steps = np.sort(rng.choice(np.arange(lo, hi), size=int(k), replace=False))
        seconds = np.clip(
            np.rint(np.exp(rng.uniform(low, high, int(k)))),
            np.ceil(cfg.pauses.pause_min_s),
            np.floor(cfg.pauses.pause_max_s),
        )
        out.append([(int(p), float(s)) for p, s in zip(steps, seconds, strict=True)])
    return out


def simulate_chunk(cfg: SimConfig, plan: Plan, index: int) -> ChunkResult:
    """Simulate lines [index*chunk_size, ...) of the file."""
    rng = np.random.default_rng(np.random.SeedSequence([cfg.seed, 1, index]))
    lo, hi = chunk_bounds(cfg, index)
    rows = np.arange(lo, hi)
    b, n = rows.size, cfg.points
    us = plan.users
    u = plan.user[rows]
    models = [SPORTS.get(s, DEFAULT_SPORT) for s in plan.sport[rows]]
    speed_factor = np.array([m.speed_factor for m in models])
    ref_factor = np.array([m.ref_factor for m in models])
    hr_factor = np.array([m.hr_factor for m in models])
    grade_mult = np.array([m.grade_mult for m in models])
    slowdown = np.array([m.grade_slowdown for m in models])
    thr = us.threshold_speed_kmh[u]

    # Kinematics: sampling times, pace, terrain-adjusted speed, altitude.
    dt = sample_steps(rng, b, n, cfg.step_s_mean, cfg.step_s_spread, cfg.step_s_jitter)
    t = np.cumsum(dt, axis=1)  # moving time: pauses come on top (clock only)
    pause_rng = np.random.default_rng(np.random.SeedSequence([cfg.seed, 3, index]))
    pauses = draw_pauses(pause_rng, plan.n_pauses[rows], n, cfg)
    paused = np.zeros((b, n))  # paused seconds before each sample
    for i, workout_pauses in enumerate(pauses):
        for p, seconds in workout_pauses:
            paused[i, p:] += seconds
    rel = np.stack([relative_pace(rng, a, t[i]) for i, a in enumerate(plan.archetype[rows])])
    rel *= 1.0 + smooth_noise(rng, (b, n), 0.04, 8)  # pace wanders
    rel *= us.effort[u][:, None]  # the runner's habit: some run every run harder
    stops = rng.random(b) < cfg.stop_rate
    for i in np.flatnonzero(stops):
        rel[i] = add_stops(rng, t[i], rel[i])
    v_flat = rel * (thr * speed_factor)[:, None]
    terrain = terrain_params(rng, list(plan.terrain[rows]))
    _, grade0 = altitude_and_grade(terrain, np.cumsum(v_flat / 3.6 * dt, axis=1), False)
    # Slower uphill, a bit faster downhill.
    factor = np.where(
        grade0 > 0, 1 - slowdown[:, None] * grade0, 1 - 0.5 * slowdown[:, None] * grade0
    )
    v = np.maximum(v_flat * np.clip(factor, 0.3, 1.6), 0.0)
    step_m = v / 3.6 * dt  # speed of point i is that of the segment ending at i
    alt_true, grade = altitude_and_grade(terrain, np.cumsum(step_m, axis=1))

    # Physiology.
    rest, max_hr = us.rest_hr[u], us.max_hr[u]
    hrr_thr = us.hrr_at_threshold[u]
    hrr = effort_fraction(v, grade, thr * ref_factor, hrr_thr, cfg, grade_mult) * hr_factor[:, None]
    day_form = rng.normal(0, cfg.day_to_day_bpm, b)  # heat, sleep, caffeine: same pace, other HR
    level = plan.level_bpm[rows]  # slow drift of the runner's level (fitness, breaks, device)
    target = (rest + day_form + level)[:, None] + (max_hr - rest)[:, None] * hrr
    hr0 = rest + rng.uniform(15, 40, b)
    # While paused, HR relaxes towards standing (zero running effort).
    standing = rest + day_form + level + (max_hr - rest) * cfg.pauses.standing_hrr
    kin = paused_kinetics(target, dt, hr0, us.tau_up_s[u], us.tau_down_s[u], pauses, standing)
    drift = cardiac_drift(dt, hrr / hrr_thr[:, None], us.drift_bpm_per_h[u])
    physio = np.clip(kin + drift, (rest - 5)[:, None], (max_hr + 3)[:, None])
    sd = cfg.sensor_noise_bpm
    scale = plan.noise_scale[rows][:, None]
    clean = physio + scale * (rng.normal(0, sd, (b, n)) + smooth_noise(rng, (b, n), 0.6 * sd, 5))
    physio, clean, confounder = add_confounders(
        cfg.confounders, cfg.seed, index, u, us.user_id.size, t, v, max_hr, physio, clean
    )

    # Sensors: GPS track, barometric/GPS altitude, native speed.
    start_lat = us.home_lat[u] + rng.normal(0, 0.03, b)
    start_lon = us.home_lon[u] + rng.normal(0, 0.03, b)
    lat, lon = gps_track(rng, step_m, start_lat, start_lon)
    alt = np.round(alt_true + smooth_noise(rng, (b, n), 2.5, 20) + rng.normal(0, 0.3, (b, n)), 1)
    speed = np.round(np.maximum(v + rng.normal(0, 0.25, (b, n)), 0.0), 4)
    ts = plan.start_time[rows][:, None] + (t + paused).astype(np.int64)
    # Step cadence at the running-equivalent speed: what the lock faults read.
    cad = cadence(
        v / speed_factor[:, None],
        thr,
        us.cadence_spm[u],
        us.cadence_spm_per_kmh[u],
        cfg.cadence_clip_spm,
    )

    lines: list[bytes] = []
    f_start = np.full(b, -1, dtype=np.int64)
    f_end = np.full(b, -1, dtype=np.int64)
    offset = np.zeros(b)
    bad = np.zeros(b, dtype=np.int64)
    visible = np.ones(b, dtype=bool)
    stats: list[list[float]] = []
    for i, row in enumerate(rows):
        fault = plan.fault[row]
        native = bool(plan.native_speed[row])
        rec = {
            "timestamp": ts[i].copy(),
            "heart_rate": clean[i].copy(),
            "altitude": alt[i].copy(),
            "latitude": lat[i].copy(),
            "longitude": lon[i].copy(),
        }
        if native:
            rec["speed"] = speed[i].copy()
        f_start[i], f_end[i], offset[i] = apply_fault(rng, fault, rec, cfg.offset_bpm, cad[i])
        hr_rec = np.maximum(np.rint(rec["heart_rate"]), 0).astype(np.int64)
        bad[i] = bad_points(hr_rec, clean[i])
        visible[i] = fault_visible(fault, int(f_start[i]), int(f_end[i]), int(bad[i]))
        uid = int(us.user_id[u[i]])
        workout = {
            "longitude": rec["longitude"],
            "altitude": rec["altitude"],
            "latitude": rec["latitude"],
            "sport": plan.sport[row],
            "id": int(plan.workout_id[row]),
            "heart_rate": hr_rec,
            "gender": str(us.gender[u[i]]),
            "timestamp": rec["timestamp"],
            "url": f"https://www.endomondo.com/users/{uid}/workouts/{plan.workout_id[row]}",
            "userId": uid,
        }
        if native:
            workout["speed"] = rec["speed"]
        line = fitrec_line_bytes(workout)
        if fault == "malformed_line":
            line = corrupt_line(rng, line)
        lines.append(line)
        if fault == "none" and plan.sport[row] == "run":
            stats.append([*_workout_stats(hr_rec, rec, native), u[i], plan.start_time[row]])

    truth = {
        "line": rows + 1,
        "workout_id": plan.workout_id[rows],
        "user_id": us.user_id[u],
        "sport": plan.sport[rows],
        "archetype": plan.archetype[rows],
        "terrain": plan.terrain[rows],
        "fault": plan.fault[rows],
        "fault_start": f_start,
        "fault_end": f_end,
        "offset_bpm": offset,
        "fault_bad_points": bad,
        "fault_visible": visible,
        "confounder": confounder,
        "age": us.age[u],
        "rest_hr": us.rest_hr[u],
        "max_hr": us.max_hr[u],
        "threshold_speed_kmh": thr,
        "tau_up_s": us.tau_up_s[u],
        "tau_down_s": us.tau_down_s[u],
        "drift_bpm_per_h": us.drift_bpm_per_h[u],
        "gender": us.gender[u],
        "n_user_workouts": plan.n_user_workouts[u],
        "level_bpm": level,
        "day": plan.day[rows],
        "change_day": plan.change_day[rows],
        "change_bpm": plan.change_bpm[rows],
        "hr_physio": np.round(physio, 3),
        "hr_clean": np.round(clean, 3),
        "pause_step": [[p for p, _ in w] for w in pauses],
        "pause_s": [[s for _, s in w] for w in pauses],
    }
    stats_arr = np.array(stats, dtype=np.float64).reshape(-1, len(STAT_COLUMNS))
    return ChunkResult(index, b"\n".join(lines) + b"\n", truth, stats_arr)


def _workout_stats(hr: np.ndarray, rec: dict[str, np.ndarray], native: bool) -> list[float]:
    hr = hr.astype(np.float64)
    if native:
        v = rec["speed"]
    else:
        step_km = step_distances_km(rec["latitude"], rec["longitude"])
        dt = np.maximum(np.diff(rec["timestamp"].astype(np.float64)), 0.1)
        v = step_km / dt * 3600.0
        v = np.concatenate([v[:1], v])  # the first point copies the second
    corr = np.corrcoef(v, hr)[0, 1] if v.std() > 0 and hr.std() > 0 else np.nan
    duration = (rec["timestamp"][-1] - rec["timestamp"][0]) / 60.0
    settled = settled_means(rec["timestamp"], hr, v)
    return [hr.size, hr.sum(), (hr**2).sum(), v.sum(), (v**2).sum(), duration, corr, *settled]
