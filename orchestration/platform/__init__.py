"""Where work runs and what it touches: the Ray cluster, storage, credentials, cost, the console,
Ray jobs."""
