"""Everything that knows about Ray, MLflow, S3 and the command line."""
