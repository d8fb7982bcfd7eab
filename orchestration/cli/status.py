"""`hmtl status`: a sweep's trials, or a study's stages, read from storage (no Ray started)."""

from __future__ import annotations

import json

import click

from hmtl.orchestration.cli.common import fail
from hmtl.orchestration.cli.options import json_option
from hmtl.orchestration.cli.output import Output


@click.command("status")
@click.argument("path", metavar="SWEEP_OR_STUDY")
@json_option()
def status_command(path: str, as_json: bool) -> None:
    """A sweep's trials (or a study's stages), their states and the best so far.

    SWEEP_OR_STUDY is its folder, e.g. hmtl-runs/sweeps/quickstart or
    hmtl-runs/studies/quickstart_study (a local path or s3://)."""
    # Lazy: keeps pyarrow and optuna out of `hmtl --help`.
    from hmtl.orchestration.cli.checks import folder_kind
    from hmtl.orchestration.sweep.space import SpaceError
    from hmtl.trainables.data.storage import StorageError

    out = Output(as_json)
    try:
        if folder_kind(path) == "study":
            payload = study_status(path)
            out.echo(study_text(payload))
            out.result("study-status", payload)
        else:
            payload = sweep_status(path)
            out.echo(payload.pop("text"))
            out.result("sweep-status", payload)
    except (SpaceError, StorageError) as err:
        fail(str(err))


def sweep_status(path: str) -> dict:
    """The `hmtl.sweep-status/1` object (docs/cli.md), plus its table as `text`."""
    # Lazy: keeps ray out of `hmtl --help` (status reads Tune's files).
    from hmtl.orchestration.sweep.status import best_row, rows_text, state_counts, trial_rows

    rows, metric, mode = trial_rows(path)
    best = best_row(rows, mode)

    def peak(row) -> dict | None:
        if row is None or row.peak is None:
            return None
        return {"value": row.peak.value, "epoch": row.peak.epoch, "checkpoint": row.peak.checkpoint}

    return {
        "path": path,
        "metric": metric,
        "mode": mode,
        "states": state_counts([r.state for r in rows]),
        "trials": [
            {
                "trial": r.trial_id,
                "state": r.state,
                "epochs": r.epoch,
                "best": peak(r),
                "params": r.params,
            }
            for r in rows
        ],
        "best": None if best is None else {"trial": best.trial_id, **peak(best)},
        "text": rows_text(path, rows, metric, mode),
    }


def study_status(path: str) -> dict:
    """The `hmtl.study-status/1` object: each stage finished (its recorded outputs),
    started (its sweep's trial states) or pending."""
    # Lazy: keeps pyarrow and ray out of `hmtl --help`.
    from hmtl.orchestration.platform.store import Store
    from hmtl.orchestration.study.manifest import STUDY_MANIFEST
    from hmtl.orchestration.sweep.manifest import MANIFEST
    from hmtl.orchestration.sweep.status import state_counts, trial_rows

    store = Store.open(path)
    manifest = json.loads(store.read_text(STUDY_MANIFEST, fail_fast=True))
    outputs = manifest.get("outputs", {})
    stages = []
    for raw in manifest["study"].get("stages", []):
        name, kind = raw.get("name"), raw.get("kind")
        stage = {"name": name, "kind": kind, "state": "pending"}
        sweep = store.child("sweeps", name)
        if name in outputs:
            stage.update(state="finished", outputs=outputs[name])
        else:
            try:
                sweep.read_text(MANIFEST)
            except FileNotFoundError:
                pass
            else:
                rows = trial_rows(sweep)[0]
                stage.update(state="started", trials=state_counts([r.state for r in rows]))
        stages.append(stage)
    return {"path": path, "name": manifest["study"].get("name"), "stages": stages}


def study_text(payload: dict) -> str:
    stages = payload["stages"]
    done = sum(s["state"] == "finished" for s in stages)
    lines = [f"study {payload['name']} at {payload['path']}: {done} of {len(stages)} stages"]
    for stage in stages:
        line = f"  {stage['name']:<20} {stage['kind']:<8} {stage['state']}"
        outputs = stage.get("outputs") or {}
        if "best_checkpoint" in outputs:
            line += f"   best checkpoint {outputs['best_checkpoint']}"
        elif "dataset" in outputs:
            line += f"   {outputs.get('rows')} rows in {outputs['dataset']}"
        if "trials" in stage:
            line += "   " + ", ".join(f"{n} {s}" for s, n in stage["trials"].items())
        lines.append(line)
    if done < len(stages):
        lines.append(f"continue with: hmtl resume {payload['path']}")
    return "\n".join(lines)
