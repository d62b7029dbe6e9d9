"""Limits of the command line's and the app's personal inputs (README "Limits and bad
files"), in a module without heavy imports so that `hrpred --help` stays instant. Activity
files have theirs in `hrpred.io.limits`.
"""

from __future__ import annotations

MAX_PROFILE_BYTES = 64 * 1024 * 1024  # a profile file (one of 20,000 runs is ~15 MB)
MAX_PROFILE_DEPTH = 16  # nesting of [ and { in a profile file (a real one nests 5 deep)
MAX_PROFILE_RUNS = 20_000  # runs (and skipped files) in one profile: 50 years of daily runs
# Files `hrpred profile` and `predict --history` read unless --max-files says more: ~3 years of
# daily runs (the personalisers read the 10 most recent; more only refines the level's trend),
# at SECONDS_PER_FILE about 8 min with a progress bar. Memory: build_profile keeps each run's
# grid arrays until the end (357 real runs: 196 MB peak RSS in all; a 24 h run: ~1.3 MB).
MAX_HISTORY_FILES = 1000
# CPU time per file measured for a profile of 357 real 1 Hz FIT runs (a COROS watch, 35 MB)
# with the default history bundle: 189 s in all (a simulated 20-min GPX: ~0.1 s)
SECONDS_PER_FILE = 0.5
PROGRESS_MIN_FILES = 24  # more files than this: a progress bar (terminal) or a summary line
