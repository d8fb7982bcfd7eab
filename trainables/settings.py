"""Every `HMTL_*` environment variable, read and validated in one place.

One pydantic-settings model, `HmtlSettings`, declares each variable: its type, bounds,
default and what it is for (README "Environment variables" lists the same). `settings()`
reads the environment as it is now (a Ray worker sees the variables it was started with, a
test may change them), so a value is never cached past a change. A value that does not
parse is a `SettingsError` naming the variable and the value, in one line; the `hmtl`
command checks every variable before any work starts (exit 2).

It lives at the bottom of `trainables` because the dataset readers and the storage layer
below `orchestration` read some of these variables too.
"""

from __future__ import annotations

import functools
import os
from typing import Annotated

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

PREFIX = "HMTL_"

Seconds = Annotated[float, Field(ge=0, allow_inf_nan=False)]


class SettingsError(ValueError):
    """An `HMTL_*` variable whose value does not parse, as one line."""


class HmtlSettings(BaseSettings):
    """The `HMTL_*` environment variables. `expects` says what a valid value looks like."""

    model_config = SettingsConfigDict(env_prefix=PREFIX, env_ignore_empty=True, extra="ignore")

    s3_endpoint: str | None = Field(
        None,
        description="S3-compatible endpoint for s3:// URIs without ?endpoint_override=",
        json_schema_extra={"expects": "a URL such as http://minio.internal:9000"},
        pattern=r"^(https?://)?[^\s/]+(:\d+)?/?$",
    )
    storage_retry_s: Seconds = Field(
        180.0,
        description="Seconds an S3 call keeps retrying a transient failure",
        json_schema_extra={"expects": "a number of seconds (e.g. 180)"},
    )
    tracking_budget_s: Seconds = Field(
        300.0,
        description="Seconds of MLflow outage before queued calls go to the spool file",
        json_schema_extra={"expects": "a number of seconds (e.g. 300)"},
    )
    cache_dir: str | None = Field(
        None,
        description="Node-local cache of datasets read from object storage "
        "(default ~/.cache/hmtl/datasets)",
        json_schema_extra={"expects": "a folder"},
    )
    dataset_cache_mb: Annotated[float, Field(ge=0, allow_inf_nan=False)] = Field(
        4096.0,
        description="Decoded datasets kept in memory per process, in MB (0: off)",
        json_schema_extra={"expects": "a number of megabytes (e.g. 4096)"},
    )
    mining_cache: str | None = Field(
        None,
        description="Embedding cache of `hmtl mine` (default hmtl-runs/embeddings)",
        json_schema_extra={"expects": "a folder"},
    )
    usd_per_hour: Annotated[float, Field(ge=0, allow_inf_nan=False)] | None = Field(
        None,
        description="Price of this machine per hour, where no node label gives one",
        json_schema_extra={"expects": "a price per hour in USD (e.g. 1.21)"},
    )
    bootstrap_config: str = Field(
        os.path.join("~", "ray_bootstrap_config.yaml"),
        description="The cluster YAML as launched, read on the head to judge node types",
        json_schema_extra={"expects": "a file"},
    )
    reuse_actors: bool = Field(
        True,
        description="0: a fresh process per trial (benchmarks, diagnosis)",
        json_schema_extra={"expects": "1 or 0 (true or false)"},
    )
    gc_freeze: bool = Field(
        True,
        description="0: leave the objects loaded before a trial to the garbage collector",
        json_schema_extra={"expects": "1 or 0 (true or false)"},
    )
    phases_dir: str | None = Field(
        None,
        description="Folder where each trial writes its phase time stamps (benchmarks)",
        json_schema_extra={"expects": "a folder"},
    )
    optuna_storage: str | None = Field(
        None,
        description="Where each sweep's Optuna study is kept for optuna-dashboard "
        "(default optuna.db beside a SQLite MLflow database; none: not kept)",
        json_schema_extra={"expects": "a database URL (e.g. sqlite:///optuna.db) or none"},
    )
    mlflow_db: str | None = Field(
        None,
        description="The head node's MLflow database (read by cluster.yaml's start command)",
        json_schema_extra={"expects": "a database URI"},
    )


def variable(field: str) -> str:
    """The environment variable of a settings field: `storage_retry_s` -> HMTL_STORAGE_RETRY_S."""
    return PREFIX + field.upper()


def settings() -> HmtlSettings:
    """The settings as the environment holds them now; SettingsError for a bad value."""
    return _read(tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith(PREFIX))))


@functools.lru_cache(maxsize=8)
def _read(_snapshot: tuple[tuple[str, str], ...]) -> HmtlSettings:
    # Keyed by the HMTL_* variables, so a changed environment is read again.
    try:
        return HmtlSettings()
    except ValidationError as err:
        first = err.errors()[0]
        field = str(first["loc"][0])
        name = variable(field)
        extra = HmtlSettings.model_fields[field].json_schema_extra or {}
        raise SettingsError(
            f"{name}={os.environ.get(name, '')!r}: not {extra.get('expects', 'valid')}"
        ) from None


def settings_problem() -> str | None:
    """Why the `HMTL_*` variables cannot be used (None when they can): checked up front."""
    try:
        settings()
    except SettingsError as err:
        return str(err)
    return None
