"""Studies: designed comparisons as ordered stages, run on one Ray cluster, then reported."""
