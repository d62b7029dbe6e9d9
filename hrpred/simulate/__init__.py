"""Physiological simulator writing FitRec-format workouts with known ground truth."""

from hrpred.simulate.config import ARCHETYPES, FAULTS, HR_FAULTS, TERRAINS, SimConfig
from hrpred.simulate.dataset import REALISM_BANDS, run_simulate, simulate_dataset
from hrpred.simulate.writer import TRUTH_SCHEMA

__all__ = [
    "ARCHETYPES",
    "FAULTS",
    "HR_FAULTS",
    "REALISM_BANDS",
    "TERRAINS",
    "TRUTH_SCHEMA",
    "SimConfig",
    "run_simulate",
    "simulate_dataset",
]
