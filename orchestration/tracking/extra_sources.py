"""Tags of a run trained with `data.extra_sources`: which mined (or other) datasets it saw."""

from __future__ import annotations

from hmtl.orchestration.mining.publish import read_card
from hmtl.orchestration.tracking.tags import FINGERPRINTS_TAG, SOURCES_TAG
from hmtl.trainables.config import TrainConfig
from hmtl.trainables.data.storage import redact


def extra_source_tags(cfg: TrainConfig) -> dict[str, str]:
    """`hmtl.extra_sources` (URIs) and `hmtl.extra_fingerprints` (each dataset's fingerprint,
    same order) for a run with extra sources, read from their cards (so a missing or
    unpublished one is refused in one line before the run starts); {} without any."""
    return source_tags(cfg.data.extra_sources)


def source_tags(uris: list[str]) -> dict[str, str]:
    """The same tags for a list of dataset URIs (a study's trial points carry them)."""
    if not uris:
        return {}
    cards = [read_card(uri, "data.extra_sources:") for uri in uris]
    return {
        SOURCES_TAG: ",".join(redact(uri) for uri in uris),
        FINGERPRINTS_TAG: ",".join(card["fingerprint"] for card in cards),
    }
