"""Active learning (ActiveFER): the cycle loop and one file per query strategy.

No Ray and no MLflow here: the loop talks to whatever runs it through the `Session`.
"""
