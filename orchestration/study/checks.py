"""What a study file and its stage kinds share: a study's one-line error, and the check of a
stage's dotted overrides against the base config. Below both the study file (spec.py) and the
kinds, so either can use them."""

from __future__ import annotations

from typing import Any

from hmtl.orchestration.study.refs import has_reference
from hmtl.orchestration.sweep.space import check_key, config_problem, with_values


def check_overrides(base: dict[str, Any], overrides: dict[str, Any], where: str) -> None:
    """Every key names a TrainConfig value and the values (references left out) give a valid
    config on top of `base`."""

    for key in overrides:
        try:
            check_key(str(key))
        except ValueError as err:
            raise ValueError(f"{where}.{key}: {err}") from None
    known = {k: v for k, v in overrides.items() if not has_reference(v)}
    problem = config_problem(with_values(base, known))
    if problem:
        raise ValueError(f"{where}: makes an invalid config: {problem}")


class StudyError(ValueError):
    """A study-file problem, phrased as one line fit to show a user."""
