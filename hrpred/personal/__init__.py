"""Personalisation from a runner's own earlier workouts (issue 13)."""
