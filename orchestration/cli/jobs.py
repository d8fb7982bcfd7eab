"""`hmtl submit`, `hmtl logs`, `hmtl stop`: sweeps as Ray jobs on a cluster."""

from __future__ import annotations

from urllib.parse import urlsplit

import click

from hmtl.orchestration.cli.common import fail
from hmtl.orchestration.cli.options import address_option, storage_option, tracking_uri_option
from hmtl.trainables.data.storage import redact

ADDRESS_HELP = (
    "The cluster's Ray dashboard (jobs API), e.g. http://127.0.0.1:8265 through "
    "`ray dashboard cluster.yaml`. The token comes from RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH "
    "or ~/.ray/auth_token."
)


def check_address(address: str) -> None:
    """Refuse an --address that is not the dashboard's URL (or HOST:PORT) in one line, before
    any request is made and before the token is mentioned: `not-a-url` is not a host name."""
    # Lazy: keeps ray and requests out of `hmtl --help` and the input checks.
    from hmtl.orchestration.platform import jobs

    try:
        url = urlsplit(jobs.normalize_address(address))
        port = url.port  # raises ValueError for a port that is not a number
    except jobs.JobError as err:
        fail(str(err))
    except ValueError:
        port = None
    if port is None and "://" not in address:
        fail(
            f"--address {address}: give the Ray dashboard's URL, e.g. http://127.0.0.1:8265 "
            "(through `ray dashboard cluster.yaml` on a cluster)"
        )


@click.command("submit")
@click.argument("space", required=False)
@address_option(ADDRESS_HELP, required=True)
@storage_option(
    "s3://bucket/prefix (required on a multi-node cluster); on a single node, a path "
    "on the head (default: hmtl-runs in the job's working directory)."
)
@tracking_uri_option("MLflow tracking URI, as seen from the head.")
@click.option("--name", default=None, help="Sweep name (default: the space's name).")
@click.option(
    "--num-samples",
    type=click.IntRange(min=1),
    default=None,
    help="Number of trials (default: the space's num_samples).",
)
@click.option("--smoke", is_flag=True, help="The smoke version of the space (see hmtl sweep).")
@click.option(
    "--resume",
    "resume_uri",
    default=None,
    metavar="SWEEP_URI",
    help="Submit `hmtl resume SWEEP_URI` instead of a new sweep (no SPACE then).",
)
def submit_command(
    space: str | None,
    address: str,
    storage: str | None,
    tracking_uri: str | None,
    name: str | None,
    num_samples: int | None,
    smoke: bool,
    resume_uri: str | None,
) -> None:
    """Submit a sweep (or its resumption) to a Ray cluster as a Ray job."""
    # Lazy: keeps ray and requests out of `hmtl --help` and the input checks.
    from hmtl.orchestration.platform import jobs

    def warn(message: str) -> None:
        click.echo(f"hmtl: {message}", err=True)

    check_address(address)
    try:
        if resume_uri is not None:
            given = [
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
            if given:
                fail(
                    f"--resume takes the sweep's space, storage and tracking from its "
                    f"manifest; drop {', '.join(given)}"
                )
            command = jobs.resume_command(resume_uri)
            submission = jobs.submit(address, command, resume_uri, "--resume", warn=warn)
        else:
            if space is None:
                fail("give a SPACE (a shipped name or a file in the project), or --resume")
            command = jobs.sweep_command(
                jobs.space_argument(space, jobs.project_root()),
                storage,
                tracking_uri,
                name=name,
                num_samples=num_samples,
                smoke=smoke,
            )
            submission = jobs.submit(address, command, storage, warn=warn)
    except jobs.JobError as err:
        fail(str(err))
    job, where = submission.job_id, submission.address
    nodes = f"{submission.nodes} node{'s' if submission.nodes != 1 else ''}"
    click.echo(f"submitted job {job} to {where} ({nodes}): {redact(submission.command)}")
    if submission.note:
        click.echo(f"  note: {submission.note}")
    click.echo(f"  follow:  hmtl logs {job} --address {where} --follow")
    click.echo(f"  stop:    hmtl stop {job} --address {where}")


@click.command("logs")
@click.argument("job_id", metavar="JOB")
@address_option(ADDRESS_HELP, required=True)
@click.option("--follow", "-f", is_flag=True, help="Keep printing until the job ends.")
def logs_command(job_id: str, address: str, follow: bool) -> None:
    """Print a Ray job's logs (the sweep's progress table and summary)."""
    # Lazy: keeps ray and requests out of `hmtl --help` and the input checks.
    from hmtl.orchestration.platform import jobs

    check_address(address)
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
@address_option(ADDRESS_HELP, required=True)
def stop_command(job_id: str, address: str) -> None:
    """Stop a Ray job and print its final status."""
    # Lazy: keeps ray and requests out of `hmtl --help` and the input checks.
    from hmtl.orchestration.platform import jobs

    check_address(address)
    try:
        final = jobs.stop(address, job_id)
    except jobs.JobError as err:
        fail(str(err))
    click.echo(f"job {job_id}: {final}")
