"""Mining an unlabelled face pool with a primitive model (issue 15): the pure logic.

Given L2-normalised embeddings and classifier logits (computed elsewhere; orchestration runs
them on Ray Data), these modules compute class prototypes, score every pool face, select
pseudo-labelled faces by thresholds and per-class quotas, and drop near-duplicates of the
faces a user wants kept out (test splits). No Ray, no MLflow, no I/O.

Every choice the omni-supervised paper leaves open is a field of `MiningSettings`, logged in
the published card; `OURS` lists which defaults are ours rather than the paper's.
"""

from hmtl.trainables.mining.prototypes import class_prototypes
from hmtl.trainables.mining.scoring import Scores, score
from hmtl.trainables.mining.selection import Selection, near_duplicates, select
from hmtl.trainables.mining.settings import OURS, MiningSettings

__all__ = [
    "OURS",
    "MiningSettings",
    "Scores",
    "Selection",
    "class_prototypes",
    "near_duplicates",
    "score",
    "select",
]
