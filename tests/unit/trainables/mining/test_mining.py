"""Mining's pure logic (trainables/mining): prototypes, scoring, selection, exclusion."""

import numpy as np
import pytest

from hmtl.trainables.mining import (
    MiningSettings,
    class_prototypes,
    near_duplicates,
    score,
    select,
)
from hmtl.trainables.mining.prototypes import spherical_kmeans


def unit(x):
    x = np.asarray(x, np.float32)
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def around(centre, n, spread, rng):
    """`n` unit vectors scattered around `centre`."""
    return unit(np.asarray(centre, np.float32) + spread * rng.standard_normal((n, len(centre))))


def logits_for(labels, classes, margin=4.0):
    z = np.zeros((len(labels), classes), np.float32)
    z[np.arange(len(labels)), labels] = margin
    return z


def test_prototype_scoring_labels_pool_faces_by_their_nearest_class():
    rng = np.random.default_rng(0)
    axes = np.eye(4, dtype=np.float32)
    # Labelled: classes 0..2 around the first three axes; class 3 has no rows.
    labelled = np.concatenate([around(axes[c], 30, 0.1, rng) for c in range(3)])
    labels = np.repeat(np.arange(3), 30)
    protos, owners = class_prototypes(labelled, labels, num_classes=4)
    assert owners.tolist() == [0, 1, 2]  # no prototype for a class without rows
    # Pool: 10 faces near class 1, 10 near class 2, 10 along the unused fourth axis.
    pool = np.concatenate(
        [
            around(axes[1], 10, 0.1, rng),
            around(axes[2], 10, 0.1, rng),
            around(axes[3], 10, 0.1, rng),
        ]
    )
    classifier = np.r_[np.full(10, 1), np.full(10, 2), np.full(10, 0)]
    scores = score(pool, logits_for(classifier, 4), protos, owners)
    assert scores.label[:20].tolist() == [1] * 10 + [2] * 10
    assert (scores.similarity[:20] > 0.9).all() and (scores.similarity[20:] < 0.5).all()
    assert np.allclose(scores.confidence[:20], np.exp(4) / (np.exp(4) + 3))

    picked = select(scores, MiningSettings(min_similarity=0.8, min_confidence=0.5), 4)
    assert picked.rows.tolist() == list(range(20))  # the far faces are dropped
    assert sum(picked.counts["pool"]) == 30  # every pool face has a nearest prototype
    assert picked.counts["min_similarity"] == [0, 10, 10, 0]
    assert picked.counts["per_class"] == [0, 10, 10, 0]


def test_agreement_drops_faces_the_classifier_labels_otherwise():
    rng = np.random.default_rng(1)
    axes = np.eye(3, dtype=np.float32)
    protos, owners = class_prototypes(
        np.concatenate([around(axes[c], 20, 0.1, rng) for c in range(3)]),
        np.repeat(range(3), 20),
        3,
    )
    pool = around(axes[0], 8, 0.05, rng)
    classifier = np.array([0, 0, 0, 0, 1, 1, 2, 2])  # half disagree with the prototypes
    scores = score(pool, logits_for(classifier, 3, margin=1.0), protos, owners)
    loose = MiningSettings(min_similarity=None, min_confidence=None)
    assert select(scores, loose, 3).rows.tolist() == [0, 1, 2, 3]
    everything = select(scores, loose.model_copy(update={"agree": False}), 3)
    assert everything.rows.tolist() == list(range(8))
    assert everything.counts["agree"] == [8, 0, 0]  # pseudo-label: the prototype's class


def test_per_class_quota_keeps_the_k_most_similar_of_each_class():
    rng = np.random.default_rng(2)
    axes = np.eye(3, dtype=np.float32)
    protos, owners = class_prototypes(np.eye(3, dtype=np.float32), np.arange(3), 3)
    # Imbalanced pool: 50 faces of class 0, 12 of class 1, 3 of class 2.
    pool = np.concatenate([around(axes[c], n, 0.15, rng) for c, n in enumerate((50, 12, 3))])
    labels = np.r_[np.zeros(50, int), np.ones(12, int), np.full(3, 2)]
    scores = score(pool, logits_for(labels, 3), protos, owners)
    settings = MiningSettings(min_similarity=None, min_confidence=None, per_class=5)
    picked = select(scores, settings, 3)
    kept = scores.label[picked.rows]
    assert np.bincount(kept, minlength=3).tolist() == [5, 5, 3]
    assert picked.counts["agree"] == [50, 12, 3]
    for cls in range(3):
        rows = np.flatnonzero(scores.label == cls)
        best = rows[np.argsort(-scores.similarity[rows])][: min(5, len(rows))]
        assert sorted(best.tolist()) == sorted(picked.rows[kept == cls].tolist())


def test_exclusion_drops_planted_near_duplicates_only():
    rng = np.random.default_rng(3)
    excluded = unit(rng.standard_normal((40, 16)))
    pool = unit(rng.standard_normal((200, 16)))
    planted = [7, 50, 123, 199]
    pool[planted] = unit(excluded[[0, 5, 10, 39]] + 0.01 * rng.standard_normal((4, 16)))
    dup = near_duplicates(pool, excluded, threshold=0.95, chunk=64)  # chunked like a big pool
    assert np.flatnonzero(dup).tolist() == planted
    assert not near_duplicates(pool, excluded[:0], 0.95).any()


def test_kmeans_prototypes_find_both_modes_of_a_class():
    rng = np.random.default_rng(4)
    axes = np.eye(3, dtype=np.float32)
    rows = np.concatenate([around(axes[0], 20, 0.05, rng), around(axes[1], 20, 0.05, rng)])
    centres = spherical_kmeans(rows, 2, seed=0)
    assert sorted(np.round(np.abs(centres).argmax(1)).tolist()) == [0, 1]
    protos, owners = class_prototypes(rows, np.zeros(40, int), 1, k=2)
    assert owners.tolist() == [0, 0] and protos.shape == (2, 3)


def test_settings_record_every_choice_and_which_defaults_are_ours():
    card = MiningSettings().card()
    assert set(card["defaults_ours"]) <= set(card)
    assert card["filter_order"] == [
        "min_similarity",
        "min_confidence",
        "agree",
        "exclude",
        "per_class",
    ]
    with pytest.raises(ValueError):
        MiningSettings(per_class=0)
