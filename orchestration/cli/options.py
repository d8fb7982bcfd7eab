"""Options that more than one `hmtl` command takes, each declared once here.

Some mean different things in different commands (`--address` is a Ray cluster for `sweep`,
`resume`, `study` and `mine` but the jobs dashboard for `submit`, `logs` and `stop`; `--out`
is a run folder, a report folder or where to publish), so each decorator takes its help text
and the command passes the one for its meaning.

`setting_option` declares an option from a field of a study stage's options model
(orchestration/mining/options.py, orchestration/distill/options.py): the default, the bounds
and the choices are the field's, so `hmtl mine` and a study's `mine` stage cannot drift apart.
"""

from __future__ import annotations

import types
from collections.abc import Callable
from typing import Any, Literal, Union, get_args, get_origin

import annotated_types
import click
from pydantic import BaseModel

STORAGE_HELP = "Local folder or s3://bucket/prefix (default: ./hmtl-runs)."
TRACKING_URI_HELP = "MLflow tracking URI (default: sqlite:///<storage>/mlflow.db)."
LOG_RUN_HELP = "Also log this run to MLflow here."
RAY_ADDRESS_HELP = "Ray cluster: auto or HOST:PORT (default: local)."
PUBLISH_HELP = "Local folder or s3://bucket/prefix to publish under."
VERBOSE_HELP = "Also show Ray's and MLflow's log lines (quiet by default)."

Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]


def storage_option(help: str = STORAGE_HELP) -> Decorator:
    """`--storage`: where runs are stored (None when not given)."""
    return click.option("--storage", default=None, help=help)


def tracking_uri_option(help: str = TRACKING_URI_HELP) -> Decorator:
    """`--tracking-uri`: an MLflow tracking URI (None when not given)."""
    return click.option("--tracking-uri", default=None, help=help)


def address_option(help: str = RAY_ADDRESS_HELP, *, required: bool = False) -> Decorator:
    """`--address`: a Ray cluster (optional), or with `required` the jobs dashboard."""
    return click.option("--address", **_given(required), help=help)


def set_option(help: str) -> Decorator:
    """`--set KEY=VALUE`, repeatable, passed as the tuple `overrides`."""
    return click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help=help)


def out_option(
    help: str = PUBLISH_HELP, *, required: bool = False, path: click.Path | None = None
) -> Decorator:
    """`--out`: the folder a command writes to; `path` checks it as a click.Path."""
    extra = {"type": path} if path is not None else {}
    return click.option("--out", **_given(required), **extra, help=help)


def verbose_option(help: str = VERBOSE_HELP) -> Decorator:
    """`--verbose`: a flag, also show Ray's and MLflow's log lines."""
    return click.option("--verbose", is_flag=True, help=help)


def _given(required: bool) -> dict[str, Any]:
    # A required option is declared without a default, an optional one defaults to None.
    return {"required": True} if required else {"default": None}


def setting_default(model: type[BaseModel], name: str) -> Any:
    """The default of `model`'s field `name` (a default factory called)."""
    return model.model_fields[name].get_default(call_default_factory=True)


def setting_option(model: type[BaseModel], name: str, *decls: str, **attrs: Any) -> Decorator:
    """A click option for `model`'s field `name`: its default (or `required`), and for a
    number its bounds as an IntRange/FloatRange, for a Literal its choices. `decls` default
    to `--name-with-dashes`; `attrs` (help, show_default, an explicit type or default) are
    passed on."""
    field = model.model_fields[name]
    if field.is_required():
        attrs.setdefault("required", True)
    else:
        attrs.setdefault("default", setting_default(model, name))
    kind = _click_type(field.annotation, field.metadata)
    if kind is not None:
        attrs.setdefault("type", kind)
    return click.option(*(decls or ("--" + name.replace("_", "-"),)), name, **attrs)


def _click_type(annotation: Any, metadata: list[Any]) -> click.ParamType | type | None:
    """The click type of a field: a Literal's choices, a number's range (or int/float when
    unbounded); None for others (strings, flags, lists), which the caller declares."""
    if get_origin(annotation) in (Union, types.UnionType):  # `int | None`: the int
        annotation = next(a for a in get_args(annotation) if a is not type(None))
    if get_origin(annotation) is Literal:
        return click.Choice(list(get_args(annotation)))
    if annotation not in (int, float):
        return None
    bounds: dict[str, Any] = {}
    for bound in metadata:
        if isinstance(bound, annotated_types.Ge):
            bounds["min"] = bound.ge
        elif isinstance(bound, annotated_types.Gt):
            bounds.update(min=bound.gt, min_open=True)
        elif isinstance(bound, annotated_types.Le):
            bounds["max"] = bound.le
        elif isinstance(bound, annotated_types.Lt):
            bounds.update(max=bound.lt, max_open=True)
    if not bounds:
        return annotation
    return (click.IntRange if annotation is int else click.FloatRange)(**bounds)
