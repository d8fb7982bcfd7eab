"""Query-strategy registry: one file per strategy, named in `REGISTRY`, one small protocol.

A strategy is a function `select(ctx, budget) -> positions`: `budget` distinct positions into
`ctx.pool` (not global indices; the loop converts them at once). Two kinds, like baal's
heuristics and DISTIL's strategies:

- score-based (`kind="score"`): the file defines a score (higher = queried first) and
  exports `by_score(score)` as its STRATEGY, which keeps the `budget` highest;
- set-based (`kind="set"`): the file chooses the whole batch itself (CoreSet, BADGE,
  GLISTER, DeepFool), working in chunks so memory stays bounded on a large pool.

Every random choice comes from `ctx.generator` (seeded per (seed, cycle) by the loop), so a
resumed loop selects exactly what an uninterrupted one does.
"""

from __future__ import annotations

from hmtl.trainables.active import (
    badge,
    bald,
    coreset,
    deepfool,
    entropy,
    glister,
    least_confidence,
    margin,
    random_choice,
)
from hmtl.trainables.active.base import Strategy

# Every strategy, by name (the order `hmtl active` and the docs list them in).
REGISTRY: dict[str, Strategy] = {
    module.STRATEGY.name: module.STRATEGY
    for module in (
        random_choice,
        entropy,
        margin,
        least_confidence,
        bald,
        coreset,
        badge,
        glister,
        deepfool,
    )
}


def strategies() -> dict[str, Strategy]:
    """Every strategy, by name."""
    return REGISTRY


def get_strategy(name: str) -> Strategy:
    found = strategies().get(name)
    if found is None:
        raise KeyError(f"unknown strategy '{name}' (known: {', '.join(sorted(REGISTRY))})")
    return found
