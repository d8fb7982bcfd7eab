"""Scores of pool faces: similarity to the nearest prototype, softmax confidence, agreement."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Scores:
    """Per pool face, row-aligned with the pool."""

    similarity: np.ndarray
    """Cosine to the nearest prototype (float32)."""
    label: np.ndarray
    """The nearest prototype's class: the pseudo-label (int64)."""
    confidence: np.ndarray
    """The classifier's softmax probability of `label` (float32)."""
    classifier: np.ndarray
    """The classifier's argmax class (int64)."""

    @property
    def agree(self) -> np.ndarray:
        return self.label == self.classifier

    def __len__(self) -> int:
        return len(self.label)


def score(
    embeddings: np.ndarray, logits: np.ndarray, prototypes: np.ndarray, owners: np.ndarray
) -> Scores:
    """Score unit-norm `embeddings` (N, D) with classifier `logits` (N, C) against
    `prototypes` (P, D) of classes `owners` (P,). Call it chunk by chunk for a large pool."""
    cosine = embeddings @ prototypes.T
    nearest = cosine.argmax(1)
    label = owners[nearest]
    z = logits - logits.max(1, keepdims=True)
    probs = np.exp(z)
    probs /= probs.sum(1, keepdims=True)
    return Scores(
        similarity=cosine[np.arange(len(cosine)), nearest].astype(np.float32),
        label=label.astype(np.int64),
        confidence=probs[np.arange(len(probs)), label].astype(np.float32),
        classifier=probs.argmax(1).astype(np.int64),
    )


def concat(parts: list[Scores]) -> Scores:
    """One `Scores` from chunks scored in pool order."""
    return Scores(
        *(np.concatenate([getattr(p, f) for p in parts]) for f in Scores.__dataclass_fields__)
    )
