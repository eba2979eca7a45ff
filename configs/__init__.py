"""Experiment configs: one file per (model, task), built from `presets`."""
