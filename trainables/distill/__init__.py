"""Dataset distillation by distribution matching (Zhao & Bilen, WACV 2023), in plain torch.

`distill` learns a few synthetic images per class whose mean embeddings under freshly
initialised random ConvNets match the real class's; `train_and_test` trains a small CNN on a
set of images (the distilled ones, or as many random real ones) and scores it on real faces.
No ray, no mlflow: `orchestration/cli/distill.py` reads, publishes and reports.
"""

from hmtl.trainables.distill.augment import AUGMENT_OPS, siamese_augment
from hmtl.trainables.distill.convnet import DMConvNet
from hmtl.trainables.distill.evaluate import train_and_test
from hmtl.trainables.distill.matching import Distilled, DistillSettings, distill, random_real

__all__ = [
    "AUGMENT_OPS",
    "DMConvNet",
    "DistillSettings",
    "Distilled",
    "distill",
    "random_real",
    "siamese_augment",
    "train_and_test",
]
