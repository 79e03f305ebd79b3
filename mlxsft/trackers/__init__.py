"""Experiment trackers behind ``--report-to``: tensorboard, wandb, mlflow, trackio (each an optional extra)."""
