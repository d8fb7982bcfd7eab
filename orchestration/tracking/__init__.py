"""MLflow: tag names, the sweep's tracking callback and its delivery queue, MLflow-native
records, model references."""
