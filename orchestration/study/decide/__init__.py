"""Studies that decide: the statistics of seeds added in rounds (pure functions, scipy only).

- `spending.py`: Lan-DeMets alpha spending and the group-sequential boundaries it gives for
  the declared looks, by recursive numerical integration;
- `rules.py`: the adjusted (repeated) confidence interval at a look and the decision it gives
  (above or below 0, equivalent within ±effect, undecided), vectorised over comparisons;
- `power.py`: seeds needed for an effect at 80% power and the detectable effect at n;
- `multiplicity.py`: Holm and Benjamini-Hochberg adjusted p-values and intervals;
- `variance.py`: the variance from the labelled subset separated from the initialisation's;
- `simulate.py`: the same rules run on simulated studies (the test and the benchmark).

docs/study-statistics.md explains each method with a worked example.
"""
