"""A sweep: its search space, the Tune run with Optuna and ASHA, one trial,
the per-worker adapter, status and report."""
