"""Deterministic anomaly detector (replaces the reference's LLM triage).

Physiology gives every step an expected HR: HR follows a first-order response to the
grade-adjusted speed ("drive"), plus a slow drift and a warm-up transient. On one workout:
- sample faults: dropouts (HR falls to ~0), spikes (short excursions from the rolling
  median), flatlines (a stuck value), out-of-range samples;
- segment faults: the single segment whose HR shift best explains HR beyond the expected
  model (change point on the HR-minus-expected residual, fitted jointly with the model).
  A segment reading low is a partial offset, one reading high, steadier than the rest and in
  the cadence band a cadence lock: fixed (cadence_lock) or rising with the pace
  (cadence_follow); one reading low but white about a line in the speed is a lock too (a
  cadence read below a high heart);
- real sensor failure modes (hrpred/clean/sensor.py): low dropouts (25-60 BPM), a slow
  lock or a drying strap over the first minutes, a long lagging and noisy segment, a lock
  at nearly the runner's own HR (much steadier than the rest and white about a line in the
  speed; called when the change point finds no segment fault), and the whole-run shape (no
  warm-up, HR following the speed without the heart's lag);
- whole-run faults need a level: full offsets (HR too low, tracking the speed) and stuck
  low readings (too low, flat, never warming up) are judged against a per-user model fitted
  on the user's other (unflagged) workouts, leave-one-out, or against the population when
  the user has none, and a full offset only when the user's next runs do not read low too (a
  level that fell, e.g. a new watch, is the runner's); a whole-run cadence lock by its shape
  alone. Level statistics are sums,
  so the clean stage collects them in pass 1 and decides in pass 2 with bounded memory.

Pauses (`pause_step`) cut the drive (the runner stood) and restart the warm-up; HR that is
low just after a pause is the heart recovering, never a partial offset, and HR that falls in a
pause inside a would-be lock is the heart relaxing, not a sensor reading the cadence (both seen
on real runs, where watches also hold the last HR value across a pause). The detector
only finds faults and the spans they cover; what to do with each (correct, mask, reject) is
the caller's policy (params.yaml clean.correct.actions).

Modules: `hrpred.clean.level` (the expected-HR level model and its sufficient statistics),
`hrpred.clean.population` (the per-user models between the passes), `hrpred.clean.analysis`
(pass 1: `analyse`), `hrpred.clean.classify` (pass 2: `decide`, with
`hrpred.clean.segment_calls` for the change-point and quiet segments), over
`hrpred.clean.signal`, `hrpred.clean.locks` and `hrpred.clean.sensor`, whose per-workout numpy
reductions go through `hrpred.clean.numeric` (bit-identical, cheaper calls). This module is the detector as the
two-pass engine (`hrpred.clean.passes`) uses it.
"""

from hrpred.clean.analysis import Analysis, analyse
from hrpred.clean.classify import Verdict, decide
from hrpred.clean.level import N_LEVEL_STATS, LevelModel

__all__ = ["N_LEVEL_STATS", "Analysis", "LevelModel", "Verdict", "analyse", "decide"]
