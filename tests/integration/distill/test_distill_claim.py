"""DM's basic claim on synthetic faces: a small CNN trained on N distilled images per class
beats one trained on N random real images per class (the ones distillation started from).

Measured on 2026-11-30 (2-core VM, load average 2-26 from other work; BENCHMARKS.md,
"Dataset distillation") with N = 10 on 48 px grey faces (1,200 training faces, 400 test
faces of other identities), small_cnn width 8 trained 200 SGD steps as the evaluator:
the gain of distilled over random real, mean of seeds 0 and 1, was -0.06 to -0.004 with
DM's lr 1 (ConvNet width 32, 250 iterations) and +0.002 to +0.011 with lr 0.1 (width 64,
real batch 64, 200 iterations), against a seed-to-seed spread of up to 0.03 in the
random-real arm. The claim did not hold at this CPU budget: the evaluator barely learns
expressions from 80 faces, real or distilled (0.24 from 320, 0.33 from 800 random real).
The test stays, marked xfail, so the suite reruns it and a fix shows up as an XPASS; it is
shrunk (60 iterations, 150 evaluator steps) to about a minute on an idle 2-core machine.
"""

import numpy as np
import pytest

from hmtl.trainables.data.synthetic import render_faces
from hmtl.trainables.distill import DistillSettings, distill, train_and_test

SEEDS = (0, 1)
PER_CLASS = 10
# The seed-to-seed spread of the random-real arm measured above (up to 0.03): a smaller
# gain could be seed noise.
MARGIN = 0.03


@pytest.mark.integration
@pytest.mark.xfail(reason="not observed on synthetic faces at CPU budget (see docstring)")
def test_distilled_images_beat_as_many_random_real_ones():
    train = render_faces(1200, size=48, channels=1, seed=0, num_identities=100)
    test = render_faces(400, size=48, channels=1, seed=1, num_identities=100)
    real, distilled = [], []
    for seed in SEEDS:
        settings = DistillSettings(
            PER_CLASS, iterations=60, lr=0.1, width=32, real_batch=32, seed=seed
        )
        result = distill(train.images, train.expression, settings)
        rows = result.init_rows
        evaluate = dict(seed=seed, steps=150, lr=0.05)
        real.append(
            train_and_test(
                train.images[rows], train.expression[rows], test.images, test.expression, **evaluate
            )
        )
        distilled.append(
            train_and_test(result.images, result.labels, test.images, test.expression, **evaluate)
        )
    gain = np.mean(distilled) - np.mean(real)
    assert gain > MARGIN, f"random real {real}, distilled {distilled}"
