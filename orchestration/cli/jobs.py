"""`hmtl submit`, `hmtl logs`, `hmtl stop`: sweeps and studies as Ray jobs on a cluster."""

from __future__ import annotations

import click

from hmtl.orchestration.cli.address import dashboard_url, parse_address
from hmtl.orchestration.cli.common import fail
from hmtl.orchestration.cli.completion import complete_space_or_study
from hmtl.orchestration.cli.options import (
    address_option,
    from_env,
    json_option,
    resume_option,
    storage_option,
    tracking_uri_option,
)
from hmtl.orchestration.cli.output import Output


def jobs_api(address: str) -> str:
    """The jobs API URL for `--address` (or RAY_ADDRESS), a Ray address converted as `ray job`
    does; exit 2 in one line when it is none."""
    return dashboard_url(parse_address(address, from_env("address")))


@click.command("submit")
@click.argument(
    "space", metavar="SPACE_OR_STUDY", required=False, shell_complete=complete_space_or_study
)
@address_option(required=True)
@storage_option()
@tracking_uri_option("the job's own: MLFLOW_TRACKING_URI on the head, else SQLite", env=False)
@click.option(
    "--name", default=None, help="Sweep name (default: the space's name; not for a study)."
)
@click.option(
    "--num-samples",
    type=click.IntRange(min=1),
    default=None,
    help="Number of trials (default: the space's num_samples; not for a study).",
)
@click.option("--smoke", is_flag=True, help="The smoke version (see hmtl sweep, hmtl study).")
@resume_option(
    "SWEEP_OR_STUDY",
    "Submit `hmtl resume SWEEP_OR_STUDY` (its folder) instead (no SPACE_OR_STUDY then).",
    dest="resume_uri",
)
@json_option()
def submit_command(
    space: str | None,
    address: str,
    storage: str | None,
    tracking_uri: str | None,
    name: str | None,
    num_samples: int | None,
    smoke: bool,
    resume_uri: str | None,
    as_json: bool,
) -> None:
    """Submit a sweep or a study (a shipped name or a file in the project), or the
    resumption of either, to a Ray cluster as a Ray job.

    --address is the cluster's dashboard URL (e.g. http://127.0.0.1:8265 through `ray
    dashboard cluster.yaml`) or its Ray address. On a multi-node cluster --storage must be
    s3://bucket/prefix; on a single node it may be a path on the head (default: hmtl-runs in
    the job's working directory). The token comes from RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or
    ~/.ray/auth_token."""
    # Lazy: keeps ray and requests out of `hmtl --help` and the input checks.
    from hmtl.orchestration.platform import jobs
    from hmtl.trainables.data.storage import redact

    def warn(message: str) -> None:
        click.echo(f"hmtl: {message}", err=True)

    given = parse_address(address, from_env("address"))  # its form, before any request
    try:
        if resume_uri is not None:
            extra = [
                flag
                for flag, value in (
                    ("SPACE", space),
                    ("--storage", storage),
                    ("--tracking-uri", tracking_uri),
                    ("--name", name),
                    ("--num-samples", num_samples),
                    ("--smoke", smoke or None),
                )
                if value is not None
            ]
            if extra:
                fail(
                    f"--resume takes the space or study, storage and tracking from its "
                    f"manifest; drop {', '.join(extra)}"
                )
            command = jobs.resume_command(resume_uri)
            submission = jobs.submit(
                dashboard_url(given), command, resume_uri, "--resume", warn=warn
            )
        else:
            if space is None:
                fail("give a SPACE or STUDY (a shipped name or a file in the project), or --resume")
            command = _study_command(jobs, space, storage, tracking_uri, name, num_samples, smoke)
            command = command or jobs.sweep_command(
                jobs.space_argument(space, jobs.project_root()),
                storage,
                tracking_uri,
                name=name,
                num_samples=num_samples,
                smoke=smoke,
            )
            submission = jobs.submit(dashboard_url(given), command, storage, warn=warn)
    except jobs.JobError as err:
        fail(str(err))
    job, where = submission.job_id, submission.address
    nodes = f"{submission.nodes} node{'s' if submission.nodes != 1 else ''}"
    follow = f"hmtl logs {job} --address {where} --follow"
    stop = f"hmtl stop {job} --address {where}"
    out = Output(as_json)
    out.echo(f"submitted job {job} to {where} ({nodes}): {redact(submission.command)}")
    if submission.note:
        out.echo(f"  note: {submission.note}")
    out.echo(f"  follow:  {follow}")
    out.echo(f"  stop:    {stop}")
    out.result(
        "submission",
        {
            "job_id": job,
            "address": where,
            "nodes": submission.nodes,
            "command": redact(submission.command),
            "note": submission.note,
            "follow": follow,
            "stop": stop,
        },
    )


def _study_command(jobs, work, storage, tracking_uri, name, num_samples, smoke):
    """The job's `hmtl study` command when WORK is a study (None for a space)."""
    if not jobs.is_study(work):
        return None
    for flag, value in (("--name", name), ("--num-samples", num_samples)):
        if value is not None:
            fail(f"{flag}: a sweep option; {work} is a study (its stages set their own)")
    argument = jobs.study_argument(work, jobs.project_root())
    return jobs.study_command(argument, storage, tracking_uri, smoke=smoke)


@click.command("logs")
@click.argument("job_id", metavar="JOB")
@address_option(required=True)
@click.option("--follow", "-f", is_flag=True, help="Keep printing until the job ends.")
def logs_command(job_id: str, address: str, follow: bool) -> None:
    """Print a Ray job's logs (the sweep's progress table and summary).

    --address is the cluster's dashboard URL or its Ray address (as for `hmtl submit`)."""
    # Lazy: keeps ray and requests out of `hmtl --help` and the input checks.
    from hmtl.orchestration.platform import jobs

    address = jobs_api(address)
    try:
        if not follow:
            click.echo(jobs.logs(address, job_id), nl=False)
            return
        final = jobs.follow_logs(address, job_id, lambda chunk: click.echo(chunk, nl=False))
    except jobs.JobError as err:
        fail(str(err))
    except KeyboardInterrupt:
        click.echo(f"\nstopped following; job {job_id} keeps running", err=True)
        return
    click.echo(f"\njob {job_id}: {final}")


@click.command("stop")
@click.argument("job_id", metavar="JOB")
@address_option(required=True)
def stop_command(job_id: str, address: str) -> None:
    """Stop a Ray job and print its final status.

    --address is the cluster's dashboard URL or its Ray address (as for `hmtl submit`)."""
    # Lazy: keeps ray and requests out of `hmtl --help` and the input checks.
    from hmtl.orchestration.platform import jobs

    address = jobs_api(address)
    try:
        final = jobs.stop(address, job_id)
    except jobs.JobError as err:
        fail(str(err))
    click.echo(f"job {job_id}: {final}")
