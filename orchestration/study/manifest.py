"""A study's manifest (`hmtl-study.json` in its folder): the validated study, where it
started, and each finished stage's outputs; what `hmtl resume` and `hmtl report` read."""

from __future__ import annotations

STUDY_MANIFEST = "hmtl-study.json"
