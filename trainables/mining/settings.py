"""`MiningSettings`: every parameter of a mining run, validated once and logged in the card.

The paper ("Omni-supervised FER via distilled data", only its abstract could be read) says
faces are selected "with high confidence ... based on feature-wise similarity". Which layer,
which similarity, which thresholds, quotas and de-duplication are not stated: all of them are
settings here, and the defaults are ours (`OURS`), recorded as such in every card.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

OURS = (
    "feature",
    "similarity",
    "prototypes_per_class",
    "min_similarity",
    "min_confidence",
    "agree",
    "per_class",
    "rank_by",
    "exclude_similarity",
    "filter_order",
    "pseudo_label",
)
"""Settings whose default is our choice, not the paper's (all of them: the paper states none)."""

FILTER_ORDER = ("min_similarity", "min_confidence", "agree", "exclude", "per_class")
"""Filters in the order they run. Exclusion comes before the quota, so a class's K faces are
all ones that cannot leak a test identity (a quota filled first would lose rows to it)."""


class MiningSettings(BaseModel):
    """What decides which pool faces are kept and how they are labelled. The one place these
    defaults and bounds are declared: `hmtl mine` and the study's `mine` stage read them from
    here (orchestration/mining/options.py)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    feature: str = "penultimate, L2-normalised, eval transform"
    """The embedding (fixed: the backbone's pooled features, the expression head's input)."""
    similarity: str = "cosine to the nearest class prototype"
    pseudo_label: str = "class of the nearest prototype"
    """The label a kept face gets; with `agree` the classifier says the same."""
    prototypes_per_class: int = Field(1, ge=1, le=64)
    """1: the class mean; k > 1: k spherical k-means centres per class (multi-modal classes)."""
    kmeans_seed: int = Field(0, ge=0)
    min_similarity: float | None = Field(0.5, ge=-1.0, le=1.0)
    """Keep a face whose cosine to its nearest prototype is at least this (None: no threshold)."""
    min_confidence: float | None = Field(0.5, ge=0.0, le=1.0)
    """Keep a face whose softmax probability of its pseudo-label is at least this."""
    agree: bool = True
    """Keep a face only where the classifier's argmax equals the nearest prototype's class."""
    per_class: int | None = Field(None, ge=1)
    """At most K faces per class, the most similar first (a quota against class imbalance)."""
    rank_by: str = "similarity"
    """What the quota ranks by (fixed: the paper selects by feature-wise similarity)."""
    exclude_similarity: float = Field(0.99, gt=0.0, le=1.0)
    """A pool face this close (cosine) to any excluded face is a near-duplicate and dropped."""

    def card(self) -> dict:
        """The settings as card fields, with which defaults are ours and the filter order."""
        return {
            **self.model_dump(),
            "filter_order": list(FILTER_ORDER),
            "defaults_ours": list(OURS),
        }
