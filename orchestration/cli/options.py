"""Options that more than one `hmtl` command takes, each declared once here, with one meaning.

- `--address`: a Ray cluster, as its Ray address (`auto`, HOST:PORT, ray://HOST:PORT) or its
  dashboard's URL (http://HOST:PORT), read the same way by every command (address.py); from
  RAY_ADDRESS when not given.
- `--tracking-uri`: an MLflow tracking URI, from MLFLOW_TRACKING_URI when not given.
- `--storage`: where sweeps and studies are stored.
- `--set KEY=VALUE`: a dotted key into the command's base training config.
- `--out`: the folder a command writes its output to.
- `--resume PATH`: what to continue (a sweep, a study, a run folder, a checkpoint).
- `--json`: the end-of-run summary as one JSON object on stdout (docs/cli.md has the schemas).

A command passes only what differs: the default, or whether the option is required. The flag
beats the variable, which beats the default; `source` tells a command which one it got.

`setting_option` declares an option from a field of a study stage's options model
(orchestration/mining/options.py, orchestration/distill/options.py): the default, the bounds
and the choices are the field's, so `hmtl mine` and a study's `mine` stage cannot drift apart.
"""

from __future__ import annotations

import types
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal, Union, get_args, get_origin

import annotated_types
import click
from click.core import ParameterSource

if TYPE_CHECKING:  # the models are the callers'; pydantic stays out of `hmtl CMD --help`
    from pydantic import BaseModel

ADDRESS_ENV = "RAY_ADDRESS"
TRACKING_ENV = "MLFLOW_TRACKING_URI"
DEFAULT_STORAGE = "hmtl-runs"
PUBLISHED = "a folder or s3://bucket/prefix; the dataset goes to OUT/NAME/<fingerprint>/"

VERBOSE_HELP = "Also show Ray's and MLflow's log lines (quiet by default)."

Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]


def storage_option() -> Decorator:
    """`--storage`: where sweeps and studies are stored (None when not given)."""
    return click.option(
        "--storage",
        default=None,
        metavar="DIR|s3://BUCKET/PREFIX",
        help=f"Where sweeps and studies are stored (default: ./{DEFAULT_STORAGE}; for a "
        "Ray job, a path on the cluster's head).",
    )


def tracking_uri_option(default: str, *, env: bool = True) -> Decorator:
    """`--tracking-uri`: an MLflow tracking URI; MLFLOW_TRACKING_URI when not given (`env`).
    `default` says what happens without either."""
    source = f" [env {TRACKING_ENV}]" if env else ""
    return click.option(
        "--tracking-uri",
        default=None,
        envvar=TRACKING_ENV if env else None,
        show_envvar=False,
        metavar="URI",
        help=f"MLflow tracking URI{source} (default: {default}).",
    )


def address_option(default: str = "local Ray started here", *, required: bool = False) -> Decorator:
    """`--address`: a Ray cluster by its Ray address or its dashboard URL; RAY_ADDRESS when
    not given. `default` says what happens without either (None: `required`)."""
    return click.option(
        "--address",
        **_given(required),
        envvar=ADDRESS_ENV,
        show_envvar=False,
        metavar="ADDRESS",
        help=f"Ray cluster: auto, HOST:PORT, ray://HOST:PORT or its dashboard's "
        f"http://HOST:PORT [env {ADDRESS_ENV}]" + ("." if required else f" (default: {default})."),
    )


def set_option(example: str = "data.batch_size=64") -> Decorator:
    """`--set KEY=VALUE`, repeatable, passed as the tuple `overrides`."""
    return click.option(
        "--set",
        "overrides",
        multiple=True,
        metavar="KEY=VALUE",
        help=f"Override a dotted key of the base training config, e.g. --set {example} "
        "(repeatable; checked as in the file).",
    )


def out_option(
    detail: str | None = None, *, required: bool = False, path: click.Path | None = None
) -> Decorator:
    """`--out`: the folder a command writes its output to; `detail` says where in it, or the
    default; `path` checks it as a click.Path."""
    extra = {"type": path} if path is not None else {}
    note = f" ({detail})" if detail else ""
    return click.option(
        "--out",
        **_given(required),
        **extra,
        metavar="DIR",
        help=f"Folder the output is written to{note}.",
    )


RESUME_IN_OUT = "\0out"
"""The value of `--resume` given without one (`resume_option(optional=True)`)."""


def resume_option(what: str, help: str, *, dest: str = "resume", optional: bool = False):
    """`--resume PATH`: what to continue (`what` is its metavar: CHECKPOINT, RUN_DIR,
    SWEEP_OR_STUDY), passed as `dest`. `optional`: `--resume` alone is RESUME_IN_OUT."""
    extra = {"is_flag": False, "flag_value": RESUME_IN_OUT} if optional else {}
    metavar = f"[{what}]" if optional else what
    return click.option("--resume", dest, default=None, metavar=metavar, help=help, **extra)


def json_option() -> Decorator:
    """`--json`: the summary as one JSON object on stdout, everything else on stderr."""
    return click.option(
        "--json",
        "as_json",
        is_flag=True,
        help="Print the summary as one JSON object on stdout (human text goes to stderr).",
    )


def verbose_option() -> Decorator:
    """`--verbose`: a flag, also show Ray's and MLflow's log lines."""
    return click.option("--verbose", is_flag=True, help=VERBOSE_HELP)


def _given(required: bool) -> dict[str, Any]:
    # A required option is declared without a default, an optional one defaults to None.
    return {"required": True} if required else {"default": None}


def source(name: str, env: str) -> str:
    """How the running command got its option `name`, for its summary line: "" from the
    flag, " (from ENV)" from the environment variable `env`, " (default)" otherwise."""
    ctx = click.get_current_context(silent=True)
    got = ctx.get_parameter_source(name) if ctx is not None else None
    if got is ParameterSource.COMMANDLINE:
        return ""
    return f" (from {env})" if got is ParameterSource.ENVIRONMENT else " (default)"


def from_env(name: str) -> bool:
    """Whether the running command's option `name` came from its environment variable."""
    ctx = click.get_current_context(silent=True)
    return ctx is not None and ctx.get_parameter_source(name) is ParameterSource.ENVIRONMENT


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
