"""`hmtl train`: one model without Ray, every input checked before anything is made."""

from __future__ import annotations

from contextlib import ExitStack
from datetime import datetime
from importlib import resources
from pathlib import Path

import click

from hmtl.orchestration.cli.common import fail, tracking_problem, user_errors, warn
from hmtl.orchestration.cli.completion import complete_config
from hmtl.orchestration.cli.options import (
    TRACKING_ENV,
    from_env,
    out_option,
    resume_option,
    set_option,
    source,
    tracking_uri_option,
)


def shipped_config(name: str) -> Path | None:
    """A training config that ships with the package, by name (`demo` -> configs/demo.yaml)."""
    candidate = resources.files("hmtl.trainables") / "configs" / f"{name}.yaml"
    return Path(str(candidate)) if candidate.is_file() else None


def resolve_config(config: str) -> Path:
    """CONFIG as given: a YAML file, or the name of a shipped config; one line if neither."""
    path = Path(config)
    if path.exists():
        return path
    found = shipped_config(config)
    if found is None:
        fail(f"{config}: no such config file or shipped config name")
    return found


@click.command("train")
@click.argument("config", required=False, shell_complete=complete_config)
@set_option()
@out_option("default: hmtl-runs/train/<config>-<time>")
@resume_option(
    "CHECKPOINT",
    "Continue from a checkpoint folder or s3:// URI (e.g. RUN/checkpoint_000003); "
    "without CONFIG, the checkpoint's own config is used.",
)
@click.option("--resume-from", "resume_from", default=None, hidden=True)  # the old spelling
@tracking_uri_option("not logged to MLflow")
def train_command(
    config: str | None,
    overrides: tuple[str, ...],
    out: str | None,
    resume: str | None,
    resume_from: str | None,
    tracking_uri: str | None,
) -> None:
    """Train one model without Ray: one progress line per epoch, then a summary.

    CONFIG is a YAML file or a shipped config's name."""
    if resume_from is not None:
        warn("--resume-from is now spelled --resume")
        resume = resume or resume_from
    if config is None and resume is None:
        fail("give a CONFIG, or --resume a checkpoint to continue with its own config")
    problem = tracking_problem(tracking_uri, from_env("tracking_uri"))
    if problem:
        fail(problem)
    # Lazy: keeps matplotlib, mlflow, ray out of `hmtl --help` and the input checks.
    from hmtl.orchestration.tracking.single_run import local_checkpoint

    note = source("tracking_uri", TRACKING_ENV) if tracking_uri else ""
    try:
        # A remote checkpoint is fetched to scratch that goes away when training ends.
        with local_checkpoint(resume) as checkpoint, ExitStack() as scratch:
            args = (config, list(overrides), out, resume, checkpoint, tracking_uri, note)
            _train(*args, scratch)
    except user_errors() as err:
        fail(str(err))


def _train(
    config: str | None,
    overrides: list[str],
    out: str | None,
    resume_from: str | None,
    checkpoint: str | None,
    tracking_uri: str | None,
    tracking_note: str,
    scratch: ExitStack,
) -> None:
    """`hmtl train` once the checkpoint (if any) is local: every input is checked before
    the run folder, the header line or an MLflow run exists; raises USER_ERRORS. Fetched
    pre-trained weights live until `scratch` closes."""
    # Lazy: keeps matplotlib, mlflow, ray out of `hmtl --help` and the input checks.
    from hmtl.orchestration.platform.cost import local_rate
    from hmtl.orchestration.platform.folders import blocking_file, removed_on_failure
    from hmtl.orchestration.tracking.extra_sources import extra_source_tags
    from hmtl.orchestration.tracking.pretrained import resolved
    from hmtl.orchestration.tracking.single_run import TrackedSession, check_inputs
    from hmtl.orchestration.tracking.tags import FROM_TAG
    from hmtl.trainables.checkpoint import load_checkpoint
    from hmtl.trainables.config import build_config, load_config
    from hmtl.trainables.data.storage import redact
    from hmtl.trainables.session import LocalSession
    from hmtl.trainables.train import train

    if checkpoint is not None and not Path(checkpoint).exists():
        fail(f"--resume {resume_from}: no such checkpoint")
    # Read now so a damaged checkpoint is refused before anything is made or printed.
    state = load_checkpoint(checkpoint) if checkpoint is not None else None
    if config is not None:
        path = resolve_config(config)
        cfg = load_config(path, overrides)
        name = path.stem
    else:
        source = f"{resume_from} (its config)"
        cfg = build_config(state["config"], overrides, source=source)
        name = "resumed"
    if state is not None:
        check_fit(cfg, state, checkpoint)
    weights, lineage = None, {}
    if cfg.model.pretrained and state is None:
        source, weights = scratch.enter_context(resolved(cfg.model.pretrained, tracking_uri))
        lineage = source.tags()
    elif cfg.model.pretrained:  # resumed: the checkpoint holds the weights, none are fetched
        lineage = {FROM_TAG: redact(cfg.model.pretrained)}
    check_inputs(cfg, weights, resuming=state is not None)
    lineage.update(extra_source_tags(cfg))  # mined datasets trained on, by fingerprint
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    run_dir = Path(out) if out else Path("hmtl-runs") / "train" / f"{name}-{stamp}"
    blocked = blocking_file(run_dir)
    if blocked is not None:
        fail(f"--out {run_dir}: {blocked} is a file, not a folder")
    if run_dir.exists() and any(run_dir.glob("checkpoint_*")) and resume_from is None:
        fail(
            f"{run_dir} already holds checkpoints; pass --resume "
            f"{run_dir}/checkpoint_... to continue, or choose another --out"
        )
    logged = f", tracking {tracking_uri}{tracking_note}" if tracking_uri else ""
    click.echo(f"hmtl train: {config or resume_from} -> {run_dir}{logged}")
    # A run that fails before its first checkpoint (bad data rows, say) leaves no folder.
    with removed_on_failure(run_dir, keep=lambda: any(run_dir.glob("checkpoint_*"))):
        if tracking_uri:
            session = TrackedSession(
                run_dir,
                cfg,
                tracking_uri,
                resume_from=checkpoint,
                origin_uri=resume_from,
                log=click.echo,
                lineage=lineage,
            )
        else:
            session = LocalSession(run_dir, resume_from=checkpoint, log=click.echo)
        session.cost_rate = local_rate(cfg)  # cost/device_seconds and cost/usd per epoch
        try:
            result = train(cfg, session, pretrained=weights)
        except user_errors():
            if tracking_uri:
                session.finish("FAILED")
            raise
        if tracking_uri:
            session.finish()
    click.echo(summary(result.metrics, result.checkpoint))


def summary(metrics: dict, checkpoint: str | None) -> str:
    lines = ["", "summary"]
    for key in (
        "val/accuracy",
        "val/balanced_accuracy",
        "val/macro_f1",
        "test/accuracy",
        "test/balanced_accuracy",
        "test/macro_f1",
        "val/knn_accuracy",  # pre-training runs
        "test/knn_accuracy",
    ):
        if key in metrics:
            lines.append(f"  {key:<24} {metrics[key]:.4f}")
    per_class = {
        k.rsplit("/", 1)[1]: v for k, v in metrics.items() if k.startswith("test/accuracy/")
    }
    if per_class:
        lines.append(
            "  test accuracy per class  "
            + "  ".join(f"{name} {value:.2f}" for name, value in per_class.items())
        )
    lines.append(f"  checkpoint               {checkpoint}")
    return "\n".join(lines)


def check_fit(cfg, state: dict, checkpoint: str) -> None:
    """Refuse, before the header line, a checkpoint whose backbone is not the config's (what
    `train` would find only once the data is loaded): parameter names and shapes compared."""
    # Lazy: keeps torch out of `hmtl --help` and the input checks.
    from hmtl.trainables.checkpoint import CheckpointError
    from hmtl.trainables.models import build_backbone

    m = cfg.model
    wanted = build_backbone(m.backbone, cfg.data.channels, m.width, m.stem).state_dict()
    saved = {
        k.removeprefix("backbone."): v
        for k, v in state["model"].items()
        if k.startswith("backbone.")
    }
    for key in sorted(set(wanted) | set(saved)):
        if key not in saved or key not in wanted or saved[key].shape != wanted[key].shape:
            have = tuple(saved[key].shape) if key in saved else "absent"
            need = tuple(wanted[key].shape) if key in wanted else "absent"
            raise CheckpointError(
                f"{checkpoint}: does not fit this config's model (backbone.{key}: "
                f"checkpoint {have}, config {need}; model.backbone {m.backbone}, model.width "
                f"{m.width}, data.channels {cfg.data.channels})"
            )
