"""Weighted k-NN (knn.py) against a brute-force reference written from the formula."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from helpers import faces, small_cnn

from hmtl.trainables.knn import knn_accuracy, knn_predict


def _brute_force(memory, labels, queries, num_classes, k, t):
    """Per query: the k most similar memory rows, each voting exp(sim / t) for its class."""
    preds = []
    for q in queries:
        sims = [(float(q @ m), int(y)) for m, y in zip(memory, labels, strict=True)]
        sims.sort(key=lambda pair: -pair[0])
        votes = [0.0] * num_classes
        for sim, y in sims[:k]:
            votes[y] += math.exp(sim / t)
        preds.append(max(range(num_classes), key=lambda c: (votes[c], -c)))
    return torch.tensor(preds)


@pytest.mark.parametrize(("k", "chunk"), [(20, 7), (5, 1024), (500, 3)])
def test_weighted_knn_equals_brute_force(k, chunk):
    g = torch.Generator().manual_seed(0)
    memory = F.normalize(torch.randn(120, 16, generator=g), dim=1)
    labels = torch.randint(0, 5, (120,), generator=g)
    queries = F.normalize(torch.randn(30, 16, generator=g), dim=1)
    got = knn_predict(memory, labels, queries, 5, k=k, temperature=0.07, chunk=chunk)
    assert torch.equal(got, _brute_force(memory, labels, queries, 5, min(k, 120), 0.07))


def test_weights_decide_against_a_majority():
    # Two far neighbours of class 0 against one near neighbour of class 1: at T = 0.07 the
    # near one's exp(sim / T) outweighs both, as weighted k-NN should (a plain vote would not).
    memory = F.normalize(torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.1, 1.0]]), dim=1)
    labels = torch.tensor([1, 0, 0])
    query = torch.tensor([[1.0, 0.05]])
    assert int(knn_predict(memory, labels, F.normalize(query, dim=1), 2, k=3)[0]) == 1


def test_accuracy_leaves_unlabelled_rows_out_and_restores_the_mode():
    images, backbone = faces(40), small_cnn()
    labels = torch.arange(40) % 4
    labels[::5] = -1  # withheld: neither neighbours nor queries
    backbone.train()
    acc = knn_accuracy(backbone, (images[:30], labels[:30]), (images[30:], labels[30:]), 4, 48, 16)
    keep, queries = labels[:30] >= 0, labels[30:] >= 0
    same = knn_accuracy(
        backbone,
        (images[:30][keep], labels[:30][keep]),
        (images[30:][queries], labels[30:][queries]),
        4,
        48,
        7,  # another chunking of the embedding pass: same features
    )
    assert acc == same and 0.0 <= acc <= 1.0 and backbone.training
    none = torch.full((40,), -1)
    assert knn_accuracy(backbone, (images, none), (images, labels), 4, 48, 16) is None
