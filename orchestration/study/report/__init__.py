"""A study's report: statistics, tables, figures, and the active-learning report."""
