"""`hmtl submit` of a study: told from a space, checked and turned into the job's command
before any request (bad input: one line, exit 2)."""

import pytest
from helpers import refused

from hmtl.orchestration.platform import jobs

ADDRESS = "http://127.0.0.1:9"  # nothing listens: any request would fail differently


def test_a_study_is_told_from_a_space(tmp_path):
    assert jobs.is_study("hmtl_vs_pretraining")
    assert not jobs.is_study("quickstart")
    study = tmp_path / "mine.yaml"
    study.write_text("name: mine\nstages: []\n")
    assert jobs.is_study(str(study))
    space = tmp_path / "space.yaml"
    space.write_text("name: space\n")
    assert not jobs.is_study(str(space))


def test_the_job_runs_hmtl_study_on_the_cluster():
    argument = jobs.study_argument("hmtl_vs_pretraining", jobs.project_root())
    assert jobs.study_command(argument, "s3://b/p", "http://127.0.0.1:5000", smoke=True) == [
        "study", "hmtl_vs_pretraining", "--address", "auto", "--storage", "s3://b/p",
        "--tracking-uri", "http://127.0.0.1:5000", "--smoke",
    ]  # fmt: skip
    with pytest.raises(jobs.JobError, match="object storage needs --tracking-uri"):
        jobs.study_command(argument, "s3://b/p", None)


def test_a_study_file_outside_the_project_is_refused(tmp_path):
    study = tmp_path / "mine.yaml"
    study.write_text("name: mine\nstages: []\n")
    with pytest.raises(jobs.JobError, match="outside the project folder"):
        jobs.study_argument(str(study), jobs.project_root())


@pytest.mark.parametrize(("flag", "value"), [("--name", "x"), ("--num-samples", "3")])
def test_sweep_options_are_refused_for_a_study(flag, value):
    refused(
        ["submit", "hmtl_vs_pretraining", flag, value, "--address", ADDRESS],
        f"{flag}: a sweep option; hmtl_vs_pretraining is a study",
    )


def test_resume_takes_no_study_either():
    refused(
        ["submit", "hmtl_vs_pretraining", "--resume", "s3://b/p/studies/x", "--address", ADDRESS],
        "--resume takes the space or study, storage and tracking from its manifest; drop SPACE",
    )
