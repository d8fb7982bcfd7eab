"""Distribution strings: the text form of a searched key (`loguniform(1e-4, 3e-3)`), read into
Optuna distributions and written back, plus the checks on a distribution's values (membership,
and the probe values `hmtl.orchestration.sweep.space` validates a config with)."""

from __future__ import annotations

import json
import math
import re
from typing import Any

import yaml
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

FORMS = "uniform(a, b), loguniform(a, b), int(a, b), int(a, b, log), quniform(a, b, q), choice(...)"

_CALL = re.compile(r"([A-Za-z_]\w*)\s*\((.*)\)", re.S)
_INT = re.compile(r"[-+]?\d+")
_FLOAT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


def parse_distribution(text: str) -> BaseDistribution:
    """`loguniform(1e-4, 3e-3)` -> FloatDistribution(log=True); a ValueError says what is wrong."""
    match = _CALL.fullmatch(text.strip())
    if not match:
        raise ValueError(f"{text!r} is not a distribution (write one of {FORMS})")
    kind, inner = match.groups()
    args = _split(inner)
    if kind == "choice":
        values = [_scalar(arg) for arg in args]
        if len(values) < 2:
            raise ValueError(f"{text}: a choice needs two values or more (fixed values go in base)")
        for i, value in enumerate(values):
            if value in values[:i]:  # Optuna finds a choice by ==, so 1 and 1.0 would collide
                raise ValueError(f"{text}: {value!r} appears twice")
        return CategoricalDistribution(values)
    if kind not in ("uniform", "loguniform", "quniform", "int"):
        raise ValueError(f"{text}: unknown distribution '{kind}' (write one of {FORMS})")

    log = kind == "loguniform" or (kind == "int" and len(args) == 3 and args[2].strip() == "log")
    want = {"uniform": "low, high", "loguniform": "low, high", "quniform": "low, high, q"}
    count = 3 if kind == "quniform" else 2 + (kind == "int" and log)
    if len(args) != count:
        raise ValueError(f"{text}: expected {kind}({want.get(kind, 'low, high[, log]')})")
    numbers = [_number(arg, text, integer=kind == "int") for arg in args[:2]]
    low, high = numbers
    if not low < high:
        raise ValueError(f"{text}: low ({low}) must be smaller than high ({high})")
    if log and low <= 0:
        raise ValueError(f"{text}: a log scale needs low > 0 (got {low})")
    if kind == "int":
        if log and low < 1:
            raise ValueError(f"{text}: a log-int range needs low >= 1")
        return IntDistribution(low, high, log=log)
    if kind == "quniform":
        q = _number(args[2], text, integer=False)
        steps = (high - low) / q if q > 0 else 0.0
        if q <= 0 or abs(steps - round(steps)) > 1e-9 * max(1.0, steps):
            raise ValueError(f"{text}: q must be > 0 and divide high - low")
        return FloatDistribution(float(low), float(high), step=float(q))
    return FloatDistribution(float(low), float(high), log=log)


def format_distribution(dist: BaseDistribution) -> str:
    """The string `parse_distribution` reads back into `dist`."""
    if isinstance(dist, CategoricalDistribution):
        return f"choice({', '.join(_format_scalar(v) for v in dist.choices)})"
    if isinstance(dist, IntDistribution):
        return f"int({dist.low}, {dist.high}{', log' if dist.log else ''})"
    assert isinstance(dist, FloatDistribution)
    if dist.step is not None:
        return f"quniform({dist.low!r}, {dist.high!r}, {dist.step!r})"
    return f"{'log' if dist.log else ''}uniform({dist.low!r}, {dist.high!r})"


def _split(inner: str) -> list[str]:
    """Split arguments on commas outside quotes."""
    if not inner.strip():
        return []
    parts, current, quote = [], "", ""
    for char in inner:
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == ",":
            parts.append(current)
            current = ""
            continue
        current += char
    return [*parts, current]


def _scalar(token: str) -> Any:
    """A choice value, read like a YAML 1.2 scalar: null, true/false, numbers, else a string."""
    token = token.strip()
    if not token:
        raise ValueError("an empty value in choice(...)")
    if token[0] in "'\"":
        try:
            value = yaml.safe_load(token)
        except yaml.YAMLError:
            value = None
        if not isinstance(value, str):
            raise ValueError(f"{token}: unbalanced quotes")
        return value
    lowered = token.lower()
    if lowered in ("null", "~"):
        return None
    if lowered in ("true", "false"):
        return lowered == "true"
    if _INT.fullmatch(token):
        return int(token)
    if _FLOAT.fullmatch(token):
        return float(token)
    return token


def _format_scalar(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str):
        plain = value == value.strip() and not set(value) & set(",()'\"")
        return value if plain and _scalar(value) == value else json.dumps(value)
    return repr(value)


def _number(token: str, text: str, integer: bool) -> int | float:
    token = token.strip()
    if _INT.fullmatch(token):
        return int(token)
    if not integer and _FLOAT.fullmatch(token):
        return float(token)
    raise ValueError(f"{text}: {token!r} is not {'an integer' if integer else 'a number'}")


def contains(dist: BaseDistribution, value: Any) -> bool:
    if isinstance(dist, CategoricalDistribution):
        return value in dist.choices
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    if isinstance(dist, IntDistribution) and not isinstance(value, int):
        return False
    if not dist.low <= value <= dist.high:
        return False
    step = getattr(dist, "step", None)
    return step is None or abs((value - dist.low) / step - round((value - dist.low) / step)) < 1e-9


def probes(dist: BaseDistribution) -> list[Any]:
    """Values a trial may get that are most likely to break a config: the ends, every choice,
    and one off-grid interior value (a float range on an integer key fails there)."""
    if isinstance(dist, CategoricalDistribution):
        return list(dist.choices)
    low, high = dist.low, dist.high
    if isinstance(dist, IntDistribution):
        return [low, high]
    if dist.step is not None:
        return [low, high]
    inside = math.exp(math.log(low) * 0.618 + math.log(high) * 0.382) if dist.log else None
    return [low, high, inside if inside is not None else low + 0.382 * (high - low)]
