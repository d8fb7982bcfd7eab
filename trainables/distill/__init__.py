"""Dataset distillation by distribution matching (Zhao & Bilen, WACV 2023), in plain torch.

`distill` learns a few synthetic images per class whose mean embeddings under freshly
initialised random ConvNets match the real class's; `train_and_test` trains a small CNN on a
set of images (the distilled ones, or as many random real ones) and scores it on real faces.
No ray, no mlflow: `orchestration/cli/distill.py` reads, publishes and reports.
"""

from importlib import import_module

# Each name and the module that defines it, imported on first use: the settings alone (what
# `hmtl distill --help` and a study's validation read) import no torch.
_HOMES = {
    "AUGMENT_OPS": "settings",
    "DistillSettings": "settings",
    "siamese_augment": "augment",
    "DMConvNet": "convnet",
    "train_and_test": "evaluate",
    "Distilled": "matching",
    "distill": "matching",
    "random_real": "matching",
}
__all__ = sorted(_HOMES)


def __getattr__(name: str):
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"{__name__}.{_HOMES[name]}"), name)
