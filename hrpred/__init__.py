"""hrpred: predict a runner's heart-rate curve from speed and altitude."""

__version__ = "0.1.0"
